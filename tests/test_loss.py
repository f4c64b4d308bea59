"""Tests of gift/loss.py: GIFT's identities and invariances, its first step and degenerate groups, and the baselines."""
import math

import pytest
import torch
import torch.nn.functional as F

from gift.loss import aggregate, dpo_loss, gift_loss, group_advantages, group_zscore, grpo_loss, kl_k3, una_loss



@pytest.fixture(autouse=True)
def float64():
    """Double precision for tight comparisons of gradients, restored afterwards for the other test files."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def random_groups(B=5, G=8, seed=0, scale=3.0):
    """Random rewards on several levels and logratios whose group std is well above any floor used here."""
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randint(0, 5, (B * G,), generator=g).double() / 4
    rewards.view(B, G)[:, 0], rewards.view(B, G)[:, 1] = 0.0, 1.0  # every group informative
    logratio = scale * torch.randn(B * G, generator=g)
    return logratio, rewards


def loss_and_grad(logratio, rewards, G, **kw):
    x = logratio.clone().requires_grad_()
    loss, stats = gift_loss(x, rewards, G, **kw)
    loss.backward()
    return loss.detach(), x.grad, stats


def pearson(a, b):
    return torch.corrcoef(torch.stack([a, b]))[0, 1]


# ----------------------------------------------------------------------------------------------------------- GIFT


def test_group_zscore_mean_zero_unit_mean_square():
    x, _ = random_groups()
    z = group_zscore(x, 8)
    assert z.shape == (5, 8)
    torch.testing.assert_close(z.mean(1), torch.zeros(5))
    torch.testing.assert_close(z.pow(2).mean(1), torch.ones(5))


def test_gift_equals_two_times_one_minus_pearson_per_group():
    logratio, rewards = random_groups(B=6, G=8)
    for b in range(6):
        sl = slice(8 * b, 8 * b + 8)
        loss, _ = gift_loss(logratio[sl], rewards[sl], 8, std_floor=0.1)
        torch.testing.assert_close(loss, 2 * (1 - pearson(logratio[sl], rewards[sl])))
    loss, stats = gift_loss(logratio, rewards, 8, std_floor=0.1)
    rhos = torch.stack([pearson(l, r) for l, r in zip(logratio.view(6, 8), rewards.view(6, 8))])
    torch.testing.assert_close(loss, (2 * (1 - rhos)).mean())
    assert stats["corr"] == pytest.approx(rhos.mean().item(), abs=1e-9)
    assert stats["below_floor_frac"] == 0.0


@pytest.mark.parametrize("detach_std", [False, True])
def test_affine_reward_map_changes_nothing(detach_std):
    logratio, rewards = random_groups(seed=1)
    rewards.view(5, 8)[4] = 0.25                                    # a degenerate group too (kept by default)
    loss, grad, _ = loss_and_grad(logratio, rewards, 8, detach_std=detach_std)
    for a, b in [(3.0, -2.0), (0.01, 5.0)]:
        loss2, grad2, _ = loss_and_grad(logratio, a * rewards + b, 8, detach_std=detach_std)
        torch.testing.assert_close(loss2, loss)
        torch.testing.assert_close(grad2, grad)


@pytest.mark.parametrize("detach_std", [False, True])
def test_per_group_logratio_shift_changes_nothing(detach_std):
    logratio, rewards = random_groups(seed=2)
    rewards.view(5, 8)[0] = 1.0
    loss, grad, _ = loss_and_grad(logratio, rewards, 8, detach_std=detach_std)
    shift = torch.tensor([-7.0, 0.5, 3.0, 100.0, -0.1]).repeat_interleave(8)   # a log Z(x) per prompt
    loss2, grad2, _ = loss_and_grad(logratio + shift, rewards, 8, detach_std=detach_std)
    torch.testing.assert_close(loss2, loss)
    torch.testing.assert_close(grad2, grad)


@pytest.mark.parametrize("detach_std", [False, True])
def test_logratio_scale_leaves_loss_and_scales_gradient_by_inverse(detach_std):
    logratio, rewards = random_groups(seed=3, scale=10.0)
    rewards.view(5, 8)[3] = 0.0
    assert 0.5 * logratio.view(5, 8).std(1, unbiased=False).min() > 1.0    # above the floor at every c
    loss, grad, stats = loss_and_grad(logratio, rewards, 8, detach_std=detach_std)
    for c in [2.0, 10.0, 0.5]:
        loss2, grad2, stats2 = loss_and_grad(c * logratio, rewards, 8, detach_std=detach_std)
        torch.testing.assert_close(loss2, loss)
        torch.testing.assert_close(grad2, grad / c)
        assert stats2["beta"] == pytest.approx(stats["beta"] / c)   # beta = sigma_r / sigma_logratio
        assert stats2["beta_implied"] == pytest.approx(stats["beta_implied"] / c)


def test_scale_free_gradient_is_orthogonal_to_logratio_unless_std_detached():
    # Euler: a loss invariant to the scale of logratio has sum_i logratio_i dL/dlogratio_i = 0; detaching the std
    # adds a component that shrinks the logratio scale when the correlation is imperfect
    logratio, rewards = random_groups(seed=4)
    _, grad, _ = loss_and_grad(logratio, rewards, 8, detach_std=False)
    _, grad_d, _ = loss_and_grad(logratio, rewards, 8, detach_std=True)
    assert abs((grad * logratio).sum().item()) < 1e-10
    assert (grad_d * logratio).sum().item() > 1e-3                  # descent shrinks |logratio|


def test_affine_logratio_gives_zero_loss_and_implied_beta():
    _, rewards = random_groups(seed=5)
    beta = 0.2
    logratio = rewards / beta + torch.arange(5.0).repeat_interleave(8)   # r = beta logratio - beta log Z
    loss, grad, stats = loss_and_grad(logratio, rewards, 8)
    assert loss.item() < 1e-12 and grad.abs().max().item() < 1e-10
    assert stats["corr"] == pytest.approx(1.0)
    assert stats["beta"] == pytest.approx(beta) and stats["beta_implied"] == pytest.approx(beta)
    assert stats["loss_informative"] < 1e-12


def test_masked_degenerate_groups_zero_loss_exactly_zero_gradient():
    logratio, rewards = random_groups(B=4, G=8, seed=6)
    rewards.view(4, 8)[1] = 1.0                                     # all right
    rewards.view(4, 8)[3] = 0.1                                     # all equal (0.1 has no exact float mean)
    loss, grad, stats = loss_and_grad(logratio, rewards, 8, mask_degenerate=True)
    assert torch.isfinite(grad).all()
    assert (grad.view(4, 8)[[1, 3]] == 0).all()                     # exactly zero, not just small
    assert (grad.view(4, 8)[[0, 2]] != 0).any()
    # the sum runs over informative groups and divides by all B groups
    keep = torch.tensor([0, 2])
    sub, _ = gift_loss(logratio.view(4, 8)[keep].flatten(), rewards.view(4, 8)[keep].flatten(), 8)
    torch.testing.assert_close(loss, sub * 2 / 4)
    kept, grad_kept, _ = loss_and_grad(logratio, rewards, 8)        # the default keeps them: loss 1 each there
    torch.testing.assert_close(kept, (sub * 2 + 2) / 4)
    torch.testing.assert_close(grad_kept.view(4, 8)[[0, 2]], grad.view(4, 8)[[0, 2]])
    assert stats["informative_frac"] == 0.5
    assert stats["loss_informative"] == pytest.approx(sub.item())


def test_all_degenerate_at_the_first_step_is_zero_and_finite():
    x = torch.zeros(16, requires_grad=True)                         # pi == pi_ref and every group all-equal
    loss, stats = gift_loss(x, torch.ones(16), 8)
    loss.backward()
    assert loss.item() == 0.0 and (x.grad == 0).all()
    assert stats["informative_frac"] == 0.0 and all(math.isfinite(v) for v in stats.values())


@pytest.mark.parametrize("std_floor", [0.1, 0.5, 1.0])
def test_first_step_is_finite_and_follows_the_centred_reward(std_floor):
    B, G = 4, 8
    _, rewards = random_groups(B, G, seed=7)
    x = torch.zeros(B * G, requires_grad=True)                      # pi_theta == pi_ref: logratio 0, std 0
    loss, stats = gift_loss(x, rewards, G, std_floor=std_floor)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    assert x.grad.abs().max().item() < 1e3
    assert loss.item() == pytest.approx(1.0)                        # mean of z(r)^2 over informative groups
    z_r = group_zscore(rewards, G).flatten()
    torch.testing.assert_close(x.grad, -2 / (B * G) * z_r / std_floor)   # group-normalised REINFORCE direction
    centred = (rewards.view(B, G) - rewards.view(B, G).mean(1, keepdim=True)).flatten()
    step = -x.grad                                                  # gradient descent raises better-than-average
    assert ((step > 0) == (centred > 0)).all() and ((step < 0) == (centred < 0)).all()
    assert stats["below_floor_frac"] == 1.0
    assert stats["beta"] == pytest.approx(
        (rewards.view(B, G).std(1, unbiased=False) / std_floor).mean().item())
    assert stats["beta_implied"] == 0.0                              # no logratio spread: nothing implied yet


def test_below_the_floor_descent_stops_at_group_std_equal_to_floor():
    # below the floor the loss is UNA-style matching of the centred logratio to std_floor * z(r): its minimiser
    # has group std == std_floor, a trust region when pi_ref is the sampling policy
    B, G, floor = 3, 8, 0.5
    _, rewards = random_groups(B, G, seed=8)
    x = torch.zeros(B * G, requires_grad=True)
    for _ in range(40):                                             # plain gradient descent
        loss, _ = gift_loss(x, rewards, G, std_floor=floor)
        (grad,) = torch.autograd.grad(loss, x)
        x = (x - 2.0 * grad).detach().requires_grad_()
    assert loss.item() < 1e-8
    torch.testing.assert_close(x.detach().view(B, G).std(1, unbiased=False), torch.full((B,), floor))
    torch.testing.assert_close(group_zscore(x.detach(), G), group_zscore(rewards, G))


def test_gift_rejects_bad_input():
    x = torch.zeros(16)
    with pytest.raises(ValueError, match="multiple of group_size"):
        gift_loss(x, x, 5)
    with pytest.raises(ValueError, match="rewards shape"):
        gift_loss(x, torch.zeros(8), 8)
    with pytest.raises(ValueError, match="1-D"):
        gift_loss(x.view(2, 8), x.view(2, 8), 8)
    with pytest.raises(ValueError, match="std_floor"):
        gift_loss(x, x, 8, std_floor=0.0)
    with pytest.raises(ValueError, match="group_size"):
        gift_loss(x, x, 1)


def test_gift_stats_are_plain_floats():
    logratio, rewards = random_groups()
    _, stats = gift_loss(logratio, rewards, 8)
    assert set(stats) == {"informative_frac", "loss_informative", "logratio_std", "below_floor_frac", "corr", "beta",
                          "beta_implied"}
    assert all(type(v) is float for v in stats.values())
    assert stats["logratio_std"] == pytest.approx(logratio.view(5, 8).std(1, unbiased=False).mean().item())


# BEGIN INSTRUCTOR ONLY (an oracle that writes an answer out: in the course's copy of the tests only)
def reference_gift(logratio, rewards, G, std_floor=1e-3, detach_std=True, mask_degenerate=False):
    """The author's loss written out group by group, as an independent check of gift_loss: torch.std (unbiased),
    converted to the population std; the logratio's group mean (and std, if detach_std) are constants; degenerate
    groups have z(r) = 0 and are kept unless masked; the loss is the mean over all sequences."""
    terms = []
    for l, r in zip(logratio.split(G), rewards.split(G)):
        to_population = math.sqrt((G - 1) / G)
        r_std = torch.std(r) * to_population
        z_r = (r - r.mean()) / r_std if r_std > 0 else torch.zeros_like(r)
        l_std = torch.maximum(torch.std(l) * to_population, torch.tensor(std_floor))
        if detach_std:
            l_std = l_std.detach()
        z_l = (l - l.mean().detach()) / l_std
        square = (z_r - z_l) ** 2
        terms.append(square * 0 if (mask_degenerate and r_std == 0) else square)
    return torch.cat(terms).mean()


def mixed_groups(seed, G=8):
    """Random groups, a degenerate one (all right), a constant logratio, and a logratio below the floor."""
    logratio, rewards = random_groups(B=6, G=G, seed=seed)
    rewards.view(6, G)[1] = 1.0
    logratio.view(6, G)[2] = 0.7
    logratio.view(6, G)[3] *= 1e-4
    return logratio, rewards


@pytest.mark.parametrize("options", [dict(), dict(detach_std=False), dict(mask_degenerate=True),
                                     dict(std_floor=1.0), dict(std_floor=1.0, detach_std=False, mask_degenerate=True)])
def test_gift_loss_equals_the_authors_formula(options):
    for seed in range(3):
        logratio, rewards = mixed_groups(seed)
        loss, grad, _ = loss_and_grad(logratio, rewards, 8, **options)
        x = logratio.clone().requires_grad_()
        expected = reference_gift(x, rewards, 8, **options)
        expected.backward()
        torch.testing.assert_close(loss, expected.detach(), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(grad, x.grad, rtol=1e-10, atol=1e-12)


def test_unbiased_std_as_the_author_uses_scales_the_loss_by_g_over_g_minus_1():
    logratio, rewards = random_groups(B=4, G=8, seed=9)
    rewards.view(4, 8)[2] = 0.0                                     # a degenerate group, kept
    author = []
    for l, r in zip(logratio.split(8), rewards.split(8)):           # verl: z = (v - mean) / (torch.std(v) + 1e-6)
        z = lambda v: (v - v.mean()) / (torch.std(v) + 1e-6)
        author.append(((z(r) - z(l)) ** 2).mean())
    loss, _ = gift_loss(logratio, rewards, 8)
    torch.testing.assert_close(torch.stack(author).mean(), loss * 7 / 8, rtol=1e-5, atol=0)
# END INSTRUCTOR ONLY


def test_kept_degenerate_groups_pull_their_logratios_together_only_with_the_std_detached():
    logratio, rewards = random_groups(B=2, G=8, seed=10)
    rewards[:] = 0.0                                                # both groups hopeless
    loss, grad, stats = loss_and_grad(logratio, rewards, 8)
    assert loss.item() == pytest.approx(1.0) and stats["informative_frac"] == 0.0   # mean z(l)^2 = 1
    centred = logratio.view(2, 8) - logratio.view(2, 8).mean(1, keepdim=True)
    std = centred.pow(2).mean(1, keepdim=True).sqrt()
    torch.testing.assert_close(grad.view(2, 8), 2 * centred / std**2 / 16)   # descent shrinks the spread
    _, grad_free, _ = loss_and_grad(logratio, rewards, 8, detach_std=False)
    assert grad_free.abs().max().item() < 1e-12                     # scale-free: a constant 1, nothing to learn


def test_first_step_gradient_with_the_default_floor():
    B, G = 5, 8
    _, rewards = random_groups(B, G, seed=11)
    x = torch.zeros(B * G, requires_grad=True)
    loss, _ = gift_loss(x, rewards, G)
    loss.backward()
    z_r = group_zscore(rewards, G).flatten()
    torch.testing.assert_close(x.grad, -2 / (B * G) * z_r / 1e-3)   # finite, GRPO's direction, size 50 z(r)
    assert 50 < x.grad.abs().max().item() < 50 * math.sqrt(G - 1) + 1e-9   # |z| <= sqrt(G - 1)


# ----------------------------------------------------------------------------------------------------------- GRPO


def test_group_advantages_grpo_and_dr_grpo():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5])
    a = group_advantages(rewards, 4, eps=0.0)
    torch.testing.assert_close(a[:4], torch.tensor([1.0, -1.0, -1.0, 1.0]))   # population std 0.5
    assert (group_advantages(rewards, 4)[4:] == 0).all()            # equal rewards: no advantage, no NaN
    torch.testing.assert_close(group_advantages(rewards, 4, scale_by_std=False)[:4],
                               torch.tensor([0.5, -0.5, -0.5, 0.5]))
    torch.testing.assert_close(group_advantages(torch.tensor([1, 0, 0, 1]), 4, eps=0.0),   # verifier ints
                               torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float32))
    with pytest.raises(ValueError, match="multiple of group_size"):
        group_advantages(rewards, 3, scale_by_std=False)


def test_kl_k3_is_nonnegative_and_unbiased():
    g = torch.Generator().manual_seed(0)
    logits, ref_logits = torch.randn(6, generator=g), torch.randn(6, generator=g)
    logp_all, ref_all = F.log_softmax(logits, 0), F.log_softmax(ref_logits, 0)
    true_kl = (logp_all.exp() * (logp_all - ref_all)).sum()
    tokens = torch.multinomial(logp_all.exp(), 200_000, replacement=True, generator=g)
    k3 = kl_k3(logp_all[tokens][None], ref_all[tokens][None])
    assert (k3 >= 0).all()
    assert k3.mean().item() == pytest.approx(true_kl.item(), rel=0.05)
    assert (kl_k3(logp_all[None], logp_all[None]) == 0).all()


def test_aggregate_modes():
    x = torch.tensor([[1.0, 2.0, 3.0, float("nan")], [4.0, float("inf"), 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    assert aggregate(x, mask, "token-mean").item() == pytest.approx(10 / 4)
    assert aggregate(x, mask, "seq-mean").item() == pytest.approx((2 + 4) / 2)
    assert aggregate(x, mask, "constant").item() == pytest.approx(10 / (2 * 4))
    assert aggregate(x, mask, "constant", max_len=10).item() == pytest.approx(10 / 20)
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(x, mask, "sum")


def test_grpo_on_policy_gradient_is_minus_advantage():
    logp = torch.randn(4, 5, generator=torch.Generator().manual_seed(1)).requires_grad_()
    mask = torch.ones(4, 5)
    mask[0, 3:] = 0
    adv = torch.tensor([1.0, -1.0, 0.5, 0.0])
    loss, stats = grpo_loss(logp, logp.detach(), None, adv, mask)   # ratio == 1
    loss.backward()
    assert loss.item() == pytest.approx(-(adv[:, None] * mask).sum().item() / mask.sum().item())
    torch.testing.assert_close(logp.grad, -adv[:, None] * mask / mask.sum())
    assert stats["clip_frac"] == 0.0 and stats["ratio_mean"] == pytest.approx(1.0)


def test_gift_with_the_sampling_policy_as_reference_is_grpo_token_mean_scaled():
    """ref = pi_old, first optimiser step (logratio = 0): GIFT's gradient is GRPO's (on-policy, token-mean, no KL)
    times 2 N_tokens / (B G std_floor): the same direction, so under Adam the two differ only through clipping and
    eps. This is why train.py's default GIFT and GRPO curves nearly coincide (docs/results.md, experiment 1)."""
    g = torch.Generator().manual_seed(3)
    B, G, T, floor = 5, 4, 7, 0.7
    logp = (-torch.rand(B * G, T, generator=g) * 3).requires_grad_()
    mask = (torch.rand(B * G, T, generator=g) < 0.8).float()
    rewards = torch.randint(0, 2, (B * G,), generator=g).float()
    rewards[:G] = 1.0  # one degenerate group: no gradient from either loss
    gift, _ = gift_loss(((logp - logp.detach()) * mask).sum(dim=1), rewards, G, std_floor=floor)
    gift_grad, = torch.autograd.grad(gift, logp)
    grpo, _ = grpo_loss(logp, logp.detach(), None, group_advantages(rewards, G), mask, agg="token-mean")
    grpo_grad, = torch.autograd.grad(grpo, logp)
    assert gift.item() == pytest.approx((rewards.view(B, G).std(dim=1) > 0).float().mean().item())  # 1 per group
    torch.testing.assert_close(gift_grad, grpo_grad * 2 * mask.sum() / (B * G * floor), rtol=1e-3, atol=1e-7)
    assert gift_grad[:G].abs().max() == 0 and grpo_grad.abs().max() > 0


