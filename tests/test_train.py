"""train.py and eval.py end to end on tiny configs: the run, resume, config checks, non-finite steps, GSM8K, DDP."""

import dataclasses
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import torch

import eval as evaluation
import train
from gift import data, runs, tasks
from gift.loss import Method

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
    monkeypatch.setattr(tasks, "verifier_reward", lambda text, ex: float(len(text) % 2 == 0))  # informative groups
    run(tmp_path, "--run_name=k", f"--method={method}", "--prompts=4", "--rl_lr=0.02", "--micro_batch=1")
    rl = [json.loads(line) for line in (tmp_path / "k" / "metrics.jsonl").read_text().splitlines()]
    rl = [r for r in rl if r["stage"] == "rl"]
    assert all(len(r[trace]) == 2 and r[trace][0] == 0.0 for r in rl)
    assert all(r[trace][1] > 0 for r in rl)
    assert all(r[trace.removesuffix("_mb")] == pytest.approx(sum(r[trace]) / 2) for r in rl)


def test_checkpoint_from_another_config_is_refused(tmp_path):
    run(tmp_path, "--run_name=a", "--stop_after=2")
    with pytest.raises(SystemExit, match=r"group_size=4 \(asked: 8\)"):
        run(tmp_path, "--run_name=a", "--resume", "--group_size=8")
    with pytest.raises(SystemExit, match="no checkpoint"):
        run(tmp_path, "--run_name=b", "--resume")
    assert not (tmp_path / "b").exists()  # a failed start leaves no empty run folder


def test_refuses_to_start_over_an_earlier_run_unless_asked(tmp_path):
    short = ["--rl_steps=1", "--eval_problems=2"]
    run(tmp_path, "--run_name=a", *short)
    (tmp_path / "a" / "curves.png").write_bytes(b"an old plot")
    before = (tmp_path / "a" / "summary.json").read_text()
    with pytest.raises(SystemExit, match=r"finished run \(summary\.json\).*--overwrite.*--run_name") as error:
        run(tmp_path, "--run_name=a", *short)
    assert "\n" not in str(error.value) and (tmp_path / "a" / "summary.json").read_text() == before
    with pytest.raises(SystemExit, match="choose one"):
        run(tmp_path, "--run_name=a", "--resume", "--overwrite", *short)
    run(tmp_path, "--run_name=a", "--overwrite", "--seed=1", *short)
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["config"]["seed"] == 1
    assert not (tmp_path / "a" / "curves.png").exists()  # the old run's plot went with it

    run(tmp_path, "--run_name=b", "--stop_after=2", *short)  # a checkpoint, no summary: an unfinished run
    with pytest.raises(SystemExit, match=r"unfinished run \(ckpt\.pt\); continue it with --resume"):
        run(tmp_path, "--run_name=b", *short)
    assert run(tmp_path, "--run_name=b", "--resume", "--overwrite=false", *short)["rl_accuracy"] >= 0


def test_failed_starts_give_one_error_line_and_write_nothing(tmp_path):
    def fails(match, *args):
        with pytest.raises(SystemExit, match=match) as error:
            run(tmp_path / "out", *args)
        assert str(error.value).startswith("error: ") and "\n" not in str(error.value)

    root = tmp_path / "no-data"
    fails(rf"{root}/train\.jsonl not found: run `python -m gift\.data gsm8k --root {root}`", "--task=gsm8k",
          f"--data_root={root}")
    assert not (tmp_path / "out").exists() and not root.exists()

    run(tmp_path / "out", "--run_name=a", "--stop_after=4")
    ckpt = tmp_path / "out" / "a" / "ckpt.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])  # a copy cut short
    fails(rf"cannot read checkpoint {ckpt} .*truncated", "--run_name=a", "--resume")
    fails(rf"cannot read checkpoint {ckpt} .*truncated", "--run_name=b", f"--init={ckpt}")
    with pytest.raises(SystemExit, match=rf"^error: cannot read checkpoint {ckpt} "):
        evaluation.main([str(ckpt), "--task=builtin", "--problems=2"])
    assert not (tmp_path / "out" / "b").exists()


