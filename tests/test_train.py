"""train.py and eval.py end to end on tiny configs: the run, resume, config checks, non-finite steps, GSM8K, DDP."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

import eval as evaluation
import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--init=nano", "--sft_steps=4", "--sft_batch=4", "--rl_steps=3", "--prompts=2", "--group_size=4",
        "--eval_problems=6", "--max_new_tokens=24", "--log_every=1", "--threads=1", "--minibatches=2"]


def run(tmp_path, *args):
    return train.main(TINY + [f"--out_dir={tmp_path}", *args])


def weights(path):
    return torch.load(path, weights_only=False)["model"]


def test_default_pipeline_writes_summary_and_metrics(tmp_path):
    summary = run(tmp_path, "--run_name=a")
    on_disk = json.loads((tmp_path / "a" / "summary.json").read_text())
    for key in ("sft_accuracy", "rl_accuracy", "config", "seed", "wall_time_s"):
        assert key in on_disk
    assert on_disk["rl_accuracy"] == summary["rl_accuracy"] and 0 <= on_disk["rl_accuracy"] <= 1
    lines = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    rl = [r for r in lines if r["stage"] == "rl"]
    assert [r["step"] for r in rl] == [4, 5, 6]
    assert all(0 <= r["reward"] <= 1 and "logratio_std" in r and "entropy" in r for r in rl)


def test_rl_pool_cycles_prompts_and_scores_the_pool(tmp_path, monkeypatch):
    """--rl_pool=3: RL prompts are the pool's 3 problems over and over, and each evaluation scores the pool too."""
    seen = []
    real_generate = train.generate

    def spy(model, prompts, **kw):
        seen.extend(tuple(p) for p in prompts)
        return real_generate(model, prompts, **kw)

    monkeypatch.setattr(train, "generate", spy)
    run(tmp_path, "--run_name=p", "--rl_pool=3", "--rl_steps=4", "--eval_every=2")  # 4 steps x 2 prompts = 8 > 3
    assert len(seen) == 8 and len(set(seen)) == 3 and seen[:3] == seen[3:6]
    lines = [json.loads(line) for line in (tmp_path / "p" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in lines if "heldout_accuracy" in r]
    assert [r["stage"] for r in evals] == ["sft_eval", "rl", "final"]
    assert all(0 <= r["heldout_train_accuracy"] <= 1 for r in evals)
    times = [r["eval_time"] for r in lines if r["stage"] in ("rl", "final")]  # training time = time - eval_time
    assert times == sorted(times) and times[0] > 0 and all(r["time"] > r["eval_time"] for r in lines if "time" in r)
    with pytest.raises(SystemExit, match="rl_pool"):
        run(tmp_path, "--run_name=q", "--rl_pool=-1")


@pytest.mark.parametrize("method,ref", [("gift", "frozen"), ("grpo", "old")])
def test_resume_is_bit_identical(tmp_path, method, ref):
    """Run 2k steps; run k, stop, resume to 2k: every parameter must be exactly equal (on CPU)."""
    args = [f"--method={method}", f"--ref={ref}", "--rl_steps=4", "--eval_problems=2", "--inner_steps=2"]
    run(tmp_path, "--run_name=full", *args)
    run(tmp_path, "--run_name=cut", "--stop_after=6", *args)  # 4 SFT steps + 2 RL steps, then stop
    assert not (tmp_path / "cut" / "summary.json").exists()
    run(tmp_path, "--run_name=cut", "--resume", *args)
    full, cut = weights(tmp_path / "full" / "ckpt.pt"), weights(tmp_path / "cut" / "ckpt.pt")
    assert full.keys() == cut.keys()
    for name in full:
        assert torch.equal(full[name], cut[name]), name
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [json.loads(line)["step"] for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("method,trace", [("gift", "logratio_std_mb"), ("grpo", "clip_frac_mb")])
def test_rollout_minibatches_move_the_policy_within_a_step(tmp_path, monkeypatch, method, trace):
    """K=2 mini-batches scored against pi_old computed once: the first sees the sampling policy exactly (GIFT's
    logratio 0, GRPO's ratio 1), the second a policy one optimiser step away (GIFT's logratio spread, GRPO's clipping)."""
    monkeypatch.setattr(train, "is_correct", lambda text, answer: len(text) % 2 == 0)  # informative groups
    run(tmp_path, "--run_name=k", f"--method={method}", "--prompts=4", "--rl_lr=0.02", "--micro_batch=1")
    rl = [json.loads(line) for line in (tmp_path / "k" / "metrics.jsonl").read_text().splitlines()]
    rl = [r for r in rl if r["stage"] == "rl"]
    assert all(len(r[trace]) == 2 and r[trace][0] == 0.0 for r in rl)
    assert all(r[trace][1] > 0 for r in rl)
    assert all(r[trace.removesuffix("_mb")] == pytest.approx(sum(r[trace]) / 2) for r in rl)


def test_checkpoint_from_another_config_is_refused(tmp_path):
    run(tmp_path, "--run_name=a", "--stop_after=2")
    with pytest.raises(SystemExit, match="group_size=4.*group_size=8"):
        run(tmp_path, "--run_name=a", "--resume", "--group_size=8")
    with pytest.raises(SystemExit, match="no checkpoint"):
        run(tmp_path, "--run_name=b", "--resume")


def test_command_line_errors_name_the_problem():
    with pytest.raises(SystemExit, match="unknown config key 'lr'"):
        train.parse_args(["--lr=1"])
    with pytest.raises(SystemExit, match="--rl_steps='ten' is not a valid int"):
        train.parse_args(["--rl_steps=ten"])
    with pytest.raises(SystemExit, match="--method='ppo' must be one of"):
        train.parse_args(["--method=ppo"])
    with pytest.raises(SystemExit, match="--kl_coef is GRPO's"):
        train.parse_args(["--kl_coef=0.1"])
    with pytest.raises(SystemExit, match="--prompts=6 must be divisible by --minibatches=4"):
        train.parse_args(["--prompts=6"])
    cfg = train.parse_args(["--rl_lr", "3e-5", "--resume", "--detach_std=false"])
    assert cfg.rl_lr == 3e-5 and cfg.resume is True and cfg.detach_std is False


def test_non_finite_loss_skips_the_update_and_stops(tmp_path, monkeypatch):
    run(tmp_path, "--run_name=a", "--stop_after=4")  # SFT done, checkpoint at step 4
    before = weights(tmp_path / "a" / "ckpt.pt")

    def nan_loss(logratio, *args, **kwargs):
        return logratio.sum() * float("nan"), {}

    monkeypatch.setattr(train, "gift_loss", nan_loss)
    with pytest.raises(SystemExit, match="non-finite"):
        run(tmp_path, "--run_name=a", "--resume", "--max_bad_steps=2", "--ckpt_every=1")
    after = weights(tmp_path / "a" / "ckpt.pt")
    for name in before:
        assert torch.equal(before[name], after[name]) and torch.isfinite(after[name]).all(), name
    lines = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped"] for r in lines if r["stage"] == "rl"] == [True, True]


def _tiny_gsm8k_checkpoint(path):
    """A tiny random GPT-2 in the HF layout with a byte-level BPE vocabulary (no download)."""
    transformers = pytest.importorskip("transformers")
    from tests.test_tokenizer import _write_fixture

    path.mkdir()
    vocab = _write_fixture(path)
    cfg = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=512, vocab_size=len(vocab))
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(path, safe_serialization=True)


def test_gsm8k_recipe_smoke(tmp_path):
    ckpt, root = tmp_path / "gpt2-tiny", tmp_path / "gsm8k"
    _tiny_gsm8k_checkpoint(ckpt)
    root.mkdir()
    for split in ("train", "test"):
        shutil.copy(os.path.join(ROOT, "tests", "fixtures", "gsm8k_mini.jsonl"), root / f"{split}.jsonl")
    summary = train.main([f"--out_dir={tmp_path}", "--task=gsm8k", f"--init={ckpt}", f"--data_root={root}",
                          "--sft_steps=2", "--sft_batch=2", "--rl_steps=2", "--prompts=2", "--group_size=2",
                          "--eval_problems=3", "--max_new_tokens=8", "--micro_batch=1", "--threads=1",
                          "--minibatches=1"])
    assert summary["heldout_problems"] == 3 and 0 <= summary["rl_accuracy"] <= 1
    model, enc = evaluation.load_model(str(tmp_path / "gsm8k-gift-s0" / "ckpt.pt"), "gsm8k")
    assert model.config.vocab_size == len(json.loads((ckpt / "vocab.json").read_text()))
    with pytest.raises(SystemExit, match="not a gift checkpoint for --task builtin"):
        evaluation.load_model(str(tmp_path / "gsm8k-gift-s0" / "ckpt.pt"), "builtin")


def test_pass_at_k_estimator():
    assert evaluation.pass_at_k(10, 0, 1) == 0 and evaluation.pass_at_k(10, 10, 5) == 1
    assert abs(evaluation.pass_at_k(10, 3, 1) - 0.3) < 1e-12
    assert abs(evaluation.pass_at_k(5, 2, 2) - (1 - 3 / 10)) < 1e-12  # 1 - C(3,2)/C(5,2)


def test_eval_cli_prints_table_and_json(tmp_path):
    run(tmp_path, "--run_name=a")
    out = tmp_path / "eval.json"
    proc = subprocess.run([sys.executable, "eval.py", str(tmp_path / "a" / "ckpt.pt"), "--task=builtin",
                           "--problems=4", "--n=4", "--k=1,2", "--max_new_tokens=16", f"--out={out}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "pass@2" in proc.stdout
    res = json.loads(out.read_text())
    assert res["problems"] == 4 and 0 <= res["pass@1"] <= res["pass@2"] <= 1


def test_ddp_matches_single_process(tmp_path):
    """torchrun with 2 gloo ranks and the same global batch ends with the single-process weights."""
    args = [f"--out_dir={tmp_path}", "--init=nano", "--sft_steps=2", "--sft_batch=4", "--rl_steps=2",
            "--prompts=4", "--minibatches=2", "--group_size=4", "--eval_problems=2", "--max_new_tokens=24",
            "--threads=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "train.py", "--run_name=single", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                          "train.py", "--run_name=ddp", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    a, b = weights(tmp_path / "single" / "ckpt.pt"), weights(tmp_path / "ddp" / "ckpt.pt")
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5, rtol=1e-4), name


def test_plot_draws_a_png_and_names_bad_input(tmp_path):
    pytest.importorskip("matplotlib")
    from gift import plot

    run(tmp_path, "--run_name=a", "--eval_every=1")
    plot.main([str(tmp_path / "a"), "--out", str(tmp_path / "c.png")])
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match="metrics.jsonl not found"):
        plot.main([str(tmp_path / "nowhere")])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.jsonl").write_text('{"step": 0}\nnot json\n')
    with pytest.raises(SystemExit, match=r"metrics.jsonl:2: not valid JSON"):
        plot.main([str(tmp_path / "bad")])


def test_mistakes_knob_is_checked_and_reaches_the_task():
    with pytest.raises(SystemExit, match="--mistakes=0.9 must be in"):
        train.parse_args(["--mistakes=0.9"])
    train_example, heldout = train.make_task(train.parse_args(["--mistakes=0.5", "--eval_problems=3"]))
    assert all("Then " in e.question for e in heldout + [train_example(0)])
    assert not any("Then " in e.question for e in train.make_task(train.parse_args(["--eval_problems=3"]))[1])
