"""Losses for RL fine-tuning: GIFT, and beside it GRPO, DPO and UNA.

GIFT (Group-relative Implicit Fine Tuning, arXiv 2510.23868) matches rewards instead of maximising them.

KL-regularised RL, max_pi E[r] - beta KL(pi || pi_ref), has a closed-form optimum (the start of DPO):

    pi*(y|x) = pi_ref(y|x) exp(r(x, y) / beta) / Z(x)
    <=>  r(x, y) = beta log(pi*(y|x) / pi_ref(y|x)) + beta log Z(x)                  (implicit reward)

So train pi_theta until its implicit reward beta * logratio, logratio = log pi_theta(y|x) - log pi_ref(y|x) summed
over the response tokens, matches the explicit reward r. Two unknowns spoil a plain regression (that is UNA): the
partition function log Z(x), which differs per prompt and cannot be computed, and beta, a hyperparameter. GIFT samples
a group of G responses per prompt and z-scores both sides within the group: subtracting the group mean removes
beta log Z(x) (it is the same for every response to x), dividing by the group std removes beta (it scales every
response alike). What is left is a scale-free regression,

    L(x) = 1/G sum_i (z(r)_i - z(logratio)_i)^2 = 2 (1 - rho(x))                                     (GIFT loss)

with rho(x) the Pearson correlation of logratio and r inside the group. It is minimised exactly when logratio is
affine in r inside each group, i.e. pi proportional to pi_ref exp(r / beta(x)) with beta(x) = sigma_r / sigma_logratio
read off the group rather than chosen by hand.

The first step. At the start of RL pi_theta == pi_ref, every logratio is 0, its group std is 0, and z(logratio) is
0/0. We divide the centred logratio by max(std, std_floor) instead, with std_floor in nats:
  * above the floor nothing changes: the loss is the paper's 2(1 - rho), invariant to a log Z shift and to the scale
    of logratio (scaling logratio by c leaves the loss unchanged and scales its gradient by 1/c);
  * below the floor the loss is 1/G sum_i (z(r)_i - (logratio_i - mean)/std_floor)^2, i.e. UNA-style matching of the
    centred logratio to std_floor * z(r) with a fixed beta(x) = sigma_r / std_floor. It is finite at logratio = 0
    and its gradient there is -(2/G) z(r)_i / std_floor per response (times 1/B over B groups): the group-normalised
    REINFORCE/GRPO direction, raising the logratio of better-than-average responses;
  * its minimiser has group std exactly std_floor, so with pi_ref = the sampling policy (pi_old) and several optimiser
    steps per batch the floor acts as a trust region on how far one batch moves the policy. It is a soft one: above
    the floor nothing pulls the scale back, and Adam rescales the small gradients left near rho = 1 (bandit, 16 Adam
    steps per batch at lr 0.2: the batch std peaked at 1.6 nats for floor 1 and 1.0 for floor 0.3, GRPO's clip 1.2).
The floor is applied to the variance before the square root: sqrt has an infinite derivative at 0 and autograd would
otherwise produce 0 * inf = NaN even where the clamp is inactive. The default, 1 nat, makes the first-step beta(x)
equal to sigma_r; the step-0 gradient is then 2 / std_floor times that of the sequence-level GRPO surrogate
-mean_i A_i pi(y_i|x) / pi_old(y_i|x) (a scale that matters with SGD, not with Adam).
On the bandit with a frozen reference the floor sets where training stops: E[r] 0.51 -> 0.62, 0.74, 0.94, 0.998 for
floors 0.1, 0.3, 1, 3 (best arm 1.0); at 3 the policy collapses onto the best arms before the UNA phase ends and the
loss degenerates to REINFORCE. With pi_old as the reference and Adam it made no difference from 0.1 to 3.

Degenerate groups (all rewards equal, e.g. all right or all wrong) carry no signal and z(r) is undefined. They are
masked out with torch.where (never NaN * 0), so they give zero loss and exactly zero gradient. The loss is the sum
over informative groups divided by the number of ALL groups B, the same weight 1/B per prompt that GRPO gives
(a degenerate group has zero advantage there but still counts). Dividing by the number of informative groups instead
would make the step larger whenever most prompts happen to be solved or hopeless, amplifying the noisiest batches.

Why the reference policy matters. The loss is blind to the scale of logratio, so nothing in it holds pi_theta near
pi_ref (unlike the KL term of RL or beta of DPO/UNA), and once logratio correlates perfectly with r inside each group
its gradient vanishes wherever the policy then is. Worse, with the std differentiated the gradient with respect to
logratio is orthogonal to the centred logratio (a scale-invariant function can only rotate it), so every finite
optimiser step lengthens it (Pythagoras); Adam keeps the step size fixed while the gradient shrinks as 1/std, so the
group std of logratio drifts upward, faster at larger learning rates, until the sampled groups' noise swamps the
matching signal. Measured on the built-in task (train.py, frozen SFT reference, Adam lr 3e-4, 80 RL steps, seed 0):
over the second half of the run the group std of logratio had a median of 4 nats (peaks over 30), its in-group
correlation with reward averaged -0.29 and the KL to the reference 0.22 nats per token (the CPU prototypes'
signature: 3-13 nats, negative correlation). detach_std=True holds the scale: treated as a constant, the std turns each step into a regression
towards std * z(r) at the current scale, which shrinks the part of logratio that reward does not explain (same run:
median std 1.2 nats, correlation +0.34, KL 0.044). In that 80-step run held-out accuracy did not differ much
(0.817 differentiated, 0.762 detached), and the sampling policy as the reference did best (0.880, see below); at the
default lr 1e-4 the frozen reference stayed healthy (median std 0.8 nats, correlation +0.52, KL 0.019).
Options: pi_ref frozen at the start of RL, refreshed to the current policy every K steps, or the sampling policy
itself (pi_old, refreshed every batch, with several optimiser steps on each batch as PPO/GRPO do). With pi_old and one
optimiser step per batch every logratio is 0 at the loss, and the gradient is exactly the floor's limit above: the
group z-scored REINFORCE direction on the summed log-probability. Measured on the tabular bandit
(experiments/bandit.py: 10 arms, 5 reward levels, B = G = 8, Adam lr 0.05, 4 steps per batch, 3 seeds): frozen,
log(pi/pi_ref) becomes affine in r inside the groups (correlation 0.999) and E[r] goes 0.51 -> 0.94 and stops short
of the best arm (1.0): the plateau the scale-blindness predicts; refreshed every 25 iterations 0.9996; pi_old
0.9995, as fast as GRPO. On the built-in task over 100 RL steps (experiments/reference.py, 3 seeds) the frozen
reference tied on greedy accuracy but its sampled reward plateaued 3.4 points below the refreshed and pi_old runs,
with the logratio std held near the floor and beta(x) settling at 0.4-0.5. With pi_old and one optimiser step the
gradient is GRPO's token-mean gradient up to a constant, so GIFT and GRPO then train alike (tested). train.py defaults
to pi_old; frozen is the paper's setting.

GRPO (DeepSeekMath, arXiv 2402.03300) with the Dr. GRPO variants (arXiv 2503.20783), DPO (arXiv 2305.18290) and UNA
(arXiv 2408.15339) are here for comparison and teaching: each is a few lines.

Shapes: B prompts (groups), G responses per prompt (group_size), T response tokens. Groups are consecutive runs of
G in every (B*G,) tensor. Every loss returns a scalar to minimise.
"""
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