def test_grpo_clipping_stops_the_gradient_only_past_the_trust_region():
    old = torch.zeros(4, 1)
    logp = torch.log(torch.tensor([[1.5], [1.5], [0.5], [0.5]])).requires_grad_()   # ratios 1.5, 1.5, 0.5, 0.5
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    loss, stats = grpo_loss(logp, old, None, adv, torch.ones(4, 1), clip_eps=0.2)
    loss.backward()
    g = logp.grad.flatten()
    assert g[0] == 0 and g[3] == 0                                  # pushed past 1 +- eps in A's direction: clipped
    assert g[1] != 0 and g[2] != 0                                  # the unclipped side still corrects
    assert stats["clip_frac"] == 1.0


def test_grpo_kl_penalty():
    logp, ref = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(2))
    mask, adv = torch.ones(3, 4), torch.zeros(3)
    loss, stats = grpo_loss(logp, logp, ref, adv, mask, kl_coef=0.1)
    assert loss.item() == pytest.approx(0.1 * kl_k3(logp, ref).mean().item())
    assert stats["kl"] == pytest.approx(kl_k3(logp, ref).mean().item())
    with pytest.raises(ValueError, match="ref_logp"):
        grpo_loss(logp, logp, None, adv, mask, kl_coef=0.1)
    with pytest.raises(ValueError, match="advantages"):
        grpo_loss(logp, logp, None, torch.zeros(4), mask)


