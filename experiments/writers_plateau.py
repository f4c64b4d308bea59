"""The writers setting: why GIFT levels off (near 0.98 where GRPO reaches 0.99). One change at a time from GIFT at
each of its two best learning rates, paired by seed, with the gradient logged at every optimiser step.

    python experiments/writers_plateau.py [--rates 2e-5 4e-5] [--seeds 0 1 2] [--arms base k1 ...]
                                          [--runs out/experiments] [--out docs/experiments] [--jobs 2]

The hypothesis to test: the plateau is a noise floor proportional to the learning rate, set by the K - 1 matching
steps of each rollout. With pi_ref = pi_old, mini-batch 1 of a rollout has log-ratio 0 and its gradient is GRPO's
REINFORCE direction; mini-batches 2..K regress the group's z-scored log-ratios onto its z-scored rewards, and the
gradient clip (not the loss) sets their step size. Each arm changes one thing (ARMS):
  k1          K = 1: only the REINFORCE step (GIFT's update is then GRPO's, without the clip)
  beta0.25/0.5  the author's coefficient on z(logratio): less pull-back of the group's own log-ratio spread
  floor1e-2/1e-1  a larger floor under the log-ratio's std: tiny spreads are no longer amplified by 1/std
  cosine      the learning rate decays to 0 over the 150 steps (a noise floor proportional to the rate goes too)
  noclip      no gradient clip (the K - 1 matching steps take their full, large, steps)
  prompts64   64 prompts a step, so 16 groups per mini-batch instead of 4 (less noise per step)
Every run logs per optimiser step (train.py --grad_stats): the pre-clip gradient norm, the cosine with the rollout's
first (REINFORCE) gradient, the share of the gradient from groups whose rewards are all equal, and the number of
distinct responses per group. The runs evaluate only at the end (train.py's eval_every=0), as the tuning runs of
writers_baselines.py do: only the final accuracy enters the report, and the 15 evaluations on the way cost about a
fifth of each run. Reported per rate and arm: final held-out accuracy per seed and its paired difference from the
unchanged run (base) with a 95% t-interval; the same for the sampled reward over the last 50 steps (less saturated
than greedy accuracy near 0.99), with its mean over each 50 steps to show whether an arm is still climbing; and the
gradient statistics over the last 50 steps by mini-batch position.
--rates default: the best two of GIFT's rates in the earlier sweep (writers_lr.json); pass the rates
writers_baselines.py chose when it has run.
Writes writers_plateau.json and writers_plateau.png (with the sampled-reward curve of every arm).
"""

from common import (WRITERS_STEPS, WRITERS_TASK, bracket, lr_name, machine, mean_sd, metrics, paired_difference, parser,
                    points, pyplot, run_all, save_figure, summary, write_json, writers_rl, writers_sft)

ARMS = {  # name: the one setting changed from GIFT's defaults
    "base": {},
    "k1": dict(minibatches=1),
    "beta0.25": dict(beta=0.25),
    "beta0.5": dict(beta=0.5),
    "floor1e-2": dict(std_floor=1e-2),
    "floor1e-1": dict(std_floor=1e-1),
    "cosine": dict(rl_schedule="cosine"),
    "noclip": dict(grad_clip=0.0),
    "prompts64": dict(prompts=64),
}
TRACES = ("grad_norm_mb", "cos_mb1_mb", "equal_share_mb")  # per optimiser step of a rollout
LAST = 50  # the gradient statistics are averaged over the last LAST RL steps (the plateau)
EVERY = 10  # the sampled-reward curve is kept as means over blocks of EVERY RL steps


def name(arm, lr):
    return f"writers-plateau-{arm}-lr{lr_name(lr)}"


def runs(args, steps=WRITERS_STEPS, eval_every=0):
    out = [writers_sft(seed) for seed in args.seeds]
    for seed in args.seeds:
        out += [writers_rl(args, name(arm, lr), seed, steps, eval_every, method="gift", rl_lr=lr, grad_stats=True,
                           **ARMS[arm]) for lr in args.rates for arm in args.arms]
    return out


