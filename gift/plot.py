"""Plot training curves from one or more runs' metrics.jsonl.

    python -m gift.plot out/builtin-gift-s0 out/builtin-grpo-s0 [--out curves.png]

Five panels against the RL step (runs with different SFT lengths line up at 0, the start of RL): the sampled reward,
held-out accuracy (points: the full evaluations, after SFT at 0, any --eval_every ones and the final one; a line: the
quick scores of the first --watch_problems problems every --watch_every steps), the loss, the KL to the reference and
the entropy. A sixth panel holds the legend and the notes: what GIFT's loss is and is not (it does not fall as the
model improves), and when a run's KL is 0 by construction (GIFT whose reference is the sampling policy, or GRPO
without a reference model); the run's settings are read from its summary.json.
matplotlib is optional: it is needed only here. docs/default_run.png is this plot of the default run
(scripts/refresh_default_run.py).
"""

import argparse
import json
import os
import sys
import textwrap

# (metrics key, title, y label)
PANELS = [("reward", "sampled reward", "fraction correct"),
          ("heldout_accuracy", "held-out accuracy (greedy)", "pass@1"),
          ("loss", "loss", "loss"),
          ("kl", "KL to reference (per token)", "nats per token"),
          ("entropy", "entropy (per token)", "nats per token")]


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


def rl_start(records):
    """The global step at which RL began (the SFT evaluation's step); None for a run without RL records."""
    for r in records:
        if r.get("stage") == "sft_eval":
            return r["step"]
    rl = [r["step"] for r in records if r.get("stage") == "rl"]
    return min(rl) if rl else None


def rl_curve(records, key, start):
    """(x, y) of one panel: x is the RL step. A training record of the k-th RL step (k = 1, 2, ...) is at x = k; a
    held-out score is at the number of RL updates made before it (0: the SFT model)."""
    if key == "heldout_accuracy":
        rows = [r for r in records if key in r]
        return [eval_step(r) - start for r in rows], [r[key] for r in rows]
    rows = [r for r in records if key in r and r.get("stage") == "rl"]
    return [r["step"] - start + 1 for r in rows], [r[key] for r in rows]


def run_config(run_dir):
    """The config dict from run_dir/summary.json, or None (an unfinished run)."""
    path = os.path.join(run_dir, "summary.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f).get("config")


def kl_note(config):
    """Why a run's logged KL is 0 whatever the policy does, or None when it measures something. With GIFT and
    --ref=old the reference is the sampling policy and the loss (one optimiser step on one mini-batch) is taken before
    any update, so log pi_theta = log pi_ref on every token; GRPO without --kl_coef has no reference model."""
    if not config:
        return None
    if config.get("method") == "gift" and config.get("ref") == "old" and config.get("inner_steps", 1) == 1 \
            and config.get("minibatches", 1) == 1:
        return "KL = 0 by construction: the reference is the sampling policy (--ref=old)"
    if config.get("method") == "grpo" and not config.get("kl_coef"):
        return "KL not computed (0 logged): GRPO without --kl_coef has no reference model"
    return None


def notes(run_dirs):
    """The lines of the figure's notes panel: what GIFT's loss is (when a run is GIFT) and why a run's KL is 0."""
    configs = [run_config(d) or {} for d in run_dirs]
    out = []
    if any(c.get("method") == "gift" for c in configs):
        out.append("Loss (GIFT): 2(1 - rho), how badly the log-ratios of this step's groups fit their rewards. It is "
                   "refit at every rollout, so it is not a progress signal: watch the reward and the accuracy.")
    for run_dir, config in zip(run_dirs, configs):
        note = kl_note(config)
        if note:
            out.append(note if len(run_dirs) == 1 else f"{os.path.basename(os.path.normpath(run_dir))}: {note}")
    return out


def plot(run_dirs, out):
    """Two rows of three: the five PANELS and a sixth that holds the legend and the notes (so that no note covers a
    curve); sized to be read at a page's width (about 1,200 x 700 pixels)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("error: plotting needs matplotlib: pip install matplotlib") from None
    with plt.rc_context({"font.size": 11, "axes.titlesize": 12, "legend.fontsize": 10}):
        fig, grid = plt.subplots(2, 3, figsize=(11, 6.6))
        axes, side = list(grid.flat[:len(PANELS)]), grid.flat[len(PANELS)]
        handles, watch = {}, set()
        for i, run_dir in enumerate(run_dirs):
            records = read_metrics(run_dir)
            label = os.path.basename(os.path.normpath(run_dir))
            start = rl_start(records)
            if start is None:
                raise SystemExit(f"error: {run_dir} has no RL steps to plot (an SFT-only run, or one not yet in RL)")
            color = f"C{i % 10}"
            for ax, (key, title, ylabel) in zip(axes, PANELS):
                x, y = rl_curve(records, key, start)
                if key == "heldout_accuracy":  # a few full measurements: points; the quick scores: a thin line
                    ax.plot(x, y, "o", color=color, markersize=7)
                    wx, wy = rl_curve(records, "watch_accuracy", start)
                    if wx:
                        watch.add((run_config(run_dir) or {}).get("watch_problems", ""))
                        ax.plot(wx, wy, "-", color=color, alpha=0.6, linewidth=1)
                else:
                    line, = ax.plot(x, y, color=color, marker="o" if len(x) < 30 else None, markersize=3)
                    handles.setdefault(label, line)
                ax.set_title(title)
                ax.set_xlabel("RL step")
                ax.set_ylabel(ylabel)
                ax.grid(alpha=0.3)
        handles["held-out: all problems"], = side.plot([], [], "o", color="0.4", markersize=7)
        if watch:  # the thin line's problems (one number when the runs agree)
            handles[f"held-out: first {'/'.join(map(str, sorted(watch, key=str)))} problems"], = side.plot(
                [], [], "-", color="0.4", alpha=0.6, linewidth=1)
        side.axis("off")
        side.legend(handles.values(), handles.keys(), loc="upper left", frameon=False, borderaxespad=0)
        side.text(0.0, 0.92 - 0.085 * len(handles), "\n\n".join(textwrap.fill(n, 40) for n in notes(run_dirs)),
                  transform=side.transAxes, ha="left", va="top", fontsize=10)
        fig.tight_layout()
        fig.savefig(out, dpi=110)
        plt.close(fig)
    print(f"wrote {out}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="train.py output directories (out/<run>)")
    p.add_argument("--out", default=None, help="PNG path (default: <first run>/curves.png)")
    args = p.parse_args(argv)
    plot(args.runs, args.out or os.path.join(args.runs[0], "curves.png"))


if __name__ == "__main__":
    main(sys.argv[1:])
