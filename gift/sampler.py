"""Sampling groups of responses: batched decoding with a key/value cache, shared prefill, and the GSM8K calculator.

GIFT (like GRPO) scores each prompt x by comparing a *group* of G responses y_1..y_G ~ pi_theta(.|x) to each other,
so every RL step starts here: B prompts, N samples each. Most of the time of an RL run on a CPU is spent in this file.

How `generate` does it, top to bottom:
1. Prefill. The prompts are left-padded to a common length P and run through the model once, filling a KVCache of
   P slots. Padding slots are marked invalid (attention skips them) and each row gets its own position ids
   0..len-1, so a padded batch gives the logits each prompt would give alone. Only the last position goes through
   the LM head: (B, V) logits, never (B, P, V).
2. Share. The prefill's keys and values are copied N times into the decode cache (`KVCache.share`) and the last
   logits repeated N times: the N samples of a prompt start from one prefill instead of N.
3. Decode. One token per row per step: sample from softmax(logits / T) (optionally truncated by top-k / top-p) by
   inverse CDF with one counter-based uniform per row (`uniforms`: a hash of the prompt's seed, the sample and the
   step, all computed at once), feed the B*N new tokens through the model (one position each), repeat. A row that
   emits a stop token is dropped from the batch one step later (`KVCache.keep`; rows from the end of the batch move
   into its place), so finished rows cost one extra position, then nothing. On a GPU the step is replayed from CUDA
   graphs at fixed shapes (`StaticDecoder`), which removes the per-kernel launch cost that dominates small models.
4. Calculator (optional). GSM8K solutions write arithmetic as `<<48/2=24>>`. When a row's text ends inside an open
   `<<expr=`, we compute expr and *force* the result and the closing `>>`: those tokens are fed through the model like
   any other (so the next choice sees them) but get mask 0, because the policy did not choose them and the loss must
   not train on them. An invalid expression (calculator returns None) forces nothing.

Chunks (`chunk=C`): the prompts are sampled C at a time, steps 1-4 once per chunk, all in one decode cache of
C * N rows and P + max_new_tokens - 1 slots (P: the call's longest prompt), allocated once in the model's dtype and
reused, so CUDA graphs captured on it serve every chunk. The cache and the logits take the memory of C prompts, not
B. A row's uniforms depend only on its prompt's seed, and every chunk is padded to the same P (the same slots and
positions), so a chunked call samples what an unchunked one does, up to float round-off: matrix-multiply libraries
choose their kernel by the number of rows (MKL on a CPU gives a row other bits in a call of <= 15 rows than in a
larger one, single-threaded; with more threads the split depends on the row count too), so the logits of a row can
differ in the last bits between batch sizes, as they already do when finished rows leave the batch. A token then
differs only where its uniform falls within that round-off of a cumulative probability (or at a greedy near-tie).

Every chosen token also records its sampling log-probability log pi(y_t | x, y_<t) under the distribution it was
drawn from; RL code uses the mask and, for diagnostics, these log-probabilities.
"""

import copy
import functools
import math
import operator
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from gift.model import KVCache


@dataclass
class Generation:
    """What `generate` returns, for R = len(prompts) * num_samples rows, prompt-major (all samples of prompt 0 first).

    sequences: R lists of response token ids (no prompt), each ending at and including the first stop token, or
        cut at max_new_tokens.
    tokens: (R, L) long, the responses right-padded with 0; L is the longest response.
    mask: (R, L) float, 1 for tokens the model chose, 0 for padding and for tokens the calculator forced.
    logprobs: (R, L) float32, log-probability of each chosen token under the distribution it was sampled from
        (softmax(logits / T) after top-k / top-p; softmax(logits) for greedy), 0 where mask is 0.
    finished: (R,) bool, True for rows that ended with a stop token.
    """

    sequences: list
    tokens: torch.Tensor
    mask: torch.Tensor
    logprobs: torch.Tensor
    finished: torch.Tensor