def test_a_run_folder_moved_and_renamed_resumes_bit_identically(tmp_path, monkeypatch):
    """Where a run lives is not what it computes: a stopped run moved to another --out_dir under another --run_name
    resumes to exactly the weights of the run that was never stopped."""
    run(tmp_path, "--run_name=full")
    run(tmp_path, "--run_name=cut", "--stop_after=5")
    os.makedirs(tmp_path / "moved" / "out")
    shutil.move(tmp_path / "cut", tmp_path / "moved" / "out" / "renamed")
    monkeypatch.chdir(tmp_path / "moved")  # --out_dir at its default (out): the run's new folder, not the saved one
    train.main(TINY + ["--run_name=renamed", "--resume"])
    assert sorted(os.listdir(tmp_path)) == ["full", "moved"]  # nothing written where the run used to live
    full, cut = weights(tmp_path / "full" / "ckpt.pt"), weights(tmp_path / "moved" / "out" / "renamed" / "ckpt.pt")
    assert all(torch.equal(full[k], cut[k]) for k in full)


def test_command_line_errors_name_the_problem(tmp_path):
    with pytest.raises(SystemExit, match="unknown config key 'lr'; did you mean --rl_lr"):
        train.parse_args(["--lr=1"])
    with pytest.raises(SystemExit, match="unknown config key 'grup_size'; did you mean --group_size"):
        train.parse_args(["--grup-size=4"])
    with pytest.raises(SystemExit, match=r"unknown config key 'zzzzzz' \(python train.py --help"):
        train.parse_args(["--zzzzzz=4"])
    with pytest.raises(SystemExit, match="--rl_steps='ten' is not a valid int"):
        train.parse_args(["--rl_steps=ten"])
    with pytest.raises(SystemExit, match="--method='ppo' must be one of"):
        train.parse_args(["--method=ppo"])
    with pytest.raises(SystemExit, match="--kl_coef is GRPO's"):
        train.parse_args(["--kl_coef=0.1"])
    with pytest.raises(SystemExit, match="--prompts=6 must be divisible by --minibatches=4"):
        train.parse_args(["--prompts=6"])
    # --resume reads the run's checkpoint when there is one: an empty --out_dir, so a `python train.py` run in the
    # checkout (CI does one first) cannot change what this parses
    cfg = train.parse_args(["--rl_lr", "3e-5", "--resume", "--detach_std=false", f"--out_dir={tmp_path}"])
    assert cfg.rl_lr == 3e-5 and cfg.resume is True and cfg.detach_std is False


def help_text(capsys, flag):
    with pytest.raises(SystemExit) as exit_:
        train.parse_args(["--seed=3", flag])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_help_lists_the_methods_settings_and_help_all_every_setting(capsys):
    """--help: the method's settings (train.Config's own, at most 30) and how to see the rest; --help-all: every
    setting with its default and meaning, in sections."""
    short, text = help_text(capsys, "--help"), help_text(capsys, "--help-all")
    own = set(train.Config.__dict__["__annotations__"])
    shown = set(re.findall(r"^  --(\w+)", short, re.M)) - {"help", "help_all"}
    assert shown == own and len(own) <= 30
    assert "python train.py --help-all" in short
    flat = " ".join(text.split())  # argparse wraps long help lines
    for f in dataclasses.fields(train.Config):
        help_ = f.metadata.get("help")
        assert help_, f"Config field without a help text: {f.name}"
        default = str(f.default).lower() if isinstance(f.default, bool) else str(f.default)
        assert re.search(rf"--{f.name}\b", text), f.name
        assert " ".join(f"{help_} (default: {default})".split()) in flat, f.name
    sections = [f.metadata["section"] for f in dataclasses.fields(train.Config) if f.metadata.get("section")]
    assert len(sections) >= 5 and all(f"\n{s}:\n" in text for s in sections)
    assert "usage: python train.py" in text
    proc = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == short.strip()


def test_non_finite_loss_skips_the_update_and_stops(tmp_path, monkeypatch):
    run(tmp_path, "--run_name=a", "--stop_after=4")  # SFT done, checkpoint at step 4
    before = weights(tmp_path / "a" / "ckpt.pt")

    def nan_loss(batch, cfg):
        return batch.logp.sum() * float("nan"), {}

    monkeypatch.setitem(train.LOSSES, "gift", Method(nan_loss, uses_ref=True))
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


