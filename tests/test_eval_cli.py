"""eval.py's command line as a new user meets it: a bad value is one `error:` line naming the option, before any model
is loaded; --device is checked against this torch; results are named after the evaluation and kept out of the source
tree. And scripts/check_gsm8k.py without the GSM8K files."""

import argparse
import json
import os
import subprocess
import sys

import pytest
import torch

import eval as evaluation
import train
from gift import export
from gift.evaluation import evaluate
from gift.model import GPT, preset
from gift.runs import load_model
from gift.tasks import make_task
from gift.tokenizer import builtin_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A tiny run's checkpoint (a few SFT steps, no RL), made once for the module."""
    out = tmp_path_factory.mktemp("runs")
    train.main(["--init=nano", "--sft_steps=4", "--sft_batch=4", "--rl_steps=0", "--eval_problems=2",
                "--max_new_tokens=8", "--threads=1", f"--out_dir={out}", "--run_name=r"])
    return out / "r" / "ckpt.pt"


@pytest.fixture
def no_model(monkeypatch):
    """The argument checks must come first: loading a model (minutes for a large one) is a failure here."""
    def load_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the command line was checked")
    monkeypatch.setattr(evaluation, "load_model", load_model)


def fails(argv, option, *words):
    with pytest.raises(SystemExit) as error:
        evaluation.main(argv)
    message = str(error.value)
    assert message.startswith("error:") and "\n" not in message and option in message, message
    assert all(word in message for word in words), message


@pytest.mark.parametrize("option,value", [
    ("--k", "abc"), ("--k", "0"), ("--k", "1,,4"), ("--k", "-1"), ("--k", "2"),  # 2 > --n (1)
    ("--problems", "0"), ("--problems", "-5"), ("--problems", "ten"), ("--n", "0"), ("--batch_size", "0"),
    ("--temperature", "-1"), ("--temperature", "nan"), ("--max_new_tokens", "0")])
def test_a_bad_value_is_one_error_line_before_any_model_loads(ckpt, no_model, option, value):
    fails([str(ckpt), "--task", "builtin", option, value], option)


def test_a_missing_or_unknown_task_is_one_error_line(ckpt, no_model):
    fails([str(ckpt)], "--task", "required")
    fails([str(ckpt), "--task", "gsm9k"], "--task", "builtin", "gsm8k")


def test_cuda_on_a_cpu_only_torch_says_to_use_the_cpu(ckpt, no_model, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:0"):
        fails([str(ckpt), "--task", "builtin", f"--device={device}"], "--device", "CUDA is not available",
              "--device=cpu")


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "meta", ""])
def test_an_unknown_device_is_one_error_line(ckpt, no_model, device):
    fails([str(ckpt), "--task", "builtin", f"--device={device}"], "--device", "use cpu")


def evaluate_tiny(*argv):
    return evaluation.main([*argv, "--task=builtin", "--problems=2", "--max_new_tokens=8", "--device=cpu"])


def eval_files_in_repo_root():
    return {name for name in os.listdir(ROOT) if name.startswith("eval") and name.endswith(".json")}


def test_results_beside_a_checkpoint_are_named_after_the_evaluation(ckpt, monkeypatch):
    monkeypatch.chdir(ROOT)  # where a new user runs it
    before = eval_files_in_repo_root()
    greedy = evaluate_tiny(str(ckpt))
    sampled = evaluate_tiny(str(ckpt), "--n=4", "--k=1,2", "--temperature=0.5")
    assert os.path.basename(greedy) == "eval-ckpt-builtin-p2-n1-t0-len8.json"
    assert os.path.basename(sampled) == "eval-ckpt-builtin-p2-n4-t0.5-k1,2-len8.json"
    for path in (greedy, sampled):  # both kept, in the run's folder, none in the source tree
        assert os.path.dirname(path) == str(ckpt.parent) and os.path.isfile(path)
    assert eval_files_in_repo_root() == before


def test_results_for_a_model_name_go_under_out_eval(tmp_path, monkeypatch):
    enc = builtin_tokenizer()
    monkeypatch.setattr(evaluation, "load_model", lambda init, task: (GPT(preset("nano", vocab_size=enc.n_vocab)), enc))
    monkeypatch.chdir(tmp_path)
    assert evaluate_tiny("gpt2") == os.path.join("out", "eval", "gpt2-builtin-p2-n1-t0-len8.json")
    assert evaluate_tiny("Qwen/Qwen2.5-0.5B-Instruct", "--seed=3") == os.path.join(
        "out", "eval", "Qwen-Qwen2.5-0.5B-Instruct-builtin-p2-n1-t0-len8-s3.json")
    assert sorted(os.listdir(tmp_path / "out" / "eval")) == ["Qwen-Qwen2.5-0.5B-Instruct-builtin-p2-n1-t0-len8-s3.json",
                                                            "gpt2-builtin-p2-n1-t0-len8.json"]
    out = tmp_path / "new" / "folder" / "mine.json"  # --out still decides, its folder made
    assert evaluate_tiny("gpt2", f"--out={out}") == str(out) and out.is_file()


