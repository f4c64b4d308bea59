"""Experiment 7: GIFT against GRPO (with and without KL, and at GIFT's learning rate) on the writers setting, paired by
seed, with intervals.

    python experiments/testbed.py [--seeds 0 1 2 3 4] [--runs out/experiments] [--out docs/experiments]

The writers setting (`--mistakes=0.5 --tool_fraction=1`; docs/results.md, "The writers setting") is the built-in
task on which RL has several choices to fix at different speeds, so methods can differ. Per seed: one SFT run
(writers-sft-s<seed>), then from its checkpoint 150 RL steps of each method with the same prompts, per-prompt
sampling seeds, sampling budget (16 prompts x 8 samples, K = 4 rollout mini-batches) and optimiser. The learning rate
is each method's own (METHODS): at K = 4 GIFT's step is smaller than GRPO's, and a probe on seeds 0 and 1 found GIFT
at 2e-5 level with GRPO at 5e-6 by step 100 while GIFT at 5e-6 stayed near its SFT model (docs/results.md). GRPO
also runs at GIFT's rate, so that a difference can be told apart from the rate's. Held-out accuracy (greedy,
1,000 problems) every 10 steps. Reported:
  - final held-out accuracy per seed and method;
  - the paired difference GIFT - GRPO (and GIFT - GRPO+KL, GIFT - GRPO at GIFT's rate) per seed, its mean and 95%
    t-interval over seeds;
  - steps to reach 90% of the run's final accuracy (first evaluation at or above it), and to reach 90% of the run's
    gain over its SFT model;
  - sampled reward (training prompts, T = 1) against step and against training seconds (evaluations excluded);
  - diversity: pass@1 and pass@16 at T = 1 (`eval.py --n 16 --k 1,16`) of each SFT model and each run's final
    model on --pass_problems held-out problems (run here, written to <run>/pass16.json), and the paired differences.
Writes testbed.json and testbed.png.
"""

import json
import os
import subprocess
import sys
import time

from common import ROOT, curve, mean_sd, metrics, parser, pyplot, rl, run_all, save_figure, sft, summary, write_json
from compare import collect as collect_runs

TASK = dict(mistakes=0.5, tool_fraction=1.0)  # the writers setting; every run (SFT and RL) carries it
STEPS, EVAL_EVERY = 150, 10
METHODS = {  # name: train.py settings; everything else is train.py's default (K = 4 mini-batches for all)
    "gift": dict(method="gift", rl_lr=2e-5),  # 4x GRPO's: at 5e-6 GIFT gained 26-30 points in 150 steps (probe)
    "grpo": dict(method="grpo", rl_lr=5e-6),  # at train.py's 1e-4 GRPO is at 0.95 within 25 steps: nothing to compare
    "grpo-kl": dict(method="grpo", rl_lr=5e-6, kl_coef=0.04),
    "grpo-lr2e-5": dict(method="grpo", rl_lr=2e-5),  # GRPO at GIFT's learning rate: is a difference the rate's?
}
# two-sided 95% quantiles of Student's t with df = 1..30 degrees of freedom (df > 30: 1.96 is within 4%)
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def runs(args, steps=STEPS, eval_every=EVAL_EVERY, task=TASK):
    out = [sft(seed, "writers-sft", **task) for seed in args.seeds]
    for seed in args.seeds:
        out += [rl(args.runs, f"writers-{name}", seed, sft_name="writers-sft", rl_steps=steps, eval_every=eval_every,
                   **task, **cfg) for name, cfg in METHODS.items()]
    return out


def pass_runs(args):
    """(run name, checkpoint) of every model whose pass@1 / pass@16 the report needs: each seed's SFT model and the
    final model of each RL run."""
    out = []
    for seed in args.seeds:
        out.append((f"writers-sft-s{seed}", "sft.pt"))
        out += [(f"writers-{name}-s{seed}", "ckpt.pt") for name in METHODS]
    return out