# ------------------------------------------------------------------------------------------------------- DPO, UNA


def test_dpo_loss():
    c, r = torch.tensor([1.0, 0.0, -2.0]), torch.tensor([0.0, 0.0, 1.0])
    assert dpo_loss(torch.zeros(3), torch.zeros(3), 0.1).item() == pytest.approx(math.log(2))
    expected = -torch.log(torch.sigmoid(0.5 * (c - r))).mean()
    assert dpo_loss(c, r, 0.5).item() == pytest.approx(expected.item())
    assert dpo_loss(c + 5, r, 0.5) < dpo_loss(c, r, 0.5)            # a larger margin for the chosen is better
    torch.testing.assert_close(dpo_loss(c + 3, r + 3, 0.5), dpo_loss(c, r, 0.5))   # log Z cancels in a pair


def test_una_loss():
    rewards = torch.tensor([0.0, 0.5, 1.0])
    assert una_loss(rewards / 0.1, rewards, 0.1).item() == pytest.approx(0.0)
    assert una_loss(torch.zeros(3), rewards, 0.1).item() == pytest.approx((0.25 + 1) / 3)
    assert una_loss(rewards / 0.1 + 1, rewards, 0.1).item() == pytest.approx(0.01)   # no log Z invariance


# ----------------------------------------------------------------------------------------------------------------
# the loss family: LOSSES[name](batch, cfg) -> (loss, stats), what train.py --method=name runs

