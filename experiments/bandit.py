"""GIFT on a tabular bandit: the theory, demonstrated on CPU in seconds.

One prompt x, K responses (arms) with fixed rewards on five levels (0, 0.25, ..., 1), a softmax policy over K
logits, and pi_0 = the random initial policy. Each iteration samples B groups of G arms from the current policy and
takes `inner` optimiser steps on that batch. The paper's population minimiser is

    pi*(y|x) proportional to pi_ref(y|x) exp(r(y) / beta(x)),   beta(x) = sigma_r / sigma_logratio,

so against a frozen reference log(pi / pi_ref) should become affine in r. We report its correlation with r over the
K arms (uniform weight, and weighted by pi, the distribution the loss samples), the beta(x) reached, the exact
expected reward E_pi[r] over iterations, and the group std of logratio in the batches, for four methods:

    gift-frozen   GIFT, pi_ref = pi_0, never changed
    gift-refresh  GIFT, pi_ref reset to the current policy every --refresh-every iterations
    gift-old      GIFT, pi_ref = the sampling policy pi_old (reset every iteration, i.e. refresh-every 1)
    grpo          GRPO clipped surrogate against pi_old, std-scaled group advantages, no KL

and then a sweep of GIFT's std_floor for the frozen and pi_old references. Run from the repository root:

    python experiments/bandit.py                 # tables on stdout, JSON to out/bandit/bandit.json
    python experiments/bandit.py --plot          # and out/bandit/bandit.png (needs matplotlib)

What to expect: with a frozen reference the policy stops where the logratio in each group is perfectly correlated
with r, so the expected reward it reaches is set by the scale of logratio at that point (the std floor), not by the
best arm; arms pushed to tiny probability stop being sampled and their logratio stops moving (lowering the uniform
correlation). Refreshing the reference, or using pi_old, lets GIFT climb to the best arm as GRPO does.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gift.loss import gift_loss, group_advantages, grpo_loss  # noqa: E402

METHODS = ["gift-frozen", "gift-refresh", "gift-old", "grpo"]
CHECKPOINTS = [10, 30]                                               # iterations at which E[r] is tabulated


def make_bandit(arms, seed):
    """K arms with rewards on 5 levels (each level used) and random initial logits. -> rewards (K,), logits (K,)."""
    g = torch.Generator().manual_seed(seed)
    rewards = (torch.arange(arms) % 5).float() / 4
    rewards = rewards[torch.randperm(arms, generator=g)]
    logits0 = torch.randn(arms, generator=g)
    return rewards, logits0


def weighted_stats(a, b, w):
    """Correlation of two (K,) vectors and the ratio std(b) / std(a) under weights w (K,) summing to 1."""
    a, b = a - (w * a).sum(), b - (w * b).sum()
    var_a, var_b = (w * a * a).sum(), (w * b * b).sum()
    corr = (w * a * b).sum() / (var_a * var_b).sqrt().clamp_min(1e-12)
    return float(corr), float(var_b.sqrt() / var_a.sqrt().clamp_min(1e-12))


def train(method, rewards, logits0, cfg, seed):
    """Train one policy on one bandit. Returns a history of per-iteration metrics (lists of floats)."""
    g = torch.Generator().manual_seed(seed + 1)
    theta = logits0.clone().requires_grad_()                         # (K,) policy logits
    opt = (torch.optim.Adam if cfg.optim == "adam" else torch.optim.SGD)([theta], lr=cfg.lr)
    logp0 = F.log_softmax(logits0, dim=0)
    uniform = torch.full_like(rewards, 1 / len(rewards))
    ref = logits0.clone()
    keys = ["expected_reward", "corr_arms", "corr_pi", "beta_pi", "batch_logratio_std", "batch_corr", "batch_beta",
            "batch_informative"]
    hist = {k: [] for k in keys}
    for it in range(cfg.iters + 1):
        with torch.no_grad():
            logp_all = F.log_softmax(theta, dim=0)
            pi = logp_all.exp()
            logratio_all = logp_all - logp0                          # against pi_0, over all K arms
            hist["expected_reward"].append(float((pi * rewards).sum()))
            hist["corr_arms"].append(weighted_stats(logratio_all, rewards, uniform)[0])
            corr_pi, beta_pi = weighted_stats(logratio_all, rewards, pi)
            hist["corr_pi"].append(corr_pi)
            hist["beta_pi"].append(beta_pi)                          # sigma_r / sigma_logratio under pi
        if it == cfg.iters:
            break
        if method in ("gift-old", "grpo") or (method == "gift-refresh" and it % cfg.refresh_every == 0):
            ref = theta.detach().clone()
        idx = torch.multinomial(pi, cfg.groups * cfg.group_size, replacement=True, generator=g)   # (B*G,)
        r = rewards[idx]
        ref_logp = F.log_softmax(ref, dim=0)[idx]
        for step in range(cfg.inner):
            logp = F.log_softmax(theta, dim=0)[idx]                  # (B*G,): a response is one "token" here
            if method == "grpo":
                adv = group_advantages(r, cfg.group_size)
                loss, _ = grpo_loss(logp[:, None], ref_logp[:, None], None, adv, torch.ones_like(logp[:, None]),
                                    clip_eps=cfg.clip_eps)
            else:
                loss, st = gift_loss(logp - ref_logp, r, cfg.group_size, std_floor=cfg.std_floor,
                                     detach_std=cfg.detach_std)
                if step == cfg.inner - 1:
                    hist["batch_corr"].append(st["corr"])
                    hist["batch_beta"].append(st["beta"])
                    hist["batch_informative"].append(st["informative_frac"])
            if step == cfg.inner - 1:                                # how far the batch moved from its reference
                hist["batch_logratio_std"].append(float((logp - ref_logp).detach().view(-1, cfg.group_size)
                                                        .std(dim=1, unbiased=False).mean()))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return hist


def summarise(hists):
    """Mean over seeds of the figures of several runs of one method."""
    def mean(key, i=-1, reduce=None):
        return sum((reduce(h[key]) if reduce else h[key][i]) for h in hists) / len(hists)
    out = {"E[r]@0": mean("expected_reward", 0)}
    for c in CHECKPOINTS:
        if c < len(hists[0]["expected_reward"]):
            out[f"E[r]@{c}"] = mean("expected_reward", c)
    out.update({"E[r]@end": mean("expected_reward"), "corr_arms": mean("corr_arms"), "corr_pi": mean("corr_pi"),
                "beta_pi": mean("beta_pi"), "max_std": mean("batch_logratio_std", reduce=max),
                "end_std": mean("batch_logratio_std")})
    if hists[0]["batch_corr"]:
        out["batch_corr"] = mean("batch_corr")
        out["batch_beta"] = mean("batch_beta")
        out["informative"] = mean("batch_informative")
    return out


def run_all(cfg, methods=METHODS):
    """Run each method on each seed's bandit. -> (summary per method, mean E[r] curve per method, best-arm reward)."""
    summary, curves = {}, {}
    bandits = [make_bandit(cfg.arms, seed) for seed in range(cfg.seeds)]
    for method in methods:
        hists = [train(method, rewards, logits0, cfg, seed) for seed, (rewards, logits0) in enumerate(bandits)]
        summary[method] = summarise(hists)
        curves[method] = [sum(v) / len(v) for v in zip(*[h["expected_reward"] for h in hists])]
    best = sum(float(rewards.max()) for rewards, _ in bandits) / len(bandits)
    return summary, curves, best


