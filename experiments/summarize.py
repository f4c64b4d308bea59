"""Summarise train.py runs: held-out accuracy before and after RL, per run and per method (mean and spread).

    python experiments/summarize.py out/*/ [--json results.json]

Reads each run's summary.json (written at the end of train.py) and prints a Markdown table: one row per run, then
one row per method with the mean, the standard deviation over seeds and the range of the RL gain.
"""

import argparse
import json
import os
import statistics


def load(run_dir):
    path = os.path.join(run_dir, "summary.json")
    if not os.path.isfile(path):
        raise SystemExit(f"error: {path} not found (did the run finish?)")
    with open(path) as f:
        return json.load(f)


def main(argv=None):
    """argv: the command line's arguments (default: sys.argv[1:]). Returns the rows of the per-run table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="train.py output directories")
    p.add_argument("--json", default=None, help="also write the table as JSON here")
    args = p.parse_args(argv)
    rows = []
    for run_dir in args.runs:
        s = load(run_dir)
        c = s["config"]
        rl = s.get("rl_eval", {})
        rows.append(dict(run=os.path.basename(os.path.normpath(run_dir)), method=c["method"], ref=c["ref"],
                         seed=s["seed"], sft=s["sft_accuracy"], rl=s["rl_accuracy"], gain=s["rl_accuracy"] - s["sft_accuracy"],
                         ci95=rl.get("ci95"), tool_frac=rl.get("tool_frac"), wall_s=s["wall_time_s"],
                         problems=s["heldout_problems"]))
    print("| run | method | ref | seed | SFT | after RL | gain | tool style chosen | wall (s) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        tool = f"{r['tool_frac']:.3f}" if r["tool_frac"] is not None else "-"
        print(f"| {r['run']} | {r['method']} | {r['ref']} | {r['seed']} | {r['sft']:.3f} | {r['rl']:.3f} "
              f"| {r['gain']:+.3f} | {tool} | {r['wall_s']:.0f} |")
    print()
    print("| method | runs | SFT mean | after RL mean +- sd | gain mean (min, max) |")
    print("|---|---:|---:|---:|---:|")
    groups = {}
    for r in rows:
        groups.setdefault((r["method"], r["ref"]), []).append(r)
    for (method, ref), rs in groups.items():
        rl = [r["rl"] for r in rs]
        gains = [r["gain"] for r in rs]
        sd = statistics.stdev(rl) if len(rl) > 1 else 0.0
        print(f"| {method} (ref {ref}) | {len(rs)} | {statistics.mean(r['sft'] for r in rs):.3f} "
              f"| {statistics.mean(rl):.3f} +- {sd:.3f} | {statistics.mean(gains):+.3f} ({min(gains):+.3f}, {max(gains):+.3f}) |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
