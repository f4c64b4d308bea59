"""gift/rlhf.py: the true utility, the reward model (its head's position under padding, the Bradley-Terry loss, that
it learns, its file), and RL against it (a continuous reward, the logged true utility and KL, reward scale)."""

import json
import math
import re

import pytest
import torch

import train
from gift import rlhf
from gift.data import Example, builtin_example
from gift.model import GPTConfig, preset
from gift.tokenizer import builtin_tokenizer

EX = Example("Lee has 27 eggs. Buys 3 boxes of 20. How many eggs now?", "27+3*20=<<27+3*20=87>>87\n#### 87", "87")
TINY = ["--init=nano", "--sft_steps=4", "--sft_batch=4", "--rl_steps=0", "--eval_problems=4",
        "--max_new_tokens=24", "--threads=1", "--watch_every=0"]


def test_utility_grades_answers_steps_and_rambling():
    assert rlhf.utility(" 27+3*20=<<27+3*20=87>>87\n#### 87", EX) == pytest.approx(1.2)  # right, every step right
    assert rlhf.utility(" 27+3*20 is 80\n#### 80", EX) == pytest.approx(0.5 * math.exp(-0.7))  # near miss, wrong step
    assert rlhf.utility(" 27+3*20 is 87\n#### 87", EX) == pytest.approx(1.2)  # direct style, right
    assert rlhf.utility(" 27+3*20 is 87\n27+3*20 is 87\n#### 87", EX) == pytest.approx(1.1)  # one line too many
    assert rlhf.utility(" no idea", EX) == 0.0 and rlhf.utility(" #### 500", EX) == pytest.approx(0.5 * math.exp(-41.3))


def test_last_positions_and_the_head_ignore_right_padding():
    torch.manual_seed(0)
    config = preset("nano")
    rm = rlhf.RewardModel(config).eval()
    enc = builtin_tokenizer()
    texts = [" 1\n#### 1", " 27+3*20=<<27+3*20=87>>87\n#### 87"]
    idx, mask = rlhf.encode(enc, [EX, EX], texts)
    last = rlhf.last_positions(mask)
    for i, t in enumerate(texts):  # the row's last real token: the prompt's length + the response's, minus one
        n = len(rlhf.encode(enc, [EX], [t])[0][0])
        assert last[i].item() == n - 1 and idx[i, n:].eq(0).all()
    together = rm(idx, mask)
    for i, t in enumerate(texts):
        alone_idx, alone_mask = rlhf.encode(enc, [EX], [t])
        torch.testing.assert_close(rm(alone_idx, alone_mask), together[i:i + 1], rtol=1e-5, atol=1e-5)
        h = rm.body(alone_idx, return_hidden=True)[0, -1]  # unpadded: the last position is the last token
        torch.testing.assert_close(rm.head(h), together[i:i + 1], rtol=1e-5, atol=1e-5)


def test_bradley_terry_loss_is_minus_log_sigmoid_of_the_margin():
    a, b = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1.0, 1.0, 0.5])
    expected = sum(-math.log(1 / (1 + math.exp(-(x - y)))) for x, y in zip(a.tolist(), b.tolist())) / 3
    assert rlhf.bt_loss(a, b).item() == pytest.approx(expected, rel=1e-6)


def test_reward_model_learns_a_preference_it_can_see():
    """Pairs where the shorter answer is always preferred: a few Bradley-Terry steps on the nano model learn it on
    held-out pairs."""
    torch.manual_seed(0)
    enc = builtin_tokenizer()
    rm = rlhf.RewardModel(preset("nano"))
    pairs = [(builtin_example("train", i), f" #### {i % 7}", f" {i}+1 is {i + 1}\n{i}+2 is {i + 2}\n#### {i}")
             for i in range(120)]
    before = rlhf.pair_scores(rm, enc, pairs[100:])
    rlhf.train_rm(rm, enc, pairs[:100], steps=60, batch=16, lr=3e-3, log=None)
    chosen, rejected = rlhf.pair_scores(rm, enc, pairs[100:])
    assert (chosen > rejected).float().mean() == 1.0 and not (before[0] > before[1]).all()


@pytest.fixture(scope="module")
def sft_and_rm(tmp_path_factory):
    out = tmp_path_factory.mktemp("rlhf")
    train.main(TINY + [f"--out_dir={out}", "--run_name=sft"])
    info = rlhf.build(str(out / "sft" / "sft.pt"), str(out / "rm.pt"), train_pairs=24, heldout_pairs=16, steps=5,
                      batch=4, log=None)
    return out, info