def print_table(title, rows):
    cols = list(next(iter(rows.values())).keys())
    cols += [c for row in rows.values() for c in row if c not in cols]
    print(f"\n{title}")
    print(f"{'':>17}" + "".join(f"{c:>12}" for c in cols))
    for name, row in rows.items():
        print(f"{name:>17}" + "".join(f"{row[c]:>12.4f}" if c in row else f"{'-':>12}" for c in cols))


def get_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arms", type=int, default=10, help="K responses")
    p.add_argument("--groups", type=int, default=8, help="B groups per iteration")
    p.add_argument("--group-size", type=int, default=8, help="G responses per group")
    p.add_argument("--iters", type=int, default=150, help="sampling iterations")
    p.add_argument("--inner", type=int, default=4, help="optimiser steps per sampled batch")
    p.add_argument("--refresh-every", type=int, default=25, help="gift-refresh: iterations between reference resets")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--optim", choices=["adam", "sgd"], default="adam")
    p.add_argument("--std-floor", type=float, default=1.0, help="GIFT's floor on the group std of logratio (nats)")
    p.add_argument("--detach-std", action="store_true", help="GIFT: treat the logratio std as a constant")
    p.add_argument("--clip-eps", type=float, default=0.2, help="GRPO clip range")
    p.add_argument("--floors", type=str, default="0.1,0.3,1,3", help="std_floor sweep, comma separated ('' skips)")
    p.add_argument("--seeds", type=int, default=3, help="bandits (and sampling seeds) averaged over")
    p.add_argument("--out", type=str, default="out/bandit", help="output directory for bandit.json (and .png)")
    p.add_argument("--plot", action="store_true", help="also write bandit.png (needs matplotlib)")
    return p.parse_args(argv)


def main(argv=None):
    cfg = get_args(argv)
    t0 = time.time()
    summary, curves, best = run_all(cfg)
    print_table(f"bandit: K={cfg.arms} B={cfg.groups} G={cfg.group_size} iters={cfg.iters} inner={cfg.inner} "
                f"lr={cfg.lr} {cfg.optim} std_floor={cfg.std_floor}, mean of {cfg.seeds} seeds, best arm "
                f"E[r]={best:.2f}\n(corr_*, beta_pi: log(pi/pi_0) vs r over the arms; *_std, batch_*: group "
                f"logratio against the reference in use at the last inner step; batch_* over informative groups, "
                f"0 when none)", summary)

    sweep = {}
    for floor in [float(f) for f in cfg.floors.split(",") if f]:
        if floor == cfg.std_floor:                                   # already run above
            s = {m: summary[m] for m in ["gift-frozen", "gift-old"]}
        else:
            s, _, _ = run_all(argparse.Namespace(**{**vars(cfg), "std_floor": floor}), ["gift-frozen", "gift-old"])
        sweep.update({f"{method} {floor:g}": row for method, row in s.items()})
    if sweep:
        print_table("std_floor sweep (method, floor)", sweep)
    print(f"\n{time.time() - t0:.1f} s")

    os.makedirs(cfg.out, exist_ok=True)
    with open(os.path.join(cfg.out, "bandit.json"), "w") as f:
        json.dump({"config": vars(cfg), "best_arm_reward": best, "summary": summary, "floor_sweep": sweep,
                   "expected_reward": curves}, f, indent=1)
    if cfg.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        for method, curve in curves.items():
            plt.plot(curve, label=method, linestyle="--" if method == "grpo" else "-")
        plt.xlabel("iteration")
        plt.ylabel("expected reward E_pi[r]")
        plt.title(f"bandit K={cfg.arms}, std_floor={cfg.std_floor}, mean of {cfg.seeds} seeds")
        plt.legend()
        plt.savefig(os.path.join(cfg.out, "bandit.png"), dpi=120)
    print(f"wrote {cfg.out}")
    return summary, sweep


if __name__ == "__main__":
    torch.set_num_threads(1)                                         # tiny tensors: threads only add overhead
    main()