def doc_commands(program):
    """The command lines of README.md and docs/*.md that run `python <program>` (in code blocks or inline code), as
    argument lists."""
    text = ""
    for path in [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))):
        with open(path, encoding="utf-8") as f:
            text += f.read() + "\n"
    lines = re.findall(rf"(?:^|`)python {re.escape(program)} ([^`\n]*)", text, re.M)
    return [shlex.split(line, comments=True) for line in lines]


def test_gsm8k_recipe_smoke(tmp_path, monkeypatch):
    ckpt, root = tmp_path / "gpt2-tiny", tmp_path / "data" / "gsm8k"
    _tiny_gsm8k_checkpoint(ckpt)
    root.mkdir(parents=True)
    for split in ("train", "test"):
        shutil.copy(os.path.join(ROOT, "tests", "fixtures", "gsm8k_mini.jsonl"), root / f"{split}.jsonl")
    monkeypatch.chdir(tmp_path)  # data/gsm8k/ and out/ where the documented commands expect them
    summary = train.main(["--task=gsm8k", f"--init={ckpt}",
                          "--sft_steps=2", "--sft_batch=2", "--rl_steps=2", "--prompts=2", "--group_size=2",
                          "--eval_problems=3", "--max_new_tokens=8", "--micro_batch=1", "--threads=1",
                          "--minibatches=1"])
    assert summary["heldout_problems"] == 3 and 0 <= summary["rl_accuracy"] <= 1
    model, enc = evaluation.load_model(str(tmp_path / "out" / "gsm8k-gift-s0" / "ckpt.pt"), "gsm8k")
    assert model.config.vocab_size == len(json.loads((ckpt / "vocab.json").read_text()))
    with pytest.raises(SystemExit, match="not a gift checkpoint for --task builtin"):
        evaluation.load_model(str(tmp_path / "out" / "gsm8k-gift-s0" / "ckpt.pt"), "builtin")
    commands = [c for c in doc_commands("eval.py") if c[0].startswith("out/gsm8k-gift-s0/")]
    assert commands, "docs/gsm8k.md shows no eval.py command for the GSM8K run"
    for argv in commands:  # as written: the run's own max_new_tokens (8) and the fixture's 6 test rows
        out = evaluation.main(argv)  # beside the checkpoint, named after the evaluation
        res = json.loads((tmp_path / "out" / "gsm8k-gift-s0" / os.path.basename(out)).read_text())
        assert res["problems"] == 6 and res["max_new_tokens"] == 8 and 0 <= res["flexible/pass@1"] <= 1


def test_readme_eval_commands_run_on_the_checkpoints_train_writes(tmp_path, monkeypatch):
    """Every `python eval.py out/builtin-gift-s0/...` line of the README and docs (docs/training.md), defaults and all,
    on a tiny run (block size 256, max_new_tokens 24) written where `python train.py` writes it; only --problems 8 is
    appended, for time."""
    commands = [c for c in doc_commands("eval.py") if c[0].startswith("out/builtin-gift-s0/")]
    assert len({c[0] for c in commands}) >= 2, commands  # ckpt.pt and sft.pt
    monkeypatch.chdir(tmp_path)
    train.main(TINY + ["--rl_steps=1"])
    for argv in commands:
        out = evaluation.main(argv + ["--problems", "8"])  # beside the checkpoint, named after the evaluation
        res = json.loads((tmp_path / argv[0]).with_name(os.path.basename(out)).read_text())
        assert res["problems"] == 8 and res["max_new_tokens"] == 24 and 0 <= res["pass@1"] <= 1


def test_eval_max_new_tokens_fit_the_block_size():
    assert evaluation.fit_max_new_tokens(None, {"max_new_tokens": 96}, 256, 73) == 96  # the run's own
    assert evaluation.fit_max_new_tokens(None, {}, 1024, 200) == 256  # not a train.py checkpoint: 256
    assert evaluation.fit_max_new_tokens(None, {}, 256, 73) == 183  # an unasked default is cut to fit
    assert evaluation.fit_max_new_tokens(16, {"max_new_tokens": 96}, 256, 73) == 16
    with pytest.raises(SystemExit, match=r"--max_new_tokens=256 does not fit: the longest prompt has 73 tokens and "
                                         r"the model's block size is 256; use at most 183"):
        evaluation.fit_max_new_tokens(256, {}, 256, 73)


