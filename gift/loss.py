"""Losses for RL fine-tuning: GIFT, and beside it GRPO, DPO and UNA.

GIFT (arXiv 2510.23868) matches rewards instead of maximising them. The optimum of KL-regularised RL,
pi*(y|x) = pi_ref(y|x) exp(r(x, y) / beta) / Z(x), rearranges to DPO's implicit reward

    r(x, y) = beta logratio(x, y) + beta log Z(x),    logratio = sum_t log pi_theta(y_t|..) - log pi_ref(y_t|..)

Sample G responses per prompt and z-score both sides in the group: the mean removes beta log Z(x), the std removes
beta. Left is a scale-free regression per group x (the loss is the mean over the B groups):

    L(x) = 1/G sum_i (z(r)_i - z(logratio)_i)^2 = 2 (1 - rho(x)),    z(v)_i = (v_i - mean(v)) / std(v)

rho(x) is the in-group Pearson correlation; L(x) = 0 iff logratio is affine in r, i.e. pi proportional to
pi_ref exp(r / beta(x)) with beta(x) = sigma_r / sigma_logratio read off the group.

Three details of `gift_loss` (defaults as the paper's author runs it; why each, and what changes without it, is in
docs/method.md):
- The std is the population std, so L = 2 (1 - rho) exactly, and it is detached (`detach_std=True`): the gradient
  of term i with respect to logratio_i is -(2/G)(z(r)_i - z(l)_i) / std. The mean's gradient is zero either way
  (the residuals sum to zero in a group).
- The first step: with pi_theta = pi_ref every logratio is 0, its std 0 and z = 0/0. We divide by
  max(std, std_floor), flooring the variance before the square root (sqrt has an infinite derivative at 0). Above
  the floor nothing changes; below it the loss is UNA on the centred logratio with beta = sigma_r / std_floor, whose
  gradient at logratio = 0 is -2 z(r)_i / (B G std_floor): GRPO's direction. The default floor, 1e-3 nats, is a
  numerical guard; a floor near 1 nat is a different loss (this project's earlier trust-region variant).
- Degenerate groups (all rewards equal) get z(r) = 0, selected with torch.where (never NaN * 0). Kept (default),
  their loss is mean z(logratio)^2, which pulls their logratios together; mask_degenerate=True gives them zero loss
  and exactly zero gradient. Either way they count in the mean over B.

GRPO (arXiv 2402.03300), Dr. GRPO (2503.20783), DPO (2305.18290) and UNA (2408.15339) are beside it, a few lines each.
Shapes: B groups of G responses, consecutive in every (B*G,) tensor; T response tokens. Every loss returns a scalar.

The RL objectives train.py can run are one family (bottom of this file): `LOSSES[name](batch, cfg) -> (loss, stats)`,
where `batch` is an RLBatch (one micro-batch of whole groups: log-probs, rewards, mask) and `cfg` holds the method's
options. `--method=NAME` picks LOSSES[NAME], a Method record: the objective and what it needs of the step (a
reference policy, dynamic sampling). A new method is a function and a record added to the table, and a test.

A leaf module: it imports torch and nothing from gift/, so reading or testing a loss loads no model.
"""
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------------------------------------------
# group helpers


def _check_grouped(x, group_size, name):
    if x.dim() != 1:
        raise ValueError(f"{name} must be 1-D of shape (B*G,), got shape {tuple(x.shape)}")
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 (a group of 1 has no spread), got {group_size}")
    if x.numel() == 0 or x.numel() % group_size != 0:
        raise ValueError(f"{name} has {x.numel()} elements, not a positive multiple of group_size={group_size}")


def group_zscore(x, group_size, std_floor=0.0, eps=0.0, detach_std=False):
    """z-score x within consecutive groups: (x - group mean) / (max(group std, std_floor) + eps).

    x: (B*G,) -> (B, G). The std is the population std (divide by G), so a z-scored group has mean 0 and
    mean square 1. The floor is applied to the variance, so with std_floor > 0 the value and its gradient are
    finite even for a constant group (with neither floor nor eps a constant group gives 0/0).
    """
    _check_grouped(x, group_size, "x")
    # BEGIN SOLUTION loss
    # HINT: centre each group of G, divide by max(std, std_floor) + eps (floor the variance)
    x = x.view(-1, group_size)                                       # (B, G)
    centred = x - x.mean(dim=1, keepdim=True)
    var = centred.pow(2).mean(dim=1, keepdim=True)                   # (B, 1)
    std = var.clamp_min(std_floor ** 2).sqrt()                       # max(std, floor), NaN-free gradient at 0
    if detach_std:
        std = std.detach()
    return centred / (std + eps)
    # END SOLUTION


