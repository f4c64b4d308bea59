"""The rollout's two additions for the comparison set: DAPO's dynamic sampling (which groups a step keeps, how many
prompts it consumes, exact resume and DDP) and the gradient probe of --grad_stats (where a step's gradient comes from)."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

import train
from gift import tasks
from gift.loss import LOSSES, RLBatch
from gift.monitor import GradientProbe
from gift.settings import parse_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--init=nano", "--sft_steps=2", "--sft_batch=4", "--rl_steps=3", "--prompts=4", "--group_size=4",
        "--eval_problems=2", "--max_new_tokens=24", "--log_every=1", "--threads=1", "--minibatches=2",
        "--watch_every=0"]
# a reward that depends on the sampled text alone: about 40% of groups of 4 are all zero, the rest differ
FIFTHS = "lambda text, example: float(len(text) % 5 == 0)"


def records(path):
    return [json.loads(line) for line in open(path)]


def test_dynamic_sampling_keeps_the_first_groups_whose_rewards_differ(tmp_path, monkeypatch):
    """DAPO's rollout draws rounds of B prompts and keeps, in stream order, the first B groups whose rewards differ;
    books.rl_drawn advances by B per round. Checked against the same groups drawn one round at a time."""
    monkeypatch.setattr(tasks, "verifier_reward", eval(FIFTHS))
    cfg = train.parse_args(TINY + [f"--out_dir={tmp_path}", "--method=dapo", "--max_draws=6", "--sft_steps=0"])
    run = train.setup(cfg)
    run.books.rl_drawn = 0
    rounds = [train.generate_groups(run, cfg, *train.rl_prompts(run, cfg)) for _ in range(6)]  # what dapo will see
    informative = [g for rnd in rounds for g in rnd if max(g.rewards) > min(g.rewards)]
    assert len(informative) >= cfg.prompts and len(informative) < 6 * cfg.prompts  # the check has something to drop
    need = next(k for k in range(1, 7) if sum(max(g.rewards) > min(g.rewards) for r in rounds[:k] for g in r) >= 4)
    run.books.rl_drawn = 0
    r = train.rollout(run, cfg)
    assert r.draws == need and r.filled == 0 and run.books.rl_drawn == need * cfg.prompts
    assert r.questions == [g.question for g in informative[:cfg.prompts]]
    groups = r.rewards.view(-1, cfg.group_size)
    assert bool((groups.amax(dim=1) > groups.amin(dim=1)).all())
    run.lock.release()


def test_dynamic_sampling_fills_up_with_equal_groups_when_the_rounds_run_out(tmp_path, monkeypatch):
    monkeypatch.setattr(tasks, "verifier_reward", lambda text, example: 1.0)  # every group degenerate
    cfg = train.parse_args(TINY + [f"--out_dir={tmp_path}", "--method=dapo", "--max_draws=2", "--sft_steps=0"])
    run = train.setup(cfg)
    r = train.rollout(run, cfg)
    assert (r.draws, r.filled, run.books.rl_drawn) == (2, cfg.prompts, 2 * cfg.prompts)
    assert len(r.questions) == cfg.prompts  # the first round's groups, the step stays full
    run.lock.release()
    cfg = train.parse_args(TINY + [f"--out_dir={tmp_path}", "--run_name=g", "--sft_steps=0"])  # GIFT: one round
    run = train.setup(cfg)
    r = train.rollout(run, cfg)
    assert (r.draws, r.filled, run.books.rl_drawn) == (1, 0, cfg.prompts)
    run.lock.release()


def test_dapo_run_logs_its_draws_and_resumes_bit_identically(tmp_path, monkeypatch):
    monkeypatch.setattr(tasks, "verifier_reward", eval(FIFTHS))
    args = TINY + [f"--out_dir={tmp_path}", "--method=dapo", "--rl_steps=4"]
    train.main(args + ["--run_name=full"])
    train.main(args + ["--run_name=cut", "--stop_after=4"])
    train.main(args + ["--run_name=cut", "--resume"])
    full, cut = (torch.load(tmp_path / n / "ckpt.pt", weights_only=False) for n in ("full", "cut"))
    assert full["rl_drawn"] == cut["rl_drawn"] > 4 * 4  # some step drew a second round
    for name in full["model"]:
        assert torch.equal(full["model"][name], cut["model"][name]), name
    rl = [r for r in records(tmp_path / "full" / "metrics.jsonl") if r["stage"] == "rl"]
    assert sum(r["draws"] for r in rl) * 4 == full["rl_drawn"]
    assert all(0 <= r["filled"] <= 4 and (r["filled"] == 0 or r["draws"] == 3) for r in rl)  # --max_draws=3


def test_dynamic_sampling_under_ddp_matches_one_process(tmp_path):
    """Two gloo ranks gather each round's groups, choose the same B as one process and end with its weights."""
    driver = tmp_path / "driver.py"
    driver.write_text(f"import sys\nsys.path.insert(0, {ROOT!r})\nfrom gift import tasks\n"
                      f"tasks.verifier_reward = {FIFTHS}\nimport train\ntrain.main(sys.argv[1:])\n")
    args = [str(driver), f"--out_dir={tmp_path}", "--method=dapo", *TINY[1:]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, *args, "--run_name=single", "--init=nano"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *args,
                          "--run_name=ddp", "--init=nano"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    a, b = (torch.load(tmp_path / n / "ckpt.pt", weights_only=False) for n in ("single", "ddp"))
    assert a["rl_drawn"] == b["rl_drawn"] > 3 * 4
    assert [r["draws"] for r in records(tmp_path / "single" / "metrics.jsonl") if r["stage"] == "rl"] == \
           [r["draws"] for r in records(tmp_path / "ddp" / "metrics.jsonl") if r["stage"] == "rl"]
    for name in a["model"]:
        assert torch.allclose(a["model"][name], b["model"][name], atol=1e-5, rtol=1e-4), name


class Rows(torch.nn.Module):
    """A 'model' whose parameters are the log-probs themselves: each row's gradient is that response's."""

    def __init__(self, n, t):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(n, t) * 0.1)


