"""Experiment 4: beta. GIFT has none; GRPO's KL coefficient is one more knob to tune.

    python experiments/beta.py [--seeds 0] [--runs out/experiments] [--out docs/experiments]

1. The check. GIFT's implicit reward is beta * logratio (+ beta log Z(x)), and the loss only sees its group z-score.
   Train GIFT (frozen reference, so the logratio is not 0 when the loss is evaluated) for 10 RL steps three times,
   with the implicit reward scaled by c = 0.01, 1 and 100 (the std floor, in implicit-reward units, scaled too), and
   compare the losses and the final weights: they should agree up to float rounding (which Adam amplifies for
   weights whose gradient is ~0, so the weight updates are compared as a whole, relative L2).
2. The sweep. GRPO with its k3 KL penalty to the SFT model at kl_coef in {0, 0.01, 0.04, 0.1, 0.4, 1, 3}, 50 RL steps
   from the same SFT checkpoint as GIFT (experiment 1's settings; kl_coef 0 and 0.04 are experiment 1's runs).
Writes beta.json and beta.png.
"""

import copy
import dataclasses
import os

from common import (BUILTIN_EVAL_EVERY, BUILTIN_STEPS, check_same, curve, metrics, parser, pyplot, rl, run_all,
                    save_figure, sft, summary, write_json)  # first: it puts the repository on sys.path

import torch  # noqa: E402

import train  # noqa: E402
from gift.checkpoint import load_checkpoint  # noqa: E402
from gift.loss import gift_objective  # noqa: E402

KL_COEFS = (0.0, 0.01, 0.04, 0.1, 0.4, 1.0, 3.0)
SCALES = (0.01, 1.0, 100.0)
CHECK_STEPS = 10


def kl_name(coef):
    return {0.0: "grpo", 0.04: "grpo-kl"}.get(coef, f"grpo-kl{coef:g}")  # experiment 1's names where shared


def runs(args, steps=BUILTIN_STEPS, eval_every=BUILTIN_EVAL_EVERY):
    out = [sft(seed) for seed in args.seeds]
    for seed in args.seeds:
        for coef in KL_COEFS:
            extra = dict(kl_coef=coef) if coef else {}
            out.append(rl(args.runs, kl_name(coef), seed, rl_steps=steps, eval_every=eval_every, method="grpo",
                          **extra))
        out.append(rl(args.runs, "gift", seed, rl_steps=steps, eval_every=eval_every, method="gift"))
    return out


def check_runs(args, seed, steps=CHECK_STEPS):
    """{c: the check's run with the implicit reward scaled by c}: GIFT with the frozen reference from the seed's SFT
    checkpoint, `steps` RL steps, 200 held-out problems."""
    return {c: rl(args.runs, f"beta-check-c{c:g}", seed, rl_steps=steps, ref="frozen", eval_problems=200)
            for c in SCALES}


def scaled(c):
    """GIFT's objective (gift.loss.gift_objective) with the implicit reward scaled by c, the std floor (in
    implicit-reward units) scaled too. A train.main loss_fn. The per-token differences logp - ref_logp are taken
    once, then scaled (as the policy term, against a zero reference): c * logp - c * ref_logp would round each c
    differently where the log-ratios are tiny, and the check would measure that rounding, not the loss."""
    def loss_fn(batch, cfg):
        scaled_cfg = copy.copy(cfg)
        scaled_cfg.std_floor = c * cfg.std_floor
        difference = batch.logp - batch.ref_logp  # (N, T)
        return gift_objective(dataclasses.replace(batch, logp=c * difference,
                                                  ref_logp=torch.zeros_like(batch.ref_logp)), scaled_cfg)
    return loss_fn


def scaled_check(args, check):
    """Run train.main in this process for each {c: run} of `check` not finished yet, with the loss scaled(c); return
    {c: (losses, final weights, held-out accuracy)}."""
    out = {}
    for c, run in check.items():
        run_dir = os.path.join(args.runs, run["run_name"])
        if os.path.exists(os.path.join(run_dir, "summary.json")):
            check_same(run_dir, run)
        else:
            resume = ["--resume"] if os.path.exists(os.path.join(run_dir, "ckpt.pt")) else []  # a killed run
            train.main([f"--{k}={v}" for k, v in run.items()]
                       + [f"--out_dir={args.runs}", f"--threads={args.threads}", *resume], loss_fn=scaled(c))
        losses = [r["loss"] for r in metrics(args, run["run_name"]) if r.get("stage") == "rl"]
        weights = load_checkpoint(os.path.join(run_dir, "ckpt.pt"))["model"]
        out[c] = (losses, weights, summary(args, run["run_name"])["rl_accuracy"])
    return out


