"""Token log-probabilities without materialising the (tokens x vocab) log-softmax.

Every RL step needs, for every response token, log pi(y_t | x, y_<t): the log-probability of the token that was
actually sampled, under the policy and under the reference model. GIFT's implicit reward is their difference summed
over the response, beta * sum_t [log pi_theta(y_t | ...) - log pi_ref(y_t | ...)]. The obvious code

    torch.log_softmax(logits.float() / temperature, dim=-1).gather(-1, targets[..., None])

writes a float32 copy of the logits, and autograd keeps it alive for backward: at GPT-2's vocabulary of 50,257 that is
200 KB per token, the largest tensor in the step. We only need one number per token. With x = logits / T,

    log p(y) = x_y - logsumexp(x)        d log p(y) / d logits = (onehot(y) - softmax(x)) / T

So forward needs only the row's logsumexp (plus the target logit), and backward can recompute softmax from the saved
logsumexp. We keep that logsumexp as two floats per row, the row's max logit m and log s with
s = sum_v exp((logits_v - m) / T), so that logsumexp(x) = m / T + log s. Subtracting m before dividing by T keeps
full float32 precision even when the logits are huge (fp16 near 65504), where x_y and logsumexp(x) would each be
rounded to ~0.004. This file has two implementations of that idea:

- "triton": one program per row walks the vocabulary in blocks with an online max/sum, so logits are read once and
  only (m, log s) are saved for backward: 8 bytes per token. Backward recomputes softmax block by block and writes
  the gradient directly in the logits' dtype.
- "torch": the same maths in plain torch, CHUNK_ELEMENTS at a time (a block of rows), so the float32 temporaries are
  bounded by the chunk rather than by tokens x vocab, in backward too. It is the CPU path and the kernel's reference.

Everything is computed in float32 inside, whatever the logits' dtype. Edge cases, by design:
- -inf logits (a masked vocabulary) get probability 0 and gradient 0.
- If the target's own logit is -inf, its log-probability is -inf and the gradient stays finite (it is exactly what
  log_softmax + gather gives: +1/temperature at the target, -softmax/temperature elsewhere), never NaN.
- A row whose logits are all -inf has no distribution: its outputs are NaN, as with torch.log_softmax.
- Tiny target probabilities are fine: the target is never exponentiated, log p = (x_y - m) / T - log s.

`linear_token_logprobs(hidden, weight, targets)` goes one step further for a model's LM head: it applies
logits = hidden @ weight.T a block of rows at a time inside the same computation, so even the (tokens x vocab)
logits never exist (see the section at the end of this file).

Triton is optional: without it (macOS, CPU-only installs) this module still imports and backend="auto" uses torch.
Set TRITON_INTERPRET=1 before importing it to run the real kernels on CPU tensors (slow, used by the tests).
"""
import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:
    triton = None

CHUNK_ELEMENTS = 2**22  # torch backend: float32 elements per chunk (16 MiB per temporary), i.e. rows = this // vocab
LINEAR_CHUNK_ELEMENTS = 2**26  # linear_token_logprobs: logits elements alive at once (128 MiB in bf16)
BLOCK_SIZE = None       # triton backend: force this many vocabulary entries per loop iteration (None: the table)
NUM_WARPS = None        # triton backend: force this many warps per program (None: the table)


