"""Experiment 5: GIFT's reference policy over a longer run: frozen, refreshed every K steps, or the sampling policy.

    python experiments/reference.py [--seeds 0 1 2] [--runs out/experiments] [--out docs/experiments]

The loss only sees z(logratio), so nothing in it holds the logratio's scale (gift/loss.py). With a frozen reference
the prediction is a plateau: once the in-group order is right the loss is ~0 however far the policy has drifted.
Refreshing pi_ref <- pi_theta every K steps starts each window at logratio 0, where the std floor sets the step
size; K = 1 (ref=old) is the default of train.py. 100 RL steps per reference and seed, held-out accuracy every 20 steps.

Reports, per step over the informative groups: beta(x) = sum sigma_r / sum sigma_logratio, the beta of
pi_ref exp(r / beta(x)) that the current log-ratios imply (the population minimiser; `beta_implied` in
metrics.jsonl), the in-group correlation of logratio and reward, and the group std of the logratio. For ref=old the
logratio is 0 when the loss is evaluated, so it implies no beta and is not shown in those panels.
Writes reference.json and reference.png.
"""

from common import curve, metrics, parser, pyplot, rl, run_all, save_figure, sft, summary, write_json

STEPS, EVAL_EVERY = 100, 20
REFS = {"frozen": dict(ref="frozen"), "refresh-10": dict(ref="refresh", ref_every=10), "old": dict(ref="old")}


def runs(args, steps=STEPS, eval_every=EVAL_EVERY):
    out = [sft(seed) for seed in args.seeds]
    for seed in args.seeds:
        out += [rl(args.runs, f"ref-{name}", seed, rl_steps=steps, eval_every=eval_every, **cfg)
                for name, cfg in REFS.items()]
    return out


def smooth(values, width=10):
    """Trailing mean over `width` steps, skipping None (the per-step statistics are noisy: 16 groups, some
    uninformative)."""
    out = []
    for i in range(len(values)):
        window = [v for v in values[max(0, i - width + 1): i + 1] if v is not None]
        out.append(sum(window) / len(window) if window else None)
    return out


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def report(args):
    result = {}
    for name in REFS:
        for seed in args.seeds:
            records = metrics(args, f"ref-{name}-s{seed}")
            rl_rows = [r for r in records if r.get("stage") == "rl" and not r.get("skipped")]
            # at a step where pi_ref = pi_theta (every step for old, each refresh) the logratio is 0: no beta, no corr
            moved = [r["logratio_std"] > 0 for r in rl_rows]
            steps, _, acc = curve(records)
            s = summary(args, f"ref-{name}-s{seed}")
            half = rl_rows[len(rl_rows) // 2:]
            result[f"{name}-s{seed}"] = dict(
                eval_steps=steps, accuracy=acc, sft_accuracy=s["sft_accuracy"], final_accuracy=s["rl_accuracy"],
                ci95=s["rl_eval"]["ci95"], wall_time_s=s["wall_time_s"],
                steps=[r["step"] for r in rl_rows],
                beta=[r["beta_implied"] if m else None for r, m in zip(rl_rows, moved)],
                beta_floored=[r["beta"] for r in rl_rows],
                corr=[r["corr"] if m else None for r, m in zip(rl_rows, moved)],
                logratio_std=[r["logratio_std"] for r in rl_rows],
                kl=[r["kl"] for r in rl_rows], reward=[r["reward"] for r in rl_rows],
                second_half=dict(beta_mean=mean([r["beta_implied"] for r in half if r["logratio_std"] > 0]),
                                 corr_mean=mean([r["corr"] for r in half if r["logratio_std"] > 0]),
                                 logratio_std_median=sorted(r["logratio_std"] for r in half)[len(half) // 2],
                                 kl_mean=sum(r["kl"] for r in half) / len(half),
                                 reward_mean=sum(r["reward"] for r in half) / len(half)))
    write_json(args, "reference", dict(seeds=args.seeds, steps=STEPS, refs=REFS, results=result))
    print(f"{'run':16s} SFT    final  (+-ci)  | 2nd half: beta  corr   std    KL     reward")
    for name, r in result.items():
        h = r["second_half"]
        beta_corr = "-      -    " if h["beta_mean"] is None else f"{h['beta_mean']:.3f}  {h['corr_mean']:+.2f}"
        print(f"{name:16s} {r['sft_accuracy']:.3f}  {r['final_accuracy']:.3f} (+-{r['ci95']:.3f}) | "
              f"{beta_corr}  {h['logratio_std_median']:.2f}  {h['kl_mean']:.3f}  {h['reward_mean']:.3f}")
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    colors = {name: f"C{i}" for i, name in enumerate(REFS)}
    dashes = ["-", "--", ":", "-."]
    for key, r in result.items():
        ref, seed = key.rsplit("-s", 1)
        style = dict(color=colors[ref], linestyle=dashes[args.seeds.index(int(seed)) % 4], label=key)
        axes[0].plot(r["eval_steps"], r["accuracy"], marker="o", **style)
        if ref != "old":  # the logratio of ref=old is 0 when the loss sees it: nothing to show
            axes[1].plot(r["steps"], smooth(r["beta"]), **style)
            axes[2].plot(r["steps"], smooth(r["corr"]), **style)
            axes[3].plot(r["steps"], smooth(r["logratio_std"]), **style)
    titles = ["held-out accuracy (greedy)", "implied beta(x) = sigma_r / sigma_logratio (10-step mean)",
              "in-group corr(logratio, reward) (10-step mean)", "group std of logratio, nats (10-step mean)"]
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[3].set_yscale("log")
    axes[0].legend(fontsize=8)
    save_figure(args, fig, "reference")


PARSER = parser(__doc__, seeds=(0, 1, 2))

if __name__ == "__main__":
    args = PARSER.parse_args()
    run_all(runs(args), args)
    report(args)
