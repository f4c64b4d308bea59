"""What the experiment scripts share: run train.py configurations, read back what they wrote, the statistics and
plots of the reports, and the run lists that several scripts reuse. Each script imports only this module, train.py
and gift/ (never a sibling script), so it can be read, run and changed on its own.

Every experiment is a list of train.py runs plus a report (a JSON file and a PNG). A run is a dict of train.py
config fields; `run_all` starts `python train.py --key=value ...` for each one that has not finished yet, a few at a
time, so the scripts share runs (experiment 3's group size 8 is experiment 1's run), can be stopped and started
again (a killed run resumes from its checkpoint), and never silently reuse a run made with other settings.

RL runs start from their seed's SFT checkpoint (`train.py --rl_steps=0` writes <runs>/sft-s<seed>/sft.pt), so every
method with one seed starts from the same model and sees the same prompts and per-prompt sampling seeds: the RL half
of `python train.py --seed=S` bit for bit when the settings are the defaults.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from gift.plot import eval_step, read_metrics  # noqa: E402  (clear errors for missing or malformed metrics.jsonl)
from train import RESUMABLE, Config  # noqa: E402


def parser(doc, seeds=(0, 1, 2)):
    """Command-line options every experiment script takes."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="out/experiments", help="folder for the train.py runs (shared by the scripts)")
    p.add_argument("--out", default="docs/experiments", help="folder for the JSON results and the PNG")
    p.add_argument("--seeds", type=int, nargs="+", default=list(seeds))
    p.add_argument("--jobs", type=int, default=2, help="train.py processes at once")
    p.add_argument("--threads", type=int, default=1, help="torch threads per train.py process")
    p.add_argument("--report_only", action="store_true", help="do not start runs; report the finished ones")
    return p


# Every experiment's SFT ran 1,200 steps, train.py's default until the default run's band (docs/training.md) moved it
# to 2,400; the experiments keep 1,200 so that their finished runs are reused and their reports regenerate.
SFT_STEPS = 1200


def sft(seed, name="sft", **config):
    """The SFT run <name>-s<seed>: SFT_STEPS steps of train.py's SFT (config: task fields to override), no RL; its
    sft.pt is every RL run's starting point."""
    return dict(run_name=f"{name}-s{seed}", seed=seed, rl_steps=0, **{"sft_steps": SFT_STEPS, **config})


def rl(runs, name, seed, sft_name="sft", **config):
    """An RL-only run named <name>-s<seed> from the checkpoint of SFT run <sft_name>-s<seed>; config: train.py
    fields to override."""
    return dict(run_name=f"{name}-s{seed}", seed=seed, init=os.path.join(runs, f"{sft_name}-s{seed}", "sft.pt"),
                sft_steps=0, **config)


def check_same(run_dir, run):
    """A finished run must have been made with the settings asked for now: `run` on top of train.py's current Config
    defaults (else: a clear error, not a reuse). Keys in RESUMABLE, run_name and out_dir never count.

    A key the saved config lacks is a train.py field added after the run was made. The project's rule is that a new
    field's default reproduces the old behaviour, so such a run did what the field's default does: it is reused when
    the experiment asks for the default (adding a task knob does not invalidate finished runs) and refused when it
    asks for anything else."""
    with open(os.path.join(run_dir, "summary.json")) as f:
        saved = json.load(f)["config"]
    defaults = vars(Config())
    for key, value in {**defaults, **run}.items():
        if key in RESUMABLE | {"run_name", "out_dir"}:
            continue
        have = saved[key] if key in saved else defaults.get(key)
        if have != value:
            made = "" if key in saved else f" (it predates --{key}: the default)"
            raise SystemExit(f"error: {run_dir} was run with {key}={have!r}{made}, this experiment asks for "
                             f"{key}={value!r}; delete that folder or choose another --runs folder")