def test_build_writes_a_reward_model_with_its_held_out_numbers(sft_and_rm, tmp_path):
    out, info = sft_and_rm
    for key in ("label_accuracy", "true_order_accuracy", "correlation_with_u"):
        assert -1 <= info[key] <= 1
    assert info["pairs"] == 16 and info["train_pairs"] == 24
    rm = rlhf.load(str(out / "rm.pt"))
    assert isinstance(rm, rlhf.RewardModel) and isinstance(rm.config, GPTConfig)
    with pytest.raises(SystemExit, match="is not a reward model"):
        rlhf.load(str(out / "sft" / "sft.pt"))
    with pytest.raises(SystemExit, match="cannot read reward model"):
        rlhf.load(str(tmp_path / "nope.pt"))


def rl_args(out, name, *more):
    return ["--task=rlhf", f"--reward_model={out / 'rm.pt'}", f"--init={out / 'sft' / 'sft.pt'}", "--sft_steps=0",
            "--rl_steps=2", "--prompts=2", "--group_size=4", "--minibatches=2", "--eval_problems=4",
            "--max_new_tokens=24", "--threads=1", "--watch_every=0", f"--out_dir={out}", f"--run_name={name}",
            "--eval_every=1", *more]


def records(path):
    return [json.loads(line) for line in open(path)]


def test_rl_against_the_reward_model_logs_proxy_true_reward_and_kl(sft_and_rm):
    out, _ = sft_and_rm
    train.main(rl_args(out, "rl", "--kl_sft", "--rl_lr=0.01"))
    lines = records(out / "rl" / "metrics.jsonl")
    rl = [r for r in lines if r["stage"] == "rl"]
    assert len(rl) == 2 and all("true_reward" in r and "kl_sft" in r and r["response_tokens"] > 0 for r in rl)
    assert rl[0]["kl_sft"] == pytest.approx(0.0, abs=1e-6) and rl[1]["kl_sft"] > 0  # pi_old = SFT, then it moved
    samples = [c["reward"] for g in records(out / "rl" / "samples.jsonl") for c in g["completions"]] \
        if (out / "rl" / "samples.jsonl").exists() else []
    assert any(r not in (0.0, 1.0) for r in samples) or all(r["reward_std"] >= 0 for r in rl)
    evals = [r for r in lines if "heldout_proxy_reward" in r]
    assert [r["stage"] for r in evals] == ["sft_eval", "rl", "final"] and all("heldout_true_reward" in r for r in evals)
    with pytest.raises(SystemExit, match="needs --reward_model"):
        train.main(rl_args(out, "x", "--reward_model="))
    with pytest.raises(SystemExit, match="--kl_sft measures"):
        train.main(rl_args(out, "y", "--kl_sft", "--sft_steps=2"))


@pytest.mark.parametrize("a,b", [(0.1, 0.0), (10.0, 5.0)])
def test_reward_scale_and_shift_leave_gift_and_grpo_gradients_scale_dr_grpo_and_move_una(a, b):
    """r -> a r + b on one batch of continuous rewards: GIFT's gradient is unchanged (z(r) removes both); GRPO's is
    unchanged up to the 1e-4 its advantages add to the std; Dr. GRPO's (advantages r - mean) is multiplied by a;
    UNA's (a fixed-beta regression onto r) is not a multiple of the old one."""
    from types import SimpleNamespace

    from gift.loss import LOSSES, RLBatch
    g = torch.Generator().manual_seed(0)
    N, T, G = 12, 6, 4
    old = -torch.rand(N, T, generator=g, dtype=torch.float64) - 0.1
    ref = old + 0.05 * torch.randn(N, T, generator=g, dtype=torch.float64)
    logp0 = old + 0.05 * torch.randn(N, T, generator=g, dtype=torch.float64)
    rewards = torch.randn(N, generator=g, dtype=torch.float64)
    cfg = SimpleNamespace(std_floor=1e-3, detach_std=True, mask_degenerate=False, beta=1.0, clip_eps=0.2, kl_coef=0.0,
                          agg="token-mean", scale_by_std=True)

    def grad(method, r):
        logp = logp0.clone().requires_grad_()
        loss, _ = LOSSES[method](RLBatch(logp, old, ref, r, torch.ones(N, T, dtype=torch.float64), G, T), cfg)
        return torch.autograd.grad(loss, logp)[0]

    torch.testing.assert_close(grad("gift", a * rewards + b), grad("gift", rewards), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grad("grpo", a * rewards + b), grad("grpo", rewards), rtol=1e-2, atol=1e-9)
    torch.testing.assert_close(grad("dr_grpo", a * rewards + b), a * grad("dr_grpo", rewards), rtol=1e-9, atol=1e-12)
    u1, u2 = grad("una", rewards).flatten(), grad("una", a * rewards + b).flatten()
    assert abs(torch.nn.functional.cosine_similarity(u1, u2, dim=0).item()) < 0.999


