"""A short run of experiments/bandit.py: GIFT's population minimiser pi* ~ pi_ref exp(r / beta) on a tabular bandit."""
import json

import torch

from experiments.bandit import get_args, main, make_bandit, run_all


def test_frozen_reference_makes_logratio_affine_in_reward():
    # a small floor keeps beta large, so every arm stays sampled and the affine law is visible over all K arms
    cfg = get_args(["--iters", "40", "--inner", "4", "--seeds", "3", "--std-floor", "0.1"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                                        # tiny tensors: threads only add overhead
    try:
        summary, curves, best = run_all(cfg, ["gift-frozen", "gift-old", "grpo"])
    finally:
        torch.set_num_threads(threads)
    frozen = summary["gift-frozen"]
    assert frozen["corr_arms"] > 0.99 and frozen["corr_pi"] > 0.99          # log(pi/pi_ref) affine in r
    assert frozen["batch_corr"] > 0.99
    # the beta the loss reads off its groups is the slope of the population law
    assert abs(frozen["batch_beta"] - frozen["beta_pi"]) < 0.1 * frozen["beta_pi"]
    assert frozen["E[r]@end"] > frozen["E[r]@0"] + 0.05
    # a frozen reference stops short of the best arm; pi_old as reference (and GRPO) climb towards it
    assert summary["gift-old"]["E[r]@end"] > frozen["E[r]@end"] + 0.1
    assert summary["gift-old"]["E[r]@end"] > 0.9 * best and summary["grpo"]["E[r]@end"] > 0.9 * best
    assert len(curves["gift-frozen"]) == 41


def test_bandit_has_several_reward_levels():
    rewards, logits0 = make_bandit(10, 0)
    assert len(set(rewards.tolist())) == 5 and logits0.std() > 0.1          # non-uniform reference


def test_main_writes_json(tmp_path):
    summary, sweep = main(["--iters", "3", "--inner", "1", "--seeds", "1", "--floors", "0.5", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "bandit.json").read_text())
    assert set(data["summary"]) == {"gift-frozen", "gift-refresh", "gift-old", "grpo"}
    assert set(data["floor_sweep"]) == {"gift-frozen 0.5", "gift-old 0.5"}
    assert all(len(curve) == 4 for curve in data["expected_reward"].values())
    assert data["summary"]["grpo"]["E[r]@0"] == summary["grpo"]["E[r]@0"]