def run_all(runs, args):
    """Run train.py for every config in `runs` that has not finished, args.jobs at a time. A run whose --init
    checkpoint does not exist yet waits for it (an SFT run writes sft.pt before its last evaluation)."""
    todo, running, seen = [], {}, {}
    for run in runs:
        if run["run_name"] in seen:
            if seen[run["run_name"]] != run:
                raise SystemExit(f"error: two experiments name different runs {run['run_name']}: "
                                 f"{seen[run['run_name']]} and {run}")
            continue
        seen[run["run_name"]] = run
        run_dir = os.path.join(args.runs, run["run_name"])
        if os.path.exists(os.path.join(run_dir, "summary.json")):
            check_same(run_dir, run)
        else:
            todo.append(run)
    if todo and args.report_only:
        raise SystemExit(f"error: --report_only but {len(todo)} runs have not finished: "
                         + ", ".join(r["run_name"] for r in todo))
    os.makedirs(args.runs, exist_ok=True)
    while todo or running:
        ready = [r for r in todo if not r.get("init", "").endswith(".pt") or os.path.exists(r["init"])]
        while ready and len(running) < args.jobs:
            run = ready.pop(0)
            todo.remove(run)
            cmd = [sys.executable, os.path.join(ROOT, "train.py"), f"--out_dir={args.runs}",
                   f"--threads={args.threads}", *(f"--{k}={v}" for k, v in run.items())]
            if os.path.exists(os.path.join(args.runs, run["run_name"], "ckpt.pt")):
                cmd.append("--resume")  # a run that was stopped part of the way
            log = os.path.join(args.runs, run["run_name"] + ".log")
            print(f"[{time.strftime('%H:%M:%S')}] start {run['run_name']} (log: {log})", flush=True)
            running[run["run_name"]] = (subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT), log)
        if not running and todo:
            missing = sorted({r["init"] for r in todo})
            raise SystemExit(f"error: runs wait for checkpoints that nothing is making: {', '.join(missing)}")
        time.sleep(2)
        for name, (proc, log) in list(running.items()):
            if proc.poll() is not None:
                del running[name]
                if proc.returncode:
                    for other, _ in running.values():
                        other.terminate()
                    raise SystemExit(f"error: train.py run {name} failed (exit {proc.returncode}); see {log}")
                print(f"[{time.strftime('%H:%M:%S')}] done  {name}", flush=True)


def summary(args, name):
    with open(os.path.join(args.runs, name, "summary.json")) as f:
        return json.load(f)


def metrics(args, name):
    return read_metrics(os.path.join(args.runs, name))


def curve(records, key="heldout_accuracy"):
    """(steps, training seconds, values) of the records that have `key`, from the SFT evaluation to the final one.
    steps counts the RL updates made before the evaluation (gift.plot.eval_step). Training seconds exclude the time
    spent in evaluations."""
    steps, secs, values = [], [], []
    for r in records:
        if key in r:
            steps.append(eval_step(r))
            secs.append(r["time"] - r["eval_time"] if r["stage"] != "sft_eval" else 0.0)
            values.append(r[key])
    return steps, secs, values


# ----------------------------------------------------------------------------------------------------------------
# statistics

