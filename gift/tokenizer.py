"""Tokenizers, all of them `tiktoken.Encoding`s.

- `gpt2_tokenizer()`: GPT-2's byte-level BPE (50,257 tokens, the last one `<|endoftext|>`). tiktoken downloads its
  two vocabulary files on first use and caches them.
- `tokenizer_from_files(vocab_json, merges_txt)`: the same kind of encoding built from a checkpoint directory's
  `vocab.json` + `merges.txt` (the Hugging Face layout), so tests and offline users need no download.
- `qwen2_tokenizer(dir)`: Qwen2's (and Qwen2.5's) byte-level BPE from the same two files, with Qwen2's
  pre-tokenisation pattern (digits one at a time), Unicode NFC normalisation, and the added tokens listed in
  tokenizer_config.json / tokenizer.json (`<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, ...) as special tokens.
- `builtin_tokenizer()`: the built-in task's tokenizer, made in code: one token per byte plus `<|endoftext|>`
  (257 tokens). Arithmetic text is read digit by digit, which keeps the tiny model's job simple and visible.

Every tokenizer has END_OF_TEXT; a chat tokenizer (Qwen2) also has the chat format's end of turn, IM_END. Either ends
a response (`stop_ids`). tiktoken's `encode` refuses special tokens written inside ordinary text (it raises), so a
prompt cannot smuggle one in; the training code inserts the special ids itself.
"""

import json
import os
import unicodedata

import tiktoken

END_OF_TEXT = "<|endoftext|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"  # the chat format's turn markers (Qwen2's instruct models)

# GPT-2's pre-tokenisation: split text into words, numbers, punctuation runs and whitespace before BPE
# (contractions, optional leading space + letters, + digits, + other symbols, whitespace).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# Qwen2's: case-insensitive contractions, letters with at most one non-letter/digit/newline before them, ONE digit,
# punctuation runs with their trailing newlines, newline runs, whitespace.
QWEN2_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


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


def _bpe_ranks(vocab_json, merges_txt, special=()):
    """tiktoken's mergeable ranks (token bytes -> id) from vocab.json and merges.txt; tokens named in `special` are
    left out (they are not byte sequences).

    tiktoken merges the pair whose merged token has the lowest rank, so ranks must follow the order of merges.txt;
    in GPT-2's and Qwen2's files the ids do (the byte tokens, then one id per merge). We use the ids as ranks and
    check that.
    """
    with open(vocab_json, encoding="utf-8") as f:
        vocab = json.load(f)
    with open(merges_txt, encoding="utf-8") as f:
        merges = [line.split() for line in f.read().split("\n") if line and not line.startswith("#version")]
    byte_of = {ch: b for b, ch in _bytes_to_unicode().items()}
    ranks = {}
    for token, idx in vocab.items():
        if token in special:
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
    return ranks, vocab


def tokenizer_from_files(vocab_json, merges_txt, name="gpt2-files"):
    """A GPT-2-style BPE `tiktoken.Encoding` from vocab.json (token -> id) and merges.txt (one merge per line);
    vocab.json must hold <|endoftext|>, the one special token."""
    ranks, vocab = _bpe_ranks(vocab_json, merges_txt, special=(END_OF_TEXT,))
    if END_OF_TEXT not in vocab:
        raise ValueError(f"{vocab_json} has no {END_OF_TEXT} token")
    return tiktoken.Encoding(name=name, pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={END_OF_TEXT: vocab[END_OF_TEXT]})


class NFCEncoding(tiktoken.Encoding):
    """A tiktoken Encoding that composes text to Unicode NFC first, as Qwen2's tokenizer does ("e" + U+0301 and
    "\u00e9" give the same ids). Only `encode` and `encode_ordinary` normalise; the training code uses only these."""

    def encode(self, text, **kwargs):
        return super().encode(unicodedata.normalize("NFC", text), **kwargs)

    def encode_ordinary(self, text):
        return super().encode_ordinary(unicodedata.normalize("NFC", text))


