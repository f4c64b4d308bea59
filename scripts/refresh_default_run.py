"""Measure and document the default run's band: docs/default_run.json (with seed 0's curves), docs/default_run.png
(those curves, drawn by gift.plot) and the sentence that quotes the band in the README and docs
(scripts/check_default_run.py's SENTENCE_RE, in each of its SENTENCE_FILES).

    python scripts/refresh_default_run.py                   # runs `python train.py --seed=S --threads=T`, S 0-4, T 1-2
    python scripts/refresh_default_run.py --runs out/band   # the same, keeping the runs (finished ones are reused)
    python scripts/refresh_default_run.py --replot          # runs nothing: redraws the figure from the JSON's curves

Why a band: a run is exactly reproducible on one machine, but 1 and 2 threads (like two CPUs) sum in another order,
and greedy decoding turns the rounding into different answers; seeds 0-4 add the spread a user meets with another
seed. The 2-thread runs go one at a time (their wall times are what a user of a 2-core machine sees); the 1-thread
runs go two at a time (--jobs). Each run's `--eval_every` evaluations are not made: the runs are `python train.py`
with only --seed, --threads and the output folder set.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import train  # noqa: E402
from gift import plot  # noqa: E402
from scripts.check_default_run import (DOCS, SENTENCE_FILES, SENTENCE_RE, band_of, config_differences,  # noqa: E402
                                      readme_sentence)

SEEDS, THREADS = (0, 1, 2, 3, 4), (1, 2)
ENV = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def run_name(seed, threads):
    return f"default-s{seed}-t{threads}"


def run_all(runs_dir, jobs):
    """Every (seed, threads) default run without a summary.json: 2-thread runs alone, 1-thread runs `jobs` at once."""
    todo = [(s, t) for t in sorted(THREADS, reverse=True) for s in SEEDS
            if not os.path.exists(os.path.join(runs_dir, run_name(s, t), "summary.json"))]
    while todo:
        batch = [todo.pop(0)]
        while todo and batch[0][1] == 1 and todo[0][1] == 1 and len(batch) < jobs:
            batch.append(todo.pop(0))
        procs = []
        for seed, threads in batch:
            cmd = [sys.executable, "train.py", f"--seed={seed}", f"--threads={threads}", f"--out_dir={runs_dir}",
                   f"--run_name={run_name(seed, threads)}", "--overwrite"]
            print(" ".join(cmd[1:]), flush=True)
            log = open(os.path.join(runs_dir, run_name(seed, threads) + ".log"), "w")
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT))
        for proc in procs:
            if proc.wait():
                raise SystemExit(f"error: a train.py run failed (exit {proc.returncode}); see the logs in {runs_dir}")


def machine():
    """'<cores>-core <CPU model>' of this machine (Linux: /proc/cpuinfo)."""
    model = "CPU"
    if os.path.exists("/proc/cpuinfo"):
        names = re.findall(r"^model name\s*:\s*(.+)$", open("/proc/cpuinfo").read(), re.M)
        model = names[0].strip() if names else model
    return f"{os.cpu_count()}-core {model}"


CURVE_KEYS = ("step", "stage", "reward", "heldout_accuracy", "watch_accuracy", "loss", "kl", "entropy")


def curves(run_dir):
    """The records of a run that gift.plot draws (the SFT evaluation, every RL step, the final evaluation), with only
    the keys it reads: docs/default_run.json keeps seed 0's, so that --replot redraws the figure without the run.
    [] for a run without metrics.jsonl."""
    if not os.path.exists(os.path.join(run_dir, "metrics.jsonl")):
        return []
    return [{k: r[k] for k in CURVE_KEYS if k in r} for r in plot.read_metrics(run_dir)
            if r.get("stage") in ("sft_eval", "rl", "final")]


def replot(doc, out):
    """Draw docs/default_run.png from a documented band's curves alone (gift.plot on a folder rebuilt from them)."""
    if not doc.get("curves"):
        raise SystemExit("error: docs/default_run.json holds no curves (it predates them): "
                         "python scripts/refresh_default_run.py measures the band again and keeps them")
    with tempfile.TemporaryDirectory() as tmp:
        run = os.path.join(tmp, run_name(SEEDS[0], 2))
        os.makedirs(run)
        with open(os.path.join(run, "metrics.jsonl"), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in doc["curves"])
        with open(os.path.join(run, "summary.json"), "w") as f:
            json.dump(dict(config=doc["config"]), f)
        plot.plot([run], out)


def document(runs_dir):
    """docs/default_run.json from the finished runs: the band, every run's figures, and seed 0's 2-thread summary."""
    runs, defaults = [], asdict(train.parse_args([]))
    for seed in SEEDS:
        for threads in THREADS:
            with open(os.path.join(runs_dir, run_name(seed, threads), "summary.json")) as f:
                s = json.load(f)
            differences = config_differences(s["config"], defaults)  # a setting added since counts as its default
            if differences or s["threads"] != threads or s["seed"] != seed:
                raise SystemExit(f"error: {run_name(seed, threads)} is not a default run at {threads} threads: "
                                 f"{'; '.join(differences) or 'threads ' + str(s['threads'])}")
            runs.append(dict(seed=seed, threads=threads, sft_accuracy=s["sft_accuracy"], rl_accuracy=s["rl_accuracy"],
                             wall_time_s=s["wall_time_s"], sft_tool_frac=s["sft_eval"].get("tool_frac"),
                             rl_tool_accuracy=s["rl_eval"].get("tool_accuracy")))
    first = json.load(open(os.path.join(runs_dir, run_name(SEEDS[0], 2), "summary.json")))
    doc = dict(band=band_of(runs), heldout_problems=first["heldout_problems"], torch=first["torch"],
               machine=machine(), runs=runs, config=dict(first["config"], out_dir="out", run_name="builtin-gift-s0"),
               curves=curves(os.path.join(runs_dir, run_name(SEEDS[0], 2))))
    return doc, os.path.join(runs_dir, run_name(SEEDS[0], 2))


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default=None, help="folder for the 10 runs (default: a temporary folder)")
    p.add_argument("--jobs", type=int, default=2, help="1-thread runs at once")
    p.add_argument("--replot", action="store_true", help="run nothing: redraw the figure from the JSON's curves")
    args = p.parse_args(argv)
    if args.replot:
        with open(DOCS) as f:
            return replot(json.load(f), os.path.join(ROOT, "docs", "default_run.png"))
    runs_dir = args.runs or tempfile.mkdtemp(prefix="default-band-")
    os.makedirs(runs_dir, exist_ok=True)
    run_all(runs_dir, args.jobs)
    doc, seed0 = document(runs_dir)
    with open(DOCS, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(f"wrote {DOCS}")
    plot.plot([seed0], os.path.join(ROOT, "docs", "default_run.png"))
    for name in SENTENCE_FILES:
        path = os.path.join(ROOT, name)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        text, n = re.subn(SENTENCE_RE, lambda _: readme_sentence(doc), text)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"{name}: {n} sentence(s) now read: {readme_sentence(doc)}")
    print(f"the runs stay in {runs_dir}")


if __name__ == "__main__":
    main(sys.argv[1:])