# ----------------------------------------------------------------------------------------------------------------
# GIFT


def gift_loss(logratio, rewards, group_size, std_floor=1e-3, detach_std=True, mask_degenerate=False, beta=1.0):
    """GIFT loss: mean over groups of 1/G sum_i (z(r)_i - beta z(logratio)_i)^2 (= 2 (1 - rho) per group at beta 1).

    logratio: (B*G,) sum over each response's tokens of log pi_theta - log pi_ref (differentiable).
    rewards:  (B*G,) explicit rewards (treated as constants).
    group_size: G. std_floor: nats; the logratio std is floored at this value (module docstring: the first step).
    detach_std: treat the group mean and std of logratio as constants (the author's choice). The loss value is the
        same; with the std differentiated the gradient is orthogonal to the centred logratio (scale invariance).
    mask_degenerate: groups whose rewards are all equal get zero loss and gradient (default: kept, z(r) = 0 there).
    beta: the coefficient on z(logratio) in the author's code (verl's compute_policy_loss_gift, kl_loss_coef; its
        script uses 1). With the std detached the gradient is proportional to beta (z(r) - beta z(l)): beta shifts
        the balance between the reward's push and the pull-back of the group's own log-ratio spread
        (docs/method.md), it does not only scale the step.
    Returns (loss scalar, stats dict of plain floats):
        informative_frac  fraction of groups whose rewards are not all equal
        loss_informative  mean group loss over informative groups (2 (1 - rho) above the floor)
        logratio_std      mean group std of logratio (nats), over all groups
        below_floor_frac  fraction of informative groups whose logratio std is under std_floor
        corr              mean within-group Pearson correlation of logratio and reward (0 for a constant logratio)
        beta              mean implied beta(x) = sigma_r / max(sigma_logratio, std_floor) (the loss's target scale)
        beta_implied      sum sigma_r / sum sigma_logratio, no floor: the beta of pi_ref exp(r / beta) that the
                          current log-ratios imply (0 when every logratio is constant, e.g. the first mini-batch)
    The stats over informative groups are 0 when there is none.
    """
    _check_grouped(logratio, group_size, "logratio")
    if rewards.shape != logratio.shape:
        raise ValueError(f"rewards shape {tuple(rewards.shape)} != logratio shape {tuple(logratio.shape)}")
    if not std_floor > 0:
        raise ValueError(f"std_floor must be > 0 nats (it makes the first step finite), got {std_floor}")
    # BEGIN SOLUTION loss
    # HINT: define r, informative, z_r, z_l, per_group and loss: the statistics below use them
    rewards = rewards.detach().to(torch.promote_types(logratio.dtype, torch.float32))
    r = rewards.view(-1, group_size)                                 # (B, G)
    informative = r.amax(dim=1) > r.amin(dim=1)                      # (B,) exact test for "all rewards equal"

    # z(r) = 0 in a degenerate group (the tiny floor only keeps 0/0 out of the untaken branch)
    z_r = torch.where(informative[:, None], group_zscore(rewards, group_size, std_floor=1e-12), 0.0)
    z_l = group_zscore(logratio, group_size, std_floor=std_floor, detach_std=detach_std)
    per_group = (z_r - beta * z_l).pow(2).mean(dim=1)                # (B,)  = 2 (1 - rho) above the floor, beta 1
    if mask_degenerate:
        per_group = torch.where(informative, per_group, 0.0)         # zero loss and exactly zero gradient
    loss = per_group.mean()                                          # weight 1/B per prompt, as in GRPO
    # END SOLUTION

    with torch.no_grad():
        l = logratio.detach().view(-1, group_size)
        l_c = l - l.mean(dim=1, keepdim=True)
        l_std = l_c.pow(2).mean(dim=1).sqrt()                        # (B,)
        r_std = (r - r.mean(dim=1, keepdim=True)).pow(2).mean(dim=1).sqrt()
        corr = (z_r * l_c).mean(dim=1) / l_std.clamp_min(1e-12)
        beta = r_std / l_std.clamp_min(std_floor)
        n = informative.sum().clamp_min(1)
        m = informative.to(l.dtype)
        values = torch.stack([
            m.mean(), (per_group * m).sum() / n, l_std.mean(),
            ((l_std < std_floor).to(l.dtype) * m).sum() / n, (corr * m).sum() / n, (beta * m).sum() / n,
            torch.where((l_std * m).sum() > 0, (r_std * m).sum() / (l_std * m).sum().clamp_min(1e-30), 0.0),
        ]).tolist()                                                  # one device sync
    keys = ["informative_frac", "loss_informative", "logratio_std", "below_floor_frac", "corr", "beta",
            "beta_implied"]
    return loss, dict(zip(keys, values))


