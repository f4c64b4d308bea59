"""What the experiment scripts share: run train.py configurations and read back what they wrote.

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


def sft(seed, name="sft", **config):
    """The SFT run <name>-s<seed>: the default SFT (config: task fields to override), no RL; its sft.pt is every RL
    run's starting point."""
    return dict(run_name=f"{name}-s{seed}", seed=seed, rl_steps=0, **config)


def rl(runs, name, seed, sft_name="sft", **config):
    """An RL-only run named <name>-s<seed> from the checkpoint of SFT run <sft_name>-s<seed>; config: train.py
    fields to override."""
    return dict(run_name=f"{name}-s{seed}", seed=seed, init=os.path.join(runs, f"{sft_name}-s{seed}", "sft.pt"),
                sft_steps=0, **config)


# train.py fields added after runs were made whose default is what those runs did: a run saved without the field
# counts as having the default (so adding a task knob does not invalidate finished runs)
ADDED_LATER = {"mistakes": 0.0}


def check_same(run_dir, run):
    """A finished run must have been made with the settings asked for now, train.py's current defaults included
    (else: a clear error, not a reuse)."""
    with open(os.path.join(run_dir, "summary.json")) as f:
        saved = json.load(f)["config"]
    wanted = {**vars(Config()), **run}
    for key, value in wanted.items():
        have = saved.get(key, ADDED_LATER.get(key))
        if key not in RESUMABLE | {"run_name", "out_dir"} and have != value:
            raise SystemExit(f"error: {run_dir} was run with {key}={have!r}, this experiment asks for "
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


def mean_sd(values):
    m = sum(values) / len(values)
    sd = (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return m, sd


def write_json(args, name, result):
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