from types import SimpleNamespace  # noqa: E402

from gift.loss import LOSSES, RLBatch, gift_objective, grpo_objective  # noqa: E402


def random_batch(B=3, G=4, T=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(B * G, T, generator=g) > 0.3).float()
    mask[:, 0] = 1  # every response has a token
    logp = (-torch.rand(B * G, T, generator=g) * mask).requires_grad_()
    old = -torch.rand(B * G, T, generator=g) * mask
    ref = -torch.rand(B * G, T, generator=g) * mask
    rewards = torch.randint(0, 2, (B * G,), generator=g).float()
    rewards[:G] = 1.0  # one degenerate group
    return RLBatch(logp, old, ref, rewards, mask, G, T)


def test_every_method_is_a_function_of_one_signature():
    cfg = SimpleNamespace(std_floor=1e-3, detach_std=True, mask_degenerate=False, scale_by_std=True, clip_eps=0.2,
                          kl_coef=0.1, agg="token-mean", clip_high=0.28, gspo_eps_low=3e-4, gspo_eps_high=4e-4,
                          beta=1.0)
    batch = random_batch()
    assert set(LOSSES) >= {"gift", "grpo"}
    for name, fn in LOSSES.items():
        loss, stats = fn(batch, cfg)
        assert loss.dim() == 0 and torch.isfinite(loss) and all(isinstance(v, float) for v in stats.values()), name
        (grad,) = torch.autograd.grad(loss, batch.logp)
        assert torch.isfinite(grad).all() and grad[batch.mask == 0].eq(0).all(), name  # no gradient off the response


