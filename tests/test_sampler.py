"""The sampler: cached decoding equals a naive full-forward loop, padding and row dropping change nothing, samples
follow softmax(logits / T), top-k / top-p cut the support, and calculator results are forced and masked."""

import math

import pytest
import torch
from torch.nn import functional as F

from gift.model import GPT, GPTConfig
from gift.sampler import format_result, generate, mix64, uniforms
from gift.tokenizer import builtin_tokenizer

EOT = 256  # the byte tokenizer's <|endoftext|>


def random_model(seed=0, noise=0.1, **overrides):
    """A small GPT whose weights are perturbed so that logits are spread out (no near-ties for argmax)."""
    config = GPTConfig(**{**dict(n_layer=2, n_head=4, n_embd=32, block_size=64, vocab_size=61), **overrides})
    torch.manual_seed(seed)
    model = GPT(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(noise * torch.randn_like(p))
    return model


def full_logprobs(model, prompt, response, temperature=1.0):
    """log softmax(logits / T) of each response token given everything before it, by one full forward: (len,)."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt + response]))[0, len(prompt) - 1 : -1]
    logp = F.log_softmax(logits / temperature, dim=-1)
    return logp.gather(1, torch.tensor(response)[:, None])[:, 0]


def naive_greedy(model, prompt, max_new_tokens, stop_tokens=()):
    """Re-run the whole sequence every step and take the argmax: the reference for the cached sampler."""
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(max_new_tokens):
            seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
            if seq[-1] in stop_tokens:
                break
    return seq[len(prompt) :]


PROMPTS = [[5, 9, 2], [7] * 9 + [3, 1], [11, 4, 8, 8, 20, 1, 2, 3, 4, 5, 6, 7, 30, 31, 32, 33, 1]]


def test_greedy_with_cache_equals_naive_loop():
    model = random_model()
    free = [naive_greedy(model, p, 20) for p in PROMPTS]
    stop = free[0][6]  # a token greedy decoding really emits, so that rows stop (and leave the batch) early
    expected = [naive_greedy(model, p, 20, stop_tokens=(stop,)) for p in PROMPTS]
    assert len({len(e) for e in expected}) > 1, "fixture should make rows stop at different steps"
    out = generate(model, PROMPTS, max_new_tokens=20, temperature=0, stop_tokens=(stop,))
    assert out.sequences == expected
    assert out.finished.tolist() == [e[-1] == stop for e in expected]
    for i, (p, e) in enumerate(zip(PROMPTS, expected)):
        assert out.mask[i, : len(e)].eq(1).all() and out.mask[i, len(e) :].eq(0).all()
        assert out.tokens[i, : len(e)].tolist() == e and out.tokens[i, len(e) :].eq(0).all()
        assert torch.allclose(out.logprobs[i, : len(e)], full_logprobs(model, p, e), atol=1e-4)
        assert out.logprobs[i, len(e) :].eq(0).all()


def test_unequal_prompts_in_one_batch_give_the_same_tokens_as_alone():
    model = random_model(seed=1)
    batched = generate(model, PROMPTS, num_samples=2, max_new_tokens=15, temperature=0)
    for i, p in enumerate(PROMPTS):
        alone = generate(model, [p], max_new_tokens=15, temperature=0)
        assert batched.sequences[2 * i] == batched.sequences[2 * i + 1] == alone.sequences[0]
        assert torch.allclose(batched.logprobs[2 * i], alone.logprobs[0], atol=1e-5)


def test_sampled_logprobs_match_a_full_forward():
    """Sampling with unequal prompts, shared prefill and rows leaving the batch: each recorded log-probability must
    equal log softmax(logits / T) recomputed from scratch, which fails if any cache slot or position is wrong."""
    model = random_model(seed=2)
    T, stops = 0.8, tuple(range(50, 61))
    out = generate(model, PROMPTS, num_samples=4, max_new_tokens=30, temperature=T, stop_tokens=stops, seed=0)
    lengths = [len(s) for s in out.sequences]
    assert len(out.sequences) == 12 and len(set(lengths)) > 3, "fixture should make rows stop at different steps"
    assert out.tokens.shape == out.mask.shape == out.logprobs.shape == (12, max(lengths))
    for i, seq in enumerate(out.sequences):
        assert torch.allclose(out.logprobs[i, : len(seq)], full_logprobs(model, PROMPTS[i // 4], seq, T), atol=1e-4)
        assert out.finished[i] == (seq[-1] in stops)
        assert all(t not in stops for t in seq[:-1])  # each response ends at its first stop token


def test_same_seed_same_samples():
    model = random_model(seed=3)
    a, b, c = (generate(model, PROMPTS, num_samples=3, max_new_tokens=12, seed=s) for s in (7, 7, 8))
    assert a.sequences == b.sequences and torch.equal(a.logprobs, b.logprobs)
    assert a.sequences != c.sequences


def test_per_prompt_seeds_make_samples_independent_of_the_batch():
    """With one seed per prompt, a prompt's samples are the same alone, in another batch, or split in two (DDP)."""
    model = random_model(seed=4)
    stops = tuple(range(50, 61))
    together = generate(model, PROMPTS, num_samples=3, max_new_tokens=12, seed=[11, 12, 13], stop_tokens=stops)
    for i, p in enumerate(PROMPTS):
        alone = generate(model, [p], num_samples=3, max_new_tokens=12, seed=[11 + i], stop_tokens=stops)
        assert alone.sequences == together.sequences[3 * i : 3 * i + 3]
    other = generate(model, PROMPTS, num_samples=3, max_new_tokens=12, seed=[11, 12, 99], stop_tokens=stops)
    assert other.sequences[:6] == together.sequences[:6] and other.sequences[6:] != together.sequences[6:]
    with pytest.raises(ValueError, match="one per prompt"):
        generate(model, PROMPTS, max_new_tokens=4, seed=[1, 2])


def chi_square(counts, probs):
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def test_token_frequencies_match_softmax_over_temperature():
    """20,000 first tokens at T = 0.7 pass a chi-square test (99.9% level) against softmax(logits / 0.7), and fail
    it against softmax(logits / 1.4), so the test can tell temperatures apart."""
    model = random_model(seed=4, noise=0.2, n_layer=1, n_embd=16, vocab_size=12)
    prompt, T, n = [3, 1, 4], 0.7, 20_000
    with torch.no_grad():
        logits = model(torch.tensor([prompt]))[0, -1]
    out = generate(model, [prompt], num_samples=n, max_new_tokens=1, temperature=T, seed=0)
    counts = torch.bincount(out.tokens[:, 0], minlength=12).double()
    df = 11  # the 99.9% quantile of chi-square(df), by the Wilson-Hilferty approximation
    threshold = df * (1 - 2 / (9 * df) + 3.09 * math.sqrt(2 / (9 * df))) ** 3
    probs = F.softmax(logits.double() / T, dim=-1)
    assert probs.max() < 0.5 and probs.min() > 0.005, "fixture should give a spread-out distribution"
    assert chi_square(counts, probs) < threshold
    assert chi_square(counts, F.softmax(logits.double() / (2 * T), dim=-1)) > threshold
    assert torch.allclose(out.logprobs[:, 0], probs.log().float()[out.tokens[:, 0]], atol=1e-5)


def test_top_k_and_top_p_restrict_the_support():
    model = random_model(seed=5, noise=0.2, n_layer=1, n_embd=16, vocab_size=12)
    prompt, n = [2, 7], 3000
    with torch.no_grad():
        logp = F.log_softmax(model(torch.tensor([prompt]))[0, -1], dim=-1)
    order = logp.argsort(descending=True)

    out = generate(model, [prompt], num_samples=n, max_new_tokens=1, top_k=3, seed=0)
    top3 = order[:3]
    assert set(out.tokens[:, 0].tolist()) == set(top3.tolist())
    renormalised = logp - torch.logsumexp(logp[top3], dim=0)
    assert torch.allclose(out.logprobs[:, 0], renormalised[out.tokens[:, 0]], atol=1e-5)

    p = 0.55  # the nucleus: the fewest most-likely tokens whose probability reaches p
    size = int((logp[order].exp().cumsum(0) < p).sum()) + 1
    assert 1 < size < 12
    out = generate(model, [prompt], num_samples=n, max_new_tokens=1, top_p=p, seed=0)
    assert set(out.tokens[:, 0].tolist()) == set(order[:size].tolist())
    renormalised = logp - torch.logsumexp(logp[order[:size]], dim=0)
    assert torch.allclose(out.logprobs[:, 0], renormalised[out.tokens[:, 0]], atol=1e-5)


# A model that writes a fixed script: the token after position p is SCRIPT[p], whatever came before. The embedding of
# the token at position p is one-hot and the position embedding is 10 x one-hot(SCRIPT[p]), so after the final
# LayerNorm the tied LM head (the same one-hot rows) scores SCRIPT[p] highest. The random transformer blocks on top
# add small context-dependent terms, so log-probabilities still depend on every cached token.
# "?" marks where the calculator's forced tokens go: the model's own choice there is overridden.
SCRIPT = "<<3+4=???, <<2*1.25=?????<<1/0=ab <<5-2=???"


def scripted_model():
    chars = sorted(set(SCRIPT + "Q7>"))
    model = random_model(seed=6, noise=0.0, n_layer=1, n_head=2, n_embd=32, block_size=64, vocab_size=257)
    dim = {ord(ch): i for i, ch in enumerate(chars)} | {EOT: len(chars)}
    with torch.no_grad():
        model.transformer.wte.weight.zero_()
        model.transformer.wpe.weight.zero_()
        for token, d in dim.items():
            model.transformer.wte.weight[token, d] = 1.0
        for p, token in enumerate([ord(ch) for ch in SCRIPT] + [EOT]):
            model.transformer.wpe.weight[p, dim[token]] = 10.0
    return model


def calculate(expr):
    """A stand-in for gift.verifier.calculate: + - * / on numbers, None when invalid."""
    if not expr or any(ch not in "0123456789.+-*/ " for ch in expr):
        return None
    try:
        return eval(expr)
    except (SyntaxError, ZeroDivisionError):
        return None


@pytest.mark.parametrize("decode_graphs", [False, True])
def test_calculator_results_are_forced_and_masked(decode_graphs):
    """[...] marks forced text. The row with prompt "QQQ" starts 2 characters into the script, so it writes "3+4="
    with no open "<<" (nothing forced), and it finishes while the other row is still being forced."""
    model, enc = scripted_model(), builtin_tokenizer()
    expected = {
        "QQQ": "3+4=???, <<2*1.25=[2.5>>]<<1/0=ab <<5-2=[3>>]",
        "Q": "<<3+4=[7>>], <<2*1.25=[2.5>>]<<1/0=ab <<5-2=[3>>]",
    }
    prompts = [enc.encode(p) for p in expected]
    out = generate(model, prompts, num_samples=2, max_new_tokens=60, temperature=0, stop_tokens=(EOT,),
                   calculator=calculate, tokenizer=enc, decode_graphs=decode_graphs)
    for i, marked in enumerate(expected.values()):
        text = marked.replace("[", "").replace("]", "")
        forced, inside = [], False  # forced[j]: was character j of text forced?
        for ch in marked:
            if ch in "[]":
                inside = ch == "["
            else:
                forced.append(inside)
        mask = [0.0 if f else 1.0 for f in forced] + [1.0]  # the end-of-text is the model's choice
        for row in (2 * i, 2 * i + 1):
            seq = out.sequences[row]
            assert enc.decode(seq[:-1]) == text and seq[-1] == EOT and out.finished[row]
            assert out.mask[row, : len(seq)].tolist() == mask
            chosen = out.mask[row, : len(seq)].bool()
            assert out.logprobs[row, : len(seq)][~chosen].eq(0).all()
            # the forced tokens went through the model: later choices saw them in the cache
            reference = full_logprobs(model, prompts[i], seq)
            assert torch.allclose(out.logprobs[row, : len(seq)][chosen], reference[chosen], atol=1e-5)


def test_without_calculator_the_model_writes_everything():
    model, enc = scripted_model(), builtin_tokenizer()
    out = generate(model, [enc.encode("Q")], max_new_tokens=60, temperature=0, stop_tokens=(EOT,))
    assert enc.decode(out.sequences[0][:-1]) == SCRIPT and out.mask.eq(1).all()


def test_format_result():
    assert [format_result(v) for v in (7, -3, 24.0, 2.5, 1 / 3, -0.0000001, 1e20)] == [
        "7", "-3", "24", "2.5", "0.333333", "0", "100000000000000000000"]
    assert format_result(None) is None and format_result(float("inf")) is None and format_result(math.nan) is None


def test_clear_errors():
    model = random_model()
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        generate(model, [[1], []])
    with pytest.raises(ValueError, match="block_size"):
        generate(model, [[1] * 10], max_new_tokens=60)
    with pytest.raises(ValueError, match="num_samples"):
        generate(model, [[1]], num_samples=0)
    with pytest.raises(ValueError, match="tokenizer"):
        generate(model, [[1]], calculator=calculate)
    with pytest.raises(ValueError, match="non-empty list"):
        generate(model, [])
    with pytest.raises(ValueError, match="outside"):
        generate(model, [[1, 61]], max_new_tokens=8)
    for chunk in (-1, 1.5, True, None):
        with pytest.raises(ValueError, match="chunk must be an integer >= 0"):
            generate(model, [[1]], max_new_tokens=4, chunk=chunk)


def splitmix64_reference(x):
    """The uint64 reference finaliser, in Python integers."""
    m = 2**64 - 1
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & m
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & m
    return x ^ (x >> 31)


def test_mix64_is_splitmix64_in_wrapping_int64():
    values = [0, 1, 2, 12345, 2**62 + 7, 2**63 - 1, -1, -(2**63), -987654321]
    got = mix64(torch.tensor(values)).tolist()
    assert got == [(lambda h: h - 2**64 if h >= 2**63 else h)(splitmix64_reference(v % 2**64)) for v in values]


def test_uniforms_are_a_function_of_seed_sample_and_step():
    """Row b * N + j, column t depends on (seeds[b], j, t) only; the values look uniform and independent."""
    u = uniforms(torch.tensor([5, 9, 5]), 4, 300)
    assert u.shape == (12, 300) and u.dtype == torch.float64 and 0 <= u.min() and u.max() < 1
    assert torch.equal(u[:4], u[8:]) and not torch.equal(u[:4], u[4:8])  # same seed, same stream
    assert torch.equal(uniforms(torch.tensor([9]), 2, 100), u[4:6, :100])  # fewer samples or steps: a prefix
    x = uniforms(torch.arange(100), 10, 100).flatten()  # 100,000 numbers from consecutive seeds
    assert abs(x.mean() - 0.5) < 0.005 and abs(x.var() - 1 / 12) < 0.002
    assert abs(torch.corrcoef(torch.stack([x[:-1], x[1:]]))[0, 1]) < 0.01
    counts = torch.histc(x.float(), bins=20, min=0, max=1).double()
    assert chi_square(counts, torch.full((20,), 0.05, dtype=torch.float64)) < 45.3  # 99.9% quantile, 19 d.o.f.


def test_int_and_none_seeds():
    model = random_model(seed=3)
    torch.manual_seed(0)
    a = generate(model, PROMPTS, num_samples=2, max_new_tokens=8)
    torch.manual_seed(0)
    b = generate(model, PROMPTS, num_samples=2, max_new_tokens=8)
    assert a.sequences == b.sequences  # seed=None follows torch.manual_seed
    c = generate(model, PROMPTS[1:], num_samples=2, max_new_tokens=8, seed=7)
    d = generate(model, PROMPTS, num_samples=2, max_new_tokens=8, seed=6)
    assert c.sequences[:2] != d.sequences[2:4]  # seed 7's first stream is not seed 6's second


def test_sampling_in_bfloat16_leaves_the_model_alone():
    """dtype=bfloat16: a bf16 copy samples with a bf16 cache; the logprobs are the copy's (full forward), and the
    caller's float32 model is untouched."""
    model = random_model(seed=2).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = generate(model, PROMPTS, num_samples=2, max_new_tokens=10, seed=[1, 2, 3], dtype=torch.bfloat16)
    assert model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    copy16 = random_model(seed=2).to(torch.bfloat16)
    for i, seq in enumerate(out.sequences):
        expected = full_logprobs(copy16, PROMPTS[i // 2], seq).float()
        assert torch.allclose(out.logprobs[i, : len(seq)], expected, atol=0.1)
        assert not torch.allclose(out.logprobs[i, : len(seq)], full_logprobs(model, PROMPTS[i // 2], seq), atol=1e-4)


QWEN_LIKE = dict(n_kv_head=2, rope_theta=10000.0, rmsnorm=True, mlp_hidden=48, bias=False, qkv_bias=True,
                 tie_embeddings=False)


@pytest.mark.parametrize("family", ["gpt2", "qwen2"])
def test_static_shape_decoding_gives_the_same_samples(family):
    """generate(decode_graphs=True) runs the decode step at fixed shapes (what CUDA graphs replay; eagerly here): the
    batch padded to a power of two, the cache read through 64-slot windows, the token written at a slot tensor.
    130 new tokens cross two window boundaries, and stop tokens make rows leave so the batch bucket shrinks."""
    model = random_model(seed=3, block_size=160, vocab_size=97, **(QWEN_LIKE if family == "qwen2" else {}))
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11], [12, 13]]
    for kw in (dict(stop_tokens=(5, 7, 9)), dict(temperature=0), dict(top_k=5, top_p=0.9, stop_tokens=(3,))):
        plain = generate(model, prompts, 3, 130, seed=[1, 2, 3, 4], decode_graphs=False, **kw)
        static = generate(model, prompts, 3, 130, seed=[1, 2, 3, 4], decode_graphs=True, **kw)
        assert static.sequences == plain.sequences
        assert torch.allclose(static.logprobs, plain.logprobs, atol=1e-5)
        assert torch.equal(static.mask, plain.mask) and torch.equal(static.finished, plain.finished)
    assert 0 < plain.finished.sum() < len(plain.finished)  # rows did leave the batch, others ran to the end
    assert max(len(s) for s in plain.sequences) == 130


def test_static_view_forward_equals_the_plain_cached_forward():
    """One decode step through KVCache.static_view (token written at a slot tensor, a 64-slot window read with the
    slots past it masked) gives the plain cached step's logits and writes the same keys and values."""
    from gift.model import KVCache

    model = random_model(seed=4, block_size=100, vocab_size=97, **QWEN_LIKE)
    prompt = torch.randint(0, 97, (3, 10), generator=torch.Generator().manual_seed(0))
    step, pos = torch.tensor([[5], [6], [7]]), torch.full((3, 1), 10)
    plain, static = KVCache(model.config, 3, 90), KVCache(model.config, 3, 90)
    with torch.no_grad():
        for cache in (plain, static):
            cache.valid[:, :11] = True
            cache.valid[0, :4] = False  # row 0's prompt is left-padded by 4 slots
            model(prompt, cache=cache)
        expected = model(step, pos=pos, cache=plain)[:, -1]
        view = static.static_view(3, 64, torch.tensor([10]))
        got = model(step, pos=pos, cache=view)[:, -1]
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(static.k[:, :, :, :11], plain.k[:, :, :, :11], atol=1e-6)
    assert static.k[:, :, :, 11:].eq(0).all() and static.length == 10  # nothing else written; length is the caller's
    with pytest.raises(ValueError, match="one token per row"):
        model(prompt[:, :2], pos=pos.repeat(1, 2), cache=view)


def test_calculation_skips_ids_the_tokenizer_does_not_know():
    """A model whose vocabulary is larger than its tokenizer's (padded, or random in a benchmark) can sample ids with
    no text; the calculator still reads the open '<<expr=' around them."""
    from gift.sampler import _calculation

    enc = builtin_tokenizer()
    response = [300] + enc.encode("<<2+3=")
    assert _calculation(enc, calculate, response) == enc.encode("5>>")
    assert _calculation(enc, calculate, enc.encode("<<2+") + [299] + enc.encode("3=")) == enc.encode("5>>")


CHUNK_PROMPTS = PROMPTS + [[3, 3, 4], [9, 8, 7, 6, 5, 4, 3]]  # 5 prompts: chunks of 2 and 3 leave a short last chunk


@pytest.mark.parametrize("decode_graphs", [False, True])
def test_chunked_sampling_gives_the_same_samples(decode_graphs):
    """generate(chunk=C) samples C prompts at a time, all chunks in one reused cache (and, with decode_graphs, one
    StaticDecoder): the same tokens, masks and finished rows as all at once, for chunks of 1, 2, 3 and 7 (> 5) prompts.
    First with the calculator forcing results (the scripted model at T = 0.6 strays from its script now and then, so
    samples differ and some rows end without a stop), then a random model with top-k / top-p and stop tokens."""
    model, enc = scripted_model(), builtin_tokenizer()
    prompts = [enc.encode(p) for p in ["Q", "QQQ", "QQ", "Q7", "QQQQQQQ"]]
    calc = dict(num_samples=3, max_new_tokens=43, temperature=0.6, stop_tokens=(EOT,), calculator=calculate,
                tokenizer=enc, seed=[1, 2, 3, 4, 5], decode_graphs=decode_graphs)
    plain = dict(num_samples=2, max_new_tokens=20, top_k=20, top_p=0.95, stop_tokens=(55,),
                 seed=[6, 7, 8, 9, 10], decode_graphs=decode_graphs)
    for model, prompts, kw in ((model, prompts, calc), (random_model(seed=8), CHUNK_PROMPTS, plain)):
        whole = generate(model, prompts, **kw)
        lengths = [len(s) for s in whole.sequences]
        assert len({tuple(s) for s in whole.sequences}) > len(lengths) // 2, "samples should differ"
        assert 0 < whole.finished.sum() < len(lengths) and len(set(lengths)) > 2, "rows should end at various steps"
        if kw is calc:
            forced = ((whole.mask == 0) & (whole.tokens != 0)).sum(dim=1)
            assert forced.gt(0).sum() > 5 and len(set(forced.tolist())) > 2, "the calculator should force tokens"
        for chunk in (1, 2, 3, 7):
            part = generate(model, prompts, chunk=chunk, **kw)
            assert part.sequences == whole.sequences
            assert torch.equal(part.tokens, whole.tokens) and torch.equal(part.mask, whole.mask)
            assert torch.equal(part.finished, whole.finished)
            assert torch.allclose(part.logprobs, whole.logprobs, atol=1e-5)  # float round-off: module docstring
            if kw is calc and chunk == 2:  # right on their own too: the log-probabilities of a full forward
                for i, seq in enumerate(part.sequences):
                    chosen = part.mask[i, : len(seq)].bool()
                    reference = full_logprobs(model, prompts[i // 3], seq, 0.6)
                    assert torch.allclose(part.logprobs[i, : len(seq)][chosen], reference[chosen], atol=1e-4)


def test_sampling_memory_is_one_chunk_in_the_compute_dtype(monkeypatch):
    """The KV caches: one decode cache of chunk * N rows and P + max_new_tokens - 1 slots, plus a P-slot prefill cache
    per chunk, in the dtype the model computes in. The LM head sees the last position only in the prefill: each of
    its outputs has one row per row fed to the model, never (rows, P, V)."""
    import gift.sampler
    from gift.model import KVCache

    caches, heads, fed = [], [], []

    class Recorded(KVCache):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            caches.append((tuple(self.k.shape), self.k.dtype, tuple(self.v.shape), self.v.dtype))

    monkeypatch.setattr(gift.sampler, "KVCache", Recorded)
    model = random_model(seed=7)
    model.register_forward_pre_hook(lambda m, args, kw: fed.append((args[0] if args else kw["idx"]).shape),
                                    with_kwargs=True)
    model.lm_head.register_forward_hook(lambda m, args, out: heads.append(tuple(out.shape)))
    N, T, P, V = 3, 10, max(len(p) for p in CHUNK_PROMPTS), 61
    for dtype, chunk, sizes in ((None, 0, [5]), (None, 2, [2, 2, 1]), (torch.bfloat16, 3, [3, 2])):
        for record in (caches, heads, fed):
            record.clear()
        generate(model, CHUNK_PROMPTS, num_samples=N, max_new_tokens=T, seed=0, dtype=dtype, chunk=chunk)
        dt = dtype or torch.float32
        assert caches == [((2, sizes[0] * N, 4, P + T - 1, 8), dt) * 2] + [((2, b, 4, P, 8), dt) * 2 for b in sizes]
        prefills = [shape for shape in fed if shape[1] > 1]
        assert prefills == [(b, P) for b in sizes]
        assert len(heads) == len(fed) and heads[0] == (sizes[0], V)  # one LM head call per model call
        for rows, out in zip(fed, heads):  # (B, V) after a prefill, (R', 1, V) after a decode step
            assert math.prod(out) == rows[0] * V and out[-1] == V
        assert max(math.prod(out) for out in heads) == sizes[0] * N * V
