"""Tokenizers: round trips, the end-of-text and stop tokens, and parity of the files-built BPEs (GPT-2 and Qwen2)
with transformers."""

import json
import os
import unicodedata

import pytest

from gift.tokenizer import (END_OF_TEXT, _bytes_to_unicode, builtin_tokenizer, eot_id, get_tokenizer, is_chat,
                            response_text, stop_ids, tokenizer_from_files)

TEXTS = [
    "Natalia sold clips to 48 of her friends in April. 48/2=<<48/2=24>>24\n#### 72",
    "  leading spaces, tabs\tand\nnewlines  ",
    "unicode: café, 数字 ٣, emoji 🎉",
    "",
]


def test_builtin_round_trip_and_special_token():
    enc = builtin_tokenizer()
    assert enc.n_vocab == 257 and eot_id(enc) == 256
    for text in TEXTS:
        ids = enc.encode(text)
        assert len(ids) == len(text.encode("utf-8"))  # one token per byte
        assert enc.decode(ids) == text
    assert enc.decode(enc.encode("12") + [eot_id(enc)]) == "12" + END_OF_TEXT
    with pytest.raises(ValueError):  # special tokens are not read from ordinary text
        enc.encode("a" + END_OF_TEXT)


def _write_fixture(tmp_path):
    """A tiny GPT-2-style vocabulary: the 256 byte tokens, a few merges, and <|endoftext|>."""
    b2u = _bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("4", "8"), ("Ġ", "4"), ("i", "n"), ("Ġ", "in")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab[END_OF_TEXT] = len(vocab)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n", encoding="utf-8")
    return vocab


def test_files_tokenizer_matches_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    vocab = _write_fixture(tmp_path)
    ours = tokenizer_from_files(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    theirs = transformers.GPT2Tokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    for text in TEXTS + ["the theme in the 48 inns, the end"]:
        ids = ours.encode(text)
        assert ids == theirs.encode(text), text
        assert ours.decode(ids) == text
    assert eot_id(ours) == vocab[END_OF_TEXT]
    assert len(ours.encode(" the")) == 1  # the merges were applied
    assert get_tokenizer(str(tmp_path)).encode(" the") == ours.encode(" the")


def test_files_tokenizer_refuses_inconsistent_files(tmp_path):
    _write_fixture(tmp_path)
    merges = tmp_path / "merges.txt"
    merges.write_text("#version: 0.2\nx y\n")
    with pytest.raises(ValueError, match="merges.txt:1"):
        tokenizer_from_files(str(tmp_path / "vocab.json"), str(merges))


def test_unknown_tokenizer_name():
    with pytest.raises(ValueError, match="unknown tokenizer"):
        get_tokenizer("no-such-thing")


# ------------------------------------------------------------------------------------------------------- Qwen2

QWEN2_TEXTS = TEXTS + [
    "It's 12:30, they'RE here; we'll see. 1,234.56 + 7890 = 9124.56",  # contractions (any case), digits one by one
    "a  b\t\tc\n\n\nd   \r\n  e    ",  # whitespace runs, CRLF, trailing spaces
    "e\u0301 versus \u00e9, \u212b, \uff11\uff12, Ω≈ç√, 数字 ٣, emoji 🎉👍🏽",  # NFC composes the first (and U+212B)
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n\\boxed{4}<|im_end|><|endoftext|>",
]
QWEN2_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def write_qwen2_tokenizer(path, vocab_size=400):
    """A tiny Qwen2-style tokenizer directory: a byte-level BPE trained here (the `tokenizers` package) with Qwen2's
    pre-tokenisation, saved as vocab.json + merges.txt, and three added tokens in tokenizer_config.json. Returns
    the number of ids (vocabulary + added tokens)."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    from gift.tokenizer import QWEN2_PATTERN

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    fixture = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "gsm8k_mini.jsonl")
    with open(fixture, encoding="utf-8") as f:
        corpus = [row["question"] + "\n" + row["answer"] for row in map(json.loads, f)]
    tok.train_from_iterator(corpus + QWEN2_TEXTS[:-1] + ["the answer is \\boxed{18}. Think step by step."] * 3, trainer)
    path.mkdir(exist_ok=True)
    tok.model.save(str(path))
    n = tok.get_vocab_size()
    added = {str(n + i): dict(content=c, special=True, lstrip=False, rstrip=False, normalized=False, single_word=False)
             for i, c in enumerate(QWEN2_SPECIAL)}
    (path / "tokenizer_config.json").write_text(json.dumps(dict(
        tokenizer_class="Qwen2Tokenizer", added_tokens_decoder=added, eos_token="<|im_end|>")))
    return n + len(QWEN2_SPECIAL)


def test_qwen2_tokenizer_matches_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    n = write_qwen2_tokenizer(tmp_path)
    ours = get_tokenizer(str(tmp_path))
    theirs = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    assert type(theirs).__name__.startswith("Qwen2Tokenizer") and ours.n_vocab == n
    for text in QWEN2_TEXTS:
        ids = ours.encode(text, allowed_special="all")
        assert ids == theirs.encode(text, add_special_tokens=False), text
        assert ours.decode(ids) == unicodedata.normalize("NFC", text)
    assert len(ours.encode("1234")) == 4  # Qwen2 reads digits one at a time
    assert ours.encode("e\u0301") == ours.encode("\u00e9")
    assert [ours.decode([i]) for i in stop_ids(ours)] == ["<|im_end|>", "<|endoftext|>"] and is_chat(ours)
    assert eot_id(ours) == n - 3 and stop_ids(ours) == (n - 1, n - 3)
    with pytest.raises(ValueError):  # special tokens are not read from ordinary text
        ours.encode("hi <|im_end|>")
    assert response_text(ours, ours.encode("ok") + [n + 50, n - 1]) == "ok"  # padded-vocabulary ids are dropped


def test_qwen2_tokenizer_reads_tokenizer_json_and_refuses_clashes(tmp_path):
    n = write_qwen2_tokenizer(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    (tmp_path / "tokenizer_config.json").unlink()
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    added = [dict(id=int(i), content=t["content"], special=True) for i, t in config["added_tokens_decoder"].items()]
    (tmp_path / "tokenizer.json").write_text(json.dumps({"added_tokens": added}))
    assert is_chat(get_tokenizer(str(tmp_path))) and eot_id(get_tokenizer(str(tmp_path))) == n - 3
    added[0]["id"] = 5  # <|endoftext|> on top of a byte token
    (tmp_path / "tokenizer.json").write_text(json.dumps({"added_tokens": added}))
    with pytest.raises(ValueError, match="already uses"):
        get_tokenizer(str(tmp_path))
    (tmp_path / "tokenizer.json").write_text(json.dumps({"added_tokens": added[1:]}))
    with pytest.raises(ValueError, match="no <\\|endoftext\\|>"):
        get_tokenizer(str(tmp_path))


def test_gpt2_tokenizers_are_not_chat_tokenizers():
    enc = builtin_tokenizer()
    assert not is_chat(enc) and stop_ids(enc) == (256,)
    assert response_text(enc, enc.encode("12") + [256]) == "12"