# BEGIN INSTRUCTOR ONLY (an oracle that writes an answer out: in the course's copy of the tests only)
def test_gift_objective_is_gift_loss_on_the_summed_log_ratio():
    cfg = SimpleNamespace(std_floor=0.05, detach_std=True, mask_degenerate=True, beta=1.0)
    batch = random_batch(seed=1)
    loss, stats = gift_objective(batch, cfg)
    logratio = (batch.logp * batch.mask).sum(1) - (batch.ref_logp * batch.mask).sum(1)  # implicit reward / beta
    expected, expected_stats = gift_loss(logratio, batch.rewards, 4, std_floor=0.05, detach_std=True,
                                         mask_degenerate=True)
    torch.testing.assert_close(loss, expected)
    assert stats == pytest.approx(expected_stats, rel=1e-5, abs=1e-7)  # the sum taken in another order
    (g1,) = torch.autograd.grad(loss, batch.logp)
    (g2,) = torch.autograd.grad(expected, batch.logp)
    torch.testing.assert_close(g1, g2)
# END INSTRUCTOR ONLY


def test_gift_objective_sees_each_responses_log_ratio_over_its_own_tokens():
    """gift_objective's properties, without writing it out: positions off the response change nothing; moving
    log-prob between two tokens of a response, or adding a token whose log-prob equals the reference's, changes
    nothing; raising a token's log-prob under the policy by d is lowering the reference's by d; a response of one token
    is gift_loss of that token's log-ratio; the gradient reaches the policy's response tokens only."""
    cfg = SimpleNamespace(std_floor=0.05, detach_std=True, mask_degenerate=False, beta=1.0)
    base = random_batch(seed=1)
    value = lambda **kw: gift_objective(RLBatch(**{**vars(base), **kw}), cfg)[0].item()
    loss = value()
    off = 1 - base.mask
    assert value(logp=base.logp + 7 * off, ref_logp=base.ref_logp - 3 * off) == pytest.approx(loss, abs=1e-12)
    t, u = [int(x) for x in base.mask[5].nonzero()[:2]]  # two response tokens of row 5
    move = torch.zeros_like(base.mask)
    move[5, t], move[5, u] = 0.4, -0.4
    assert value(logp=base.logp + move) == pytest.approx(loss, abs=1e-12)
    assert value(logp=base.logp + 2 * move.clamp_min(0)) == pytest.approx(value(ref_logp=base.ref_logp
                                                                                 - 2 * move.clamp_min(0)), abs=1e-12)
    assert value(logp=base.logp + move.clamp_min(0)) != pytest.approx(loss, abs=1e-6)  # the log-ratio moved
    free = int(off[6].nonzero()[0])  # a padding slot of row 6 becomes a response token with log-ratio 0
    grown = base.mask.clone()
    grown[6, free] = 1
    same = base.ref_logp.clone()
    same[6, free] = 0.0
    assert value(mask=grown, ref_logp=same, logp=base.logp.detach() * base.mask) == pytest.approx(
        value(logp=base.logp.detach() * base.mask), abs=1e-12)
    one = torch.zeros_like(base.mask)
    one[:, 0] = 1  # one response token per row (every row has token 0)
    single = gift_objective(RLBatch(**{**vars(base), "mask": one}), cfg)[0]
    expected = gift_loss((base.logp - base.ref_logp)[:, 0], base.rewards, 4, std_floor=0.05)[0]
    torch.testing.assert_close(single, expected)
    ref = base.ref_logp.clone().requires_grad_()
    loss_t, _ = gift_objective(RLBatch(**{**vars(base), "ref_logp": ref.detach()}), cfg)
    (grad,) = torch.autograd.grad(loss_t, base.logp)
    assert grad[base.mask == 0].abs().max() == 0 and grad[base.mask == 1].abs().max() > 0