def launch_config(V):
    """(BLOCK, num_warps) of the Triton kernels for a vocabulary of V entries (one program per row).

    The forward is memory-bound: a program must keep enough bytes in flight to cover DRAM latency (Little's law:
    about 3.35 TB/s x 0.6 us = 2 MB on an H100, ~16 KB per SM). Rows of 4097 entries or more loop over 8192-entry
    blocks, with 4 warps (64 entries per thread per iteration) up to V = 65,536 and 8 warps above, where the
    backward's longer rows use the extra warps. That pair was the fastest forward + backward of the (BLOCK, warps)
    sweep in `benchmarks/gpu.py` at GPT-2's 50,257 and within 1% at Qwen2's 151,936 (docs/benchmarks.md). Smaller
    vocabularies take one power-of-two block, one warp per 512 entries.
    """
    block = min(8192, triton.next_power_of_2(V)) if BLOCK_SIZE is None else min(BLOCK_SIZE, triton.next_power_of_2(V))
    if NUM_WARPS is not None:
        warps = NUM_WARPS
    elif block >= 8192:
        warps = 4 if V <= 65536 else 8
    else:
        warps = max(1, min(8, block // 512))
    return block, warps

# ----------------------------------------------------------------------------------------------------------------------
# Triton kernels

if triton is not None:

    @triton.jit
    def _logprobs_fwd_kernel(logits_ptr, targets_ptr, logprobs_ptr, max_ptr, logsum_ptr, entropy_ptr,
                             V, row_stride, inv_temp,
                             BLOCK: tl.constexpr, WITH_ENTROPY: tl.constexpr):
        """One program per row (x = logits[row]): with m = max(x) and s = sum_v exp((x_v - m) / T),
        logprobs[row] = (x[target] - m) / T - log s. Saves m and log s, i.e. logsumexp(x / T) = m / T + log s."""
        # BEGIN SOLUTION kernel
        # HINT: online max and sum over BLOCK-wide chunks; store log p, m, log s (and the entropy)
        row = tl.program_id(0).to(tl.int64)  # int64: row * row_stride can pass 2**31
        row_ptr = logits_ptr + row * row_stride
        m = tl.full([], float("-inf"), tl.float32)  # running max of x
        s = tl.zeros([], tl.float32)                # running sum of exp((x - m) / T)
        t = tl.zeros([], tl.float32)                # running sum of exp((x - m) / T) * (x - m) / T, for the entropy
        for start in range(0, V, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            x = tl.load(row_ptr + cols, mask=cols < V, other=float("-inf")).to(tl.float32)
            m_new = tl.maximum(m, tl.max(x, axis=0))
            m_new = tl.where(m_new == float("-inf"), 0.0, m_new)  # everything -inf so far: any finite shift will do
            alpha = tl.exp((m - m_new) * inv_temp)  # rescales the old sums to the new max (0 while m is -inf)
            z = (x - m_new) * inv_temp
            e = tl.exp(z)  # -inf and out-of-range entries give exactly 0
            if WITH_ENTROPY:
                shift = tl.where(s > 0, (m - m_new) * inv_temp, 0.0)  # the where avoids -inf * 0
                t = alpha * (t + shift * s) + tl.sum(e * tl.where(e > 0, z, 0.0), axis=0)
            s = s * alpha + tl.sum(e, axis=0)
            m = m_new
        log_s = tl.log(s)  # -inf if the whole row is -inf
        target = tl.load(targets_ptr + row)
        ok = (target >= 0) & (target < V)  # on CUDA targets are not checked on the host (a sync): never read outside
        x_target = tl.load(row_ptr + tl.where(ok, target, 0)).to(tl.float32)  # one extra read, usually in cache
        # subtract the max before scaling: exact even when the logits are huge (fp16 near 65504)
        tl.store(logprobs_ptr + row, tl.where(ok, (x_target - m) * inv_temp - log_s, float("nan")))
        tl.store(max_ptr + row, m)
        tl.store(logsum_ptr + row, log_s)
        if WITH_ENTROPY:
            # H = -sum_v p_v log p_v with p_v = e_v / s and log p_v = (x_v - m) / T - log s  =>  H = log s - t / s
            tl.store(entropy_ptr + row, log_s - t / s)
        # END SOLUTION

    @triton.jit
    def _logprobs_bwd_kernel(logits_ptr, targets_ptr, max_ptr, logsum_ptr, grad_out_ptr, grad_ptr,
                             V, row_stride, grad_row_stride, inv_temp,
                             BLOCK: tl.constexpr):
        """One program per row: grad[row] = grad_out[row] * (onehot(target) - softmax(x / T)) / T."""
        row = tl.program_id(0).to(tl.int64)
        m = tl.load(max_ptr + row)
        log_s = tl.load(logsum_ptr + row)
        target = tl.load(targets_ptr + row)
        scale = tl.load(grad_out_ptr + row) * inv_temp
        for start in range(0, V, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            mask = cols < V
            x = tl.load(logits_ptr + row * row_stride + cols, mask=mask, other=float("-inf")).to(tl.float32)
            p = tl.exp((x - m) * inv_temp - log_s)  # softmax, recomputed from the saved statistics
            g = scale * (tl.where(cols == target, 1.0, 0.0) - p)
            tl.store(grad_ptr + row * grad_row_stride + cols, g, mask=mask)  # cast to the logits' dtype on store


def _triton_forward(logits, targets, temperature, with_entropy):
    """logits (N, V), targets (N,) int64 -> logprobs (N,), (row_max (N,), log_sum (N,)), entropy (N,) or None."""
    N, V = logits.shape
    logprobs = torch.empty(N, dtype=torch.float32, device=logits.device)
    row_max, log_sum = torch.empty_like(logprobs), torch.empty_like(logprobs)
    entropy = torch.empty_like(logprobs) if with_entropy else None
    block, warps = launch_config(V)
    _logprobs_fwd_kernel[(N,)](
        logits, targets, logprobs, row_max, log_sum, entropy if with_entropy else log_sum,  # dummy when unused
        V, logits.stride(0), 1.0 / temperature,
        BLOCK=block, WITH_ENTROPY=with_entropy, num_warps=warps)
    return logprobs, (row_max, log_sum), entropy


def _triton_backward(grad_out, logits, targets, stats, temperature, out=None):
    """grad_out (N,) float32, stats from forward -> grad_logits (N, V) in the logits' dtype.
    out=logits writes the gradient over the logits (each program reads its block before it writes it)."""
    N, V = logits.shape
    grad = torch.empty((N, V), dtype=logits.dtype, device=logits.device) if out is None else out
    block, warps = launch_config(V)
    _logprobs_bwd_kernel[(N,)](
        logits, targets, *stats, grad_out, grad,
        V, logits.stride(0), grad.stride(0), 1.0 / temperature,
        BLOCK=block, num_warps=warps)
    return grad

# ----------------------------------------------------------------------------------------------------------------------
# Torch fallback: same maths, a chunk of rows at a time


def _torch_forward(logits, targets, temperature, with_entropy):
    """logits (N, V), targets (N,) int64 -> logprobs (N,), (row_max (N,), log_sum (N,)), entropy (N,) or None."""
    N, V = logits.shape
    logprobs = torch.empty(N, dtype=torch.float32, device=logits.device)
    row_max, log_sum = torch.empty_like(logprobs), torch.empty_like(logprobs)
    entropy = torch.empty_like(logprobs) if with_entropy else None
    rows = max(1, CHUNK_ELEMENTS // V)
    for i in range(0, N, rows):
        j = min(N, i + rows)
        row_max[i:j] = logits[i:j].amax(dim=-1)
        # (n, V) float32, the chunk's one large temporary: a copy, so the in-place ops never touch float32 logits
        z = logits[i:j].to(torch.float32, copy=True).sub_(row_max[i:j, None]).div_(temperature)  # <= 0, 0 at the max
        z_target = z.gather(1, targets[i:j, None]).squeeze(1)
        s = z.exp_().sum(dim=-1)  # in place; s >= 1 since the max contributes exp(0) = 1, so log s is safe
        log_sum[i:j] = s.log()
        logprobs[i:j] = z_target - log_sum[i:j]
        if with_entropy:
            p = z.div_(s[:, None])  # softmax, in place
            entropy[i:j] = torch.special.entr(p).sum(dim=-1)  # entr(p) = -p log p, and 0 where p = 0
    return logprobs, (row_max, log_sum), entropy


def _torch_backward(grad_out, logits, targets, stats, temperature, out=None):
    """grad_out (N,) float32, stats from forward -> grad_logits (N, V) in the logits' dtype (out=logits: in place)."""
    N, V = logits.shape
    row_max, log_sum = stats
    grad = torch.empty_like(logits) if out is None else out
    rows = max(1, CHUNK_ELEMENTS // V)
    for i in range(0, N, rows):
        j = min(N, i + rows)
        z = logits[i:j].to(torch.float32, copy=True).sub_(row_max[i:j, None]).div_(temperature)  # as in forward
        g = z.sub_(log_sum[i:j, None]).exp_().neg_()  # -softmax, in place
        # onehot(target) - softmax; a target outside [0, V) adds nothing (linear_token_logprobs passes a vocabulary
        # slice's targets shifted by its start, and the rows whose target lies elsewhere get -softmax only)
        t = targets[i:j, None]
        g.scatter_add_(1, t.clamp(0, V - 1), ((t >= 0) & (t < V)).to(g.dtype))
        grad[i:j] = g.mul_(grad_out[i:j, None] / temperature)  # cast to the logits' dtype on copy
    return grad

# ----------------------------------------------------------------------------------------------------------------------
# Autograd glue and the public functions


class _TokenLogprobs(torch.autograd.Function):
    """Saves the logits (already alive: no copy), the targets and the row's logsumexp, kept as two floats per row."""

    @staticmethod
    def forward(ctx, logits, targets, temperature, backend, with_entropy):
        forward = _triton_forward if backend == "triton" else _torch_forward
        logprobs, (row_max, log_sum), entropy = forward(logits, targets, temperature, with_entropy)
        ctx.save_for_backward(logits, targets, row_max, log_sum)
        ctx.temperature, ctx.backend = temperature, backend
        if entropy is not None:
            ctx.mark_non_differentiable(entropy)  # a logging diagnostic, not a training signal
        return logprobs, entropy

    @staticmethod
    def backward(ctx, grad_logprobs, grad_entropy):
        logits, targets, row_max, log_sum = ctx.saved_tensors
        backward = _triton_backward if ctx.backend == "triton" else _torch_backward
        grad = backward(grad_logprobs.float().contiguous(), logits, targets, (row_max, log_sum), ctx.temperature)
        return grad, None, None, None, None


def _resolve_backend(backend, logits):
    if backend not in ("auto", "triton", "torch"):
        raise ValueError(f"backend must be 'auto', 'triton' or 'torch', got {backend!r}")
    if backend == "auto":
        return "triton" if (triton is not None and logits.is_cuda) else "torch"
    if backend == "triton":
        if triton is None:
            raise RuntimeError("backend='triton' needs the triton package, which is not installed")
        if not logits.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
            raise RuntimeError("backend='triton' needs CUDA tensors (or TRITON_INTERPRET=1 set before import, "
                               "to run the kernels on CPU through Triton's interpreter)")
    return backend


def _check_targets(targets, V, backend):
    """Targets must lie in [0, V). Checking costs a host sync, which on a GPU leaves it idle while Python launches
    the next kernel, a cost of the order of the whole forward at small sizes: the Triton kernels on CUDA skip the
    check and give NaN for an out-of-range target instead (they never read outside the row). torch's gather would
    fail with a device assert, so the torch backend always checks."""
    if targets.numel() > 0 and not (backend == "triton" and targets.is_cuda):
        low, high = targets.aminmax()
        if bool((low < 0) | (high >= V)):
            raise ValueError(f"targets must lie in [0, {V}), got values in [{int(low)}, {int(high)}]")


def _run(logits, targets, temperature, backend, with_entropy):
    if not isinstance(logits, torch.Tensor) or logits.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise TypeError(f"logits must be a float32, bfloat16 or float16 tensor, got "
                        f"{getattr(logits, 'dtype', type(logits))}")
    if logits.dim() == 0 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have shape (..., V) with V >= 1, got {tuple(logits.shape)}")
    if not isinstance(targets, torch.Tensor) or targets.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"targets must be an int64 tensor, got {getattr(targets, 'dtype', type(targets))}")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"targets shape {tuple(targets.shape)} must equal logits shape without the vocab dim "
                         f"{tuple(logits.shape[:-1])}")
    if targets.device != logits.device:
        raise ValueError(f"targets are on {targets.device} but logits are on {logits.device}")
    if not 0 < float(temperature) < float("inf"):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    V = logits.shape[-1]
    backend = _resolve_backend(backend, logits)
    _check_targets(targets, V, backend)

    flat_logits = logits.reshape(-1, V)  # a view when possible; the kernels need unit stride along the vocab
    if flat_logits.stride(-1) != 1:
        flat_logits = flat_logits.contiguous()
    flat_targets = targets.reshape(-1).long().contiguous()
    logprobs, entropy = _TokenLogprobs.apply(flat_logits, flat_targets, float(temperature), backend, with_entropy)
    logprobs = logprobs.view(targets.shape)
    return logprobs, (entropy.view(targets.shape) if entropy is not None else None)


def token_logprobs(logits, targets, temperature=1.0, backend="auto"):
    """Log-probabilities of the targets under softmax(logits / temperature), differentiable w.r.t. logits.

    logits: (..., V) float32, bfloat16 or float16.  targets: (...) int64 in [0, V).
    Returns (...) float32. The gradient flows back to logits in their dtype and shape.
    backend: "triton" (CUDA tensors, or CPU under TRITON_INTERPRET=1), "torch" (chunked, any device),
    or "auto" (triton on CUDA tensors when triton is installed, torch otherwise: the chunked torch fallback works on
    CUDA but at about a sixth of eager's speed there, many small launches).
    On CUDA with the triton backend an out-of-range target gives NaN rather than an error (see _check_targets).
    """
    return _run(logits, targets, temperature, backend, with_entropy=False)[0]


def token_logprobs_and_entropy(logits, targets, temperature=1.0, backend="auto"):
    """Same as token_logprobs, plus the entropy of softmax(logits / temperature) from the same pass.

    Returns (logprobs, entropy), both (...) float32. The entropy, -sum_v p_v log p_v in nats, is a training-log
    diagnostic (entropy collapse is the usual sign of an RL run going wrong): it carries no gradient.
    """
    return _run(logits, targets, temperature, backend, with_entropy=True)

# ----------------------------------------------------------------------------------------------------------------------
# Log-probabilities straight from the hidden states: the LM head fused with the above, in blocks
#
# A language model's logits are hidden @ weight.T, (N, d) @ (d, V). Even in bf16 they are the largest tensor of a
# training step (16,384 tokens x 151,936 = 5 GB, and as much again for their gradient). With the loss needing one
# log-prob per token, they never have to exist all at once:
#
#   forward, rows i:j:       logits = hidden[i:j] @ weight.T  (n, V)  ->  log p, row max m, log s (token_logprobs'
#                            forward on the block), then freed
#   backward, vocab v0:v1:   logits = hidden @ weight[v0:v1].T  (N, c) again; with the saved m and log s,
#                            G = grad * (onehot(y) - softmax(logits / T)) / T  (N, c), written over the logits;
#                            grad_weight[v0:v1] = G.T @ hidden  (c, d): one matmul over all rows, written once;
#                            grad_hidden += G @ weight[v0:v1]  (N, d), float32
#
# so the extra memory is one block of LINEAR_CHUNK_ELEMENTS logits plus the O(N d + V d) gradients, for one more
# matmul (backward recomputes the logits; Liger-Kernel's fused linear cross-entropy recomputes too). Backward walks
# the vocabulary rather than the rows so that grad_weight (V x d, the big one) is written once, not accumulated over
# every block of rows (at Qwen2's head that would move ~1 GB per block). The elementwise part of each block is
# token_logprobs' code (Triton kernels or the chunked torch fallback), so the results match
# token_logprobs(hidden @ weight.T, ...) computed in the same dtype.


class _LinearTokenLogprobs(torch.autograd.Function):
    """Saves hidden and weight (already alive), the targets and (row max, log sum): no (N, V) tensor."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature, backend, with_entropy):
        forward = _triton_forward if backend == "triton" else _torch_forward
        N, V = hidden.shape[0], weight.shape[0]
        logprobs = torch.empty(N, dtype=torch.float32, device=hidden.device)
        row_max, log_sum = torch.empty_like(logprobs), torch.empty_like(logprobs)
        entropy = torch.empty_like(logprobs) if with_entropy else None
        rows = max(1, LINEAR_CHUNK_ELEMENTS // V)
        for i in range(0, N, rows):
            j = min(N, i + rows)
            logits = hidden[i:j] @ weight.t()  # (n, V) in the inputs' dtype: the only vocabulary-sized tensor
            out, (m, log_s), ent = forward(logits, targets[i:j], temperature, with_entropy)
            logprobs[i:j], row_max[i:j], log_sum[i:j] = out, m, log_s
            if with_entropy:
                entropy[i:j] = ent
            del logits  # freed before the next block's logits are allocated
        ctx.save_for_backward(hidden, weight, targets, row_max, log_sum)
        ctx.temperature, ctx.backend = temperature, backend
        if entropy is not None:
            ctx.mark_non_differentiable(entropy)
        return logprobs, entropy

    @staticmethod
    def backward(ctx, grad_logprobs, grad_entropy):
        hidden, weight, targets, row_max, log_sum = ctx.saved_tensors
        backward = _triton_backward if ctx.backend == "triton" else _torch_backward
        grad_out = grad_logprobs.float().contiguous()
        want_hidden, want_weight = ctx.needs_input_grad[:2]
        N, V = hidden.shape[0], weight.shape[0]
        # summed over every vocabulary block: float32, whatever the dtype, so rounding does not pile up
        grad_hidden = torch.zeros(hidden.shape, dtype=torch.float32, device=hidden.device) if want_hidden else None
        grad_weight = (torch.empty_like(weight) if N > 0 else torch.zeros_like(weight)) if want_weight else None
        cols = max(1, LINEAR_CHUNK_ELEMENTS // max(N, 1))
        for v0 in range(0, V if N > 0 else 0, cols):
            v1 = min(V, v0 + cols)
            w = weight[v0:v1]  # (c, d), a view
            logits = hidden @ w.t()  # (N, c), recomputed
            # the block's columns are a vocabulary of c entries whose targets are shifted by v0 (outside: no onehot);
            # softmax comes from the whole row's saved statistics, so this is the block of the full gradient
            g = backward(grad_out, logits, targets - v0, (row_max, log_sum), ctx.temperature, out=logits)
            if want_weight:
                torch.mm(g.t(), hidden, out=grad_weight[v0:v1])  # (c, d), written once
            if want_hidden:
                if g.dtype == torch.float32:
                    grad_hidden.addmm_(g, w)  # (N, d), in place
                else:
                    grad_hidden += g @ w  # an (N, d) temporary in the inputs' dtype
            del logits, g
        if want_hidden:
            grad_hidden = grad_hidden.to(hidden.dtype)
        return grad_hidden, grad_weight, None, None, None, None


def _run_linear(hidden, weight, targets, temperature, backend, with_entropy):
    for name, x in (("hidden", hidden), ("weight", weight)):
        if not isinstance(x, torch.Tensor) or x.dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise TypeError(f"{name} must be a float32, bfloat16 or float16 tensor, got {getattr(x, 'dtype', type(x))}")
    if weight.dim() != 2 or hidden.dim() == 0 or hidden.shape[-1] != weight.shape[1] or weight.shape[0] == 0:
        raise ValueError(f"hidden must be (..., d) and weight (V, d) with V >= 1, got {tuple(hidden.shape)} and "
                         f"{tuple(weight.shape)}")
    if hidden.dtype != weight.dtype:
        raise TypeError(f"hidden ({hidden.dtype}) and weight ({weight.dtype}) must have the same dtype: cast one "
                        f"(the logits are computed in that dtype)")
    if not isinstance(targets, torch.Tensor) or targets.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"targets must be an int64 tensor, got {getattr(targets, 'dtype', type(targets))}")
    if targets.shape != hidden.shape[:-1]:
        raise ValueError(f"targets shape {tuple(targets.shape)} must equal hidden shape without the last dim "
                         f"{tuple(hidden.shape[:-1])}")
    if targets.device != hidden.device or weight.device != hidden.device:
        raise ValueError(f"hidden, weight and targets must be on one device, got {hidden.device}, {weight.device}, "
                         f"{targets.device}")
    if not 0 < float(temperature) < float("inf"):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    backend = _resolve_backend(backend, hidden)
    _check_targets(targets, weight.shape[0], backend)
    flat_hidden = hidden.reshape(-1, hidden.shape[-1])
    flat_targets = targets.reshape(-1).long().contiguous()
    with torch.autocast(hidden.device.type, enabled=False):  # logits in the inputs' dtype, forward and backward
        logprobs, entropy = _LinearTokenLogprobs.apply(flat_hidden, weight, flat_targets, float(temperature),
                                                       backend, with_entropy)
    return logprobs.view(targets.shape), (entropy.view(targets.shape) if entropy is not None else None)


def linear_token_logprobs(hidden, weight, targets, temperature=1.0, backend="auto"):
    """log softmax(hidden @ weight.T / temperature)[targets] without materialising the (N, V) logits.

    hidden: (N, d) (or (..., d)), e.g. a model's final-normed hidden states.  weight: (V, d), the LM head, same dtype.
    targets: (N,) (or (...)) int64 in [0, V). Returns (N,) float32, differentiable in hidden and weight (gradients in
    their dtype). Extra memory: one block of LINEAR_CHUNK_ELEMENTS logits plus the gradients, O(N d + V d).
    The logits are computed in the inputs' dtype, also under autocast (cast hidden and weight to choose it).
    backend as in token_logprobs: "auto" is triton on CUDA (the chunked torch fallback is several times slower than
    eager there), torch on CPU.
    """
    return _run_linear(hidden, weight, targets, temperature, backend, with_entropy=False)[0]


def linear_token_logprobs_and_entropy(hidden, weight, targets, temperature=1.0, backend="auto"):
    """Same as linear_token_logprobs, plus the entropy of each row's softmax (no gradient), from the same pass."""
    return _run_linear(hidden, weight, targets, temperature, backend, with_entropy=True)


def model_logprobs(model, idx, mask, bf16=False, fused=False, temperature=1.0):
    """Log-probs (N, L-1) of each next token of idx (N, L) under `model`, 0 where mask (N, L-1) is 0, and the
    entropy (N, L-1) at each position, at `temperature` (the sampling temperature, as the sampler drew the tokens).

    fused: the model returns hidden states and linear_token_logprobs applies the LM head in blocks, so the
    (N, L-1, V) logits never exist (GPT-2: 50,257 x 460 tokens x 32 rows is 1.5 GB in bf16, and as much for its
    gradient), for one more matmul in backward; for small vocabularies the plain path is cheaper. bf16: the forward
    pass under autocast (the log-softmax is always computed in float32 by the kernels).
    """
    head = getattr(model, "module", model).lm_head.weight  # (V, C), also under DDP
    if fused:
        with torch.autocast(idx.device.type, dtype=torch.bfloat16, enabled=bf16):
            hidden = model(idx[:, :-1], return_hidden=True)  # (N, L-1, C)
        dtype = torch.bfloat16 if bf16 else hidden.dtype  # the logits' dtype under autocast, as the plain path
        logp, entropy = linear_token_logprobs_and_entropy(hidden.to(dtype), head.to(dtype), idx[:, 1:], temperature)
        return logp * mask, entropy
    with torch.autocast(idx.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(idx[:, :-1])  # (N, L-1, V)
    logp, entropy = token_logprobs_and_entropy(logits, idx[:, 1:], temperature)
    return logp * mask, entropy


def response_logprobs(model, idx, mask, cfg, temperature=1.0):
    """model_logprobs with a run's settings: log-probs (N, L-1) of each next token, 0 off the mask, and the entropy.
    RL scores its samples at the sampling temperature; --fused_head (auto: vocabularies of >= 32,768) never builds
    the (N, L-1, V) logits."""
    vocab = getattr(model, "module", model).lm_head.weight.shape[0]
    fused = cfg.fused_head == "on" or (cfg.fused_head == "auto" and vocab >= 32768)
    return model_logprobs(model, idx, mask, cfg.dtype == "bfloat16", fused, temperature)