def gradient_stats(records, grad_clip):
    """Means over the last LAST RL steps: each trace by mini-batch position, the share of optimiser steps whose
    gradient was clipped, the distinct responses per group, the sampled reward (the plateau seen in training, where
    greedy held-out accuracy is near its ceiling), and the steps on which equal-reward groups gave more than 85% of
    some mini-batch's gradient."""
    rl = [r for r in records if r.get("stage") == "rl"][-LAST:]
    out = {k: [defined_mean(x) for x in zip(*[r[k] for r in rl])] for k in TRACES if rl and k in rl[0]}
    if rl and "cos_mb1_mb" in rl[0]:  # a rollout whose first gradient is 0 has no cosine: excluded above, counted here
        out["cos_undefined_steps"] = sum(r["cos_mb1_mb"][0] is None for r in rl)
    norms = [g for r in rl for g in r["grad_norm_mb"]]
    out["clipped_frac"] = sum(g > grad_clip for g in norms) / len(norms) if grad_clip else 0.0
    out["distinct"] = sum(r["distinct"] for r in rl) / len(rl)
    out["reward"] = sum(r["reward"] for r in rl) / len(rl)
    out["equal_dominated_steps"] = sum(any(s > 0.85 for s in r.get("equal_share_mb", [])) for r in rl)
    return out


def defined_mean(values):
    """The mean of the values that are not None (None if there is none)."""
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


def reward_blocks(records, size):
    """The sampled reward (the fraction of a step's rollouts that were right) averaged over consecutive blocks of
    `size` RL steps: whether an arm is still climbing, and how fast it got there."""
    r = [x["reward"] for x in records if x.get("stage") == "rl"]
    return [sum(r[i:i + size]) / len(r[i:i + size]) for i in range(0, len(r), size)]


def collect(args):
    result = {}
    for lr in args.rates:
        arms = {}
        for arm in args.arms:
            per_seed = {}
            for seed in args.seeds:
                run = f"{name(arm, lr)}-s{seed}"
                s, records = summary(args, run), metrics(args, run)
                per_seed[seed] = dict(final_accuracy=s["rl_accuracy"], reward_curve=reward_blocks(records, EVERY),
                                      reward_windows=reward_blocks(records, LAST),
                                      **gradient_stats(records, s["config"]["grad_clip"]))
            finals = [v["final_accuracy"] for v in per_seed.values()]
            arms[arm] = dict(change=ARMS[arm], per_seed=per_seed, final_mean=mean_sd(finals)[0])
        for arm, entry in arms.items():
            if arm != "base":
                for key, out in (("final_accuracy", "minus_base"), ("reward", "reward_minus_base")):
                    entry[out] = paired_difference([entry["per_seed"][s][key] - arms["base"]["per_seed"][s][key]
                                                    for s in args.seeds])
        result[lr_name(lr)] = arms
    return result


def report(args):
    result = collect(args)
    write_json(args, "writers_plateau", dict(machine=machine(), seeds=args.seeds, rates=args.rates,
                                             steps=WRITERS_STEPS, task=WRITERS_TASK, last_steps=LAST,
                                             results=result))
    for rate, arms in result.items():
        print(f"== GIFT at {rate}")
        for arm, e in arms.items():
            v = list(e["per_seed"].values())
            grad = " ".join(f"{x:.3g}" for x in mean_over(v, "grad_norm_mb"))
            cos = " ".join("none" if x is None else f"{x:+.2f}" for x in mean_over(v, "cos_mb1_mb"))
            print(f"{arm:10s} final " + " ".join(f"{x['final_accuracy']:.3f}" for x in v)
                  + f"  mean {e['final_mean']:.3f}{interval(e.get('minus_base'))}"
                  + f"  reward (last {LAST}) {mean_sd([x['reward'] for x in v])[0]:.3f}"
                  + interval(e.get("reward_minus_base"))
                  + f"  |g| by mini-batch {grad}  cos {cos}  clipped {mean_sd([x['clipped_frac'] for x in v])[0]:.2f}"
                  + f"  distinct {mean_sd([x['distinct'] for x in v])[0]:.2f}")
        print("\n".join(markdown(arms)))
    plot(args, result)


