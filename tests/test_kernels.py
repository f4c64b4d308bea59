"""Tests for gift.kernels: both backends against a float64 log_softmax + gather reference.

The Triton kernels run on CPU through Triton's interpreter (tests/conftest.py sets TRITON_INTERPRET=1 before import),
so this exercises the real kernel code, only slowly: shapes stay small except for one GPT-2-sized vocabulary.
"""
import importlib.util
import math
import sys

import pytest
import torch

from benchmarks.token_logprobs import peak_cpu_bytes
from gift import kernels
from gift.kernels import (linear_token_logprobs, linear_token_logprobs_and_entropy, token_logprobs,
                          token_logprobs_and_entropy)

BACKENDS = ["torch", "triton"]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# The gradient is rounded to the logits' dtype: allow one unit in the last place (8 and 11 significant bits), since
# the interpreter truncates float32 -> bfloat16 where a GPU rounds to nearest.
GRAD_RTOL = {torch.float32: 1e-5, torch.bfloat16: 2**-7, torch.float16: 2**-10}


def reference(logits, targets, temperature, weights):
    """float64 log_softmax + gather. Returns logprobs (...), grad of sum(weights * logprobs) (..., V), entropy (...)."""
    x = logits.detach().double().requires_grad_()
    all_logprobs = torch.log_softmax(x / temperature, dim=-1)
    logprobs = all_logprobs.gather(-1, targets[..., None]).squeeze(-1)
    (logprobs * weights).sum().backward()
    entropy = torch.special.entr(all_logprobs.exp()).sum(-1)
    return logprobs.detach(), x.grad, entropy.detach()