def _tiny_qwen2_checkpoint(path):
    """A tiny random Qwen2 in the HF layout (grouped-query attention, tied head, a vocabulary padded past the
    tokenizer's as Qwen2.5's is) with a Qwen2 tokenizer trained in the test (no download)."""
    transformers = pytest.importorskip("transformers")
    from tests.test_tokenizer import write_qwen2_tokenizer

    n = write_qwen2_tokenizer(path)
    cfg = transformers.Qwen2Config(vocab_size=n + 7, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                   tie_word_embeddings=True)
    torch.manual_seed(0)
    transformers.Qwen2ForCausalLM(cfg).save_pretrained(path, safe_serialization=True)


def test_gsm8k_qwen2_recipe_smoke(tmp_path, monkeypatch):
    """The Qwen2.5 recipe (docs/gsm8k.md) on CPU: RL straight from the checkpoint (--sft_steps=0) in bf16 autocast, chat
    prompts, <|im_end|> and <|endoftext|> as stop tokens, then eval's strict and flexible pass@1."""
    ckpt, root = tmp_path / "qwen2-tiny", tmp_path / "gsm8k"
    _tiny_qwen2_checkpoint(ckpt)
    root.mkdir()
    for split in ("train", "test"):
        shutil.copy(os.path.join(ROOT, "tests", "fixtures", "gsm8k_mini.jsonl"), root / f"{split}.jsonl")
    calls = []
    real_generate = train.generate

    def spy(model, prompts, **kw):
        calls.append((prompts, kw["stop_tokens"]))
        return real_generate(model, prompts, **kw)

    monkeypatch.setattr(train, "generate", spy)
    summary = train.main([f"--out_dir={tmp_path}", "--task=gsm8k", f"--init={ckpt}", f"--data_root={root}",
                          "--sft_steps=0", "--dtype=bfloat16", "--rl_steps=2", "--prompts=2", "--minibatches=2", "--group_size=2",
                          "--eval_problems=3", "--max_new_tokens=8", "--micro_batch=1", "--threads=1"])
    assert summary["heldout_problems"] == 3 and 0 <= summary["rl_accuracy"] <= 1
    model, enc = evaluation.load_model(str(tmp_path / "gsm8k-gift-s0" / "ckpt.pt"), "gsm8k")
    assert model.config.rope_theta > 0 and model.config.kv_heads == 2 and enc.n_vocab == model.config.vocab_size - 7
    im_end, eot = enc.encode_single_token("<|im_end|>"), enc.encode_single_token("<|endoftext|>")
    assert len(calls) == 2 and all(stops == (im_end, eot) for _, stops in calls)
    prompt = enc.decode(calls[0][0][0])
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert "\\boxed{}" in prompt
    res = evaluation.evaluate(model, enc, data.load_gsm8k("test", str(root))[:3], max_new_tokens=8,
                              modes=("strict", "flexible"))
    assert 0 <= res["pass@1"] <= res["flexible/pass@1"] <= 1 and len(res["completions"]) == 3


def test_gpt2_names_load_the_published_weights_on_gsm8k(monkeypatch):
    """--task=gsm8k --init=gpt2 is the documented recipe (README, docs/gsm8k.md): pretrained GPT-2, not a random model
    of its shape."""
    loaded = []
    monkeypatch.setattr(runs, "get_tokenizer", lambda name: runs.builtin_tokenizer())  # no download
    monkeypatch.setattr(runs, "checkpoint_dir",
                        lambda name: name if name.startswith("/hub-cache/") else f"/hub-cache/{name}")
    monkeypatch.setattr(runs.GPT, "from_pretrained", classmethod(lambda cls, name: loaded.append(name) or
                                                                 cls(runs.preset("nano"))))
    runs.load_model("gpt2-medium", "gsm8k")
    assert loaded == ["/hub-cache/gpt2-medium"]
    runs.load_model("qwen2.5-0.5b", "gsm8k")  # a Qwen preset name is the published instruct model, as the planner's
    assert loaded[-1] == "/hub-cache/Qwen/Qwen2.5-0.5B-Instruct"
    del loaded[-1]
    # the built-in task trains small presets from scratch with its byte tokenizer: a published name is refused
    for name in ("gpt2", "qwen2.5-0.5b", "README.md", "no-such-model"):
        with pytest.raises(SystemExit, match=rf"^error: --init={re.escape(name)}") as error:
            runs.load_model(name, "builtin")
        assert "\n" not in str(error.value)
    assert loaded == ["/hub-cache/gpt2-medium"]


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