def _added_tokens(directory):
    """{content: id} of the added tokens in tokenizer_config.json (added_tokens_decoder) and tokenizer.json
    (added_tokens), whichever are present; the two must agree."""
    found = {}
    config, full = os.path.join(directory, "tokenizer_config.json"), os.path.join(directory, "tokenizer.json")
    if os.path.isfile(config):
        with open(config, encoding="utf-8") as f:
            for idx, token in json.load(f).get("added_tokens_decoder", {}).items():
                found.setdefault(token["content"], set()).add(int(idx))
    if os.path.isfile(full):
        with open(full, encoding="utf-8") as f:
            for token in json.load(f).get("added_tokens", []):
                found.setdefault(token["content"], set()).add(int(token["id"]))
    for content, ids in found.items():
        if len(ids) > 1:
            raise ValueError(f"{directory}: added token {content!r} has the ids {sorted(ids)} in different files")
    return {content: ids.pop() for content, ids in found.items()}


def qwen2_tokenizer(directory):
    """Qwen2's byte-level BPE as a tiktoken Encoding (NFC-normalising), from a checkpoint directory's vocab.json,
    merges.txt and the added tokens of tokenizer_config.json / tokenizer.json, which become the special tokens."""
    special = _added_tokens(directory)
    if END_OF_TEXT not in special:
        raise ValueError(f"{directory}: no {END_OF_TEXT} among the added tokens of tokenizer_config.json or "
                         f"tokenizer.json")
    ranks, _ = _bpe_ranks(os.path.join(directory, "vocab.json"), os.path.join(directory, "merges.txt"), special)
    taken = set(ranks.values())
    for content, idx in special.items():
        if idx in taken:
            raise ValueError(f"{directory}: added token {content!r} has id {idx}, which vocab.json already uses")
    return NFCEncoding(name="qwen2-files", pat_str=QWEN2_PATTERN, mergeable_ranks=ranks, special_tokens=special)


def _is_qwen2(directory):
    """True if the directory's tokenizer_config.json names a Qwen2 tokenizer or its config.json a qwen2 model."""
    for file, key, prefix in (("tokenizer_config.json", "tokenizer_class", "Qwen2"),
                              ("config.json", "model_type", "qwen2")):
        path = os.path.join(directory, file)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                if str(json.load(f).get(key, "")).startswith(prefix):
                    return True
    return False


def builtin_tokenizer():
    """The built-in task's tokenizer: token i < 256 is byte i; token 256 is <|endoftext|>. No download."""
    ranks = {bytes([b]): b for b in range(256)}
    return tiktoken.Encoding(
        name="gift-bytes", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={END_OF_TEXT: 256}
    )


def get_tokenizer(name):
    """'builtin', 'gpt2', or a checkpoint directory holding vocab.json and merges.txt (Qwen2's when its
    tokenizer_config.json or config.json says so, else GPT-2's)."""
    if name == "builtin":
        return builtin_tokenizer()
    if name == "gpt2":
        return gpt2_tokenizer()
    vocab, merges = os.path.join(name, "vocab.json"), os.path.join(name, "merges.txt")
    if os.path.isfile(vocab) and os.path.isfile(merges):
        return qwen2_tokenizer(name) if _is_qwen2(name) else tokenizer_from_files(vocab, merges)
    raise ValueError(f"unknown tokenizer {name!r}: use 'builtin', 'gpt2' or a directory with vocab.json and merges.txt")


def eot_id(enc):
    """The id of <|endoftext|>."""
    return enc.encode_single_token(END_OF_TEXT)


def is_chat(enc):
    """True for tokenizers with the chat format's turn markers (Qwen2's): prompts then use that format."""
    return IM_START in enc.special_tokens_set and IM_END in enc.special_tokens_set


def stop_ids(enc):
    """The ids that end a response: <|im_end|> (end of turn, chat tokenizers only) and <|endoftext|>. The first one
    is what SFT appends to a solution."""
    return tuple(enc.encode_single_token(t) for t in (IM_END, END_OF_TEXT) if t in enc.special_tokens_set)


def response_text(enc, ids):
    """The text of a sampled response without its stop token. Ids the tokenizer does not know (a model's vocabulary
    may be padded past the tokenizer's, e.g. 151,936 rows for Qwen2.5's 151,665 tokens) are dropped."""
    stops = set(stop_ids(enc))
    return enc.decode([t for t in ids if t not in stops and t < enc.n_vocab])
