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


def test_chat_prompt_for_chat_tokenizers(tmp_path):
    pytest.importorskip("tokenizers")
    from gift.tokenizer import builtin_tokenizer, get_tokenizer
    from tests.test_tokenizer import write_qwen2_tokenizer

    write_qwen2_tokenizer(tmp_path / "tok")
    enc = get_tokenizer(str(tmp_path / "tok"))
    ids = data.encode_prompt(enc, "  How many <|im_end|> are there?\n")
    assert enc.decode(ids) == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                               "How many <|im_end|> are there?\n\n" + data.CHAT_INSTRUCTION +
                               "<|im_end|>\n<|im_start|>assistant\n")
    im_start, im_end = enc.encode_single_token("<|im_start|>"), enc.encode_single_token("<|im_end|>")
    assert ids.count(im_start) == 3 and ids.count(im_end) == 2  # the question's "<|im_end|>" is ordinary text
    assert data.encode_completion(enc, "18 \\boxed{18}\n")[-1] == im_end
    assert enc.decode(data.encode_completion(enc, "  #### 18\n")[:-1]) == "#### 18"
    byte = builtin_tokenizer()  # other tokenizers keep the plain format
    assert data.encode_prompt(byte, "How many?") == byte.encode("Question: How many?\nAnswer:")
    assert data.encode_completion(byte, "#### 18") == byte.encode(" #### 18") + [256]


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
    assert not root.exists()  # not even an empty folder


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


def test_cli_offline_is_one_error_line_and_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "GSM8K_URL", (tmp_path / "unreachable").as_uri() + "/{split}.jsonl")  # like offline
    root = tmp_path / "data" / "gsm8k"
    with pytest.raises(SystemExit, match=r"^error: could not download .*unreachable/train\.jsonl") as error:
        data.main(["gsm8k", "--root", str(root)])
    assert "\n" not in str(error.value) and not (tmp_path / "data").exists()