def test_grpo_objective_is_the_clipped_surrogate_on_group_advantages():
    cfg = SimpleNamespace(scale_by_std=False, clip_eps=0.1, kl_coef=0.0, agg="constant")
    batch = random_batch(seed=2)
    batch.ref_logp = None  # no KL term: no reference needed
    loss, stats = grpo_objective(batch, cfg)
    adv = group_advantages(batch.rewards, 4, scale_by_std=False)
    expected, expected_stats = grpo_loss(batch.logp, batch.old_logp, None, adv, batch.mask, clip_eps=0.1, agg="constant",
                                         max_len=7)
    torch.testing.assert_close(loss, expected)
    assert stats == expected_stats


# BEGIN INSTRUCTOR ONLY (an oracle that writes an answer out: in the course's copy of the tests only)
def test_gift_beta_weighs_the_log_ratio_z_score_as_the_authors_code_does():
    """(z(r) - beta z(l))^2, the author's kl_loss_coef: value and gradient against a formula written out here."""
    g = torch.Generator().manual_seed(5)
    G, B = 6, 3
    logratio = torch.randn(B * G, generator=g, dtype=torch.float64).requires_grad_()
    rewards = torch.rand(B * G, generator=g, dtype=torch.float64)
    for beta in (0.25, 1.0, 3.0):
        loss, _ = gift_loss(logratio, rewards, G, beta=beta)
        l, r = logratio.detach().view(B, G), rewards.view(B, G)
        zr = (r - r.mean(1, keepdim=True)) / r.std(1, unbiased=False, keepdim=True)
        std_l = l.std(1, unbiased=False, keepdim=True)
        zl = (l - l.mean(1, keepdim=True)) / std_l
        torch.testing.assert_close(loss.detach(), ((zr - beta * zl) ** 2).mean())
        (grad,) = torch.autograd.grad(loss, logratio)
        # std detached: d/dl_i of 1/(B G) sum (zr - beta zl)^2 = -2 beta (zr_i - beta zl_i) / (B G std); the mean's
        # part cancels because the residuals sum to zero within a group
        expected = -2 * beta * (zr - beta * zl) / (B * G * std_l)
        torch.testing.assert_close(grad.view(B, G), expected)
    cos = F.cosine_similarity  # at a small beta the gradient leans to the reward's direction (REINFORCE's)
    grads = {b: torch.autograd.grad(gift_loss(logratio, rewards, G, beta=b)[0], logratio)[0] for b in (0.1, 1.0)}
    zr_flat = -zr.flatten()
    assert cos(grads[0.1], zr_flat, dim=0) > cos(grads[1.0], zr_flat, dim=0)
