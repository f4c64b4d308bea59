"""gift/checkpoint.py: loading a checkpoint runs no code (weights_only) at every place one is read, an old checkpoint
(numpy's RNG key an ndarray) still loads and resumes exactly, and the error lines of refused files."""
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

import train
from gift import checkpoint, export, rlhf
from gift.checkpoint import load_checkpoint, rng_states, set_rng_states

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--init=nano", "--sft_steps=2", "--sft_batch=4", "--rl_steps=2", "--prompts=2", "--group_size=4",
        "--eval_problems=2", "--max_new_tokens=16", "--threads=1", "--minibatches=1"]


class Payload:
    """Unpickled with weights_only=False, this object calls open(marker, "w"): the file appears, as a payload's
    os.system would run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def crafted(path, marker):
    """A .pt file that looks like a gift checkpoint (weights, configs) with the payload in its config."""
    torch.save(dict(model={"w": torch.zeros(2)}, model_config={}, config=dict(task="builtin", init="nano",
                                                                                  extra=Payload(str(marker)))), path)
    return str(path)


def test_the_crafted_file_would_run_its_payload_if_loaded_unsafely(tmp_path):
    """The control for the tests below: torch.load(weights_only=False) of the crafted file creates the marker."""
    marker = tmp_path / "ran"
    torch.load(crafted(tmp_path / "evil.pt", marker), weights_only=False)
    assert marker.exists()


def refused_without_running(marker, path, argv, cwd=ROOT):
    proc = subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert not marker.exists(), "the payload ran"
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and proc.stderr.strip() == errors[0], proc.stderr
    assert path in errors[0] and "io.open" in errors[0] and "not a safe gift" in errors[0], errors[0]


@pytest.mark.parametrize("entry", ["eval", "init", "resume", "export", "reward_model"])
def test_no_entry_point_runs_a_crafted_checkpoint(tmp_path, entry):
    marker = tmp_path / "ran"
    out = tmp_path / "out"
    if entry == "resume":  # an unfinished run's folder (check_fresh looks for ckpt.pt) whose checkpoint is crafted
        (out / "r").mkdir(parents=True)
        path = crafted(out / "r" / "ckpt.pt", marker)
    else:
        path = crafted(tmp_path / "evil.pt", marker)
    argv = {
        "eval": ["eval.py", path, "--task", "builtin", "--problems=2", f"--out={tmp_path / 'e.json'}"],
        "init": ["train.py", f"--init={path}", "--sft_steps=0", "--rl_steps=1", f"--out_dir={out}", "--run_name=i"],
        "resume": ["train.py", *TINY, "--resume", f"--out_dir={out}", "--run_name=r"],
        "export": ["-m", "gift.export", path, str(tmp_path / "hf")],
        "reward_model": ["train.py", "--task=rlhf", f"--reward_model={path}", "--init=nano", "--sft_steps=0",
                         "--rl_steps=1", f"--out_dir={out}", "--run_name=m"],
    }[entry]
    refused_without_running(marker, path, argv)


def test_in_process_loaders_refuse_it_with_one_line(tmp_path):
    marker = tmp_path / "ran"
    path = crafted(tmp_path / "evil.pt", marker)
    for load, what in ((lambda: load_checkpoint(path), "checkpoint"), (lambda: rlhf.load(path), "reward model")):
        with pytest.raises(SystemExit) as error:
            load()
        message = str(error.value)
        assert message == (f"error: {path} is not a safe gift {what}: it holds io.open, which is neither a tensor nor "
                           f"a plain container; it was not loaded (loading it could run code)")
    # a run that started from the crafted file: export writes no tokenizer and says why, running nothing
    folder, line = export.tokenizer_source(dict(task="gsm8k", init=path))
    assert folder is None and "not a safe gift checkpoint" in line and "io.open" in line
    assert not marker.exists()


def test_new_checkpoints_hold_only_tensors_and_plain_containers(tmp_path):
    train.main(TINY + [f"--out_dir={tmp_path}", "--run_name=a"])
    for name in ("sft.pt", "ckpt.pt"):
        state = torch.load(tmp_path / "a" / name, weights_only=True)  # no allow-list: numpy's arrays would fail
        assert isinstance(state["rng"]["numpy"][1], list) and len(state["rng"]["numpy"][1]) == 624


def test_rng_states_round_trip_exactly_in_both_formats(tmp_path):
    np.random.seed(3), random.seed(3), torch.manual_seed(3)
    np.random.standard_normal()  # a cached gaussian is part of numpy's state
    new, old = rng_states(), dict(rng_states(), numpy=np.random.get_state())  # old: the key an ndarray
    draws = (np.random.standard_normal(5).tolist(), random.random(), torch.rand(3).tolist())
    for state, name in ((new, "new.pt"), (old, "old.pt")):
        torch.save(dict(model={}, rng=state), tmp_path / name)
        np.random.seed(0), random.seed(0), torch.manual_seed(0)
        set_rng_states(load_checkpoint(str(tmp_path / name))["rng"])
        assert (np.random.standard_normal(5).tolist(), random.random(), torch.rand(3).tolist()) == draws, name


def test_an_old_format_checkpoint_loads_and_resumes_bit_identically(tmp_path):
    """A checkpoint as the code before issue 40 wrote it (numpy's state from np.random.get_state(), an ndarray in
    it): it loads (numpy's array globals allowed, nothing else) and the run resumed from it ends with the same weights
    as the run never stopped."""
    train.main(TINY + [f"--out_dir={tmp_path}", "--run_name=full"])
    train.main(TINY + [f"--out_dir={tmp_path}", "--run_name=cut", "--stop_after=3"])
    path = tmp_path / "cut" / "ckpt.pt"
    state = torch.load(path, weights_only=True)
    name, key, pos, has_gauss, cached = state["rng"]["numpy"]
    np.random.set_state((name, np.array(key, dtype=np.uint32), pos, has_gauss, cached))
    state["rng"]["numpy"] = np.random.get_state()  # the same state, as the old code stored it
    torch.save(state, path)
    with pytest.raises(Exception, match="numpy"):
        torch.load(path, weights_only=True)  # it is old-format: plain weights_only refuses numpy's ndarray
    assert isinstance(load_checkpoint(str(path))["rng"]["numpy"][1], np.ndarray)
    train.main(TINY + [f"--out_dir={tmp_path}", "--run_name=cut", "--resume"])
    full, cut = (load_checkpoint(str(tmp_path / n / "ckpt.pt")) for n in ("full", "cut"))
    assert full["step"] == cut["step"] and full["model"].keys() == cut["model"].keys()
    for name in full["model"]:
        assert torch.equal(full["model"][name], cut["model"][name]), name


def test_a_cut_error_message_ends_at_a_word_boundary():
    text = "failed reading zip archive: " + " ".join(["centraldirectory"] * 20)
    clipped = checkpoint._clip(text, limit=60)
    assert clipped.endswith(" ...") and len(clipped) <= 64
    assert clipped[:-4].split(" ")[-1] in text.split(" ")  # a whole word, not a piece of one
    assert checkpoint._clip("short\nsecond line") == "short"