@pytest.mark.parametrize("method", ["gift", "grpo"])
def test_gradient_probe_splits_the_gradient_by_group(method):
    """The equal-reward groups' part plus the rest is the whole gradient; it lives on their rows only; for GRPO it is
    exactly 0. The probe leaves .grad as a plain backward pass would."""
    torch.manual_seed(0)
    G, B, T = 4, 3, 5
    rewards = torch.tensor([1., 0, 1, 0, 1, 1, 1, 1, 0, 0, 0, 1])  # group 2 all equal
    mask = torch.ones(B * G, T)
    old = torch.randn(B * G, T) * 0.1
    model = Rows(B * G, T)
    cfg = parse_config(train.Config, [f"--method={method}", "--std_floor=1e-3"], "")
    batch = lambda: RLBatch(model.w, old, old, rewards, mask, G, T, torch.zeros(B * G, dtype=torch.bool))
    loss, _ = LOSSES[method](batch(), cfg)
    loss.backward()
    plain = model.w.grad.clone()
    model.w.grad = None
    probe = GradientProbe(model, LOSSES[method], cfg, lambda idx, mask: model.w)  # the "forward" is the parameter
    probe.new_rollout()
    loss, _ = LOSSES[method](batch(), cfg)  # the step's own backward, as update_policy makes it
    loss.backward()
    torch.testing.assert_close(model.w.grad, plain, rtol=0, atol=0)
    probe.micro_batch(None, None, batch(), 1.0)
    torch.testing.assert_close(probe.grad.view(B * G, T), plain, rtol=0, atol=0)  # the probe's own g = .grad
    equal = probe.equal.view(B * G, T)
    assert torch.count_nonzero(equal[:G]) == 0 and torch.count_nonzero(equal[2 * G:]) == 0
    if method == "gift":
        torch.testing.assert_close(equal[G:2 * G], plain[G:2 * G])
        assert equal.abs().sum() > 0
    else:
        assert torch.count_nonzero(equal) == 0
    cos, share = probe.step_stats()
    assert cos == pytest.approx(1.0)
    assert share == pytest.approx((plain[G:2 * G].pow(2).sum() / plain.pow(2).sum()).item() if method == "gift"
                                  else 0.0, abs=1e-6)


