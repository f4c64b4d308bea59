"""Tokenizers, all of them `tiktoken.Encoding`s.

- `gpt2_tokenizer()`: GPT-2's byte-level BPE (50,257 tokens, the last one `<|endoftext|>`). tiktoken downloads its
  two vocabulary files on first use and caches them.
- `tokenizer_from_files(vocab_json, merges_txt)`: the same kind of encoding built from a checkpoint directory's
  `vocab.json` + `merges.txt` (the Hugging Face layout), so tests and offline users need no download.
- `builtin_tokenizer()`: the built-in task's tokenizer, made in code: one token per byte plus `<|endoftext|>`
  (257 tokens). Arithmetic text is read digit by digit, which keeps the tiny model's job simple and visible.

Every tokenizer has exactly one special token, END_OF_TEXT, that ends a response. tiktoken's `encode` refuses special
tokens written inside ordinary text (it raises), so a prompt cannot smuggle in an end-of-text; the training code
appends the end-of-text id itself.
"""

import json
import os

import tiktoken

END_OF_TEXT = "<|endoftext|>"

# GPT-2's pre-tokenisation: split text into words, numbers, punctuation runs and whitespace before BPE
# (contractions, optional leading space + letters, + digits, + other symbols, whitespace).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def gpt2_tokenizer():
    """GPT-2's BPE from tiktoken (downloaded once into tiktoken's cache)."""
    return tiktoken.get_encoding("gpt2")


def _bytes_to_unicode():
    """GPT-2's reversible map from the 256 byte values to printable unicode characters, as vocab.json spells them.

    Printable Latin-1 bytes map to themselves; the other 68 bytes map to chr(256), chr(257), ... in byte order.
    """
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def tokenizer_from_files(vocab_json, merges_txt, name="gpt2-files"):
    """A GPT-2-style BPE `tiktoken.Encoding` from vocab.json (token -> id) and merges.txt (one merge per line).

    tiktoken merges the pair whose merged token has the lowest rank, so ranks must follow the order of merges.txt;
    in GPT-2's files the ids do (256 byte tokens, then one id per merge). We use the ids as ranks and check that.
    """
    with open(vocab_json, encoding="utf-8") as f:
        vocab = json.load(f)
    with open(merges_txt, encoding="utf-8") as f:
        merges = [line.split() for line in f.read().split("\n") if line and not line.startswith("#version")]
    byte_of = {ch: b for b, ch in _bytes_to_unicode().items()}
    ranks, special = {}, {}
    for token, idx in vocab.items():
        if token == END_OF_TEXT:
            special[token] = idx
            continue
        try:
            ranks[bytes(byte_of[ch] for ch in token)] = idx
        except KeyError:
            raise ValueError(f"{vocab_json}: token {token!r} is not in GPT-2's byte-to-unicode alphabet") from None
    if len(ranks) < 256 or any(bytes([b]) not in ranks for b in range(256)):
        raise ValueError(f"{vocab_json}: a byte-level BPE vocabulary must contain all 256 single-byte tokens")
    last = -1
    for lineno, pair in enumerate(merges, 1):
        if len(pair) != 2 or (pair[0] + pair[1]) not in vocab:
            raise ValueError(f"{merges_txt}:{lineno}: merge {' '.join(pair)!r} does not produce a token in vocab.json")
        if vocab[pair[0] + pair[1]] <= last:
            raise ValueError(f"{merges_txt}:{lineno}: token ids in vocab.json do not follow the order of the merges")
        last = vocab[pair[0] + pair[1]]
    if END_OF_TEXT not in special:
        raise ValueError(f"{vocab_json} has no {END_OF_TEXT} token")
    return tiktoken.Encoding(name=name, pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens=special)


def builtin_tokenizer():
    """The built-in task's tokenizer: token i < 256 is byte i; token 256 is <|endoftext|>. No download."""
    ranks = {bytes([b]): b for b in range(256)}
    return tiktoken.Encoding(
        name="gift-bytes", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={END_OF_TEXT: 256}
    )


def get_tokenizer(name):
    """'builtin', 'gpt2', or a checkpoint directory holding vocab.json and merges.txt."""
    if name == "builtin":
        return builtin_tokenizer()
    if name == "gpt2":
        return gpt2_tokenizer()
    vocab, merges = os.path.join(name, "vocab.json"), os.path.join(name, "merges.txt")
    if os.path.isfile(vocab) and os.path.isfile(merges):
        return tokenizer_from_files(vocab, merges)
    raise ValueError(f"unknown tokenizer {name!r}: use 'builtin', 'gpt2' or a directory with vocab.json and merges.txt")


def eot_id(enc):
    """The id of <|endoftext|>, the one stop token."""
    return enc.encode_single_token(END_OF_TEXT)