def markdown(arms):
    """docs/results.md's table for one rate, printed so that its numbers are copied, not retyped. The gradient
    columns are means over the last LAST steps and the seeds; the norm is before the clip."""
    rows = [f"| arm | final accuracy, per seed | minus base (points) | sampled reward, mean of each {LAST} steps | "
            f"last {LAST} minus base (points) | gradient norm: mini-batch 1 / the others | cosine of the others with "
            f"mini-batch 1 | rollouts without a cosine (of {LAST}) | steps clipped |",
            "|---|---|---:|---|---:|---|---:|---:|---:|"]
    for arm, e in arms.items():
        v = list(e["per_seed"].values())
        norm, cos = mean_over(v, "grad_norm_mb"), mean_over(v, "cos_mb1_mb")
        norms = f"{norm[0]:.2g}" + (f" / {sum(norm[1:]) / len(norm[1:]):.2g}" if len(norm) > 1 else "")
        others = defined_mean(cos[1:]) if len(cos) > 1 else None
        cos_others = "" if others is None else f"{others:+.2f}"
        finals = ", ".join(f"{x['final_accuracy']:.3f}" for x in v)
        diff = {k: points(e[k]) if k in e else "" for k in ("minus_base", "reward_minus_base")}
        reward = " / ".join(f"{x:.3f}" for x in mean_over(v, "reward_windows"))  # the last one is x["reward"]'s mean
        clipped = 100 * mean_sd([x["clipped_frac"] for x in v])[0]
        # counted since the cosine of a zero first gradient is left out (reports before that recorded it as 0)
        undefined = (f"{mean_sd([x['cos_undefined_steps'] for x in v])[0]:.1f}"
                     if others is not None and all("cos_undefined_steps" in x for x in v) else "")
        rows.append(f"| {arm} | {finals} | {diff['minus_base']} | {reward} | {diff['reward_minus_base']} | "
                    f"{norms} | {cos_others} | {undefined} | {clipped:.0f}% |")
    return rows


def interval(diff):
    """' minus base +0.010 [-0.004, +0.024]' for a paired difference (empty for base or a single seed)."""
    if diff is None or diff["ci95"] is None:
        return ""
    return f" minus base {diff['mean']:+.3f} {bracket(diff)}"


def mean_over(per_seed, key):
    """A trace's per-position values, averaged over seeds."""
    rows = [x[key] for x in per_seed if key in x]
    return [defined_mean(col) for col in zip(*rows)] if rows else []


def plot(args, result):
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    axes = axes.ravel()
    for i, (rate, arms) in enumerate(result.items()):
        rows = [arm for arm in arms if arm != "base"]
        for ax, key in zip(axes, ("minus_base", "reward_minus_base")):
            for y, arm in enumerate(rows):
                d = arms[arm][key]
                lo, hi = d["ci95"] if d["ci95"] else (d["mean"], d["mean"])
                ax.errorbar([d["mean"]], [y + 0.15 * i], xerr=[[d["mean"] - lo], [hi - d["mean"]]], fmt="o",
                            color=f"C{i}", capsize=3, label=f"lr {rate}" if y == 0 else None)
            ax.set_yticks(range(len(rows)), rows)
            ax.axvline(0, color="k", linewidth=0.8)
        base = mean_over(list(arms["base"]["per_seed"].values()), "grad_norm_mb")
        axes[2].plot(range(1, len(base) + 1), base, marker="o", color=f"C{i}", label=f"base, lr {rate}")
        axes[2].set_xticks(range(1, len(base) + 1))
        for j, (arm, e) in enumerate(arms.items()):
            curve = mean_over(list(e["per_seed"].values()), "reward_curve")
            axes[3].plot([EVERY * (k + 1) for k in range(len(curve))], curve, color=f"C{j % 10}",
                         linestyle=("-", "--", ":")[i % 3], label=f"{arm}, lr {rate}" if len(result) > 1 else arm)
    axes[0].set_xlabel("final held-out accuracy minus base (paired, 95% t-interval)")
    axes[1].set_xlabel(f"sampled reward over the last {LAST} steps minus base")
    axes[2].set(xlabel="optimiser step within the rollout (mini-batch)", ylabel="pre-clip gradient norm",
                yscale="symlog")
    axes[2].set_title(f"GIFT's gradient by mini-batch, last {LAST} steps", fontsize=10)
    axes[3].set(xlabel="RL step", ylabel=f"sampled reward, mean of each {EVERY} steps and the seeds")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a report of base alone has nothing to label in the first two
            ax.legend(fontsize=8)
    save_figure(args, fig, "writers_plateau")


PARSER = parser(__doc__, seeds=(0, 1, 2))
PARSER.add_argument("--rates", type=float, nargs="+", default=[2e-5, 4e-5], help="GIFT's learning rates")
PARSER.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS),
                    help="the arms to run and report (default: all; base is always one of them)")


def parse_args(argv=None):
    args = PARSER.parse_args(argv)
    if "base" not in args.arms:
        PARSER.error("--arms must include base: every other arm is reported as its difference from base")
    return args


if __name__ == "__main__":
    args = parse_args()
    run_all(runs(args), args)
    report(args)