def report(args, check=None):
    """check: the check's {c: run} (default: check_runs of the first seed)."""
    seed = args.seeds[0]
    check_run = check or check_runs(args, seed)
    check_steps = check_run[1.0]["rl_steps"]
    check = scaled_check(args, check_run)
    sft_path = os.path.join(args.runs, f"sft-s{seed}", "sft.pt")
    start = load_checkpoint(sft_path)["model"]
    _, base, _ = check[1.0]

    def norm(tensors):
        return sum(t.double().pow(2).sum() for t in tensors).sqrt().item()

    update = norm(base[k] - start[k] for k in base)  # how far 10 steps moved the weights (L2 over all)
    invariance = {}
    for c, (losses, weights, acc) in check.items():
        # Adam moves even a weight whose gradient is rounding noise by ~lr, so the max difference is ~lr; the
        # relative L2 difference of the whole update says how different the runs are
        invariance[f"{c:g}"] = dict(
            losses=losses, heldout_accuracy_200=acc,
            max_loss_diff=max(abs(a - b) for a, b in zip(losses, check[1.0][0])),
            max_weight_diff=max((weights[k] - base[k]).abs().max().item() for k in base),
            update_rel_diff=norm(weights[k] - base[k] for k in base) / update)
    sweep = {}
    for coef in KL_COEFS + ("gift",):
        run = f"{'gift' if coef == 'gift' else kl_name(coef)}-s{seed}"
        records = metrics(args, run)
        rl_rows = [r for r in records if r.get("stage") == "rl"]
        steps, _, acc = curve(records)
        s = summary(args, run)
        half = rl_rows[len(rl_rows) // 2:]
        sweep[str(coef)] = dict(run=run, steps=steps, accuracy=acc, final_accuracy=s["rl_accuracy"],
                                ci95=s["rl_eval"]["ci95"], kl_steps=[r["step"] for r in rl_rows],
                                kl=[r["kl"] for r in rl_rows],
                                kl_second_half=sum(r["kl"] for r in half) / len(half),
                                reward_second_half=sum(r["reward"] for r in half) / len(half))
    write_json(args, "beta", dict(seed=seed, check_steps=check_steps, update_norm=update,
                                  invariance=invariance, kl_sweep=sweep))
    print(f"check: |w - w_sft| after {check_steps} steps (c=1) {update:.3e}")
    for c, r in invariance.items():
        print(f"  c={c:>5s}: max |loss - loss(c=1)| {r['max_loss_diff']:.1e}, |w - w(c=1)| / |w(c=1) - w_sft| "
              f"{r['update_rel_diff']:.1e} (max |w - w(c=1)| {r['max_weight_diff']:.1e}), "
              f"held-out (200) {r['heldout_accuracy_200']:.3f}")
    print("kl_coef  final  (+-ci)   KL/token (2nd half)  reward (2nd half)")
    for coef, r in sweep.items():
        print(f"{coef:7s}  {r['final_accuracy']:.3f} (+-{r['ci95']:.3f})  {r['kl_second_half']:.4f}  "
              f"{r['reward_second_half']:.3f}")
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    for c, r in invariance.items():
        axes[0].plot(range(1, len(r["losses"]) + 1), r["losses"], marker="o", linestyle="-" if c == "1" else "--",
                     label=f"implicit reward x {c} (update differs by {100 * r['update_rel_diff']:.2f}%)")
    axes[0].set_title("GIFT loss per step, frozen reference", fontsize=10)
    axes[0].set_xlabel("RL step")
    coefs = [c for c in KL_COEFS if c]
    axes[1].errorbar(coefs, [sweep[str(c)]["final_accuracy"] for c in coefs],
                     yerr=[sweep[str(c)]["ci95"] for c in coefs], marker="o", capsize=3,
                     label="GRPO + KL: held-out accuracy (95% CI)")
    axes[1].plot(coefs, [sweep[str(c)]["reward_second_half"] for c in coefs], marker="s", linestyle="--",
                 color="C0", label="GRPO + KL: sampled reward, steps 26-50")
    for key, label, style in (("0.0", "GRPO, no KL", "--"), ("gift", "GIFT (no beta)", ":")):
        axes[1].axhline(sweep[key]["final_accuracy"], color="gray" if key == "0.0" else "C3", linestyle=style,
                        label=f"{label}: held-out accuracy")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("GRPO kl_coef")
    axes[1].set_title(f"after {BUILTIN_STEPS} steps", fontsize=10)
    for c in coefs:
        axes[2].plot(sweep[str(c)]["kl_steps"], sweep[str(c)]["kl"], label=f"kl_coef {c:g}")
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
