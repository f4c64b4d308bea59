"""Tokenizers: round trips, the end-of-text token, and parity of the files-built BPE with transformers."""

import json

import pytest

from gift.tokenizer import END_OF_TEXT, _bytes_to_unicode, builtin_tokenizer, eot_id, get_tokenizer, tokenizer_from_files

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