def test_grad_stats_logs_per_step_and_changes_no_weight(tmp_path, monkeypatch):
    monkeypatch.setattr(tasks, "verifier_reward", eval(FIFTHS))
    args = TINY + [f"--out_dir={tmp_path}", "--rl_lr=0.01"]
    train.main(args + ["--run_name=plain"])
    train.main(args + ["--run_name=probed", "--grad_stats"])
    a, b = (torch.load(tmp_path / n / "ckpt.pt", weights_only=False)["model"] for n in ("plain", "probed"))
    for name in a:
        assert torch.equal(a[name], b[name]), name
    rl = [r for r in records(tmp_path / "probed" / "metrics.jsonl") if r["stage"] == "rl"]
    for r in rl:
        assert len(r["grad_norm_mb"]) == len(r["cos_mb1_mb"]) == len(r["equal_share_mb"]) == 2
        # a zero first gradient gives no cosine (null), not 0 ("at right angles")
        assert r["cos_mb1_mb"][0] == (pytest.approx(1.0, abs=1e-5) if r["grad_norm_mb"][0] > 0 else None)
        assert (r["cos_mb1_mb"][1] is None) == (r["grad_norm_mb"][0] == 0 or r["grad_norm_mb"][1] == 0)
        assert r["cos_mb1_mb"][1] is None or -1 <= r["cos_mb1_mb"][1] <= 1
        assert 1 <= r["distinct"] <= 4
    assert any(r["grad_norm_mb"][0] > 0 for r in rl)
    plain = [r for r in records(tmp_path / "plain" / "metrics.jsonl") if r["stage"] == "rl"]
    assert all("cos_mb1_mb" not in r and len(r["grad_norm_mb"]) == 2 for r in plain)


def test_gspo_trains_through_the_loss_seam(tmp_path, monkeypatch):
    """--method=gspo finds gspo_objective in LOSSES and trains: finite losses, the first mini-batch of each rollout
    sees ratio 1 (nothing clipped), the later ones a moved policy, and the weights change. Graded in the gspo part."""
    monkeypatch.setattr(tasks, "verifier_reward", eval(FIFTHS))
    args = TINY + [f"--out_dir={tmp_path}", "--method=gspo", "--rl_lr=0.01", "--run_name=g", "--rl_steps=2"]
    train.main(args)
    rl = [r for r in records(tmp_path / "g" / "metrics.jsonl") if r["stage"] == "rl"]
    assert len(rl) == 2 and all(r["loss"] == r["loss"] and not r["skipped"] for r in rl)  # finite, not NaN
    assert all(r["clip_frac_mb"][0] == 0.0 and 0 <= r["clip_frac_mb"][1] <= 1 for r in rl)
    sft = torch.load(tmp_path / "g" / "sft.pt", weights_only=False)["model"]
    final = torch.load(tmp_path / "g" / "ckpt.pt", weights_only=False)["model"]
    assert any(not torch.equal(sft[k], final[k]) for k in sft)


def test_cosine_schedule_decays_the_rl_rate_to_zero(tmp_path):
    args = TINY + [f"--out_dir={tmp_path}", "--rl_steps=4", "--rl_lr=0.01"]
    train.main(args + ["--run_name=c", "--rl_schedule=cosine", "--grad_clip=0"])
    rl = [r for r in records(tmp_path / "c" / "metrics.jsonl") if r["stage"] == "rl"]
    assert [r["lr"] for r in rl] == pytest.approx([0.01 * 0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(4)])
    train.main(args + ["--run_name=k"])
    assert all(r["lr"] == 0.01 for r in records(tmp_path / "k" / "metrics.jsonl") if r["stage"] == "rl")


def test_gradient_probe_gives_no_cosine_when_the_first_gradient_is_zero():
    """Mini-batch 1 with only equal-reward groups (GRPO: zero advantages, a zero gradient) has no direction: every
    cosine of that rollout is None, not 0, and the mean over the step leaves them out."""
    from gift.monitor import mean

    G, T = 4, 3
    model = Rows(2 * G, T)
    cfg = parse_config(train.Config, ["--method=grpo"], "")
    old = torch.zeros(2 * G, T)
    batch = lambda rows, r: RLBatch(model.w[rows], old[rows], None, r, torch.ones(G, T), G, T,
                                    torch.zeros(G, dtype=torch.bool))
    probe = GradientProbe(model, LOSSES["grpo"], cfg, lambda idx, mask: model.w[idx])
    probe.new_rollout()
    probe.micro_batch(slice(0, G), None, batch(slice(0, G), torch.ones(G)), 1.0)  # all rewards equal
    assert probe.step_stats() == (None, 0.0)
    probe.micro_batch(slice(G, 2 * G), None, batch(slice(G, 2 * G), torch.tensor([1., 0, 0, 1])), 1.0)
    cos, _ = probe.step_stats()
    assert cos is None
    assert mean([None, 0.5, None, 1.0]) == 0.75 and mean([None]) is None
