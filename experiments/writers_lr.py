"""The writers setting: a learning-rate sweep for GIFT and for GRPO, paired by seed.

    python experiments/writers_lr.py [--seeds 0 1 2] [--runs out/experiments] [--out docs/experiments]

experiments/writers.py ran GIFT at one rate and GRPO at two, and its ranking followed the rate. Here each method runs
at each of its RATES from the seed's writers SFT checkpoint: 150 RL steps, held-out accuracy (greedy, 1,000
problems) every 10 steps, everything else as in writers.py (a run at one of writers.py's rates is writers.py's run).
Reported: final held-out accuracy per method, rate and seed, the mean and the steps to 90% of the final accuracy;
each method's best rate (highest mean); and the paired difference best GIFT - best GRPO with a 95% t-interval. The
best rates are picked on the seeds they are measured on, which flatters both methods alike.
Writes writers_lr.json and writers_lr.png.
"""

from common import (WRITERS_EVAL_EVERY, WRITERS_STEPS, WRITERS_TASK, accuracy_runs, bracket, lr_name as rate,
                    paired_difference, parser, pyplot, run_all, save_figure, write_json, writers_rl, writers_sft)

RATES = {"gift": (2e-5, 4e-5, 8e-5), "grpo": (5e-6, 2e-5, 4e-5)}
SAME_AS_WRITERS = {  # (method, rate): writers.py's run of it
    ("gift", 2e-5): "writers-gift", ("grpo", 5e-6): "writers-grpo", ("grpo", 2e-5): "writers-grpo-lr2e-5"}


def arm(method, lr):
    """The run name (without -s<seed>) of a method at a learning rate."""
    return SAME_AS_WRITERS.get((method, lr), f"writers-{method}-lr{rate(lr)}")


def runs(args, steps=WRITERS_STEPS, eval_every=WRITERS_EVAL_EVERY):
    out = [writers_sft(seed) for seed in args.seeds]
    for seed in args.seeds:
        out += [writers_rl(args, arm(method, lr), seed, steps, eval_every, method=method, rl_lr=lr)
                for method, rates in RATES.items() for lr in rates]
    return out


def collect(args):
    result = {method: {rate(lr): dict(run=arm(method, lr), lr=lr, **accuracy_runs(args, arm(method, lr)))
                       for lr in rates} for method, rates in RATES.items()}
    best = {method: max(arms.values(), key=lambda a: a["final_mean"]) for method, arms in result.items()}
    diffs = [best["gift"]["per_seed"][s]["final_accuracy"] - best["grpo"]["per_seed"][s]["final_accuracy"]
             for s in args.seeds]
    return result, dict(gift_lr=best["gift"]["lr"], grpo_lr=best["grpo"]["lr"], **paired_difference(diffs))


def report(args):
    result, paired = collect(args)
    write_json(args, "writers_lr", dict(seeds=args.seeds, steps=WRITERS_STEPS, task=WRITERS_TASK, rates=RATES,
                                        results=result, best_gift_minus_best_grpo=paired))
    for method, arms in result.items():
        for name, a in arms.items():
            print(f"{method} lr {name:6s} " + " ".join(f"{v['final_accuracy']:.3f}" for v in a["per_seed"].values())
                  + f"  mean {a['final_mean']:.3f}  steps to 90%: "
                  + " ".join(str(v["steps_to_90pct"]) for v in a["per_seed"].values()))
    interval = bracket(paired)
    print(f"best GIFT (lr {rate(paired['gift_lr'])}) - best GRPO (lr {rate(paired['grpo_lr'])}): per seed "
          + " ".join(f"{d:+.3f}" for d in paired["per_seed"])
          + f"; mean {paired['mean']:+.3f}, 95% t-interval {interval}")
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    styles = (":", "--", "-")  # the method's rates, lowest to highest
    for i, (method, arms) in enumerate(result.items()):
        best = max(arms.values(), key=lambda a: a["final_mean"])
        axes[0].plot([a["lr"] for a in arms.values()], [a["final_mean"] for a in arms.values()], color=f"C{i}",
                     marker="o", label=method)
        for j, a in enumerate(arms.values()):
            axes[0].scatter([a["lr"]] * len(a["per_seed"]), [v["final_accuracy"] for v in a["per_seed"].values()],
                            color=f"C{i}", s=10, alpha=0.5)
            seeds = list(a["per_seed"].values())
            mean = [sum(x) / len(x) for x in zip(*[s["accuracy"] for s in seeds])]
            axes[1].plot(seeds[0]["steps"], mean, color=f"C{i}", linestyle=styles[j % 3],
                         linewidth=2.5 if a is best else 1,
                         label=f"{method} lr {rate(a['lr'])}" + (" (best)" if a is best else ""))
    axes[0].set_xscale("log")
    lrs = sorted({lr for rates in RATES.values() for lr in rates})
    axes[0].set_xticks(lrs, [rate(lr) for lr in lrs])
    axes[0].minorticks_off()
    axes[0].set_xlabel("learning rate")
    axes[0].set_title("final held-out accuracy (line: mean; dots: seeds)", fontsize=10)
    axes[1].set_xlabel("RL step")
    axes[1].set_title(f"held-out accuracy, mean of seeds {args.seeds} (thick: best rate)", fontsize=10)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(args, fig, "writers_lr")


PARSER = parser(__doc__, seeds=(0, 1, 2))

if __name__ == "__main__":
    args = PARSER.parse_args()
    run_all(runs(args), args)
    report(args)
