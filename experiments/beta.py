"""Experiment 4: beta. GIFT has none; GRPO's KL coefficient is one more knob to tune.

    python experiments/beta.py [--seeds 0] [--runs out/experiments] [--out docs/experiments]

1. The check. GIFT's implicit reward is beta * logratio (+ beta log Z(x)), and the loss only sees its group z-score.
   Train GIFT (frozen reference, so the logratio is not 0 when the loss is evaluated) for 10 RL steps three times,
   with the implicit reward scaled by c = 0.01, 1 and 100 (the std floor, in implicit-reward units, scaled too), and
   compare the losses and the final weights: they should agree to float rounding.
2. The sweep. GRPO with its k3 KL penalty to the SFT model at kl_coef in {0, 0.01, 0.04, 0.1, 0.4, 1, 3}, 50 RL steps
   from the same SFT checkpoint as GIFT (experiment 1's settings; kl_coef 0 and 0.04 are experiment 1's runs).
Writes beta.json and beta.png.
"""

import os

import torch

from common import _check_same, curve, metrics, parser, pyplot, rl, run_all, save_figure, sft, summary, write_json
from compare import EVAL_EVERY, STEPS

KL_COEFS = (0.0, 0.01, 0.04, 0.1, 0.4, 1.0, 3.0)
SCALES = (0.01, 1.0, 100.0)
CHECK_STEPS = 10


def kl_name(coef):
    return {0.0: "grpo", 0.04: "grpo-kl"}.get(coef, f"grpo-kl{coef:g}")  # experiment 1's names where shared


def runs(args):
    out = [sft(seed) for seed in args.seeds]
    for seed in args.seeds:
        for coef in KL_COEFS:
            extra = dict(kl_coef=coef) if coef else {}
            out.append(rl(args.runs, kl_name(coef), seed, rl_steps=STEPS, eval_every=EVAL_EVERY, method="grpo", **extra))
        out.append(rl(args.runs, "gift", seed, rl_steps=STEPS, eval_every=EVAL_EVERY, method="gift"))
    return out


def scaled_check(args, seed):
    """Run train.main in this process with GIFT's loss fed c * logratio; return {c: (losses, final weights)}."""
    import train
    from gift.loss import gift_loss

    out = {}
    for c in SCALES:
        run = rl(args.runs, f"beta-check-c{c:g}", seed, rl_steps=CHECK_STEPS, ref="frozen", eval_problems=200)
        run_dir = os.path.join(args.runs, run["run_name"])
        if os.path.exists(os.path.join(run_dir, "summary.json")):
            _check_same(run_dir, run)
        else:
            def scaled(logratio, rewards, group_size, std_floor, detach_std, c=c):  # implicit reward = c * logratio
                return gift_loss(c * logratio, rewards, group_size, std_floor=c * std_floor, detach_std=detach_std)

            train.gift_loss = scaled
            try:
                train.main([f"--{k}={v}" for k, v in run.items()] + [f"--out_dir={args.runs}", f"--threads={args.threads}"])
            finally:
                train.gift_loss = gift_loss
        losses = [r["loss"] for r in metrics(args, run["run_name"]) if r.get("stage") == "rl"]
        weights = torch.load(os.path.join(run_dir, "ckpt.pt"), map_location="cpu", weights_only=False)["model"]
        out[c] = (losses, weights, summary(args, run["run_name"])["rl_accuracy"])
    return out


def report(args):
    seed = args.seeds[0]
    check = scaled_check(args, seed)
    start = torch.load(os.path.join(args.runs, f"sft-s{seed}", "sft.pt"), map_location="cpu", weights_only=False)["model"]
    _, base, _ = check[1.0]
    update = max((base[k] - start[k]).abs().max().item() for k in base)  # largest weight change in 10 steps
    invariance = {}
    for c, (losses, weights, acc) in check.items():
        invariance[f"{c:g}"] = dict(
            losses=losses, heldout_accuracy_200=acc,
            max_loss_diff=max(abs(a - b) for a, b in zip(losses, check[1.0][0])),
            max_weight_diff=max((weights[k] - base[k]).abs().max().item() for k in base))
    sweep = {}
    for coef in KL_COEFS + ("gift",):
        run = f"{'gift' if coef == 'gift' else kl_name(coef)}-s{seed}"
        records = metrics(args, run)
        rl_rows = [r for r in records if r.get("stage") == "rl"]
        steps, _, acc = curve(records)
        s = summary(args, run)
        half = rl_rows[len(rl_rows) // 2:]
        sweep[str(coef)] = dict(run=run, steps=steps, accuracy=acc, final_accuracy=s["rl_accuracy"],
                                ci95=s["rl_eval"]["ci95"], kl_second_half=sum(r["kl"] for r in half) / len(half),
                                reward_second_half=sum(r["reward"] for r in half) / len(half))
    write_json(args, "beta", dict(seed=seed, check_steps=CHECK_STEPS, largest_weight_update=update,
                                  invariance=invariance, kl_sweep=sweep))
    print(f"check: largest weight change in {CHECK_STEPS} steps {update:.2e}")
    for c, r in invariance.items():
        print(f"  c={c:>5s}: max |loss - loss(c=1)| {r['max_loss_diff']:.1e}, max |w - w(c=1)| "
              f"{r['max_weight_diff']:.1e}, held-out (200) {r['heldout_accuracy_200']:.3f}")
    print("kl_coef  final  (+-ci)   KL/token (2nd half)  reward (2nd half)")
    for coef, r in sweep.items():
        print(f"{coef:7s}  {r['final_accuracy']:.3f} (+-{r['ci95']:.3f})  {r['kl_second_half']:.4f}  "
              f"{r['reward_second_half']:.3f}")
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    for c, r in invariance.items():
        axes[0].plot(range(1, len(r["losses"]) + 1), r["losses"], marker="o", linestyle="-" if c == "1" else "--",
                     label=f"implicit reward x {c} (max |dw| {r['max_weight_diff']:.0e})")
    axes[0].set_title("GIFT loss per step, frozen reference", fontsize=10)
    axes[0].set_xlabel("RL step")
    coefs = [c for c in KL_COEFS if c]
    axes[1].plot(coefs, [sweep[str(c)]["final_accuracy"] for c in coefs], marker="o", label="GRPO + KL")
    axes[1].axhline(sweep["0.0"]["final_accuracy"], color="gray", linestyle="--", label="GRPO, no KL")
    axes[1].axhline(sweep["gift"]["final_accuracy"], color="C3", linestyle=":", label="GIFT (no beta)")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("GRPO kl_coef")
    axes[1].set_title(f"held-out accuracy after {STEPS} steps", fontsize=10)
    for c in coefs:
        rows = [r for r in metrics(args, f"{kl_name(c)}-s{seed}") if r.get("stage") == "rl"]
        axes[2].plot([r["step"] for r in rows], [r["kl"] for r in rows], label=f"kl_coef {c:g}")
    axes[2].set_title("GRPO: KL to the SFT model per token", fontsize=10)
    axes[2].set_xlabel("RL step")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(args, fig, "beta")


PARSER = parser(__doc__, seeds=(0,))

if __name__ == "__main__":
    args = PARSER.parse_args()
    run_all(runs(args), args)
    report(args)
