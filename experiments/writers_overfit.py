"""The writers setting: overfitting. RL held to a finite pool of problems for 300 steps; train against held-out
accuracy, GIFT against GRPO, paired by seed.

    python experiments/writers_overfit.py [--seeds 0 1 2] [--runs out/experiments] [--out docs/experiments]

Each method (with its learning rate, common.WRITERS_METHODS) trains on the same POOL problems (`--rl_pool`) for
STEPS steps, 16 prompts a step (POOL = 128: 37 passes over the pool), from the seed's writers SFT checkpoint (shared
with experiments/writers.py). Every EVAL_EVERY steps the pool (greedy: train accuracy) and 1,000 held-out problems
are scored. Reported per seed: both curves, the gap (train minus held-out) at the end and its largest value, and the
paired differences GIFT - GRPO of the final gap and of the final held-out accuracy with 95% t-intervals.
Writes writers_overfit.json and writers_overfit.png.
"""

from common import (WRITERS_METHODS, WRITERS_TASK, bracket, curve, metrics, paired_difference, parser, pyplot, run_all,
                    save_figure, summary, write_json, writers_rl, writers_sft)

POOL, STEPS, EVAL_EVERY = 128, 300, 25
COMPARED = ("gift", "grpo")


def runs(args, steps=STEPS, eval_every=EVAL_EVERY):
    out = [writers_sft(seed) for seed in args.seeds]
    for seed in args.seeds:
        out += [writers_rl(args, f"writers-pool{POOL}-{name}", seed, steps, eval_every, rl_pool=POOL,
                           **WRITERS_METHODS[name]) for name in COMPARED]
    return out


def collect(args):
    result = {}
    for name in COMPARED:
        for seed in args.seeds:
            run = f"writers-pool{POOL}-{name}-s{seed}"
            records = metrics(args, run)
            steps, _, heldout = curve(records)
            _, _, train = curve(records, "heldout_train_accuracy")
            gap = [a - b for a, b in zip(train, heldout)]
            result[f"{name}-s{seed}"] = dict(method=name, seed=seed, steps=steps, train_accuracy=train,
                                             heldout_accuracy=heldout, gap=gap, final_gap=gap[-1], max_gap=max(gap),
                                             final_heldout=heldout[-1], wall_time_s=summary(args, run)["wall_time_s"])
    paired = {key: paired_difference([result[f"gift-s{s}"][key] - result[f"grpo-s{s}"][key] for s in args.seeds])
              for key in ("final_gap", "final_heldout")}
    return result, paired


def report(args):
    result, paired = collect(args)
    write_json(args, "writers_overfit", dict(seeds=args.seeds, pool=POOL, steps=STEPS, task=WRITERS_TASK,
                                             methods={m: WRITERS_METHODS[m] for m in COMPARED}, results=result,
                                             paired=paired))
    for name, r in result.items():
        print(f"{name}: final train {r['train_accuracy'][-1]:.3f} held-out {r['final_heldout']:.3f} gap "
              f"{r['final_gap']:+.3f} (largest {r['max_gap']:+.3f})")
    for key, p in paired.items():
        interval = bracket(p)
        print(f"GIFT - GRPO, {key}: per seed " + " ".join(f"{d:+.3f}" for d in p["per_seed"])
              + f"; mean {p['mean']:+.3f}, 95% t-interval {interval}")
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, r in result.items():
        color = f"C{COMPARED.index(r['method'])}"
        label = r["method"] if r["seed"] == args.seeds[0] else None
        axes[0].plot(r["steps"], r["train_accuracy"], color=color, marker="o", markersize=3,
                     label=None if label is None else f"{label}: pool ({POOL} problems)")
        axes[0].plot(r["steps"], r["heldout_accuracy"], color=color, linestyle="--",
                     label=None if label is None else f"{label}: held-out")
        axes[1].plot(r["steps"], r["gap"], color=color, marker="o", markersize=3, label=label)
    axes[0].set_title("greedy accuracy (one line per seed)", fontsize=10)
    axes[1].set_title("train minus held-out accuracy", fontsize=10)
    for ax in axes:
        ax.set_xlabel(f"RL step (16 prompts/step; {POOL} training problems)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(args, fig, "writers_overfit")


PARSER = parser(__doc__, seeds=(0, 1, 2))

if __name__ == "__main__":
    args = PARSER.parse_args()
    run_all(runs(args), args)
    report(args)