# ----------------------------------------------------------------------------------------------------------------
# GRPO (DeepSeekMath) and Dr. GRPO


def group_advantages(rewards, group_size, scale_by_std=True, eps=1e-4):
    """GRPO advantage A_i = (r_i - mean(r)) / (std(r) + eps) within each group; Dr. GRPO drops the std.

    rewards: (B*G,) -> (B*G,). Population std; a group with equal rewards gets advantage 0.
    """
    _check_grouped(rewards, group_size, "rewards")
    # BEGIN SOLUTION grpo
    # HINT: floats (ints/bools -> float32), no gradient; z-score each group (GRPO) or only centre it (Dr. GRPO)
    rewards = rewards.detach().to(torch.promote_types(rewards.dtype, torch.float32))   # ints/bools -> float
    if scale_by_std:
        return group_zscore(rewards, group_size, eps=eps).flatten()             # GRPO
    r = rewards.view(-1, group_size)                                            # (B, G)
    return (r - r.mean(dim=1, keepdim=True)).flatten()                          # Dr. GRPO
    # END SOLUTION


def kl_k3(logp, ref_logp):
    """Per-token k3 estimator of KL(pi || pi_ref) at tokens sampled from pi: exp(d) - d - 1 with d = ref - logp.

    logp, ref_logp: (N, T) log-probs of the sampled tokens -> (N, T). Unbiased, always >= 0 (Schulman, 2020).
    """
    d = ref_logp.detach() - logp
    return torch.exp(d) - d - 1


def aggregate(per_token, mask, mode, max_len=None):
    """Reduce per-token losses (N, T) with a (N, T) 0/1 mask to a scalar.

    token-mean: sum over all response tokens / number of tokens (DAPO; long responses weigh more).
    seq-mean:   mean over sequences of each sequence's token mean (original GRPO; a length bias per token).
    constant:   sum / (N * max_len), a fixed normaliser (Dr. GRPO); max_len defaults to T.
    Masked positions are selected away with torch.where, so inf/NaN there (e.g. padding) cannot leak.
    """
    if per_token.shape != mask.shape or per_token.dim() != 2:
        raise ValueError(f"per_token {tuple(per_token.shape)} and mask {tuple(mask.shape)} must be the same (N, T)")
    # BEGIN SOLUTION grpo
    # HINT: select masked positions away (torch.where), then the three normalisers; ValueError for another mode
    x = torch.where(mask.bool(), per_token, 0.0)
    if mode == "token-mean":
        return x.sum() / mask.sum().clamp_min(1)
    if mode == "seq-mean":
        return (x.sum(dim=1) / mask.sum(dim=1).clamp_min(1)).mean()
    if mode == "constant":
        return x.sum() / (x.shape[0] * (max_len or x.shape[1]))
    raise ValueError(f"unknown aggregation mode {mode!r}: use 'token-mean', 'seq-mean' or 'constant'")
    # END SOLUTION