def test_fused_head_gives_the_plain_log_probs_entropy_and_gradients():
    """--fused_head=on (hidden states + linear_token_logprobs) against off (logits + token_logprobs), fp32."""
    from gift.model import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=32, vocab_size=97))
    idx = torch.randint(0, 97, (3, 12))
    mask = (torch.rand(3, 11) < 0.7).float()
    hidden = model(idx, return_hidden=True)
    assert hidden.shape == (3, 12, 16)
    torch.testing.assert_close(hidden @ model.lm_head.weight.T, model(idx))
    results = {}
    for mode in ("on", "off"):
        model.zero_grad()
        cfg = train.parse_args([f"--fused_head={mode}"])
        logp, entropy = train.response_logprobs(model, idx, mask, cfg)
        logp.sum().backward()
        results[mode] = logp.detach(), entropy, [p.grad.clone() for p in model.parameters()]
    (lp_on, ent_on, g_on), (lp_off, ent_off, g_off) = results["on"], results["off"]
    torch.testing.assert_close(lp_on, lp_off, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent_on, ent_off, atol=1e-5, rtol=1e-5)
    assert lp_on[mask == 0].eq(0).all() and lp_on[mask == 1].lt(0).all()
    for a, b in zip(g_on, g_off):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    with pytest.raises(SystemExit, match="fused_head"):
        train.response_logprobs(model, idx, mask, train.parse_args(["--fused_head=yes"]))


def test_mistakes_knob_is_checked_and_reaches_the_task():
    with pytest.raises(SystemExit, match="--mistakes=0.9 must be in"):
        train.parse_args(["--mistakes=0.9"])
    task = tasks.make_task(train.parse_args(["--mistakes=0.5", "--eval_problems=3"]))
    assert all("Then " in e.question for e in task.heldout + [task.train_example(0)])
    assert not any("Then " in e.question for e in tasks.make_task(train.parse_args(["--eval_problems=3"])).heldout)


