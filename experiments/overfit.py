"""Experiment 2: overfitting. RL on a small fixed set of problems for many epochs; train against held-out accuracy.

    python experiments/overfit.py [--seeds 0] [--runs out/experiments] [--out docs/experiments]

The built-in task makes a new problem for every prompt, so there is nothing to overfit unless RL is held to a
finite pool, as GSM8K's 7,473 training problems are. Here each method (GIFT with the default reference, the sampling
policy; GIFT with the paper's frozen reference; GRPO) trains on the same 128 problems for 120
steps (16 prompts a step: 15 passes over the pool) from the same SFT checkpoint; every 20 steps both the pool
(greedy, train accuracy) and 1,000 held-out problems are scored. The gap between them is the overfitting.
Writes overfit.json and overfit.png.
"""

from common import curve, parser, pyplot, rl, run_all, save_figure, sft, summary, metrics, write_json

POOL, STEPS, EVAL_EVERY = 128, 120, 20
METHODS = {"gift": dict(method="gift"), "grpo": dict(method="grpo"),
           "gift-frozen": dict(method="gift", ref="frozen")}  # the paper's reference: the SFT model


def runs(args, steps=STEPS, eval_every=EVAL_EVERY):
    out = [sft(seed) for seed in args.seeds]
    for seed in args.seeds:
        out += [rl(args.runs, f"pool{POOL}-{name}", seed, rl_pool=POOL, rl_steps=steps, eval_every=eval_every, **cfg)
                for name, cfg in METHODS.items()]
    return out


def report(args):
    result = {}
    for name in METHODS:
        for seed in args.seeds:
            records = metrics(args, f"pool{POOL}-{name}-s{seed}")
            steps, _, heldout = curve(records)
            _, _, train = curve(records, "heldout_train_accuracy")
            s = summary(args, f"pool{POOL}-{name}-s{seed}")
            gap = [a - b for a, b in zip(train, heldout)]
            result[f"{name}-s{seed}"] = dict(steps=steps, train_accuracy=train, heldout_accuracy=heldout, gap=gap,
                                             max_heldout=max(heldout), final_gap=gap[-1],
                                             wall_time_s=s["wall_time_s"])
    write_json(args, "overfit", dict(seeds=args.seeds, pool=POOL, steps=STEPS, results=result))
    for name, r in result.items():
        print(f"{name}: " + "  ".join(f"step {s}: train {a:.3f} held-out {b:.3f}"
                                      for s, a, b in zip(r["steps"], r["train_accuracy"], r["heldout_accuracy"])))
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, r in result.items():
        line, = axes[0].plot(r["steps"], r["train_accuracy"], marker="o", label=f"{name} train ({POOL} problems)")
        axes[0].plot(r["steps"], r["heldout_accuracy"], marker="s", linestyle="--", color=line.get_color(),
                     label=f"{name} held-out")
        axes[1].plot(r["steps"], r["gap"], marker="o", color=line.get_color(), label=name)
    axes[0].set_title("greedy accuracy", fontsize=10)
    axes[1].set_title("train minus held-out accuracy", fontsize=10)
    for ax in axes:
        ax.set_xlabel(f"RL step (16 prompts/step; {POOL} training problems)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(args, fig, "overfit")


PARSER = parser(__doc__, seeds=(0,))

if __name__ == "__main__":
    args = PARSER.parse_args()
    run_all(runs(args), args)
    report(args)