def format_result(value):
    """The calculator's answer as the text to force: str(int) for ints; floats rounded to 6 decimals with trailing
    zeros dropped (24.0 -> "24", 1/3 -> "0.333333", 2.5 -> "2.5"). None, NaN and infinities give None (force nothing)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if not math.isfinite(value):
        return None
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


# Random numbers: one uniform per row per step, from a counter-based generator. Row r (sample j of prompt b) at step
# t gets u = hash(prompt seed_b, j, t): a pure function of those three integers, so a prompt's samples do not depend
# on the batch, the DDP rank or the device, and all R x max_new_tokens uniforms come from one batched computation
# (no per-prompt generator, no launch per prompt per step). The hash is splitmix64's finaliser (Steele et al., 2014):
# multiply-xorshift rounds that scramble every input bit into every output bit, in wrapping int64 arithmetic.
_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: splitmix64's counter increment, decorrelates consecutive counters
_MIX = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)


def _int64(c):
    """A 64-bit constant as the signed int64 with the same bits."""
    return c - 2**64 if c >= 2**63 else c


def _shr(x, k):
    """Logical right shift of int64 bits (torch's >> is arithmetic: it would copy the sign bit)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def mix64(x):
    """splitmix64's finaliser on an int64 tensor (bit-exact with the uint64 reference, read as signed)."""
    x = (x ^ _shr(x, 30)) * _int64(_MIX[0])
    x = (x ^ _shr(x, 27)) * _int64(_MIX[1])
    return x ^ _shr(x, 31)


def uniforms(seeds, num_samples, steps, device=None):
    """U(0, 1) float64 numbers (B * num_samples, steps): row b * num_samples + j, column t is a hash of
    (seeds[b], j, t), its top 32 bits / 2**32. seeds: (B,) int64 tensor."""
    golden = _int64(_GOLDEN)
    stream = mix64(mix64(seeds.to(device)[:, None] + golden) + golden * (1 + torch.arange(num_samples, device=device)))
    bits = mix64(stream.reshape(-1, 1) + golden * (1 + torch.arange(steps, device=device)))  # (R, steps)
    return _shr(bits, 32).double() / 2**32


def _choose(logits, temperature, top_k, top_p, u):
    """Pick one token per row. logits (R, V) -> tokens (R,) long, log-probabilities (R,) float32.

    temperature 0 is greedy (log-probability under softmax(logits)). Otherwise the logits are divided by T, cut to the
    top_k largest (ties with the k-th are kept), then to the smallest set of tokens whose probability reaches top_p,
    and the token is drawn from the renormalised distribution, whose log-probability is returned.
    u: (R,) float64 uniforms in [0, 1), one per row (see `uniforms`).
    """
    logits = logits.float()
    if temperature == 0:
        logp = F.log_softmax(logits, dim=-1)
        tok = logp.argmax(dim=-1)
        return tok, logp.gather(1, tok[:, None])[:, 0]
    if temperature != 1.0:
        logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (R, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = F.softmax(sorted_logits, dim=-1)
        drop = (probs.cumsum(dim=-1) - probs) >= top_p  # the mass before this token already reaches top_p
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))  # back to vocabulary order
    logp = F.log_softmax(logits, dim=-1)
    # Inverse CDF: the first token whose cumulative probability exceeds u * total is a sample from p, with one
    # uniform per row (the Gumbel-max trick needs V). The sum runs in float64, so the total is exact to ~1e-16 and
    # u * total < total; truncated tokens (p = 0) add nothing to the sum and are never the first to exceed it.
    cdf = logp.exp().double().cumsum_(dim=-1)  # (R, V)
    tok = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True)[:, 0]  # (R,)
    return tok, logp.gather(1, tok[:, None])[:, 0]


@functools.lru_cache(maxsize=8)
def _ends_with_equals(tokenizer, vocab_size, device):
    """(V,) bool tensor, True for tokens whose bytes end with b"=": the only tokens that can open a calculation.

    Computed once per tokenizer, so that checking every sampled token costs one lookup per step."""
    flags = []
    for i in range(vocab_size):
        try:
            flags.append(tokenizer.decode_single_token_bytes(i).endswith(b"="))
        except KeyError:  # an id the tokenizer does not use (the model's vocabulary may be padded)
            flags.append(False)
    return torch.tensor(flags, device=device)


def _token_bytes(tokenizer, i):
    try:
        return tokenizer.decode_single_token_bytes(i)
    except KeyError:
        return b""


