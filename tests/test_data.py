"""Tests for the GSM8K part of gift/data.py: prompt format, loading, and the checked, atomic download (no network:
the download reads file:// URLs of a small fixture)."""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from gift import data
from gift.data import Example, download_gsm8k, format_completion, format_prompt, load_gsm8k

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "gsm8k_mini.jsonl")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_fixture(tmp_path):
    """The fixture, loaded as the train split of a temporary root."""
    shutil.copy(FIXTURE, tmp_path / "train.jsonl")
    return load_gsm8k("train", str(tmp_path))


def test_prompt_and_completion_format(tmp_path):
    assert format_prompt("  How many?\n") == "Question: How many?\nAnswer:"
    assert format_completion("3*4=<<3*4=12>>12\n#### 12\n") == " 3*4=<<3*4=12>>12\n#### 12"
    example = load_fixture(tmp_path)[0]
    text = format_prompt(example.question) + format_completion(example.solution)
    assert text.startswith("Question: Mia buys") and "left?\nAnswer: Mia buys 3*12=<<3*12=36>>36" in text
    assert text.endswith("#### 29")


def test_load_fixture(tmp_path):
    examples = load_fixture(tmp_path)
    assert all(isinstance(ex, Example) for ex in examples)
    assert [ex.answer for ex in examples] == ["29", "1500", "1.25", "-7", "153000", "5"]
    first = examples[0]
    assert first.question.startswith("Mia buys 3 packs") and first.question.endswith("left?")
    assert first.solution.endswith("\n#### 29")
    assert "\u2019" in examples[2].question  # unicode survives the round trip


@pytest.mark.parametrize("bad_line, message", [
    ('{"question": "Q", "answer": "A\\n#### 3"', "not valid JSON"),
    ('["Q", "A\\n#### 3"]', "expected an object"),
    ('{"question": "Q"}', "expected an object"),
    ('{"question": "Q", "answer": 3}', "expected an object"),
    ('{"question": "Q", "answer": "no final answer"}', "does not end in '#### <number>'"),
])
def test_malformed_line_names_file_and_line(tmp_path, bad_line, message):
    good = json.dumps({"question": "What is 1+1?", "answer": "1+1=<<1+1=2>>2\n#### 2"})
    (tmp_path / "test.jsonl").write_text(f"{good}\n\n{good}\n{bad_line}\n{good}\n", encoding="utf-8")
    with pytest.raises(ValueError) as error:
        load_gsm8k("test", str(tmp_path))
    assert f"{tmp_path / 'test.jsonl'}, line 4" in str(error.value)  # the blank line 2 still counts
    assert message in str(error.value)


def test_missing_file_says_how_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"python -m gift\.data gsm8k"):
        load_gsm8k("test", str(tmp_path))


def test_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_gsm8k("validation", str(tmp_path))


def test_pinned_sums_and_url():
    assert sorted(data.GSM8K_SHA256) == ["test", "train"]
    for sha256 in data.GSM8K_SHA256.values():
        assert len(sha256) == 64 and int(sha256, 16) >= 0
    assert "openai/grade-school-math" in data.GSM8K_URL and data.GSM8K_URL.format(split="test").endswith("test.jsonl")


# --------------------------------------------------------------------------------------------- download (offline)

@pytest.fixture
def fake_upstream(tmp_path, monkeypatch):
    """A local 'GitHub': the fixture as train.jsonl, its first two rows as test.jsonl, pinned sums to match."""
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    lines = open(FIXTURE, "rb").read().splitlines(keepends=True)
    files = {"train": b"".join(lines), "test": b"".join(lines[:2])}
    for split, content in files.items():
        (upstream / f"{split}.jsonl").write_bytes(content)
    monkeypatch.setattr(data, "GSM8K_URL", upstream.as_uri() + "/{split}.jsonl")
    monkeypatch.setattr(data, "GSM8K_SHA256", {s: hashlib.sha256(c).hexdigest() for s, c in files.items()})
    return files


def test_download_writes_checked_files_once(tmp_path, monkeypatch, fake_upstream):
    root = tmp_path / "gsm8k"
    download_gsm8k(str(root))
    for split, content in fake_upstream.items():
        assert (root / f"{split}.jsonl").read_bytes() == content
    assert sorted(os.listdir(root)) == ["test.jsonl", "train.jsonl"]  # no temporary files left
    assert len(load_gsm8k("train", str(root))) == 6 and len(load_gsm8k("test", str(root))) == 2

    def no_network(url):
        raise AssertionError(f"fetched {url} although the files were there")

    monkeypatch.setattr(data, "fetch", no_network)
    download_gsm8k(str(root))  # second call: both files present with the right sums, nothing fetched


def test_download_replaces_a_corrupt_file(tmp_path, fake_upstream):
    root = tmp_path / "gsm8k"
    root.mkdir()
    (root / "train.jsonl").write_bytes(fake_upstream["train"][:-10])  # e.g. a truncated earlier copy
    download_gsm8k(str(root))
    assert (root / "train.jsonl").read_bytes() == fake_upstream["train"]


def test_download_rejects_a_wrong_sum_and_writes_nothing(tmp_path, monkeypatch, fake_upstream):
    monkeypatch.setitem(data.GSM8K_SHA256, "train", "0" * 64)
    root = tmp_path / "gsm8k"
    with pytest.raises(RuntimeError, match="sha256"):
        download_gsm8k(str(root))
    assert os.listdir(root) == []


def test_download_is_atomic(tmp_path, monkeypatch, fake_upstream):
    def crash(src, dst):
        raise KeyboardInterrupt("interrupted before the rename")

    monkeypatch.setattr(data.os, "replace", crash)
    root = tmp_path / "gsm8k"
    with pytest.raises(KeyboardInterrupt):
        download_gsm8k(str(root))
    assert not (root / "train.jsonl").exists()  # an interrupted download never looks finished


def test_download_fetches_bytes_by_url(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n')
    assert data.fetch(path.as_uri()) == b'{"a": 1}\n'


def test_cli_help():
    result = subprocess.run([sys.executable, "-m", "gift.data", "--help"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and "gsm8k" in result.stdout
    result = subprocess.run([sys.executable, "-m", "gift.data"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2 and "required" in result.stderr