def pass_at_16(args):
    """Run `eval.py --n 16 --k 1,16 --temperature 1` for every model of pass_runs without a pass16.json (args.jobs
    at a time, args.threads threads each); --report_only runs nothing."""
    todo = [(n, c) for n, c in pass_runs(args) if not os.path.exists(os.path.join(args.runs, n, "pass16.json"))
            and os.path.exists(os.path.join(args.runs, n, "summary.json"))]  # finished runs only (ckpt.pt is final)
    if args.report_only or not todo:
        return
    running = []
    while todo or running:
        while todo and len(running) < args.jobs:
            name, ckpt = todo.pop(0)
            cmd = [sys.executable, os.path.join(ROOT, "eval.py"), os.path.join(args.runs, name, ckpt), "--task=builtin",
                   "--n=16", "--k=1,16", "--temperature=1", f"--problems={args.pass_problems}",
                   f"--out={os.path.join(args.runs, name, 'pass16.json')}"]
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
            print(f"[{time.strftime('%H:%M:%S')}] pass@16 of {name}", flush=True)
            running.append((name, subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
        time.sleep(1)
        for name, proc in list(running):
            if proc.poll() is not None:
                running.remove((name, proc))
                if proc.returncode:
                    raise SystemExit(f"error: eval.py failed on {name}: {proc.stderr.read().decode()[-500:]}")


def read_pass(args, name):
    """(pass@1, pass@16) of a run's pass16.json, or (None, None) when it has not been measured."""
    path = os.path.join(args.runs, name, "pass16.json")
    if not os.path.exists(path):
        return None, None
    with open(path) as f:
        r = json.load(f)
    return r["pass@1"], r["pass@16"]


def t_interval(diffs):
    """Mean of paired differences and the half-width of its 95% t-interval (None with one pair)."""
    m, sd = mean_sd(diffs)
    n = len(diffs)
    if n < 2:
        return m, None
    t = T975[n - 2] if n - 1 <= len(T975) else 1.96
    return m, t * sd / n ** 0.5


def steps_to(steps, values, target):
    """The first evaluated step whose value is at or above target (None if never)."""
    return next((s for s, v in zip(steps, values) if v >= target), None)


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


def collect(args):
    """compare.collect's per-seed curves and finals for each method, plus what this experiment adds: pass@k, steps to
    90%, the reward against training seconds and the mistake shares."""
    base = collect_runs(args, [f"writers-{name}" for name in METHODS])
    result = {}
    for name in METHODS:
        entry = result[name] = base[f"writers-{name}"]
        for seed, v in entry["per_seed"].items():
            records = metrics(args, f"writers-{name}-s{seed}")
            rl_records = [r for r in records if r.get("stage") == "rl"]
            steps, acc, final, sft_acc = v["steps"], v["accuracy"], v["final_accuracy"], v["sft_accuracy"]
            (pass1, pass16), (sft_pass1, sft_pass16) = (read_pass(args, f"writers-{n}-s{seed}") for n in (name, "sft"))
            v.update(
                pass1=pass1, pass16=pass16, sft_pass1=sft_pass1, sft_pass16=sft_pass16,
                steps_to_90pct=steps_to(steps, acc, 0.9 * final),
                steps_to_90pct_gain=steps_to(steps, acc, sft_acc + 0.9 * (final - sft_acc)) if final > sft_acc else None,
                reward_seconds=[round(r["time"] - r["eval_time"], 1) for r in rl_records],
                mistakes={k[len("heldout_mistake_"):]: [r[k] for r in records if k in r]
                          for k in (records[-1] if records else {}) if k.startswith("heldout_mistake_")})
        # training seconds at the last RL step (compare's is at the last evaluation)
        entry["train_seconds_mean"] = mean_sd([v["reward_seconds"][-1] for v in entry["per_seed"].values()])[0]
    paired = {}
    for other in [m for m in METHODS if m != "gift"]:
        for key, label in (("final_accuracy", ""), ("pass1", " pass@1"), ("pass16", " pass@16")):
            pairs = [(result["gift"]["per_seed"][s][key], result[other]["per_seed"][s][key]) for s in args.seeds]
            if any(v is None for pair in pairs for v in pair):
                continue  # pass@k not measured (--report_only before pass_at_16 ran)
            diffs = [a - b for a, b in pairs]
            m, half = t_interval(diffs)
            paired[f"gift-{other}{label.replace(' ', '_')}"] = dict(
                per_seed=diffs, mean=m, ci95_half_width=half, ci95=None if half is None else [m - half, m + half])
    return result, paired


def plot(args, result):
    plt = pyplot()
    fig, (ax_acc, ax_step, ax_time, ax_pass) = plt.subplots(1, 4, figsize=(20, 3.8))
    for name, entry in result.items():
        seeds = list(entry["per_seed"].values())
        accs = list(zip(*[s["accuracy"] for s in seeds]))
        line, = ax_acc.plot(seeds[0]["steps"], [sum(a) / len(a) for a in accs], marker="o", markersize=3,
                            label=f"{name} (final {entry['final_mean']:.3f})")
        color = line.get_color()
        ax_acc.fill_between(seeds[0]["steps"], [min(a) for a in accs], [max(a) for a in accs], color=color, alpha=0.15)
        rewards = list(zip(*[s["reward"] for s in seeds]))  # per step, one value per seed
        mean = [sum(r) / len(r) for r in rewards]
        smooth = [sum(mean[max(0, i - 4): i + 1]) / len(mean[max(0, i - 4): i + 1]) for i in range(len(mean))]
        x = range(1, len(mean) + 1)
        ax_step.plot(x, smooth, color=color, label=name)
        ax_step.fill_between(x, [min(r) for r in rewards], [max(r) for r in rewards], color=color, alpha=0.1)
        secs = [sum(t) / len(t) for t in zip(*[s["reward_seconds"] for s in seeds])]
        ax_time.plot(secs, smooth, color=color, label=name)
    bars = {"SFT": [(x["sft_pass1"], x["sft_pass16"]) for x in next(iter(result.values()))["per_seed"].values()]}
    bars.update({name: [(x["pass1"], x["pass16"]) for x in e["per_seed"].values()] for name, e in result.items()})
    if all(v is not None for seeds in bars.values() for pair in seeds for v in pair):  # diversity, when measured
        for i, (name, seeds) in enumerate(bars.items()):
            for j, label in enumerate(("pass@1", "pass@16")):
                values = [pair[j] for pair in seeds]
                ax_pass.bar(i + 0.4 * j - 0.2, sum(values) / len(values), 0.38, color=f"C{j}",
                            label=label if i == 0 else None)
                ax_pass.plot([i + 0.4 * j - 0.2] * len(values), values, "k.", markersize=4)
        ax_pass.set_xticks(range(len(bars)), list(bars))
        ax_pass.set_ylabel(f"T = 1, {args.pass_problems} held-out problems (dots: seeds)")
    else:
        ax_pass.axis("off")
    ax_acc.set_xlabel("RL step")
    ax_acc.set_ylabel("held-out accuracy (greedy)")
    ax_step.set_xlabel("RL step")
    ax_step.set_ylabel("sampled reward (mean of seeds, 5-step mean)")
    ax_time.set_xlabel(f"training seconds ({args.threads} CPU thread(s), evaluations excluded)")
    ax_time.set_ylabel("sampled reward")
    for ax in (ax_acc, ax_step, ax_time, ax_pass):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(f"writers setting (--mistakes={TASK['mistakes']}), seeds {args.seeds} (bands: min-max over seeds)",
                 fontsize=10)
    save_figure(args, fig, "testbed")


def report(args):
    result, paired = collect(args)
    write_json(args, "testbed", dict(seeds=args.seeds, steps=STEPS, task=TASK, methods=METHODS,
                                     pass_problems=args.pass_problems, results=result, paired=paired))
    print(f"{'method':8s} " + " ".join(f"s{s:<6d}" for s in args.seeds) + " mean   sd     SFT    steps to 90% "
          "(of final / of gain)  train s")
    for name, entry in result.items():
        v = entry["per_seed"].values()
        print(f"{name:8s} " + " ".join(f"{x['final_accuracy']:<7.3f}" for x in v)
              + f" {entry['final_mean']:.3f}  {entry['final_sd']:.3f}  {entry['sft_mean']:.3f}  "
              + ",".join(str(x["steps_to_90pct"]) for x in v) + " / " + ",".join(str(x["steps_to_90pct_gain"]) for x in v)
              + f"  {entry['train_seconds_mean']:.0f}")
    for name, entry in result.items():
        v = entry["per_seed"].values()
        if all(x["pass16"] is not None for x in v):
            print(f"{name:8s} pass@1 / pass@16 (T = 1, {args.pass_problems} problems): "
                  + "  ".join(f"{x['pass1']:.3f}/{x['pass16']:.3f}" for x in v)
                  + "   SFT: " + "  ".join(f"{x['sft_pass1']:.3f}/{x['sft_pass16']:.3f}" for x in v))
    for key, p in paired.items():
        interval = "n/a (one seed)" if p["ci95"] is None else f"[{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}]"
        print(f"{key}: per seed " + " ".join(f"{d:+.3f}" for d in p["per_seed"])
              + f"; mean {p['mean']:+.3f}, 95% t-interval {interval}")
    plot(args, result)


PARSER = parser(__doc__, seeds=(0, 1, 2, 3, 4))
PARSER.add_argument("--pass_problems", type=int, default=300, help="held-out problems for pass@1 / pass@16")

if __name__ == "__main__":
    args = PARSER.parse_args()
    run_all(runs(args), args)
    pass_at_16(args)
    report(args)