def _calculation(tokenizer, calculator, response):
    """Tokens to force after `response` (a list of ids whose text ends with "="), or None.

    The text must end inside an open `<<expr=`: the last "<<" has no ">>" after it. Then expr is computed and its
    formatted result plus ">>" is encoded; an invalid expression gives None.
    """
    try:
        text = tokenizer.decode_bytes(response)
    except KeyError:  # ids the tokenizer does not use (the model's vocabulary may be padded) have no text
        text = b"".join(_token_bytes(tokenizer, i) for i in response)
    start = text.rfind(b"<<")
    if start < 0 or b">>" in text[start:] or not text.endswith(b"="):
        return None
    result = format_result(calculator(text[start + 2 : -1].decode("utf-8", errors="replace")))
    return None if result is None else tokenizer.encode_ordinary(result + ">>")


def _check_inputs(model, prompts, num_samples, max_new_tokens, temperature, top_k, top_p, stop_tokens, calculator,
                  tokenizer, chunk=0):
    config = model.config
    if not isinstance(prompts, (list, tuple)) or len(prompts) == 0:
        raise ValueError("prompts must be a non-empty list of token-id lists")
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 0:
        raise ValueError(f"chunk must be an integer >= 0 (prompts sampled at a time; 0: all), got {chunk!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 is greedy), got {temperature}")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or an integer >= 1, got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be None or in (0, 1], got {top_p!r}")
    if calculator is not None and tokenizer is None:
        raise ValueError("a calculator needs tokenizer= (a tiktoken.Encoding) to read '<<expr=' and encode the result")
    for i, p in enumerate(prompts):
        if len(p) == 0:
            raise ValueError(f"prompt {i} is empty: a prompt needs at least one token")
    for i, p in enumerate(prompts):
        if len(p) + max_new_tokens > config.block_size:
            raise ValueError(f"prompt {i} has {len(p)} tokens; with max_new_tokens={max_new_tokens} that is "
                             f"{len(p) + max_new_tokens} > block_size {config.block_size}")
        if min(p) < 0 or max(p) >= config.vocab_size:
            raise ValueError(f"prompt {i} has a token id outside [0, {config.vocab_size})")
    for s in stop_tokens:
        if not 0 <= s < config.vocab_size:
            raise ValueError(f"stop token {s} is outside [0, {config.vocab_size})")


def _start_copy_to_host(x):
    """Start copying a small tensor to the host; returns a function that waits for it and gives x.tolist().
    On a GPU the copy goes to pinned memory behind an event, so waiting for it does not wait for later kernels."""
    if x.device.type != "cuda":
        values = x.tolist()
        return lambda: values
    host = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)
    host.copy_(x, non_blocking=True)
    event = torch.cuda.Event()
    event.record()
    return lambda: (event.synchronize(), host.tolist())[1]