def gift_loss(logratio, rewards, group_size, std_floor=1.0, detach_std=False):
    """GIFT loss: mean over groups of 1/G sum_i (z(r)_i - z(logratio)_i)^2 (= 2 (1 - rho) per group).

    logratio: (B*G,) sum over each response's tokens of log pi_theta - log pi_ref (differentiable).
    rewards:  (B*G,) explicit rewards (treated as constants).
    group_size: G. std_floor: nats; the logratio std is floored at this value (see the module docstring).
    detach_std: treat the logratio std as a constant. The loss value is the same; the gradient then also shrinks the
        logratio scale when rho < 1 instead of being orthogonal to it. The invariances hold either way.
    Returns (loss scalar, stats dict of plain floats):
        informative_frac  fraction of groups whose rewards are not all equal
        loss_informative  mean group loss over informative groups (2 (1 - rho) above the floor)
        logratio_std      mean group std of logratio (nats), informative groups
        below_floor_frac  fraction of informative groups whose logratio std is under std_floor
        corr              mean within-group Pearson correlation of logratio and reward (0 for a constant logratio)
        beta              mean implied beta(x) = sigma_r / max(sigma_logratio, std_floor) (the loss's target scale)
        beta_implied      sum sigma_r / sum sigma_logratio, no floor: the beta of pi_ref exp(r / beta) that the
                          current log-ratios imply (0 when every logratio is constant, e.g. pi_ref = pi_old)
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

    # z(r): the tiny floor only keeps degenerate groups finite; they are masked out below
    z_r = torch.where(informative[:, None], group_zscore(rewards, group_size, std_floor=1e-12), 0.0)
    z_l = group_zscore(logratio, group_size, std_floor=std_floor, detach_std=detach_std)
    per_group = (z_r - z_l).pow(2).mean(dim=1)                       # (B,)  GIFT loss, = 2 (1 - rho) above the floor
    per_group = torch.where(informative, per_group, 0.0)             # degenerate groups: zero loss, zero gradient
    loss = per_group.sum() / per_group.numel()                       # weight 1/B per prompt, see module docstring
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
            m.mean(), (per_group * m).sum() / n, (l_std * m).sum() / n,
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
    rewards = rewards.detach().to(torch.promote_types(rewards.dtype, torch.float32))   # ints/bools -> float
    if scale_by_std:
        return group_zscore(rewards, group_size, eps=eps).flatten()             # GRPO
    r = rewards.view(-1, group_size)                                            # (B, G)
    return (r - r.mean(dim=1, keepdim=True)).flatten()                          # Dr. GRPO


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
    x = torch.where(mask.bool(), per_token, 0.0)
    if mode == "token-mean":
        return x.sum() / mask.sum().clamp_min(1)
    if mode == "seq-mean":
        return (x.sum(dim=1) / mask.sum(dim=1).clamp_min(1)).mean()
    if mode == "constant":
        return x.sum() / (x.shape[0] * (max_len or x.shape[1]))
    raise ValueError(f"unknown aggregation mode {mode!r}: use 'token-mean', 'seq-mean' or 'constant'")


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
    ratio = torch.exp(logp - old_logp.detach())                      # (N, T)
    adv = advantages.detach()[:, None]                               # (N, 1)
    surrogate = torch.min(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    per_token = -surrogate
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