# END INSTRUCTOR ONLY


# ----------------------------------------------------------------------------------------------------------------
# DAPO, GSPO, Dr. GRPO against formulas written out response by response

def baseline_cfg(**kw):
    return SimpleNamespace(**{**dict(clip_eps=0.2, clip_high=0.28, gspo_eps_low=3e-4, gspo_eps_high=4e-4, kl_coef=0.0,
                                     std_floor=1e-3, detach_std=True, mask_degenerate=False, scale_by_std=True,
                                     agg="token-mean", beta=1.0), **kw})


def moved_batch(seed, B=3, G=4, T=6, spread=0.3):
    """A batch whose policy moved away from pi_old (ratios off 1, some past the clips), with padding, one degenerate
    group and one truncated response."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(B * G, T, dtype=torch.float64)
    for i in range(B * G):
        mask[i, 1 + i % (T - 1):] = 0  # responses of 1..T-1 tokens, right-padded
    old = -torch.rand(B * G, T, generator=g, dtype=torch.float64) - 0.1
    logp = (old + spread * torch.randn(B * G, T, generator=g, dtype=torch.float64)) * mask
    old = old * mask
    rewards = torch.rand(B * G, generator=g, dtype=torch.float64).round()
    rewards[:G] = 0.0  # a degenerate group: advantage 0 for every method
    truncated = torch.zeros(B * G, dtype=torch.bool)
    truncated[G + 1] = True
    return RLBatch(logp.requires_grad_(), old, None, rewards, mask, G, T, truncated)


# BEGIN INSTRUCTOR ONLY (an oracle that writes an answer out: in the course's copy of the tests only)
def advantages_by_hand(rewards, G, scale):
    out = []
    for k in range(0, len(rewards), G):
        r = [float(x) for x in rewards[k:k + G]]
        m = sum(r) / G
        sd = (sum((x - m) ** 2 for x in r) / G) ** 0.5
        out += [(x - m) / (sd + 1e-4) if scale else x - m for x in r]
    return out


def test_dapo_is_the_clip_higher_token_mean_surrogate_without_truncated_responses():
    cfg = baseline_cfg()
    for seed in range(3):
        batch = moved_batch(seed)
        loss, stats = LOSSES["dapo"](batch, cfg)
        adv = advantages_by_hand(batch.rewards, 4, scale=True)
        total, count = 0.0, 0
        for i in range(len(adv)):
            if batch.truncated[i]:
                continue  # overlong filtering
            for t in range(batch.mask.shape[1]):
                if batch.mask[i, t]:
                    ratio = math.exp(batch.logp[i, t].item() - batch.old_logp[i, t].item())
                    clipped = min(max(ratio, 1 - 0.2), 1 + 0.28)
                    total += -min(ratio * adv[i], clipped * adv[i])
                    count += 1
        assert loss.item() == pytest.approx(total / count, rel=1e-9, abs=1e-12)
        (grad,) = torch.autograd.grad(loss, batch.logp)
        assert grad[batch.truncated].abs().sum() == 0 and grad[batch.mask == 0].abs().sum() == 0
        assert grad[:4].abs().sum() == 0  # the degenerate group pushes nothing
        assert stats["filtered_frac"] == pytest.approx(1 / 12)
# END INSTRUCTOR ONLY


def test_dapo_clip_higher_lets_positive_advantage_tokens_grow_further_than_grpo():
    """A token whose ratio is 1.25 with a positive advantage: GRPO's clip (0.2) stops its gradient, DAPO's upper clip
    (0.28) does not; below 1 - 0.2 neither clip stops it (a positive advantage may always raise a token that fell)."""
    mask = torch.ones(2, 1, dtype=torch.float64)
    old = torch.log(torch.tensor([[0.4], [0.4]], dtype=torch.float64))
    for ratio, dapo_moves, grpo_moves in ((1.25, True, False), (1.35, False, False), (0.7, True, True)):
        logp = (old + math.log(ratio)).clone().requires_grad_()
        batch = RLBatch(logp, old, None, torch.tensor([1.0, 0.0], dtype=torch.float64), mask, 2, 1)
        g_dapo = torch.autograd.grad(LOSSES["dapo"](batch, baseline_cfg())[0], logp)[0][0, 0].item()
        g_grpo = torch.autograd.grad(LOSSES["grpo"](batch, baseline_cfg())[0], logp)[0][0, 0].item()
        assert (g_dapo != 0) == dapo_moves and (g_grpo != 0) == grpo_moves, ratio


# BEGIN INSTRUCTOR ONLY (an oracle that writes an answer out: in the course's copy of the tests only)
def test_gspo_clips_one_length_normalised_ratio_per_response():
    for eps in ((3e-4, 4e-4), (0.05, 0.1)):
        cfg = baseline_cfg(gspo_eps_low=eps[0], gspo_eps_high=eps[1])
        for seed in range(3):
            batch = moved_batch(seed, spread=0.02 if eps[0] < 0.01 else 0.2)
            loss, stats = LOSSES["gspo"](batch, cfg)
            adv = advantages_by_hand(batch.rewards, 4, scale=True)
            per_seq = []
            for i in range(len(adv)):
                n = int(batch.mask[i].sum())
                log_s = sum(batch.logp[i, t].item() - batch.old_logp[i, t].item() for t in range(n)) / n
                s = math.exp(log_s)
                per_seq.append(-min(s * adv[i], min(max(s, 1 - eps[0]), 1 + eps[1]) * adv[i]))
            assert loss.item() == pytest.approx(sum(per_seq) / len(per_seq), rel=1e-9, abs=1e-12)
            # the gradient of an unclipped response's term: -A_i s_i / n_i on each of its tokens
            (grad,) = torch.autograd.grad(loss, batch.logp)
            for i in range(len(adv)):
                n = int(batch.mask[i].sum())
                s = math.exp(sum(batch.logp[i, t].item() - batch.old_logp[i, t].item() for t in range(n)) / n)
                inside = 1 - eps[0] <= s <= 1 + eps[1]
                active = inside or (adv[i] > 0 and s < 1 - eps[0]) or (adv[i] < 0 and s > 1 + eps[1])
                expected = -adv[i] * s / n / len(adv) if active else 0.0
                assert grad[i, :n].tolist() == pytest.approx([expected] * n, abs=1e-12), (seed, i)
                assert grad[i, n:].abs().sum() == 0


def test_dr_grpo_has_no_std_and_a_constant_normaliser():
    batch = moved_batch(4)
    loss, _ = LOSSES["dr_grpo"](batch, baseline_cfg())
    adv = advantages_by_hand(batch.rewards, 4, scale=False)
    total = 0.0
    for i in range(len(adv)):
        for t in range(batch.mask.shape[1]):
            if batch.mask[i, t]:
                ratio = math.exp(batch.logp[i, t].item() - batch.old_logp[i, t].item())
                total += -min(ratio * adv[i], min(max(ratio, 0.8), 1.2) * adv[i])
    assert loss.item() == pytest.approx(total / (12 * 6), rel=1e-9)  # N * max_len, whatever the lengths
# END INSTRUCTOR ONLY


def test_gspo_pushes_every_token_of_a_response_alike_and_clips_whole_responses():
    """GSPO's properties, without writing it out: at ratio 1 the gradient on each of response i's tokens is
    -A_i / (N n_i); one ratio per response, a length-normalised one (moving log-ratio between a response's tokens,
    or a longer response with the same per-token log-ratio, changes nothing); past the clip in the advantage's
    direction a response gets no gradient, against it it does."""
    cfg = baseline_cfg(gspo_eps_low=0.05, gspo_eps_high=0.1)
    batch = moved_batch(2, spread=0.0)  # logp == old_logp: every ratio is 1
    loss, stats = LOSSES["gspo"](batch, cfg)
    adv = group_advantages(batch.rewards, 4)
    n = batch.mask.sum(dim=1)
    (grad,) = torch.autograd.grad(loss, batch.logp)
    torch.testing.assert_close(grad, -(adv / (n * 12))[:, None] * batch.mask)
    assert stats["clip_frac"] == 0.0 and stats["ratio_mean"] == pytest.approx(1.0)
    assert loss.item() == pytest.approx(-adv.mean().item(), abs=1e-12)

    def loss_of(shift, mask=batch.mask):  # every response token's log-ratio to pi_old: shift (N, T)
        b = RLBatch((batch.old_logp + shift * mask).requires_grad_(), batch.old_logp, None, batch.rewards, mask, 4, 6)
        value, _ = LOSSES["gspo"](b, cfg)
        return value, torch.autograd.grad(value, b.logp)[0]

    shift = 0.03 * torch.ones_like(batch.mask)
    base, _ = loss_of(shift)
    moved = shift.clone()
    moved[7, 0], moved[7, 1] = 0.03 + 0.02, 0.03 - 0.02  # row 7 has two response tokens
    assert batch.mask[7, :2].sum() == 2 and loss_of(moved)[0].item() == pytest.approx(base.item(), abs=1e-12)
    longer = batch.mask.clone()
    longer[8, int(batch.mask[8].sum())] = 1  # one more token at the same per-token log-ratio
    assert loss_of(shift, longer)[0].item() == pytest.approx(base.item(), abs=1e-12)
    _, grad = loss_of(0.5 * torch.ones_like(batch.mask))  # every ratio e^0.5 > 1 + 0.1
    pushed_up, pushed_down = adv > 0, adv < 0
    assert grad[pushed_up].abs().max() == 0 and pushed_down.any()
    assert ((grad[pushed_down] != 0).sum(dim=1) == n[pushed_down]).all()  # every token of those responses moves
