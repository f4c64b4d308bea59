"""Experiment 3: group size N in {4, 8, 16} for GIFT and GRPO: held-out accuracy and training time.

    python experiments/group_size.py [--seeds 0 1 2] [--runs out/experiments] [--out docs/experiments]

16 prompts per step at every N (so N = 16 samples twice the tokens of N = 8), 50 RL steps from the seed's SFT
checkpoint, held-out accuracy (1,000 problems, greedy) every 10 steps. The N = 8 runs are experiment 1's. GIFT is
train.py's default (the author's recipe), GRPO the clipped objective, both at train.py's rate. Reported per N: the
final accuracy per seed and GIFT minus GRPO paired by seed with its 95% t-interval.
Writes group_size.json and group_size.png.
"""

from common import (BUILTIN_EVAL_EVERY, BUILTIN_METHODS, BUILTIN_STEPS, bracket, curve, machine, metrics,
                    paired_difference, parser, pyplot, rl, run_all, save_figure, sft, summary, write_json)

SIZES = (4, 8, 16)
NAMES = ("gift", "grpo")


def name(method, size):
    return method if size == 8 else f"{method}-g{size}"  # group size 8 is train.py's default: experiment 1's run


def runs(args, steps=BUILTIN_STEPS, eval_every=BUILTIN_EVAL_EVERY):
    out = [sft(seed) for seed in args.seeds]
    for seed in args.seeds:
        for method in NAMES:
            for size in SIZES:
                extra = {} if size == 8 else dict(group_size=size)
                out.append(rl(args.runs, name(method, size), seed, rl_steps=steps, eval_every=eval_every,
                              **BUILTIN_METHODS[method], **extra))
    return out


def report(args):
    result = {}
    for method in NAMES:
        for size in SIZES:
            for seed in args.seeds:
                run = f"{name(method, size)}-s{seed}"
                steps, secs, acc = curve(metrics(args, run))
                s = summary(args, run)
                result[f"{method}-g{size}-s{seed}"] = dict(
                    method=method, group_size=size, seed=seed, steps=steps, train_seconds=secs, accuracy=acc,
                    final_accuracy=s["rl_accuracy"], ci95=s["rl_eval"]["ci95"], train_seconds_total=secs[-1])
    paired = {f"g{size}": paired_difference([result[f"gift-g{size}-s{seed}"]["final_accuracy"]
                                             - result[f"grpo-g{size}-s{seed}"]["final_accuracy"] for seed in args.seeds])
              for size in SIZES}
    write_json(args, "group_size", dict(machine=machine(), seeds=args.seeds, sizes=SIZES, steps=BUILTIN_STEPS,
                                        results=result, gift_minus_grpo=paired))
    print("method  N   final  (+-ci)   training s")
    for r in result.values():
        print(f"{r['method']:6s} {r['group_size']:3d}  {r['final_accuracy']:.3f} (+-{r['ci95']:.3f})  "
              f"{r['train_seconds_total']:.0f}")
    for size, p in paired.items():
        ci = bracket(p)
        print(f"N = {size[1:]}: GIFT - GRPO per seed " + " ".join(f"{d:+.3f}" for d in p["per_seed"])
              + f"; mean {p['mean']:+.3f}, 95% t-interval {ci}")
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    styles = {"gift": "-", "grpo": "--"}
    for key, r in result.items():
        axes[0].plot(r["steps"], r["accuracy"], linestyle=styles[r["method"]], marker="o", label=key)
        axes[1].plot(r["train_seconds"], r["accuracy"], linestyle=styles[r["method"]], marker="o", label=key)
    axes[0].set_xlabel("RL step")
    axes[1].set_xlabel(f"training seconds ({args.threads} CPU thread(s), evaluations excluded)")
    for ax in axes:
        ax.set_ylabel("held-out accuracy (greedy)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    save_figure(args, fig, "group_size")


PARSER = parser(__doc__, seeds=(0, 1, 2))

if __name__ == "__main__":
    args = PARSER.parse_args()
    run_all(runs(args), args)
    report(args)