def check_against_reference(logits, targets, temperature, backend):
    weights = torch.randn(targets.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref_logprobs, ref_grad, ref_entropy = reference(logits, targets, temperature, weights)
    x = logits.detach().clone().requires_grad_()
    logprobs, entropy = token_logprobs_and_entropy(x, targets, temperature, backend=backend)
    (logprobs * weights.float()).sum().backward()

    assert logprobs.dtype == torch.float32 and logprobs.shape == targets.shape
    assert x.grad.dtype == logits.dtype and x.grad.shape == logits.shape
    assert torch.isfinite(x.grad).all(), "NaN or inf in the gradient"
    torch.testing.assert_close(logprobs.double(), ref_logprobs, atol=2e-5, rtol=1e-6)
    torch.testing.assert_close(x.grad.double(), ref_grad, atol=1e-5, rtol=GRAD_RTOL[logits.dtype])
    torch.testing.assert_close(entropy.double(), ref_entropy, atol=1e-4, rtol=1e-5)
    assert entropy.grad_fn is None
    plain = token_logprobs(logits, targets, temperature, backend=backend)
    assert isinstance(plain, torch.Tensor) and torch.equal(plain, logprobs.detach())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("temperature", [1.0, 0.6, 2.5])
def test_matches_float64_reference(backend, dtype, temperature, monkeypatch):
    monkeypatch.setattr(kernels, "BLOCK_SIZE", 128)  # V = 300: three blocks, the last one partial
    monkeypatch.setattr(kernels, "CHUNK_ELEMENTS", 4 * 300)  # four rows per chunk: 6 rows = one full + one partial
    g = torch.Generator().manual_seed(0)
    logits = (4 * torch.randn(2, 3, 300, generator=g)).to(dtype)
    targets = torch.randint(0, 300, (2, 3), generator=g)
    check_against_reference(logits, targets, temperature, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_hard_inputs(backend, dtype, monkeypatch):
    monkeypatch.setattr(kernels, "BLOCK_SIZE", 256)
    V = 1037  # not a power of two: five blocks, the last one 13 wide
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, V, generator=g)
    targets = torch.randint(0, V, (6,), generator=g)
    # row 0: the first four blocks are masked out entirely (-inf), the target sits in the last block
    logits[0, :1024] = float("-inf")
    targets[0] = 1030
    # row 1: a random half of the vocabulary masked, target kept
    logits[1, torch.rand(V, generator=g) < 0.5] = float("-inf")
    logits[1, targets[1]] = 0.5
    # row 2: fp16 logits near their limit, 65504 (representable in all three dtypes); the max is in the last block
    logits[2] = 65504.0 - 32.0 * torch.randint(0, 8, (V,), generator=g)
    logits[2, -1] = 65504.0
    # row 3: the target's probability underflows float32: log p = -200 / 0.7 - log(...) ~ -286
    logits[3] = 100.0 + torch.randn(V, generator=g)
    logits[3, targets[3]] = -100.0
    # row 4: the target's logit is -inf: log-prob -inf, finite gradient
    logits[4, targets[4]] = float("-inf")
    # row 5: large negative logits everywhere
    logits[5] = -30000.0 + 100 * torch.randn(V, generator=g)
    logits = logits.to(dtype)

    check_against_reference(logits, targets, 0.7, backend)
    logprobs = token_logprobs(logits, targets, 0.7, backend=backend)
    assert logprobs[4] == float("-inf")
    assert logprobs[3] < -250 and torch.isfinite(logprobs[3])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_gpt2_vocab_through_the_triton_kernel(dtype):
    V = 50257  # default BLOCK_SIZE 4096: 13 blocks, the last one 1105 wide
    g = torch.Generator().manual_seed(0)
    logits = (5 * torch.randn(3, V, generator=g)).to(dtype)
    logits[1, :17] = float("-inf")
    targets = torch.tensor([0, 25000, V - 1])
    check_against_reference(logits, targets, 1.0, "triton")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the interpreter's numpy warns on the all -inf row's NaN
@pytest.mark.parametrize("backend", BACKENDS)
def test_entropy_extremes_and_empty_rows(backend):
    V = 50
    logits = torch.zeros(3, V)                # row 0: uniform, entropy log V
    logits[1, 1:] = float("-inf")             # row 1: a single possible token, entropy 0, log-prob 0
    logits[2, :] = float("-inf")              # row 2: nothing possible: no distribution, NaN as in torch
    targets = torch.zeros(3, dtype=torch.long)
    logprobs, entropy = token_logprobs_and_entropy(logits, targets, backend=backend)
    assert abs(entropy[0].item() - math.log(V)) < 1e-5 and abs(logprobs[0].item() + math.log(V)) < 1e-5
    assert entropy[1].item() == 0.0 and logprobs[1].item() == 0.0
    assert torch.isnan(logprobs[2]) and torch.isnan(torch.log_softmax(logits[2], -1)[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_strided_inputs_and_saved_tensors(backend):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(2, 5, 301, generator=g, requires_grad=True)
    logits = base[:, :-1]  # (2, 4, 301): what a model's logits look like after dropping the last position
    targets = torch.randint(0, 301, (2, 4), generator=g)
    logprobs = token_logprobs(logits, targets, backend=backend)
    logprobs.sum().backward()
    expected = torch.log_softmax(base.detach()[:, :-1].double(), -1).gather(-1, targets[..., None]).squeeze(-1)
    torch.testing.assert_close(logprobs.double(), expected, atol=1e-5, rtol=1e-6)
    assert base.grad.shape == base.shape and (base.grad[:, -1] == 0).all()

    # vocabulary not contiguous in memory (transposed): copied once, still right
    t_logits = torch.randn(301, 4, generator=g).t()
    t_targets = torch.randint(0, 301, (4,), generator=g)
    expected = torch.log_softmax(t_logits.double(), -1).gather(-1, t_targets[:, None]).squeeze(-1)
    torch.testing.assert_close(token_logprobs(t_logits, t_targets, backend=backend).double(), expected,
                               atol=1e-5, rtol=1e-6)

    # forward keeps only the logits themselves (no copy), the targets and the logsumexp as (row max, log sum)
    x = torch.randn(6, 301, generator=g, requires_grad=True)
    out = token_logprobs(x, torch.zeros(6, dtype=torch.long), backend=backend)
    saved = out.grad_fn.next_functions[0][0].saved_tensors  # out = view(_TokenLogprobs(...))
    assert len(saved) == 4 and saved[0].data_ptr() == x.data_ptr()
    assert all(s.shape == (6,) and s.dtype == torch.float32 for s in saved[2:])


def test_torch_backend_memory_is_bounded_by_the_chunk(monkeypatch):
    N, V, rows = 512, 1000, 16
    monkeypatch.setattr(kernels, "CHUNK_ELEMENTS", rows * V)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(N, V, generator=g).to(torch.bfloat16).requires_grad_()
    targets = torch.randint(0, V, (N,), generator=g)
    chunk_bytes = rows * V * 4  # one float32 temporary of the chunk
    grad_bytes = N * V * 2      # the bf16 gradient itself, which any method has to produce
    full_fp32 = N * V * 4       # what log_softmax(logits.float()) materialises: 2 MB here

    def chunked():
        token_logprobs(logits, targets, backend="torch").sum().backward()
        logits.grad = None

    def naive():
        torch.log_softmax(logits.float(), -1).gather(-1, targets[:, None]).sum().backward()
        logits.grad = None

    chunked_peak = peak_cpu_bytes(chunked)
    naive_peak = peak_cpu_bytes(naive)
    # two chunk temporaries at most (the previous chunk's is freed when the next one is assigned) + a few (N,) vectors
    bound = grad_bytes + 2 * chunk_bytes + 64 * N
    assert grad_bytes < chunked_peak <= bound, (chunked_peak, bound)
    assert naive_peak > grad_bytes + full_fp32  # the measurement does see a full float32 copy when there is one

    with torch.no_grad():  # the reference model's pass: no gradient, only chunk-sized temporaries
        forward_peak = peak_cpu_bytes(lambda: token_logprobs(logits, targets, backend="torch"))
    assert forward_peak <= 2 * chunk_bytes + 64 * N, forward_peak


@pytest.mark.parametrize("call, error, match", [
    (lambda: token_logprobs(torch.zeros(2, 5, dtype=torch.float64), torch.zeros(2, dtype=torch.long)),
     TypeError, "float32, bfloat16 or float16"),
    (lambda: token_logprobs(torch.zeros(2, 5), torch.zeros(2)), TypeError, "targets must be an int64"),
    (lambda: token_logprobs(torch.zeros(2, 5), torch.zeros(3, dtype=torch.long)), ValueError, "targets shape"),
    (lambda: token_logprobs(torch.zeros(2, 5), torch.tensor([0, 5])), ValueError, r"\[0, 5\)"),
    (lambda: token_logprobs(torch.zeros(2, 5), torch.tensor([-1, 0])), ValueError, r"\[0, 5\)"),
    (lambda: token_logprobs(torch.zeros(2, 5), torch.zeros(2, dtype=torch.long), 0.0), ValueError, "temperature"),
    (lambda: token_logprobs(torch.zeros(2, 5), torch.zeros(2, dtype=torch.long), float("inf")), ValueError,
     "temperature"),
    (lambda: token_logprobs(torch.zeros(2, 0), torch.zeros(2, dtype=torch.long)), ValueError, "V >= 1"),
    (lambda: token_logprobs(torch.zeros(2, 5), torch.zeros(2, dtype=torch.long), backend="cuda"), ValueError,
     "backend must be"),
])
def test_bad_inputs_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_backend_choice(monkeypatch):
    assert kernels._resolve_backend("auto", torch.zeros(2, 3)) == "torch"  # CPU tensors: torch, even if interpreted
    assert kernels._resolve_backend("triton", torch.zeros(2, 3)) == "triton"  # TRITON_INTERPRET=1 in conftest
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(RuntimeError, match="CUDA tensors"):
        token_logprobs(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), backend="triton")


def test_imports_and_falls_back_without_triton(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # makes `import triton` raise ImportError, as on macOS
    monkeypatch.setitem(sys.modules, "triton.language", None)
    spec = importlib.util.spec_from_file_location("kernels_without_triton", kernels.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.triton is None
    logits, targets = torch.randn(4, 7), torch.randint(0, 7, (4,))
    expected = torch.log_softmax(logits, -1).gather(-1, targets[:, None]).squeeze(-1)
    torch.testing.assert_close(module.token_logprobs(logits, targets), expected)
    with pytest.raises(RuntimeError, match="triton package"):
        module.token_logprobs(logits, targets, backend="triton")


# ---------------------------------------------------------------------------------------------------------------------
# linear_token_logprobs: the LM head and the log-softmax in blocks of rows, never the (N, V) logits


def linear_inputs(N, d, V, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(N, d, generator=g).to(dtype)
    weight = (torch.randn(V, d, generator=g) * 3 / math.sqrt(d)).to(dtype)  # logits with std ~3
    return hidden, weight, torch.randint(0, V, (N,), generator=g)


# logits are computed in the inputs' dtype (as the unfused lm_head does), so bf16 rounds each logit (~3 * 2**-9)
LINEAR_TOL = {torch.float32: dict(atol=2e-5, rtol=1e-5), torch.bfloat16: dict(atol=0.05, rtol=0.02)}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_linear_matches_float64_reference(backend, dtype, temperature, monkeypatch):
    N, d, V = 10, 24, 300
    monkeypatch.setattr(kernels, "LINEAR_CHUNK_ELEMENTS", 4 * V)  # blocks of 4 rows: 4 + 4 + 2
    monkeypatch.setattr(kernels, "CHUNK_ELEMENTS", 3 * V)  # the torch log-softmax chunks each block again
    monkeypatch.setattr(kernels, "BLOCK_SIZE", 128)  # triton: three vocabulary blocks, the last one partial
    hidden, weight, targets = linear_inputs(N, d, V, dtype)
    hidden, targets = hidden.view(2, 5, d), targets.view(2, 5)  # leading dims are flattened
    w_out = torch.randn(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    h64, W64 = hidden.double().requires_grad_(), weight.double().requires_grad_()
    all_logprobs = torch.log_softmax(h64 @ W64.T / temperature, dim=-1)
    ref = all_logprobs.gather(-1, targets[..., None]).squeeze(-1)
    (ref * w_out).sum().backward()
    ref_entropy = torch.special.entr(all_logprobs.exp()).sum(-1)

    h, W = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    logprobs, entropy = linear_token_logprobs_and_entropy(h, W, targets, temperature, backend=backend)
    (logprobs * w_out.float()).sum().backward()
    assert logprobs.dtype == torch.float32 and logprobs.shape == (2, 5) and entropy.grad_fn is None
    assert h.grad.dtype == W.grad.dtype == dtype and h.grad.shape == hidden.shape and W.grad.shape == weight.shape
    tol = LINEAR_TOL[dtype]
    torch.testing.assert_close(logprobs.double(), ref.detach(), **tol)
    torch.testing.assert_close(entropy.double(), ref_entropy.detach(), **tol)
    for grad, ref_grad in ((h.grad, h64.grad), (W.grad, W64.grad)):  # errors relative to the gradient's scale
        torch.testing.assert_close(grad.double() / ref_grad.abs().max(), ref_grad / ref_grad.abs().max(), **tol)
    plain = linear_token_logprobs(hidden, weight, targets, temperature, backend=backend)
    assert torch.equal(plain, logprobs.detach())


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_equals_token_logprobs_of_the_logits(backend, monkeypatch):
    """Same dtype, same blocks: the fused path gives what token_logprobs gives on hidden @ weight.T (fp32)."""
    monkeypatch.setattr(kernels, "LINEAR_CHUNK_ELEMENTS", 5 * 211)
    hidden, weight, targets = linear_inputs(12, 16, 211, torch.float32, seed=2)
    fused = linear_token_logprobs(hidden, weight, targets, 1.3, backend=backend)
    unfused = token_logprobs(hidden @ weight.T, targets, 1.3, backend=backend)
    torch.testing.assert_close(fused, unfused, atol=1e-6, rtol=1e-6)


def test_linear_gradient_only_where_asked_and_empty_rows():
    hidden, weight, targets = linear_inputs(6, 8, 50, torch.float32)
    W = weight.clone().requires_grad_()
    linear_token_logprobs(hidden, W, targets).sum().backward()  # hidden needs no gradient
    assert W.grad is not None and torch.isfinite(W.grad).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # ignored: the inputs' dtype decides
        under_autocast = linear_token_logprobs(hidden, weight, targets)
    assert torch.equal(under_autocast, linear_token_logprobs(hidden, weight, targets))
    empty = linear_token_logprobs(hidden[:0], W, targets[:0])
    W.grad = None
    empty.sum().backward()
    assert empty.shape == (0,) and W.grad.eq(0).all()


def test_kernel_out_of_range_target_gives_nan_without_reading_outside():
    """On CUDA the host check is skipped (it is a sync); the kernel itself must then be safe: NaN, not a bad read."""
    logits = torch.randn(3, 70)
    out, _, _ = kernels._triton_forward(logits, torch.tensor([5, 70, -1]), 1.0, False)
    assert torch.isfinite(out[0]) and torch.isnan(out[1:]).all()


def test_linear_torch_backend_memory_is_bounded_by_the_block(monkeypatch):
    N, d, V, rows = 512, 32, 1000, 16
    monkeypatch.setattr(kernels, "LINEAR_CHUNK_ELEMENTS", rows * V)
    monkeypatch.setattr(kernels, "CHUNK_ELEMENTS", rows * V)
    hidden, weight, targets = linear_inputs(N, d, V, torch.float32)
    hidden.requires_grad_(), weight.requires_grad_()
    block_bytes = rows * V * 4        # one block of float32 logits
    grads = (N * d + V * d) * 4       # the gradients of hidden and weight, which any method has to produce
    logits_bytes = N * V * 4          # what hidden @ weight.T materialises: 2 MB here

    def fused():
        linear_token_logprobs(hidden, weight, targets, backend="torch").sum().backward()
        hidden.grad = weight.grad = None

    def unfused():
        token_logprobs(hidden @ weight.T, targets, backend="torch").sum().backward()
        hidden.grad = weight.grad = None

    fused_peak, unfused_peak = peak_cpu_bytes(fused), peak_cpu_bytes(unfused)
    # the block's logits, the log-softmax's float32 temporary and the in-place gradient, at most 3 blocks at once
    bound = grads + 3 * block_bytes + 64 * N
    assert grads < fused_peak <= bound, (fused_peak, bound)
    assert unfused_peak > 2 * logits_bytes  # the measurement does see the logits and their gradient
    with torch.no_grad():  # the reference model's pass: no gradients, only block-sized temporaries
        forward_peak = peak_cpu_bytes(lambda: linear_token_logprobs(hidden, weight, targets, backend="torch"))
    assert forward_peak <= 3 * block_bytes + 64 * N, forward_peak


@pytest.mark.parametrize("call, error, match", [
    (lambda: linear_token_logprobs(torch.zeros(2, 4), torch.zeros(5, 4).bfloat16(), torch.zeros(2, dtype=torch.long)),
     TypeError, "same dtype"),
    (lambda: linear_token_logprobs(torch.zeros(2, 4), torch.zeros(5, 3), torch.zeros(2, dtype=torch.long)),
     ValueError, r"\(V, d\)"),
    (lambda: linear_token_logprobs(torch.zeros(2, 4), torch.zeros(5, 4), torch.zeros(3, dtype=torch.long)),
     ValueError, "targets shape"),
    (lambda: linear_token_logprobs(torch.zeros(2, 4), torch.zeros(5, 4), torch.tensor([0, 5])), ValueError,
     r"\[0, 5\)"),
    (lambda: linear_token_logprobs(torch.zeros(2, 4), torch.zeros(5, 4), torch.zeros(2, dtype=torch.long), -1.0),
     ValueError, "temperature"),
])
def test_linear_bad_inputs_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_launch_table():
    """8192-wide blocks from 4097 entries, 4 warps up to 65,536 entries and 8 above; one block below; overrides win."""
    assert kernels.launch_config(257) == (512, 1)
    assert kernels.launch_config(50257) == (8192, 4)
    assert kernels.launch_config(151936) == (8192, 8)