@pytest.mark.parametrize("root", [None, "elsewhere/gsm8k"])
def test_check_gsm8k_without_the_data_is_one_error_line(tmp_path, root):
    args, command = ([], "`python -m gift.data gsm8k`") if root is None else \
        (["--root", root], f"`python -m gift.data gsm8k --root {root}`")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "check_gsm8k.py"), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 1 and proc.stdout == "" and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and f"{root or 'data/gsm8k'}/train.jsonl not found" in lines[0], lines[0]
    assert command in lines[0], lines[0]


# ----------------------------------------------------------------------------------------------------------------
# what the model argument names: a mistyped path, a run folder, an exported Hugging Face folder (issue 36)


def one_line(argv):
    with pytest.raises(SystemExit) as error:
        evaluation.main(argv)
    message = str(error.value)
    assert message.startswith("error: ") and "\n" not in message and "--init" not in message, message
    return message


def test_a_mistyped_path_or_a_run_folder_is_named_for_what_it_is(ckpt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # results would go under out/eval/ here: nothing may be written
    run = str(ckpt.parent)
    for missing in (run + "/ckpt.pth", str(tmp_path / "no" / "such" / "hf"), "./hf"):
        assert one_line([missing, "--task", "builtin"]) == f"error: no such file: {missing}"
    assert one_line([run, "--task", "builtin"]) == \
        f"error: {run} is a run folder: evaluate its checkpoint, {os.path.join(run, 'ckpt.pt')}"
    (tmp_path / "plain").mkdir()
    assert "neither a run folder (ckpt.pt) nor a Hugging Face model folder" in one_line(["plain", "--task", "builtin"])
    assert not (tmp_path / "out").exists()


def test_an_exported_folder_loads_and_evaluates_as_its_checkpoint(ckpt, tmp_path, monkeypatch, capsys):
    """eval.py --help promises an HF directory: a built-in run exported with python -m gift.export is the same model,
    sampled by our sampler (the calculator included), so it gives the checkpoint's completions."""
    hf = tmp_path / "hf"
    export.main([str(ckpt), str(hf)])
    ours, enc = load_model(str(ckpt), "builtin")
    exported, enc2 = load_model(str(hf), "builtin")
    assert enc2.n_vocab == enc.n_vocab
    for name, tensor in ours.state_dict().items():
        torch.testing.assert_close(exported.state_dict()[name], tensor, rtol=0, atol=0)
    problems = make_task(argparse.Namespace(task="builtin", seed=0, eval_problems=6, tool_fraction=1.0, max_events=1,
                                            mistakes=0.0)).heldout
    sampled = [evaluate(m, enc, problems, n=2, ks=(1, 2), temperature=1.0, max_new_tokens=12)["completions"]
               for m in (ours, exported)]
    assert sampled[0] == sampled[1]
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    out = evaluate_tiny(str(hf))
    assert out == os.path.join("out", "eval", "hf-builtin-p2-n1-t0-len8.json") and os.path.isfile(out)
    assert "not a train.py checkpoint" in capsys.readouterr().out  # the run's task settings are not in the folder


def test_a_folder_of_another_vocabulary_is_refused_on_the_builtin_task(tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps(dict(model_type="gpt2", vocab_size=50257)))
    message = one_line([str(tmp_path / "hf"), "--task", "builtin"])
    assert "byte tokenizer (257 tokens)" in message and "50257" in message, message


def test_the_evaluation_prints_its_progress_batch_by_batch(ckpt, tmp_path, capsys):
    evaluation.main([str(ckpt), "--task=builtin", "--problems=5", "--batch_size=2", "--n=2", "--k=1,2",
                     "--max_new_tokens=8", f"--out={tmp_path / 'r.json'}"])
    out = capsys.readouterr().out.splitlines()
    progress = [line for line in out if line.startswith("problems ")]
    assert out[0].startswith("evaluating 5 problems x 2 samples"), out
    assert [line.split(" ")[1] for line in progress] == ["2/5", "4/5", "5/5"], out
    assert all(" s" in line for line in progress) and "s left" in progress[0]
    assert out.index(progress[-1]) < next(i for i, line in enumerate(out) if line.startswith("| metric"))