# two-sided 95% quantiles of Student's t with df = 1..30 degrees of freedom (df > 30: 1.96 is within 4%)
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def mean_sd(values):
    m = sum(values) / len(values)
    sd = (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return m, sd


def t_interval(diffs):
    """Mean of paired differences and the half-width of its 95% t-interval (None with one pair)."""
    m, sd = mean_sd(diffs)
    n = len(diffs)
    if n < 2:
        return m, None
    t = T975[n - 2] if n - 1 <= len(T975) else 1.96
    return m, t * sd / n ** 0.5


def area_under(steps, values):
    """The area under an accuracy curve over its span of steps, divided by the span (trapezoids): the mean accuracy
    over training, so 1 means right from the start; it rewards converging fast as well as far."""
    area = sum((s1 - s0) * (v0 + v1) / 2 for s0, s1, v0, v1 in zip(steps, steps[1:], values, values[1:]))
    return area / (steps[-1] - steps[0])


def steps_to(steps, values, target):
    """The first evaluated step whose value is at or above target (None if never)."""
    return next((s for s, v in zip(steps, values) if v >= target), None)


def points(d, scale=100, digits=1):
    """A paired difference (paired_difference's dict) with its 95% t-interval, as the docs write it: an accuracy in
    points by default, '+1.2 (-0.3 to +2.7)'; a reward as it is with scale=1, digits=3, '+0.058 (+0.010 to +0.106)'."""
    ci = "" if d["ci95"] is None else f" ({scale * d['ci95'][0]:+.{digits}f} to {scale * d['ci95'][1]:+.{digits}f})"
    return f"{scale * d['mean']:+.{digits}f}{ci}"


def bracket(d, digits=3, none="n/a (one seed)"):
    """A paired difference's 95% t-interval as the scripts print it, '[-0.004, +0.024]'; `none` with one pair."""
    return none if d["ci95"] is None else f"[{d['ci95'][0]:+.{digits}f}, {d['ci95'][1]:+.{digits}f}]"


def paired_difference(diffs):
    """Paired differences as the reports write them: per seed, their mean and its 95% t-interval (None with one
    pair)."""
    m, half = t_interval(diffs)
    return dict(per_seed=diffs, mean=m, ci95=None if half is None else [m - half, m + half])


def accuracy_runs(args, name):
    """The held-out accuracy of the finished runs <name>-s<seed>: per seed its curve, final value and the step
    reaching 90% of it; the mean and sd of the finals."""
    per_seed = {}
    for seed in args.seeds:
        run = f"{name}-s{seed}"
        steps, _, acc = curve(metrics(args, run))
        final = summary(args, run)["rl_accuracy"]
        per_seed[seed] = dict(steps=steps, accuracy=acc, final_accuracy=final,
                              steps_to_90pct=steps_to(steps, acc, 0.9 * final))
    m, sd = mean_sd([v["final_accuracy"] for v in per_seed.values()])
    return dict(per_seed=per_seed, final_mean=m, final_sd=sd)


def collect_methods(args, names):
    """{name: {"per_seed": {...}, "final_mean", "final_sd", ...}} from finished runs named <name>-s<seed>: per seed
    the held-out accuracy against step and training seconds, the sampled reward per step, the SFT and final
    accuracy; over seeds the means (the reward over the first and the last ten steps: how fast, how far)."""
    result = {}
    for name in names:
        per_seed = {}
        for seed in args.seeds:
            records = metrics(args, f"{name}-s{seed}")
            steps, secs, acc = curve(records)
            s = summary(args, f"{name}-s{seed}")
            rewards = [r["reward"] for r in records if r.get("stage") == "rl"]
            per_seed[seed] = dict(steps=steps, train_seconds=[round(t, 1) for t in secs], accuracy=acc, reward=rewards,
                                  sft_accuracy=s["sft_accuracy"], final_accuracy=s["rl_accuracy"],
                                  ci95=s["rl_eval"]["ci95"], wall_time_s=s["wall_time_s"])
        finals = [v["final_accuracy"] for v in per_seed.values()]
        m, sd = mean_sd(finals)
        early = [sum(v["reward"][:10]) / 10 for v in per_seed.values()]  # how fast: mean reward of steps 1-10
        late = [sum(v["reward"][-10:]) / 10 for v in per_seed.values()]
        result[name] = dict(per_seed=per_seed, final_mean=m, final_sd=sd, reward_first10_mean=mean_sd(early)[0],
                            reward_last10_mean=mean_sd(late)[0],
                            sft_mean=mean_sd([v["sft_accuracy"] for v in per_seed.values()])[0],
                            train_seconds_mean=mean_sd([v["train_seconds"][-1] for v in per_seed.values()])[0])
    return result


def machine():
    """The machine a report was made on, in words: the GPU if torch sees one, else the CPU, and torch's version."""
    import platform

    import torch
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()}-core {model}, torch {torch.__version__}"