def test_missing_file_names_the_command_for_its_folder(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=rf"`python -m gift\.data gsm8k --root {tmp_path}`"):
        load_gsm8k("train", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # the default folder, relative to an empty working directory
    with pytest.raises(FileNotFoundError, match=r"`python -m gift\.data gsm8k`"):
        load_gsm8k("train", "data/gsm8k/")


def test_cli_help():
    result = subprocess.run([sys.executable, "-m", "gift.data", "--help"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and "gsm8k" in result.stdout
    result = subprocess.run([sys.executable, "-m", "gift.data"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2 and "required" in result.stderr


# ---------------------------------------------------------------------------------------------------------------
# the built-in task

import re  # noqa: E402

from gift.data import builtin_example, is_heldout  # noqa: E402
from gift.verifier import calculate, extract_answer  # noqa: E402


def test_builtin_train_and_test_are_disjoint_and_reproducible():
    train = [builtin_example("train", i, seed=s) for s in (0, 1) for i in range(300)]
    test = [builtin_example("test", i) for i in range(300)]
    assert not {e.question for e in train} & {e.question for e in test}
    assert all(is_heldout(e.question) for e in test) and not any(is_heldout(e.question) for e in train)
    assert builtin_example("train", 7, seed=3) == builtin_example("train", 7, seed=3)
    assert builtin_example("train", 7, seed=3) != builtin_example("train", 7, seed=4)
    with pytest.raises(ValueError, match="split"):
        builtin_example("dev", 0)


def test_builtin_solutions_are_right_in_both_styles():
    examples = [builtin_example("train", i, tool_fraction=0.5) for i in range(400)]
    tool = [e for e in examples if "<<" in e.solution]
    assert 0.4 < len(tool) / len(examples) < 0.6
    for e in examples:
        assert extract_answer(e.solution) == e.answer
        lines = e.solution.split("\n")
        assert lines[-1] == f"#### {e.answer}"
        for line in lines[:-1]:  # every line is right: "expr=<<expr=v>>v" or "expr is v"
            m = re.fullmatch(r"(.+)=<<\1=(-?\d+)>>\2", line) or re.fullmatch(r"(.+) is (-?\d+)", line)
            assert m and calculate(m.group(1)) == int(m.group(2)), line
    assert all("<<" in builtin_example("test", i).solution for i in range(50))  # references: tool style


def test_builtin_knobs():
    for i in range(100):
        e = builtin_example("train", i, min_steps=1, max_steps=1, max_number=20)
        assert e.solution.count("\n") == 1  # one event: one line, then "#### N"
        assert all(int(n) <= 29 for n in re.findall(r"\d+", e.question))  # box sizes go to 29


# the writers setting (--mistakes > 0)

from gift.writers import MISTAKE_FACTORS, WRITER_CONTEXTS, mistake_rate, writer_mistakes, writers_example  # noqa: E402


def right_answer(question):
    """The answer computed from the question's words alone (independently of the generator's code)."""
    nums = [int(n) for n in re.findall(r"\d+", question)]
    total = nums[0]
    if "Gets" in question:
        total += nums[1]
    elif "Gives away" in question:
        total -= nums[1]
    else:
        total += nums[1] * nums[2]
    return total * (2 if "doubles" in question else 3)


def test_writers_split_disjoint_answers_exact_and_reproducible():
    kw = dict(mistakes=0.5, tool_fraction=1.0)
    train = [writers_example("train", i, seed=s, **kw) for s in (0, 1) for i in range(300)]
    test = [writers_example("test", i, **kw) for i in range(300)]
    assert not {e.question for e in train} & {e.question for e in test}
    assert all(is_heldout(e.question) for e in test) and not any(is_heldout(e.question) for e in train)
    for e in train + test:
        assert e.answer == str(right_answer(e.question)) and e.question.endswith("now?")
        assert re.search(r"Then (doubles|triples) them\.", e.question)
    for e in test:  # held-out references: the right solution, the calculator's lines
        assert extract_answer(e.solution) == e.answer and all(m is False for _, m in writer_mistakes(e.question, e.solution))
    for e in train:  # training solutions: every line is what the calculator writes; the last line is the writer's
        lines = e.solution.split("\n")
        for line in lines[:-1]:
            m = re.fullmatch(r"(.+)=<<\1=(-?\d+)>>\2", line)
            assert m and calculate(m.group(1)) == int(m.group(2)), line
        right = all(m is False for _, m in writer_mistakes(e.question, e.solution))
        assert right <= (extract_answer(e.solution) == e.answer)
    lucky = [e for e in train if extract_answer(e.solution) == e.answer
             and any(m for _, m in writer_mistakes(e.question, e.solution))]
    assert len(lucky) <= 3  # a mistake changes the answer but for coincidences (2+2 = 2*2)
    assert writers_example("train", 7, seed=3, **kw) == writers_example("train", 7, seed=3, **kw)
    assert writers_example("train", 7, seed=3, **kw) != writers_example("train", 7, seed=4, **kw)
    assert builtin_example("train", 7, seed=3) != writers_example("train", 7, seed=3, **kw)  # another task
    for bad in (0.75, 0.0):
        with pytest.raises(ValueError, match="mistakes must be in"):
            writers_example("train", 0, mistakes=bad)


def test_writers_mistake_rates_as_configured():
    for mistakes in (0.5, 0.3):
        counts = {}  # context -> [mistakes, steps], read back from the solutions' operators
        for i in range(2000):
            e = writers_example("train", i, seed=1, mistakes=mistakes, tool_fraction=1.0)
            for context, mistaken in writer_mistakes(e.question, e.solution):
                assert mistaken is not None
                c = counts.setdefault(context, [0, 0])
                c[0], c[1] = c[0] + mistaken, c[1] + 1
        assert set(counts) == set(WRITER_CONTEXTS)
        for context, (m, n) in counts.items():  # each context's share within 4.5 standard errors of its rate
            p = mistake_rate(context, mistakes)
            assert p == MISTAKE_FACTORS[context] * mistakes
            assert abs(m / n - p) < 4.5 * (p * (1 - p) / n) ** 0.5, (context, m / n, p)
    assert mistake_rate("gives", 0.5) > 0.5 > mistake_rate("gets", 0.5)  # a majority mistake, a minority one


def test_writer_mistakes_reads_each_line():
    q = "Ann has 40 pens. Buys 3 boxes of 12. Then doubles them. How many pens now?"
    assert writer_mistakes(q, " 40+3*12=<<40+3*12=76>>76\n76+2=<<76+2=78>>78\n#### 78") == [("boxes", False), ("doubles", True)]
    assert writer_mistakes(q, " 40+3+12=<<40+3+12=55>>55\n55*2=<<55*2=110>>110\n#### 110") == [("boxes", True), ("doubles", False)]
    assert writer_mistakes(q, " 40-3=<<40-3=37>>37") == [("boxes", None), ("doubles", None)]  # neither form; missing