def test_bad_settings_are_refused_before_any_work(tmp_path, monkeypatch):
    """Each bad value is one error line at parse time, before SFT (which used to run first and then fail)."""
    monkeypatch.setattr(train, "load_model", lambda *a: pytest.fail("a model was loaded"))
    bad = {"--group_size=1": "group_size=1 must be >= 2", "--prompts=0": "prompts=0 must be >= 1",
           "--eval_problems=0": "eval_problems=0 must be >= 1", "--rl_steps=-5": "rl_steps=-5 must be >= 0",
           "--sft_steps=-1": "sft_steps=-1 must be >= 0", "--rl_lr=0": "rl_lr=0.0 must be > 0",
           "--temperature=-1": "temperature=-1.0 must be > 0", "--tool_fraction=2": "tool_fraction=2.0 must be in",
           "--max_new_tokens=0": "max_new_tokens=0 must be >= 1", "--method=ppo": "--method='ppo' must be one of"}
    for arg, message in bad.items():
        with pytest.raises(SystemExit) as error:
            train.main([arg, f"--out_dir={tmp_path}"])
        assert str(error.value).startswith("error: ") and message in str(error.value), arg
        assert "\n" not in str(error.value)
    assert not os.listdir(tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a CPU-only torch")
def test_cuda_on_a_cpu_only_torch_is_one_line():
    with pytest.raises(SystemExit, match=r"^error: --device=cuda but CUDA is not available .* use --device=cpu$"):
        train.parse_args(["--device=cuda"])
    with pytest.raises(SystemExit, match=r"^error: --device='tpu' must be auto, cpu or cuda"):
        train.parse_args(["--device=tpu"])


def test_ctrl_c_prints_the_step_and_the_resume_command(tmp_path, monkeypatch):
    real = train.sft_step

    def interrupted(run, cfg):
        if run.step == 3:
            raise KeyboardInterrupt
        return real(run, cfg)

    monkeypatch.setattr(train, "sft_step", interrupted)
    with pytest.raises(SystemExit) as error:
        run(tmp_path, "--run_name=c", "--ckpt_every=2")
    message = str(error.value)
    assert message.startswith("interrupted at step 3: the last checkpoint is step 2; continue with: python train.py")
    assert message.endswith("--resume") and "\n" not in message
    monkeypatch.setattr(train, "sft_step", real)  # the printed command continues the run
    argv = shlex.split(message.split("continue with: python train.py ")[1])
    assert train.main(argv)["rl_accuracy"] >= 0


def test_a_second_run_into_the_same_folder_is_refused_while_the_first_holds_it(tmp_path):
    run(tmp_path, "--run_name=l", "--stop_after=2")
    lock = runs.RunLock(str(tmp_path / "l")).acquire()  # as a live run holds it
    for again in (["--resume"], []):  # the live run is named first, before any resume or other complaint
        with pytest.raises(SystemExit, match=r"^error: .*/l is in use by a live run \(pid \d+ on .*\)"):
            run(tmp_path, "--run_name=l", *again)
    lock.file.close()  # the holder ends (a killed process drops its flock too): the lock file left behind is stale
    assert (tmp_path / "l" / ".lock").exists()
    assert run(tmp_path, "--run_name=l", "--resume")["rl_accuracy"] >= 0
    lines = (tmp_path / "l" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len({json.loads(line)["step"] for line in lines}) + 1  # no step logged twice (+ final)


def test_a_damaged_checkpoint_is_refused_by_its_checksum(tmp_path):
    run(tmp_path, "--run_name=d", "--stop_after=4")
    path = tmp_path / "d" / "ckpt.pt"
    state = torch.load(path, weights_only=False)
    name = next(iter(state["model"]))
    state["model"][name].view(-1)[0] += 1.0  # one weight changed, the stored checksum kept: a flipped bit
    torch.save(state, path)
    for load in (lambda: run(tmp_path, "--run_name=d", "--resume"), lambda: runs.load_model(str(path), "builtin")):
        with pytest.raises(SystemExit, match=rf"^error: checkpoint {re.escape(str(path))} is damaged"):
            load()


def test_4bit_recipe_runs_and_resumes_bit_identically(tmp_path):
    """The QLoRA recipe end to end on the CPU (docs/gsm8k.md's, at a tiny shape): the 4-bit base under adapters, the
    frozen embedding in bfloat16 under --dtype=bfloat16, chunked sampling, micro-batches, checkpointed and offloaded
    activations; stopped halfway and resumed, it ends with exactly the same weights and optimiser state."""
    pytest.importorskip("bitsandbytes")
    opts = ["--quant=nf4", "--lora_rank=4", "--dtype=bfloat16", "--grad_ckpt", "--offload_activations",
            "--sample_chunk=1", "--micro_batch=1", "--rl_steps=4"]
    run(tmp_path, "--run_name=full", *opts)
    run(tmp_path, "--run_name=cut", "--stop_after=6", *opts)
    run(tmp_path, "--run_name=cut", "--resume", *opts)
    full, cut = (torch.load(tmp_path / n / "ckpt.pt", weights_only=True) for n in ("full", "cut"))
    assert any(k.endswith("nf4.packed") for k in full["model"]) and full["model"].keys() == cut["model"].keys()
    assert full["model"]["transformer.wte.weight"].dtype == torch.bfloat16
    assert any(v.dtype == torch.float32 for k, v in full["model"].items() if "lora_" in k)
    for name in full["model"]:
        assert torch.equal(full["model"][name], cut["model"][name]), name
    assert str(full["opt"]) == str(cut["opt"])
    # eval.py, --init and the export read it as a plain float32 model: the 4-bit base dequantised, adapters merged
    from gift import export
    ckpt = tmp_path / "full" / "ckpt.pt"
    plain, _ = runs.load_model(str(ckpt), "builtin")
    assert not any("lora_" in k or ".nf4." in k for k in plain.state_dict())
    assert all(v.dtype == torch.float32 for v in plain.state_dict().values() if v.is_floating_point())
    res = json.loads(open(evaluation.main([str(ckpt), "--task=builtin", "--problems=2"])).read())
    assert res["problems"] == 2 and 0 <= res["pass@1"] <= 1
    assert run(tmp_path, "--run_name=next", f"--init={ckpt}", "--sft_steps=0", "--rl_steps=1")["rl_accuracy"] >= 0
    export.main([str(ckpt), str(tmp_path / "hf")])
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["dtype"] == "float32"


def test_small_gpu_options_together_run_and_resume_bit_identically(tmp_path):
    """--lora_rank, --grad_ckpt, --optim=adamw8bit (when bitsandbytes is installed) and sample logging in one run;
    stopped halfway and resumed it ends with exactly the same weights and optimiser state."""
    opts = ["--lora_rank=4", "--lora_alpha=8", "--grad_ckpt", "--ref=frozen", "--log_samples_every=1", "--rl_steps=4"]
    try:
        import bitsandbytes  # noqa: F401
        opts.append("--optim=adamw8bit")
    except ImportError:
        pass
    run(tmp_path, "--run_name=full", *opts)
    run(tmp_path, "--run_name=cut", "--stop_after=6", *opts)
    run(tmp_path, "--run_name=cut", "--resume", *opts)
    full, cut = (torch.load(tmp_path / n / "ckpt.pt", weights_only=False) for n in ("full", "cut"))
    assert any("lora_A" in k for k in full["model"]) and full["model"].keys() == cut["model"].keys()
    for name in full["model"]:
        assert torch.equal(full["model"][name], cut["model"][name]), name
    assert str(full["opt"]) == str(cut["opt"])  # optimiser state (8-bit or not) saved and resumed
    trainable = [k for k in full["model"] if "lora_" in k]
    assert len(full["opt"]["state"]) == len(trainable)  # only the adapters are optimised
    samples = [json.loads(line) for line in (tmp_path / "full" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 4 * 2 and {s["step"] for s in samples} == {4, 5, 6, 7}
    for group in samples:
        assert set(group) == {"step", "prompt", "beta", "completions"} and len(group["completions"]) == 4
        assert {"text", "reward", "z_reward", "logratio", "z_logratio", "truncated"} == set(group["completions"][0])
    rl = [json.loads(l) for l in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines() if '"rl"' in l]
    assert all(0 <= r["truncated_frac"] <= 1 and r["reward_std"] >= 0 for r in rl)
    model, _ = runs.load_model(str(tmp_path / "full" / "ckpt.pt"), "builtin")  # adapters merged into a plain model
    assert not any("lora" in k for k in model.state_dict())


def test_grad_ckpt_changes_nothing_but_memory(tmp_path):
    run(tmp_path, "--run_name=plain", "--rl_steps=2")
    run(tmp_path, "--run_name=ckpt", "--rl_steps=2", "--grad_ckpt")
    a, b = weights(tmp_path / "plain" / "ckpt.pt"), weights(tmp_path / "ckpt" / "ckpt.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_optional_extras_fail_with_one_line_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as if not installed
    with pytest.raises(SystemExit, match=r"^error: --optim=adamw8bit needs bitsandbytes"):
        run(tmp_path, "--run_name=o", "--optim=adamw8bit")
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(SystemExit, match=r"^error: --tensorboard needs the tensorboard package"):
        run(tmp_path, "--run_name=t", "--tensorboard")
    assert not (tmp_path / "o" / "metrics.jsonl").exists() or not (tmp_path / "o" / "metrics.jsonl").read_text()


def test_tensorboard_gets_the_metrics_and_the_samples(tmp_path):
    pytest.importorskip("tensorboard")  # a test requirement (requirements-dev.txt); optional at run time
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run(tmp_path, "--run_name=tb", "--tensorboard", "--log_samples_every=1")
    events = EventAccumulator(str(tmp_path / "tb" / "tensorboard"), size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {"sft/loss", "rl/loss", "rl/reward", "rl/truncated_frac", "heldout/accuracy"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("rl/reward")] == [4, 5, 6]
    assert any("samples" in t for t in tags["tensors"])


def test_rl_scores_its_samples_at_the_sampling_temperature(tmp_path, monkeypatch):
    """pi_old's log-probs (GRPO's ratio denominator, GIFT's pi_ref) are those of the distribution the sampler drew
    from: softmax(logits / T), as verl computes them; at T != 1 plain log-probs would be another policy's."""
    seen = {}
    real = train.generate

    def spy(model, prompts, **kw):
        seen["out"], seen["prompts"] = real(model, prompts, **kw), prompts
        return seen["out"]

    monkeypatch.setattr(train, "generate", spy)
    cfg = train.parse_args(TINY + [f"--out_dir={tmp_path}", "--temperature=0.7", "--sft_steps=0"])
    run_ = train.setup(cfg)
    r = train.rollout(run_, cfg)
    out, G = seen["out"], cfg.group_size
    for i, seq in enumerate(out.sequences):
        start, m = len(seen["prompts"][i // G]) - 1, out.mask[i, : len(seq)]
        torch.testing.assert_close(r.old_logp[i, start : start + len(seq)] * m, out.logprobs[i, : len(seq)] * m,
                                   atol=1e-5, rtol=1e-5)
    run_.lock.release()


def test_the_closing_line_names_only_the_sft_model_when_there_are_no_rl_steps(tmp_path, capsys):
    """--rl_steps=0 trains no RL model: the closing line gives the SFT model's accuracy alone, not "SFT x -> GIFT x"."""
    def closing(name, *args):
        summary = run(tmp_path, f"--run_name={name}", *args)
        lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("held-out accuracy:")]
        assert len(lines) == 1, lines
        return lines[0], summary

    line, summary = closing("sft-only", "--rl_steps=0")
    assert line.startswith(f"held-out accuracy: SFT {summary['sft_accuracy']:.4f} (no RL steps") and "->" not in line
    line, summary = closing("with-rl", "--rl_steps=1")
    assert line.startswith(f"held-out accuracy: SFT {summary['sft_accuracy']:.4f} -> GIFT "
                           f"{summary['rl_accuracy']:.4f} ("), line


def test_init_names_a_mistyped_path_and_a_run_folder_for_what_they_are(tmp_path):
    run(tmp_path, "--run_name=src", "--rl_steps=0")
    folder = str(tmp_path / "src")
    for name, message in ((folder + "/sft.pth", f"error: --init={folder}/sft.pth: no such file"),
                          (folder, f"error: --init={folder} is a run folder: start from its checkpoint, "
                                   f"--init={os.path.join(folder, 'ckpt.pt')}")):
        with pytest.raises(SystemExit) as error:
            runs.load_model(name, "builtin")
        assert str(error.value) == message


def test_resume_takes_the_runs_settings_from_its_checkpoint(tmp_path):
    """--resume alone continues a run made with other settings; what may change (a thread count, more RL steps)
    changes; what may not is refused, every such setting in one line; a finished run is extended by --rl_steps."""
    made = [f"--out_dir={tmp_path}", "--run_name=r", "--init=nano", "--sft_steps=4", "--sft_batch=4", "--rl_steps=2",
            "--prompts=2", "--group_size=4", "--minibatches=2", "--eval_problems=4", "--max_new_tokens=16",
            "--threads=1", "--seed=3"]
    assert train.main(made + ["--stop_after=4"]) is None
    with pytest.raises(SystemExit) as error:
        train.main([f"--out_dir={tmp_path}", "--run_name=r", "--resume", "--seed=4", "--prompts=4"])
    message = str(error.value)
    assert message.startswith("error: ") and "\n" not in message
    assert "seed=3 (asked: 4)" in message and "prompts=2 (asked: 4)" in message
    summary = train.main([f"--out_dir={tmp_path}", "--run_name=r", "--resume", "--threads=1"])
    assert summary["config"]["seed"] == 3 and summary["config"]["prompts"] == 2
    rl = lambda: [json.loads(x)["step"] for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
                  if json.loads(x)["stage"] == "rl"]
    assert rl() == [4, 5]
    with pytest.raises(SystemExit, match="rl_steps=2 .*may only grow"):
        train.main([f"--out_dir={tmp_path}", "--run_name=r", "--resume", "--rl_steps=1"])
    extended = train.main([f"--out_dir={tmp_path}", "--run_name=r", "--resume", "--rl_steps=3"])
    assert extended["config"]["rl_steps"] == 3 and rl() == [4, 5, 6]