def test_a_scaled_reward_model_trains_gift_alike_and_una_not(sft_and_rm):
    """End to end, one RL step against the reward model, r -> 10 r + 5: GIFT's weights match (Adam's eps and float
    rounding aside); UNA's do not."""
    out, _ = sft_and_rm
    final = {}
    for method in ("gift", "una"):
        for tag, more in (("1", []), ("10", ["--reward_scale=10", "--reward_shift=5"])):
            name = f"{method}-{tag}"
            train.main(rl_args(out, name, f"--method={method}", "--rl_lr=0.01", "--eval_every=0", "--rl_steps=1",
                               *more))
            final[name] = torch.load(out / name / "ckpt.pt", weights_only=False)["model"]
    start = torch.load(out / "sft" / "sft.pt", weights_only=False)["model"]
    gap = lambda m: max((final[f"{m}-1"][k] - final[f"{m}-10"][k]).abs().max().item() for k in start)
    moved = max((final["gift-1"][k] - start[k]).abs().max().item() for k in start)
    assert moved > 1e-4 and gap("gift") < 1e-2 * moved and gap("una") > 0.5 * moved


def test_an_empty_response_is_scored_at_the_last_prompt_token():
    """A response the policy ended at once has no response token: the head reads the prompt's last token (the last
    token of prompt + response), padded or not, so the score still depends on the prompt."""
    torch.manual_seed(0)
    rm = rlhf.RewardModel(preset("nano")).eval()
    enc = builtin_tokenizer()
    other = Example("Sam has 5 pens. Gets 2 more. How many pens now?", "5+2=<<5+2=7>>7\n#### 7", "7")
    idx, mask = rlhf.encode(enc, [EX, other, EX], ["", "", " 27+3*20 is 87\n#### 87"])
    last = rlhf.last_positions(mask, idx)
    for i, example in enumerate([EX, other]):
        prompt = rlhf.encode(enc, [example], [""])[0][0]
        assert last[i].item() == len(prompt) - 1 and idx[i, len(prompt) - 1].item() == enc.encode(":")[0]
    scores = rm(idx, mask)
    for i, example in enumerate([EX, other]):
        alone_idx, alone_mask = rlhf.encode(enc, [example], [""])
        h = rm.body(alone_idx, return_hidden=True)[0, -1]
        torch.testing.assert_close(rm.head(h), scores[i:i + 1], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(rm(alone_idx, alone_mask), scores[i:i + 1], rtol=1e-5, atol=1e-5)
    assert abs(scores[0] - scores[1]).item() > 1e-6  # read at the first token ("Q"), both prompts would tie
    assert rlhf.score(rm, enc, [EX, other], ["", ""]) == pytest.approx(scores[:2].tolist(), abs=1e-5)


def test_the_command_line_shows_its_defaults(capsys):
    with pytest.raises(SystemExit) as done:
        rlhf.main(["--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0
    for option, default in (("--train_pairs", 3000), ("--heldout_pairs", 500), ("--steps", 400), ("--batch", 32),
                            ("--seed", 0), ("--threads", 0)):
        assert re.search(rf"{option} \w+\s.*?\(default: {default}\)", text, re.S), (option, text)


def test_building_a_reward_model_reports_its_progress(sft_and_rm, tmp_path):
    """python -m gift.rlhf takes about 90 s: a line per sampling batch (prompts done / all, seconds), a line every 50
    Bradley-Terry steps and at the last, and one before the held-out scoring."""
    out, _ = sft_and_rm
    lines = []
    rlhf.build(str(out / "sft" / "sft.pt"), str(tmp_path / "rm.pt"), train_pairs=300, heldout_pairs=10, steps=60,
               batch=2, log=lines.append)
    sampling = [line for line in lines if line.startswith("sampling pairs: prompts ")]
    assert [line.split()[3] for line in sampling] == ["250/310", "310/310"], lines
    assert re.search(r"\(81%\), \d+ s, about \d+ s left$", sampling[0]), sampling
    steps = [line for line in lines if line.startswith("reward model step ")]
    assert [line.split()[3].rstrip(":") for line in steps] == ["50/60", "60/60"] and all(
        re.search(r", \d+ s$", line) for line in steps), steps
    assert lines[-1] == "scoring the 10 held-out pairs"