def lr_name(lr):
    """2e-05 -> "2e-5", 1.6e-04 -> "1.6e-4": the way run names spell a learning rate (every significant digit, so two
    rates never share a name)."""
    mantissa, exponent = f"{lr:.6e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def pass_at_16(args, models, problems):
    """Run `eval.py --n 16 --k 1,16 --temperature 1` on `problems` held-out problems for every (run name, checkpoint)
    of `models` whose run has finished and has no pass16.json yet (args.jobs at a time, args.threads threads each);
    --report_only runs nothing. The result goes to <run>/pass16.json (read_pass)."""
    todo = [(n, c) for n, c in models if not os.path.exists(os.path.join(args.runs, n, "pass16.json"))
            and os.path.exists(os.path.join(args.runs, n, "summary.json"))]  # finished runs only (ckpt.pt is final)
    if args.report_only or not todo:
        return
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    run_processes([(f"pass@16 of {name}", dict(
        args=[sys.executable, os.path.join(ROOT, "eval.py"), os.path.join(args.runs, name, ckpt), "--task=builtin",
              "--n=16", "--k=1,16", "--temperature=1", f"--problems={problems}",
              f"--out={os.path.join(args.runs, name, 'pass16.json')}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
        lambda proc, name=name: f"error: eval.py failed on {name}: {proc.stderr.read().decode()[-500:]}")
        for name, ckpt in todo], args.jobs)


def run_processes(todo, jobs):
    """Start each (label, Popen keyword arguments, failure line) of todo, `jobs` at a time, until all have ended.
    failure line: proc -> the error line when that process exits non-zero (then nothing more starts)."""
    running = []
    while todo or running:
        while todo and len(running) < jobs:
            label, popen, failure = todo.pop(0)
            print(f"[{time.strftime('%H:%M:%S')}] {label}", flush=True)
            running.append((subprocess.Popen(**popen), failure))
        time.sleep(1)
        for proc, failure in list(running):
            if proc.poll() is not None:
                running.remove((proc, failure))
                if proc.returncode:
                    raise SystemExit(failure(proc))


def read_pass(args, name):
    """(pass@1, pass@16) of a run's pass16.json, or (None, None) when it has not been measured."""
    path = os.path.join(args.runs, name, "pass16.json")
    if not os.path.exists(path):
        return None, None
    with open(path) as f:
        r = json.load(f)
    return r["pass@1"], r["pass@16"]


# ----------------------------------------------------------------------------------------------------------------
# reports and plots


def command_line(argv=None):
    """The command that is running, as the docs write it: 'python experiments/writers_lr.py --seeds 0 1' (the script
    relative to the repository when it lies inside it, each argument quoted only where the shell needs it)."""
    import shlex

    argv = sys.argv if argv is None else argv
    script = os.path.abspath(argv[0]) if argv else ""
    if script.startswith(ROOT + os.sep):
        script = os.path.relpath(script, ROOT)
    return " ".join(["python", shlex.quote(script or "-"), *map(shlex.quote, argv[1:])])


def commit(root=ROOT):
    """The repository's commit (git rev-parse HEAD), with "-dirty" when a tracked file differs from it (untracked
    files, such as the reports a run is writing, do not count); None when git or the repository is not there (a copy
    of the code without .git)."""
    def git(*cmd):
        return subprocess.run(["git", *cmd], cwd=root, capture_output=True, text=True, check=True).stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def write_json(args, name, result):
    """Write <args.out>/<name>.json: `result` with the command line and the commit that made it ("command",
    "commit"), added to `result` itself so that a script which returns its result returns what it wrote."""
    result.update(command=command_line(), commit=commit())
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, name + ".json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {path}")


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("error: the experiment plots need matplotlib: pip install matplotlib") from None
    return plt


def save_figure(args, fig, name):
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, name + ".png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def plot_curves(ax_step, ax_time, ax_reward, name, entry):
    """Mean accuracy over seeds against step and against mean training seconds (band = min..max over seeds), and
    the mean sampled reward of each step (training prompts, temperature 1: a learning curve at every step)."""
    seeds = list(entry["per_seed"].values())
    steps = seeds[0]["steps"]
    accs = list(zip(*[s["accuracy"] for s in seeds]))  # per evaluation, one value per seed
    mean = [sum(a) / len(a) for a in accs]
    secs = [sum(t) / len(t) for t in zip(*[s["train_seconds"] for s in seeds])]
    for ax, x in ((ax_step, steps), (ax_time, secs)):
        line, = ax.plot(x, mean, marker="o", label=f"{name} (final {entry['final_mean']:.3f})")
        ax.fill_between(x, [min(a) for a in accs], [max(a) for a in accs], color=line.get_color(), alpha=0.15)
    rewards = list(zip(*[s["reward"] for s in seeds]))  # per step, one value per seed
    ax_reward.plot(range(1, len(rewards) + 1), [sum(r) / len(r) for r in rewards], color=line.get_color(), label=name)


def figure(args, result, title, name):
    """<name>.png of collect_methods' result: held-out accuracy against RL step and against training seconds, and
    the sampled reward per step."""
    plt = pyplot()
    fig, (ax_step, ax_time, ax_reward) = plt.subplots(1, 3, figsize=(15, 3.8))
    for run, entry in result.items():
        plot_curves(ax_step, ax_time, ax_reward, run, entry)
    ax_reward.set_xlabel("RL step")
    ax_reward.set_ylabel("sampled reward (training prompts, T = 1)")
    ax_reward.grid(alpha=0.3)
    ax_reward.legend(fontsize=8)
    ax_step.set_xlabel("RL step")
    ax_time.set_xlabel(f"training seconds ({args.threads} CPU thread(s), evaluations excluded)")
    for ax in (ax_step, ax_time):
        ax.set_ylabel("held-out accuracy (greedy)")
        ax.grid(alpha=0.3)
    ax_step.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    save_figure(args, fig, name)


# ----------------------------------------------------------------------------------------------------------------
# runs that several scripts share (a shared run has one name and one config, whichever script starts it)

# the built-in task's comparison (compare.py): 50 RL steps per method from the seed's SFT checkpoint, held-out
# accuracy every 10 steps. faithful.py, group_size.py and beta.py reuse its runs (gift-s<seed>, grpo-s<seed>, ...).
BUILTIN_STEPS, BUILTIN_EVAL_EVERY = 50, 10
BUILTIN_METHODS = {  # name: train.py settings; everything else is train.py's default
    "gift": dict(method="gift"),                      # reference = each batch's sampling policy (the default)
    "grpo": dict(method="grpo"),                      # clipped ratio, no KL term
    "grpo-kl": dict(method="grpo", kl_coef=0.04),     # + k3 KL to the SFT model, DeepSeekMath's coefficient
}

# the writers setting (`--mistakes=0.5 --tool_fraction=1`; docs/results.md, "The writers setting"): writers.py
# compares the methods on it; writers_overfit.py, writers_ablations.py and writers_lr.py start from the same SFT runs
# (writers-sft-s<seed>) and reuse writers.py's runs where their settings coincide.
WRITERS_TASK = dict(mistakes=0.5, tool_fraction=1.0)  # every run (SFT and RL) carries it
WRITERS_STEPS, WRITERS_EVAL_EVERY = 150, 10
WRITERS_METHODS = {  # name: train.py settings; everything else is train.py's default (K = 4 mini-batches for all)
    "gift": dict(method="gift", rl_lr=2e-5),  # 4x GRPO's: at 5e-6 GIFT gained 26-30 points in 150 steps (probe)
    "grpo": dict(method="grpo", rl_lr=5e-6),  # at train.py's 1e-4 GRPO is at 0.95 within 25 steps: nothing to compare
    "grpo-kl": dict(method="grpo", rl_lr=5e-6, kl_coef=0.04),
    "grpo-lr2e-5": dict(method="grpo", rl_lr=2e-5),  # GRPO at GIFT's learning rate: is a difference the rate's?
}


def writers_sft(seed):
    """The writers setting's SFT run writers-sft-s<seed>: every writers RL run of that seed starts from its sft.pt."""
    return sft(seed, "writers-sft", **WRITERS_TASK)


def writers_rl(args, name, seed, steps=WRITERS_STEPS, eval_every=WRITERS_EVAL_EVERY, **config):
    """The writers setting's RL run <name>-s<seed> (name: writers-...) from writers-sft-s<seed>: `steps` RL steps,
    held-out accuracy every `eval_every`; config: train.py fields to override."""
    return rl(args.runs, name, seed, sft_name="writers-sft", rl_steps=steps, eval_every=eval_every,
              **WRITERS_TASK, **config)


def sample_budget(records, config, steps=()):
    """What a run sampled: rounds of prompts drawn over its RL steps (`draws`: 1 a step, more with DAPO's dynamic
    sampling), equal-reward groups kept to fill a step (`filled`), and the responses sampled (draws x prompts x
    group size), so that a method that samples more is priced by it. With `steps` (a curve's evaluation steps, from
    curve()), also `responses_at`: the responses sampled before each of those evaluations, the x axis of accuracy
    against samples rather than against steps."""
    rl = [r for r in records if r.get("stage") == "rl"]
    per_draw = config["prompts"] * config["group_size"]
    draws = sum(r.get("draws", 1) for r in rl)
    out = dict(draws=draws, filled=sum(r.get("filled", 0) for r in rl), responses=draws * per_draw)
    if steps:  # an "rl" record's step is the index of the update just made: eval_step(r) = step + 1 updates
        out["responses_at"] = [per_draw * sum(r.get("draws", 1) for r in rl if r["step"] + 1 <= s) for s in steps]
    return out
