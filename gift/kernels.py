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
BLOCK_SIZE = 4096       # triton backend: vocabulary entries handled per loop iteration (capped at the vocab size)
NUM_WARPS = 8           # triton backend: warps per program (one program per row)

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
        x_target = tl.load(row_ptr + target).to(tl.float32)  # one extra 2-4 byte read, usually still in cache
        # subtract the max before scaling: exact even when the logits are huge (fp16 near 65504)
        tl.store(logprobs_ptr + row, (x_target - m) * inv_temp - log_s)
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
    _logprobs_fwd_kernel[(N,)](
        logits, targets, logprobs, row_max, log_sum, entropy if with_entropy else log_sum,  # dummy when unused
        V, logits.stride(0), 1.0 / temperature,
        BLOCK=min(BLOCK_SIZE, triton.next_power_of_2(V)), WITH_ENTROPY=with_entropy, num_warps=NUM_WARPS)
    return logprobs, (row_max, log_sum), entropy


def _triton_backward(grad_out, logits, targets, stats, temperature):
    """grad_out (N,) float32, stats from forward -> grad_logits (N, V) in the logits' dtype."""
    N, V = logits.shape
    grad = torch.empty((N, V), dtype=logits.dtype, device=logits.device)
    _logprobs_bwd_kernel[(N,)](
        logits, targets, *stats, grad_out, grad,
        V, logits.stride(0), grad.stride(0), 1.0 / temperature,
        BLOCK=min(BLOCK_SIZE, triton.next_power_of_2(V)), num_warps=NUM_WARPS)
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


def _torch_backward(grad_out, logits, targets, stats, temperature):
    """grad_out (N,) float32, stats from forward -> grad_logits (N, V) in the logits' dtype."""
    N, V = logits.shape
    row_max, log_sum = stats
    grad = torch.empty_like(logits)
    rows = max(1, CHUNK_ELEMENTS // V)
    for i in range(0, N, rows):
        j = min(N, i + rows)
        z = logits[i:j].to(torch.float32, copy=True).sub_(row_max[i:j, None]).div_(temperature)  # as in forward
        g = z.sub_(log_sum[i:j, None]).exp_().neg_()  # -softmax, in place
        g[torch.arange(j - i, device=g.device), targets[i:j]] += 1.0  # onehot(target) - softmax
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
    if targets.numel() > 0:
        low, high = targets.aminmax()
        if bool((low < 0) | (high >= V)):  # one host sync; an out-of-range index would read outside the row
            raise ValueError(f"targets must lie in [0, {V}), got values in [{int(low)}, {int(high)}]")
    backend = _resolve_backend(backend, logits)

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
    or "auto" (triton on CUDA tensors when triton is installed, torch otherwise).
    """
    return _run(logits, targets, temperature, backend, with_entropy=False)[0]


def token_logprobs_and_entropy(logits, targets, temperature=1.0, backend="auto"):
    """Same as token_logprobs, plus the entropy of softmax(logits / temperature) from the same pass.

    Returns (logprobs, entropy), both (...) float32. The entropy, -sum_v p_v log p_v in nats, is a training-log
    diagnostic (entropy collapse is the usual sign of an RL run going wrong): it carries no gradient.
    """
    return _run(logits, targets, temperature, backend, with_entropy=True)