class StaticDecoder:
    """The decode step model(tok (R', 1), pos (R', 1), cache) -> logits (R', V) at fixed shapes, replayed from CUDA
    graphs: a replayed graph launches all of a step's kernels at once, with no Python or per-kernel launch cost.

    A graph fixes every shape and address, so
    - the live rows are padded to a bucket, the next power of two (at most R): the rows past the live ones hold stale
      data, are computed and ignored;
    - the new token is written at the cache slot held in a (1,) tensor, and attention reads a window of the cache
      rounded up to WINDOW slots (slots past the new one are masked), so one graph serves WINDOW positions;
    - the inputs are copied into fixed buffers and the logits come out of one (valid until the next call).
    A graph is captured the first time its (bucket, window) is needed; all share one memory pool. With capture=False
    (a CPU) the same static-shape step runs eagerly, which is how the tests check it against plain decoding.
    """

    WINDOW = 64

    def __init__(self, model, cache, capture):
        self.model, self.capture = model, capture
        self.full = copy.copy(cache)  # the full-size buffers: cache.keep() later narrows `cache` to views of them
        R, self.max_len, device = cache.k.shape[1], cache.k.shape[3], cache.k.device
        self.tok = torch.zeros(R, 1, dtype=torch.long, device=device)
        self.pos = torch.zeros(R, 1, dtype=torch.long, device=device)
        self.slot = torch.zeros(1, dtype=torch.long, device=device)
        self.logits = torch.empty(R, model.config.vocab_size, dtype=model.lm_head.weight.dtype, device=device)
        self.graphs = {}
        self.pool = torch.cuda.graph_pool_handle() if capture else None

    def _step(self, rows, window):
        view = self.full.static_view(rows, window, self.slot)
        self.logits[:rows].copy_(self.model(self.tok[:rows], pos=self.pos[:rows], cache=view)[:, -1])

    def __call__(self, tok, pos, slot):
        """tok, pos: (n,) long, the live rows' new tokens and their positions; slot: the cache slot they go to."""
        n = len(tok)
        rows = min(len(self.tok), 1 << (n - 1).bit_length())
        window = min(self.max_len, -(-(slot + 1) // self.WINDOW) * self.WINDOW)
        self.tok[:n, 0], self.pos[:n, 0] = tok, pos
        self.slot.fill_(slot)
        self.full.valid[:, slot] = True  # every row writes a real token into this slot
        if not self.capture:
            self._step(rows, window)
            return self.logits[:n]
        graph = self.graphs.get((rows, window))
        if graph is None:
            side = torch.cuda.Stream()  # warm up on a side stream first, as capture requires
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._step(rows, window)
            torch.cuda.current_stream().wait_stream(side)
            graph = self.graphs[(rows, window)] = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool):  # records the kernels; runs nothing
                self._step(rows, window)
        graph.replay()  # (after a capture it repeats the warm-up's writes: same slot, same values)
        return self.logits[:n]


@torch.inference_mode()
def generate(model, prompts, num_samples=1, max_new_tokens=256, temperature=1.0, top_k=None, top_p=None,
             stop_tokens=(), calculator=None, seed=None, tokenizer=None, dtype=None, decode_graphs=None, chunk=0):
    """Sample num_samples responses for each prompt. Returns a `Generation` (see its docstring for the shapes).

    prompts: list of B token-id lists (any lengths >= 1). temperature 0 is greedy. stop_tokens: ids that end a
    response (included in it). calculator: calculate(expr) -> int | float | None, used with tokenizer (a
    tiktoken.Encoding) to force the results of `<<expr=`. seed: a list of B ints gives each prompt its own random
    stream, so a prompt's samples do not depend on the other prompts in the batch (DDP ranks then sample exactly what
    one process would); an int seed s gives prompt b the stream of mix64(s) + b; None draws s from torch's global RNG.
    dtype: sample with the weights and the KV cache in this dtype (e.g. torch.bfloat16 on a GPU: half the bytes a
    decode step reads); a copy of the model is cast once per call. None keeps the model's dtype.
    decode_graphs: decode through a `StaticDecoder` (fixed shapes; CUDA graphs on a GPU, eager on a CPU). None: on a
    GPU only. The samples are the same either way, up to float round-off in the logits.
    chunk: sample the prompts this many at a time, each with its num_samples rows (0: all at once). The KV cache and
    the logits are sized for one chunk; the samples are the same whatever the chunk (module docstring, "Chunks").
    """
    stop_tokens = tuple(stop_tokens)
    _check_inputs(model, prompts, num_samples, max_new_tokens, temperature, top_k, top_p, stop_tokens, calculator,
                  tokenizer, chunk)
    params = list(model.parameters())
    if dtype is None:  # the model's dtype. A model of mixed dtypes (--quant=nf4 --dtype=bfloat16 keeps the frozen
        # embedding and head in bfloat16 beside float32 adapters and norms: gift/quant.py) samples in its narrowest:
        # a float32 copy would double its largest matrices
        dtype = min({p.dtype for p in params}, key=operator.attrgetter("itemsize"))
    if any(p.dtype != dtype for p in params):
        # a copy whose parameters are cast on the way (the memo maps each original tensor to its cast; tied weights
        # stay tied; a parameter already in dtype is shared, not copied), so no full-precision copy is made; the
        # caller's model is untouched
        memo = {id(p): torch.nn.Parameter(p.detach().to(dtype), requires_grad=False) for p in params}
        # integer buffers (a 4-bit base, masks) are shared, not copied: nothing here writes to them
        memo.update({id(b): b.to(dtype) if b.is_floating_point() else b for b in model.buffers()})
        model = copy.deepcopy(model, memo)
    device = params[0].device
    B, N = len(prompts), num_samples
    if isinstance(seed, (list, tuple)):
        if len(seed) != B:
            raise ValueError(f"seed is a list of {len(seed)} ints, one per prompt was expected ({B})")
        seeds = torch.tensor([int(s) for s in seed], dtype=torch.long)
    else:
        first = int(torch.randint(2**62, ())) if seed is None else int(seed)
        seeds = mix64(torch.tensor(first)) + torch.arange(B)  # hashed: seeds s and s + 1 share no stream
    u_all = uniforms(seeds, N, max_new_tokens, device)  # (B*N, max_new_tokens): every random number of the call
    was_training = model.training
    model.eval()

    # One KV cache for the decode of a chunk: C * N rows, P + max_new_tokens - 1 slots (the last token is never fed),
    # in the model's (compute) dtype. Every chunk reuses it, and every chunk is left-padded to the same P.
    C = min(chunk, B) if chunk else B
    P = max(len(p) for p in prompts)
    cache = KVCache(model.config, C * N, P + max_new_tokens - 1, device=device, dtype=dtype)
    if decode_graphs is None:
        decode_graphs = device.type == "cuda"
    decoder = StaticDecoder(model, cache, capture=device.type == "cuda") if decode_graphs else None
    parts = [_sample(model, prompts[s : s + C], N, P, cache, decoder, u_all[s * N : (s + C) * N], temperature, top_k,
                     top_p, stop_tokens, calculator, tokenizer) for s in range(0, B, C)]
    model.train(was_training)

    tokens, mask, logprobs, lengths, finished = (torch.cat(x) for x in zip(*parts))  # (R, max_new_tokens), (R,)
    L = int(lengths.max())
    tokens, mask, logprobs = tokens[:, :L], mask[:, :L], logprobs[:, :L]  # never written after a row's end: 0
    sequences = [seq[:n] for seq, n in zip(tokens.tolist(), lengths.tolist())]
    return Generation(sequences, tokens, mask, logprobs, finished)


def _sample(model, prompts, N, P, buffers, decoder, u_all, temperature, top_k, top_p, stop_tokens, calculator,
            tokenizer):
    """The work of `generate` for one chunk of B prompts: prefill, share, decode (module docstring).

    P: the length every prompt is left-padded to (>= the longest here). buffers: the call's KVCache, of at least
    B * N rows and P + max_new_tokens - 1 slots; decoder: a StaticDecoder over it, or None. u_all: (B * N,
    max_new_tokens) uniforms. Returns tokens (R, max_new_tokens) long, mask and logprobs (R, max_new_tokens) float32,
    lengths (R,) long and finished (R,) bool, for R = B * N rows (the fields of `Generation`, before the cut to L).
    """
    device, dtype = buffers.k.device, buffers.k.dtype
    B, R, max_new_tokens = len(prompts), len(prompts) * N, u_all.shape[1]

    # 1. prefill: left-pad to P tokens; padding slots are invalid and take position 0
    # BEGIN SOLUTION sampler
    # HINT: prefill a P-slot KVCache, project the last position, share it into buffers: cache, logits, next_pos
    idx = torch.zeros(B, P, dtype=torch.long)
    pos = torch.zeros(B, P, dtype=torch.long)
    prefill = KVCache(model.config, B, P, device=device, dtype=dtype)  # the prompts' slots only
    for b, p in enumerate(prompts):
        idx[b, P - len(p) :] = torch.tensor(p)
        pos[b, P - len(p) :] = torch.arange(len(p))
        prefill.valid[b, P - len(p) :] = True
    # only the last position goes through the LM head: (B, V) logits, never (B, P, V); each row ends with a token
    hidden = model(idx.to(device), pos=pos.to(device), cache=prefill, return_hidden=True)  # (B, P, C)
    logits = model.lm_head(hidden[:, -1])  # (B, V)

    # 2. share: N rows per prompt, prompt-major, written into the call's cache
    cache = buffers.share(prefill, N)
    del hidden, prefill  # the prompts' keys and values are in `cache` now: freed before decoding
    logits = logits.repeat_interleave(N, dim=0)  # (R, V)
    next_pos = torch.tensor([len(p) for p in prompts], device=device).repeat_interleave(N)  # (R,)
    # END SOLUTION

    # 3. decode. `rows` maps each batch row to its output row; finished rows leave the batch.
    rows = torch.arange(R, device=device)
    tokens = torch.zeros(R, max_new_tokens, dtype=torch.long, device=device)
    logprobs = torch.zeros(R, max_new_tokens, dtype=torch.float32, device=device)
    mask = torch.zeros(R, max_new_tokens, dtype=torch.float32, device=device)
    lengths = torch.full((R,), max_new_tokens, dtype=torch.long, device=device)
    finished = torch.zeros(R, dtype=torch.bool, device=device)
    stops = torch.tensor(stop_tokens, dtype=torch.long, device=device)
    if calculator is not None:
        opens = _ends_with_equals(tokenizer, logits.shape[-1], device)
    forced = {}  # batch row -> token ids the calculator still has to force, one per step

    # What the host must know (which rows stopped, which opened a calculation) comes from ONE small copy per step, and
    # is read one step late: the copy of step t's flags is started, step t's tokens are fed to the model, and only
    # then does the host wait for the flags (on a GPU the forward is already queued, so the GPU never idles while
    # Python reacts). So a row that stops at step t is fed once more and leaves the batch at step t + 1, and a
    # calculation opened at step t is forced from step t + 1 on, which is when its first token is due anyway.
    live = list(range(R))  # host copy of `rows`
    pending = None  # step t - 1's flags, on their way to the host
    for t in range(max_new_tokens + 1):
        if pending is not None:
            flags = pending()  # bit 0: stopped at step t - 1; bit 1: chose a token ending in "=" at step t - 1
            stop = [r for r, f in enumerate(flags) if f & 1]
            for r in (r for r, f in enumerate(flags) if f & 2):  # rare
                force = _calculation(tokenizer, calculator, tokens[live[r], :t].tolist())
                if force:
                    forced[r] = force
            if stop:
                done = torch.tensor([live[r] for r in stop], device=device)
                finished[done] = True
                lengths[done] = t
            if t == max_new_tokens or len(stop) == len(live):
                break
            if stop:  # drop finished rows: kept rows at the front stay put, rows from the end fill the holes
                n = len(live) - len(stop)
                keep_list = list(range(n))
                for hole, r in zip([r for r in stop if r < n], [r for r in range(n, len(live)) if not flags[r] & 1]):
                    keep_list[hole] = r
                keep = torch.tensor(keep_list, device=device)  # (n,) old batch rows
                cache.keep(keep)
                rows, logits, next_pos = rows[keep], logits[keep], next_pos[keep]
                live = [live[r] for r in keep_list]
                if forced:
                    new_row = {old: new for new, old in enumerate(keep_list) if old in forced}
                    forced = {new_row[r]: f for r, f in forced.items() if r in new_row}
        elif t == max_new_tokens:
            break
        tok, logp = _choose(logits, temperature, top_k, top_p, u_all[rows, t])
        chosen = torch.ones_like(logp)
        if forced:  # forced tokens replace the sample; the policy did not choose them
            forced_rows = list(forced)
            tok[forced_rows] = torch.tensor([forced[r].pop(0) for r in forced_rows], device=device)
            chosen[forced_rows] = 0.0
            forced = {r: f for r, f in forced.items() if f}
        tokens[rows, t] = tok
        logprobs[rows, t] = logp * chosen
        mask[rows, t] = chosen
        if stops.numel() or calculator is not None:
            flags = torch.isin(tok, stops).to(torch.uint8)
            if calculator is not None:
                flags |= (opens[tok] & (chosen > 0)).to(torch.uint8) << 1
            pending = _start_copy_to_host(flags)
        if t == max_new_tokens - 1:
            continue  # the last token is never fed; its flags are read above
        if decoder is not None:  # the same step at fixed shapes (see StaticDecoder)
            logits = decoder(tok, next_pos, cache.length)
            cache.length += 1
            next_pos = next_pos + 1
            continue
        # BEGIN SOLUTION sampler
        # HINT: feed the new token of every live row (one position each) through the model with the cache
        cache.valid[:, cache.length] = True  # every row in the batch writes a real token into this slot
        logits = model(tok[:, None], pos=next_pos[:, None], cache=cache)[:, -1]  # (R', V)
        next_pos = next_pos + 1
        # END SOLUTION
    return tokens, mask, logprobs, lengths, finished
