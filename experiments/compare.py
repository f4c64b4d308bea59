"""Experiment 1: GIFT against GRPO (with and without its KL term) on the built-in task.

    python experiments/compare.py [--seeds 0 1 2] [--runs out/experiments] [--out docs/experiments]

Per seed: one SFT run, then from its checkpoint 50 RL steps of each method with the same prompts, sampling seeds,
sampling budget (16 prompts x 8 samples per step), optimiser and learning rate; held-out accuracy (1,000 problems,
greedy) every 10 steps. Writes compare.json (per method and seed: accuracy against step and against training
seconds, evaluations excluded) and compare.png (mean over seeds, the band spans the seeds' min to max).
"""

from common import curve, mean_sd, metrics, parser, pyplot, rl, run_all, save_figure, sft, summary, write_json

STEPS, EVAL_EVERY = 50, 10
METHODS = {  # name: train.py settings; everything else is train.py's default
    "gift": dict(method="gift"),                      # reference = each batch's sampling policy (the default)
    "grpo": dict(method="grpo"),                      # clipped ratio, no KL term
    "grpo-kl": dict(method="grpo", kl_coef=0.04),     # + k3 KL to the SFT model, DeepSeekMath's coefficient
}


def runs(args, methods=METHODS):
    out = [sft(seed) for seed in args.seeds]
    for seed in args.seeds:
        out += [rl(args.runs, name, seed, rl_steps=STEPS, eval_every=EVAL_EVERY, **cfg)
                for name, cfg in methods.items()]
    return out


def collect(args, names):
    """{name: {"per_seed": {...}, "final_mean", "final_sd", ...}} from finished runs named <name>-s<seed>."""
    result = {}
    for name in names:
        per_seed = {}
        for seed in args.seeds:
            records = metrics(args, f"{name}-s{seed}")
            steps, secs, acc = curve(records)
            s = summary(args, f"{name}-s{seed}")
            rewards = [r["reward"] for r in records if r.get("stage") == "rl"]
            per_seed[seed] = dict(steps=steps, train_seconds=[round(t, 1) for t in secs], accuracy=acc, reward=rewards,
                                  sft_accuracy=s["sft_accuracy"], final_accuracy=s["rl_accuracy"],
                                  ci95=s["rl_eval"]["ci95"], wall_time_s=s["wall_time_s"])
        finals = [v["final_accuracy"] for v in per_seed.values()]
        m, sd = mean_sd(finals)
        early = [sum(v["reward"][:10]) / 10 for v in per_seed.values()]  # how fast: mean reward of steps 1-10
        late = [sum(v["reward"][-10:]) / 10 for v in per_seed.values()]
        result[name] = dict(per_seed=per_seed, final_mean=m, final_sd=sd, reward_first10_mean=mean_sd(early)[0],
                            reward_last10_mean=mean_sd(late)[0],
                            sft_mean=mean_sd([v["sft_accuracy"] for v in per_seed.values()])[0],
                            train_seconds_mean=mean_sd([v["train_seconds"][-1] for v in per_seed.values()])[0])
    return result


def plot_curves(ax_step, ax_time, ax_reward, name, entry):
    """Mean accuracy over seeds against step and against mean training seconds (band = min..max over seeds), and
    the mean sampled reward of each step (training prompts, temperature 1: a learning curve at every step)."""
    seeds = list(entry["per_seed"].values())
    steps = seeds[0]["steps"]
    accs = list(zip(*[s["accuracy"] for s in seeds]))  # per evaluation, one value per seed
    mean = [sum(a) / len(a) for a in accs]
    secs = [sum(t) / len(t) for t in zip(*[s["train_seconds"] for s in seeds])]
    for ax, x in ((ax_step, steps), (ax_time, secs)):
        line, = ax.plot(x, mean, marker="o", label=f"{name} (final {entry['final_mean']:.3f})")
        ax.fill_between(x, [min(a) for a in accs], [max(a) for a in accs], color=line.get_color(), alpha=0.15)
    rewards = list(zip(*[s["reward"] for s in seeds]))  # per step, one value per seed
    ax_reward.plot(range(1, len(rewards) + 1), [sum(r) / len(r) for r in rewards], color=line.get_color(), label=name)


def report(args):
    result = collect(args, METHODS)
    write_json(args, "compare", dict(seeds=args.seeds, steps=STEPS, methods=METHODS, results=result))
    print(f"{'method':10s} " + " ".join(f"seed {s:<5d}" for s in args.seeds)
          + " mean   sd     train s  reward steps 1-10 / 41-50")
    for name, entry in result.items():
        finals = " ".join(f"{v['final_accuracy']:<10.3f}" for v in entry["per_seed"].values())
        print(f"{name:10s} {finals} {entry['final_mean']:.3f}  {entry['final_sd']:.3f}  "
              f"{entry['train_seconds_mean']:<8.0f} {entry['reward_first10_mean']:.3f} / "
              f"{entry['reward_last10_mean']:.3f}")
    figure(args, result, f"built-in task, mean over seeds {args.seeds} (band: min-max)", "compare")


def figure(args, result, title, name):
    """<name>.png: held-out accuracy against RL step and against training seconds, and the sampled reward per step."""
    plt = pyplot()
    fig, (ax_step, ax_time, ax_reward) = plt.subplots(1, 3, figsize=(15, 3.8))
    for run, entry in result.items():
        plot_curves(ax_step, ax_time, ax_reward, run, entry)
    ax_reward.set_xlabel("RL step")
    ax_reward.set_ylabel("sampled reward (training prompts, T = 1)")
    ax_reward.grid(alpha=0.3)
    ax_reward.legend(fontsize=8)
    ax_step.set_xlabel("RL step")
    ax_time.set_xlabel(f"training seconds ({args.threads} CPU thread(s), evaluations excluded)")
    for ax in (ax_step, ax_time):
        ax.set_ylabel("held-out accuracy (greedy)")
        ax.grid(alpha=0.3)
    ax_step.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    save_figure(args, fig, name)


PARSER = parser(__doc__)

if __name__ == "__main__":
    args = PARSER.parse_args()
    run_all(runs(args), args)
    report(args)