def grpo_loss(logp, old_logp, ref_logp, advantages, mask, clip_eps=0.2, kl_coef=0.0, agg="token-mean",
              max_len=None):
    """GRPO's clipped surrogate (DeepSeekMath eq. 3) with an optional k3 KL penalty to the reference.

    logp: (N, T) log pi_theta of the sampled tokens (differentiable); old_logp: (N, T) under the sampling policy;
    ref_logp: (N, T) under pi_ref, or None when kl_coef == 0; advantages: (N,); mask: (N, T) 1 for response tokens.
    per token: -min(ratio A, clip(ratio, 1 - clip_eps, 1 + clip_eps) A) + kl_coef k3, ratio = pi_theta / pi_old.
    Returns (loss scalar, stats dict of plain floats: clip_frac, ratio_mean, kl).
    """
    if logp.shape != old_logp.shape or logp.shape != mask.shape or logp.dim() != 2:
        raise ValueError(f"logp {tuple(logp.shape)}, old_logp {tuple(old_logp.shape)} and mask "
                         f"{tuple(mask.shape)} must all be the same (N, T)")
    if advantages.shape != logp.shape[:1]:
        raise ValueError(f"advantages must have shape (N,) = {tuple(logp.shape[:1])}, got {tuple(advantages.shape)}")
    if kl_coef != 0 and ref_logp is None:
        raise ValueError("kl_coef != 0 needs ref_logp (the reference policy's log-probs)")
    # BEGIN SOLUTION grpo
    # HINT: ratio (N, T) = pi_theta / pi_old per token (pi_old: no gradient); per_token = minus the clipped surrogate
    ratio = torch.exp(logp - old_logp.detach())                      # (N, T)
    adv = advantages.detach()[:, None]                               # (N, 1)
    surrogate = torch.min(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    per_token = -surrogate
    # END SOLUTION
    kl = kl_k3(logp, ref_logp) if ref_logp is not None else torch.zeros_like(logp)
    if kl_coef != 0:
        per_token = per_token + kl_coef * kl
    loss = aggregate(per_token, mask, agg, max_len)

    with torch.no_grad():
        clipped = ((ratio - 1).abs() > clip_eps).to(logp.dtype)
        stats = [aggregate(clipped, mask, "token-mean"), aggregate(ratio, mask, "token-mean"),
                 aggregate(kl, mask, "token-mean")]
    return loss, dict(zip(["clip_frac", "ratio_mean", "kl"], torch.stack(stats).tolist()))


# ----------------------------------------------------------------------------------------------------------------
# the two ancestors the paper names


def dpo_loss(chosen_logratio, rejected_logratio, beta):
    """DPO (eq. 7): -log sigmoid(beta (logratio_chosen - logratio_rejected)), mean over pairs.

    chosen_logratio, rejected_logratio: (N,) summed log pi_theta - log pi_ref of each pair's responses.
    Only the difference of the implicit rewards enters, so log Z(x) cancels within a pair; beta stays.
    """
    if chosen_logratio.shape != rejected_logratio.shape:
        raise ValueError(f"chosen {tuple(chosen_logratio.shape)} and rejected {tuple(rejected_logratio.shape)} differ")
    return -F.logsigmoid(beta * (chosen_logratio - rejected_logratio)).mean()


def una_loss(logratio, rewards, beta):
    """UNA: mean squared error between the implicit reward beta * logratio and the explicit reward.

    logratio, rewards: (N,). Ignores beta log Z(x) and needs beta chosen by hand: the two things GIFT's group
    z-scoring removes (GIFT below its std floor is this loss on centred values with beta = sigma_r / std_floor).
    """
    if logratio.shape != rewards.shape:
        raise ValueError(f"logratio {tuple(logratio.shape)} and rewards {tuple(rewards.shape)} differ")
    return (beta * logratio - rewards.detach()).pow(2).mean()


# ----------------------------------------------------------------------------------------------------------------
# the RL objectives train.py runs: one signature, found by name (train.py --method=NAME)


@dataclass
class RLBatch:
    """What an RL objective sees: N = B*G sampled responses (B whole groups of G, consecutive), T token positions.

    logp      (N, T) log pi_theta of each sampled token (differentiable); 0 off the response
    old_logp  (N, T) the same under the sampling policy pi_old (computed once per rollout, before any update)
    ref_logp  (N, T) under pi_ref (train.py's Reference: pi_old, the SFT model, or a refreshed copy), or None
    rewards   (N,)   explicit rewards
    mask      (N, T) 1 at the response tokens the model chose (0 at the prompt, padding, calculator-forced tokens)
    group_size       G
    max_len          the longest possible response (Dr. GRPO's constant normaliser)
    truncated (N,)   responses cut at max_len, or None
    """
    logp: torch.Tensor
    old_logp: torch.Tensor
    ref_logp: torch.Tensor
    rewards: torch.Tensor
    mask: torch.Tensor
    group_size: int
    max_len: int = None
    truncated: torch.Tensor = None  # (N,) bool: cut at max_new_tokens without a stop token (DAPO filters these)


def gift_objective(batch, cfg):
    """GIFT as its author runs it: gift_loss on logratio = sum_t log pi_theta - log pi_ref (the implicit reward over
    beta, paper eq. 6). cfg: std_floor, detach_std, mask_degenerate, beta (the author's coefficient on z(logratio))."""
    # BEGIN SOLUTION rl_step
    # HINT: logratio (N,) from batch.logp and batch.ref_logp, then return gift_loss(...) with cfg's options
    logratio = ((batch.logp - batch.ref_logp) * batch.mask).sum(dim=1)  # (N,) over the response tokens only
    return gift_loss(logratio, batch.rewards, batch.group_size, std_floor=cfg.std_floor,
                     detach_std=cfg.detach_std, mask_degenerate=cfg.mask_degenerate, beta=cfg.beta)
    # END SOLUTION



def una_objective(batch, cfg):
    """UNA's regression on the same implicit reward as GIFT, without the z-scores: (beta logratio - r)^2, mean over
    responses, with a fixed beta (cfg.beta) chosen by hand: the reward's scale and offset are the regression's
    target, so they change the update (GIFT's z-scores remove both). For the reward-scale experiment."""
    # BEGIN SOLUTION rl_step
    # HINT: the same logratio (N,) as in gift_objective
    logratio = ((batch.logp - batch.ref_logp) * batch.mask).sum(dim=1)
    # END SOLUTION
    return una_loss(logratio, batch.rewards, cfg.beta), {}



def grpo_objective(batch, cfg):
    """GRPO's clipped surrogate on group-normalised advantages (Dr. GRPO: scale_by_std=False, agg="constant"), with
    an optional k3 KL penalty to pi_ref. cfg: scale_by_std, clip_eps, kl_coef, agg."""
    advantages = group_advantages(batch.rewards, batch.group_size, scale_by_std=cfg.scale_by_std)
    return grpo_loss(batch.logp, batch.old_logp, batch.ref_logp, advantages, batch.mask, clip_eps=cfg.clip_eps,
                     kl_coef=cfg.kl_coef, agg=cfg.agg, max_len=batch.max_len)


def dr_grpo_objective(batch, cfg):
    """Dr. GRPO (arXiv 2503.20783): GRPO without the two length and difficulty biases it names: advantages not divided
    by the group std, and the token sum divided by a constant (N * max_len) instead of each response's length.
    cfg: clip_eps, kl_coef."""
    advantages = group_advantages(batch.rewards, batch.group_size, scale_by_std=False)
    return grpo_loss(batch.logp, batch.old_logp, batch.ref_logp, advantages, batch.mask, clip_eps=cfg.clip_eps,
                     kl_coef=cfg.kl_coef, agg="constant", max_len=batch.max_len)


def dapo_objective(batch, cfg):
    """DAPO's loss (arXiv 2503.14476): the clipped surrogate with a higher upper clip (clip-higher: ratio in
    [1 - clip_eps, 1 + clip_high], so unlikely tokens that earn a positive advantage can grow), averaged over every
    response token of the batch (token-level aggregation: long responses weigh by their length), no KL term. Overlong
    filtering: responses cut at max_new_tokens (batch.truncated) are left out of the loss. Dynamic sampling (refilling
    the batch with groups whose rewards differ) happens in the rollout, not here. cfg: clip_eps, clip_high."""
    advantages = group_advantages(batch.rewards, batch.group_size, scale_by_std=True)
    mask = batch.mask if batch.truncated is None else batch.mask * (~batch.truncated)[:, None].to(batch.mask.dtype)
    # BEGIN SOLUTION grpo
    # HINT: grpo_loss's ratio and per_token, with the clip range [1 - cfg.clip_eps, 1 + cfg.clip_high]
    ratio = torch.exp(batch.logp - batch.old_logp.detach())                          # (N, T)
    adv = advantages[:, None]
    per_token = -torch.min(ratio * adv, ratio.clamp(1 - cfg.clip_eps, 1 + cfg.clip_high) * adv)
    # END SOLUTION
    loss = aggregate(per_token, mask, "token-mean")
    with torch.no_grad():
        clipped = ((ratio < 1 - cfg.clip_eps) | (ratio > 1 + cfg.clip_high)).to(ratio.dtype)
        stats = torch.stack([aggregate(clipped, mask, "token-mean"), aggregate(ratio, mask, "token-mean"),
                             (1.0 - mask.amax(dim=1)).mean()]).tolist()
    return loss, dict(zip(["clip_frac", "ratio_mean", "filtered_frac"], stats))



def gspo_objective(batch, cfg):
    """GSPO (arXiv 2507.18071): one importance ratio per response, s_i = exp(mean over its tokens of log pi_theta -
    log pi_old) (the geometric mean of the token ratios, so its scale does not grow with the length), clipped to
    [1 - gspo_eps_low, 1 + gspo_eps_high] (the paper's 3e-4 and 4e-4: sequence ratios sit much closer to 1 than
    token ratios), times the group-normalised advantage; the mean over responses. cfg: gspo_eps_low, gspo_eps_high."""
    advantages = group_advantages(batch.rewards, batch.group_size, scale_by_std=True)   # (N,) z-scored, no gradient
    # BEGIN SOLUTION gspo
    # HINT: log s_i = mean of logp - old_logp over response i's tokens; loss = mean of -min(s A, clip(s, ..) A)
    n_tokens = batch.mask.sum(dim=1).clamp_min(1)                                   # (N,)
    log_s = (torch.where(batch.mask.bool(), batch.logp - batch.old_logp.detach(), 0.0)).sum(dim=1) / n_tokens
    s = torch.exp(log_s)                                                             # (N,)
    per_seq = -torch.min(s * advantages, s.clamp(1 - cfg.gspo_eps_low, 1 + cfg.gspo_eps_high) * advantages)
    loss = per_seq.mean()
    # END SOLUTION
    with torch.no_grad():
        clipped = ((s < 1 - cfg.gspo_eps_low) | (s > 1 + cfg.gspo_eps_high)).to(s.dtype)
        stats = torch.stack([clipped.mean(), s.mean()]).tolist()
    return loss, dict(zip(["clip_frac", "ratio_mean"], stats))


def _setting(default, help, section=None):
    """A settings field with its --help text (gift/settings.py's `setting`, written out so that this file stays a
    leaf)."""
    return field(default=default, metadata=dict(help=help, section=section))


AGGREGATIONS = ("token-mean", "seq-mean", "constant")  # --agg


@dataclass
class BaselineSettings:
    """The options of the baselines' objectives above, which train.py's Config takes in (--help lists them): a new
    objective declares its options here, next to its function, and train.py does not change."""
    clip_eps: float = _setting(0.2, "the ratio's clip range (DAPO: its lower side)", section="GRPO's options, and "
                               "its variants' (gift/loss.py)")
    kl_coef: float = _setting(0.0, "GRPO, Dr. GRPO: k3 KL penalty to the frozen SFT model")
    clip_high: float = _setting(0.28, "DAPO: the upper clip, ratio <= 1 + clip_high (clip-higher)")
    max_draws: int = _setting(3, "DAPO: dynamic sampling draws at most this many rounds of --prompts prompts a step "
                              "to fill it with groups whose rewards differ (1: no resampling)")
    gspo_eps_low: float = _setting(3e-4, "GSPO: the sequence ratio's lower clip, ratio >= 1 - gspo_eps_low")
    gspo_eps_high: float = _setting(4e-4, "GSPO: the sequence ratio's upper clip, ratio <= 1 + gspo_eps_high")
    agg: str = _setting("token-mean", "token-mean | seq-mean | constant (Dr. GRPO: with --scale_by_std=false)")
    scale_by_std: bool = _setting(True, "divide advantages by the group std (false: Dr. GRPO)")

    def check(self):
        if self.agg not in AGGREGATIONS:
            raise SystemExit(f"error: --agg={self.agg!r} must be one of {AGGREGATIONS}")
        if self.kl_coef and getattr(self, "method", "grpo") not in ("grpo", "dr_grpo"):
            raise SystemExit(f"error: --kl_coef is GRPO's KL penalty; --method={self.method} has none"
                             + (" (GIFT needs no beta)" if self.method == "gift" else ""))
        if self.max_draws < 1:
            raise SystemExit(f"error: --max_draws={self.max_draws} must be >= 1")


@dataclass(frozen=True)
class Method:
    """What --method=NAME runs: its objective, and what the objective needs of the RL step.

    objective      (batch: RLBatch, cfg) -> (scalar loss, dict of floats)
    uses_ref       the loss reads batch.ref_logp from --ref's policy (GIFT, UNA); otherwise pi_ref is GRPO's frozen
                   KL anchor when --kl_coef > 0, and none at all when it is 0
    filter_groups  dynamic sampling (DAPO): the step keeps only groups whose rewards differ (gift/resample.py)
    """
    objective: Callable
    uses_ref: bool = False
    filter_groups: bool = False

    def __call__(self, batch, cfg):
        return self.objective(batch, cfg)


LOSSES = {  # --method=NAME: its objective and needs
    "gift": Method(gift_objective, uses_ref=True),
    "grpo": Method(grpo_objective),
    "dr_grpo": Method(dr_grpo_objective),
    "dapo": Method(dapo_objective, filter_groups=True),
    "gspo": Method(gspo_objective),
    "una": Method(una_objective, uses_ref=True),
}
