"""Plot training curves from one or more runs' metrics.jsonl.

    python -m gift.plot out/builtin-gift-s0 out/builtin-grpo-s0 [--out curves.png]

Five panels against step: the sampled reward, held-out accuracy, the loss, the KL to the reference and the entropy
(RL steps; the held-out panel also shows the SFT evaluation at the start of RL). matplotlib is optional: it is needed
only here.
"""

import argparse
import json
import os
import sys

PANELS = [("reward", "sampled reward"), ("heldout_accuracy", "held-out accuracy (greedy)"), ("loss", "loss"),
          ("kl", "KL to reference (per token)"), ("entropy", "entropy (nats per token)")]


def read_metrics(run_dir):
    """The records of run_dir/metrics.jsonl as a list of dicts; a clear error for a missing or malformed file."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        raise SystemExit(f"error: {path} not found (is {run_dir!r} a train.py output directory?)")
    records = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise SystemExit(f"error: {path}:{lineno}: not valid JSON ({e.msg})") from None
    return records


def eval_step(record):
    """The step at which a record's held-out scores were measured. An "rl" record's step is the index of the step
    just taken, so its evaluation came after step + 1 updates; "sft_eval" and "final" records carry that count."""
    return record["step"] + (record["stage"] == "rl")


def plot(run_dirs, out):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("error: plotting needs matplotlib: pip install matplotlib") from None
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4 * len(PANELS), 3.4))
    for run_dir in run_dirs:
        records = read_metrics(run_dir)
        label = os.path.basename(os.path.normpath(run_dir))
        for ax, (key, title) in zip(axes, PANELS):
            rows = [r for r in records if key in r and r.get("stage") != "sft"]
            if key == "heldout_accuracy":
                rows = [r for r in records if key in r]  # the SFT evaluation, RL evaluations, the final one
            x = [eval_step(r) if key == "heldout_accuracy" else r["step"] for r in rows]
            ax.plot(x, [r[key] for r in rows], marker="o" if len(rows) < 30 else None, label=label)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("step")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="train.py output directories (out/<run>)")
    p.add_argument("--out", default=None, help="PNG path (default: <first run>/curves.png)")
    args = p.parse_args(argv)
    plot(args.runs, args.out or os.path.join(args.runs[0], "curves.png"))


if __name__ == "__main__":
    main(sys.argv[1:])
