"""Every GPU figure of the speed issue in one unattended run: sampler, log-prob kernel (with a block/warps sweep) and
linear_token_logprobs, as Markdown tables with the device named. About 3 minutes on an H100.

    python benchmarks/gpu.py               # a CUDA machine (exits with one error line without one)
    python benchmarks/gpu.py --smoke       # any machine, tiny shapes, no torch.compile: every code path runs (~1 min)

Sections (random weights throughout; GPT-2 small shape for the sampler, temperature 1):
1. sampler, 8 prompts x 16 samples x 256 new tokens (32-token prompts), fp32 and bf16: gift.sampler.generate with
   per-prompt seeds (as train.py calls it, with a stop token), with and without CUDA graphs, against transformers
   generate in the same dtype; then whether graph and eager decoding sampled the same tokens;
2. sampler at the GSM8K recipe's RL shape, 32 prompts x 8 samples, 150-token prompts + 256 new: seconds, tok/s, peak
   memory;
3. token_logprobs at 4096 x 50257, 16384 x 50257, 8192 x 151936 bf16 (benchmarks/token_logprobs.py's table: eager,
   torch.compile, the chunked torch fallback, Triton; forward GB/s and % of peak, fwd+bwd speed-ups), then the
   Triton kernels alone over a sweep of (BLOCK, num_warps), the table's choice marked;
4. linear_token_logprobs at N = 16384, d = 896, V = 151936 bf16 (Qwen2.5-0.5B's head) against the unfused path
   (hidden @ W.T, then token_logprobs) and eager: fwd+bwd time and peak extra memory.
"""
import argparse
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.token_logprobs import accuracy_table, benchmark_size, median_ms, method_table, peak_extra_bytes  # noqa: E402
from benchmarks.sampler import hf_copy  # noqa: E402
from gift import kernels  # noqa: E402
from gift.model import GPT, GPTConfig, preset  # noqa: E402
from gift.sampler import generate  # noqa: E402

PEAK_GBS = {"H200": 4800.0, "H100 PCIe": 2000.0, "H100": 3350.0, "A100": 2039.0, "L4": 300.0}  # by device name


def device_name(device):
    return torch.cuda.get_device_name() if device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device):
    """(seconds, peak extra bytes) of one call."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    t0 = time.perf_counter()
    fn()
    sync(device)
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() - base if device == "cuda" else float("nan")
    return seconds, peak


# ----------------------------------------------------------------------------------------------------------------
# 1-2. sampler


def sampler_table(model, B, N, prompt_len, new_tokens, device, dtypes, with_hf, repeats):
    g = torch.Generator().manual_seed(1)
    V = model.config.vocab_size
    prompts = torch.randint(0, V - 1, (B, prompt_len), generator=g).tolist()
    stop = V - 1  # train.py stops at <|endoftext|>; random weights rarely emit it, so rows run to the end
    print(f"\n### Sampler: {B} prompts x {N} samples x {new_tokens} new tokens, {prompt_len}-token prompts, "
          f"{device_name(device)}\n")
    print("| dtype | method | seconds | new tokens/s | peak extra GiB | first row's speed-up over it |")
    print("|---|---|---:|---:|---:|---:|")
    new = B * N * new_tokens
    for dtype in dtypes:
        name = str(dtype).replace("torch.", "")
        runs = {
            "gift generate, per-prompt seeds + stop token (as train.py: CUDA graphs on a GPU)": lambda: generate(
                model, prompts, N, new_tokens, seed=list(range(B)), stop_tokens=(stop,), dtype=dtype),
            "the same, decode_graphs=False (eager decode steps)": lambda: generate(
                model, prompts, N, new_tokens, seed=list(range(B)), stop_tokens=(stop,), dtype=dtype,
                decode_graphs=False),
            "gift generate, one int seed, no stop token": lambda: generate(
                model, prompts, N, new_tokens, seed=0, dtype=dtype),
        }
        if with_hf:
            hf = hf_copy(model).to(dtype)
            ids = torch.tensor(prompts, device=device)
            kwargs = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=new_tokens,
                          num_return_sequences=N, attention_mask=torch.ones_like(ids))
            runs["transformers generate"] = lambda: hf.generate(ids, **kwargs)
        results = {}
        for label, fn in runs.items():
            try:
                with torch.inference_mode():
                    if label.startswith("transformers"):
                        hf.generate(ids[:1], **{**kwargs, "attention_mask": torch.ones_like(ids[:1]),
                                                "max_new_tokens": 4})
                    else:
                        generate(model, prompts[:1], 2, 4, seed=0, dtype=dtype)  # warm-up (cuBLAS, allocator)
                    best = min((timed(fn, device) for _ in range(repeats)), key=lambda r: r[0])
            except Exception as error:  # e.g. out of memory: report and go on
                print(f"| {name} | {label} | failed: {type(error).__name__}: {str(error).splitlines()[0][:80]} | | | |")
                continue
            results[label] = best
        first = next(iter(results.values()), None)
        for label, (seconds, peak) in results.items():
            speedup = f"{seconds / first[0]:.2f}x" if first else ""
            print(f"| {name} | {label} | {seconds:.2f} | {new / seconds:,.0f} | {peak / 2**30:.2f} | {speedup} |")
        try:
            with torch.inference_mode():  # the graphs replay the eager step: do they sample the same tokens?
                a, b = (generate(model, prompts, N, new_tokens, seed=list(range(B)), stop_tokens=(stop,),
                                 dtype=dtype, decode_graphs=g) for g in (True, False))
        except Exception as error:
            print(f"\n{name}: graph/eager comparison failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
            continue
        same = sum(x == y for x, y in zip(a.sequences, b.sequences))
        first_diff = [next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), None)
                      for x, y in zip(a.sequences, b.sequences)]
        diverged = [i for i in first_diff if i is not None]
        print(f"\n{name}: CUDA-graph and eager decoding gave identical samples in {same} of {len(a.sequences)} rows"
              + (f"; the others first differ at token {min(diverged)}-{max(diverged)} (float round-off in the logits: "
                 "the padded batch and the windowed attention run other kernels)" if diverged else "") + "\n")
        sys.stdout.flush()
        if with_hf:
            del hf


# ----------------------------------------------------------------------------------------------------------------
# 3. kernel sweep: the Triton kernels alone (no argument checks, no autograd), per (BLOCK, num_warps)


def kernel_sweep(N, V, device, peak_gbs, reps):
    g = torch.Generator(device=device).manual_seed(0)
    logits = (3 * torch.randn(N, V, generator=g, device=device)).to(torch.bfloat16)
    targets = torch.randint(0, V, (N,), generator=g, device=device)
    grad_out = torch.ones(N, device=device)
    grad = torch.empty_like(logits)
    gb = N * V * 2 / 1e9
    table = kernels.launch_config(V)
    print(f"\n### Triton kernels alone, ({N}, {V}) bf16, {device_name(device)}: forward reads {gb:.2f} GB, "
          f"backward reads and writes {2 * gb:.2f} GB\n")
    print("| BLOCK | warps | fwd ms | fwd GB/s | fwd % of peak | bwd ms | bwd GB/s | |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    configs = [(b, w) for b in (2048, 4096, 8192, 16384) for w in (4, 8, 16, 32) if 4 <= b // (32 * w) <= 64]
    rows = []
    try:
        for block, warps in configs:
            kernels.BLOCK_SIZE, kernels.NUM_WARPS = block, warps
            try:
                _, stats, _ = kernels._triton_forward(logits, targets, 1.0, False)
                fwd = median_ms(lambda: kernels._triton_forward(logits, targets, 1.0, False), device, reps)
                bwd = median_ms(lambda: kernels._triton_backward(grad_out, logits, targets, stats, 1.0, out=grad),
                                device, reps)
            except Exception as error:  # e.g. out of registers or shared memory for this config
                print(f"| {block} | {warps} | failed: {type(error).__name__} | | | | | |")
                continue
            rows.append((block, warps, fwd, bwd))
    finally:
        kernels.BLOCK_SIZE = kernels.NUM_WARPS = None
    if not rows:
        return
    best = min(rows, key=lambda r: r[2] + r[3])
    for block, warps, fwd, bwd in rows:
        marks = [m for m, hit in (("table", (block, warps) == table), ("best fwd+bwd", (block, warps, fwd, bwd) == best))
                 if hit]
        print(f"| {block} | {warps} | {fwd:.3f} | {gb / fwd * 1000:.0f} | {100 * gb / fwd * 1000 / peak_gbs:.0f}% | "
              f"{bwd:.3f} | {2 * gb / bwd * 1000:.0f} | {', '.join(marks)} |")
    sys.stdout.flush()


# ----------------------------------------------------------------------------------------------------------------
# 4. linear_token_logprobs against the unfused path


def linear_accuracy(d, V, device, backends):
    """Worst errors of linear_token_logprobs against float64, 64 rows (forward, both gradients, relative to the
    gradient's largest entry), in fp32 and bf16."""
    g = torch.Generator().manual_seed(0)
    hidden, weight = torch.randn(64, d, generator=g), torch.randn(V, d, generator=g) * 3 / math.sqrt(d)
    targets, w_out = torch.randint(0, V, (64,), generator=g), torch.randn(64, generator=g, dtype=torch.float64)
    print(f"\n### linear_token_logprobs vs float64 (64 x {d} @ {d} x {V}, T = 0.7), {device_name(device)}\n")
    print("| dtype | backend | log-prob abs | grad hidden rel | grad weight rel |")
    print("|---|---|---:|---:|---:|")
    for dtype in (torch.float32, torch.bfloat16):
        h64 = hidden.to(dtype).double().requires_grad_()  # float64 of the dtype's values (new leaves)
        w64 = weight.to(dtype).double().requires_grad_()
        ref = torch.log_softmax(h64 @ w64.T / 0.7, -1).gather(-1, targets[:, None]).squeeze(-1)
        (ref * w_out).sum().backward()
        for backend in backends:
            h = hidden.to(device, dtype, copy=True).requires_grad_()
            w = weight.to(device, dtype, copy=True).requires_grad_()
            out = kernels.linear_token_logprobs(h, w, targets.to(device), 0.7, backend=backend)
            (out * w_out.float().to(device)).sum().backward()
            errors = [(out.double().cpu() - ref).abs().max()] + [
                ((x.grad.double().cpu() - r.grad).abs().max() / r.grad.abs().max()) for x, r in ((h, h64), (w, w64))]
            print(f"| {str(dtype).replace('torch.', '')} | {backend} | " + " | ".join(f"{e:.2e}" for e in errors) + " |")


def linear_table(N, d, V, device, reps, with_triton):
    g = torch.Generator(device=device).manual_seed(0)
    hidden = torch.randn(N, d, generator=g, device=device).to(torch.bfloat16).requires_grad_()
    weight = (torch.randn(V, d, generator=g, device=device) * 3 / math.sqrt(d)).to(torch.bfloat16).requires_grad_()
    targets = torch.randint(0, V, (N,), generator=g, device=device)
    backend = "triton" if with_triton else "torch"
    methods = {
        f"unfused: hidden @ W.T, token_logprobs ({backend})":
            lambda: kernels.token_logprobs(hidden @ weight.T, targets, backend=backend),
        "eager: hidden @ W.T, log_softmax(float) + gather":
            lambda: torch.log_softmax((hidden @ weight.T).float(), -1).gather(-1, targets[:, None]).squeeze(-1),
        f"fused linear_token_logprobs ({backend})":
            lambda: kernels.linear_token_logprobs(hidden, weight, targets, backend=backend),
    }
    if with_triton:
        methods["fused linear_token_logprobs (torch, chunked: slow on CUDA)"] = \
            lambda: kernels.linear_token_logprobs(hidden, weight, targets, backend="torch")
    grads_mib = (N * d + V * d) * 2 / 2**20
    print(f"\n### linear_token_logprobs, N = {N}, d = {d}, V = {V}, bf16, {device_name(device)}\n")
    print(f"Peak extra includes the gradients of hidden and weight ({grads_mib:.0f} MiB); the logits would be "
          f"{N * V * 2 / 2**30:.2f} GiB in bf16.\n")
    print("| method | fwd ms | fwd+bwd ms | time vs unfused | peak extra fwd+bwd MiB | memory vs unfused |")
    print("|---|---:|---:|---:|---:|---:|")
    base = None
    for name, method in methods.items():
        def forward():
            with torch.no_grad():
                method()

        def forward_backward():
            method().sum().backward()
            hidden.grad = weight.grad = None

        try:
            r = reps if "slow" not in name else max(1, reps // 5)
            fwd, fwd_bwd = median_ms(forward, device, r), median_ms(forward_backward, device, r)
            peak = peak_extra_bytes(forward_backward, device)
        except Exception as error:
            print(f"| {name} | failed: {type(error).__name__}: {str(error).splitlines()[0][:80]} | | | | |")
            continue
        base = base or (fwd_bwd, peak)
        print(f"| {name} | {fwd:.2f} | {fwd_bwd:.2f} | {fwd_bwd / base[0]:.2f}x | {peak / 2**20:,.0f} | "
              f"{peak / base[1]:.2f}x |")
        sys.stdout.flush()


# ----------------------------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on any device, no torch.compile")
    parser.add_argument("--peak-gbs", type=float, default=None, help="memory bandwidth for the %% columns "
                        "(default: by device name, H100 SXM 3350)")
    parser.add_argument("--only", default="sampler,kernel,sweep,linear", help="comma-separated sections to run")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device != "cuda" and not args.smoke:
        raise SystemExit("error: benchmarks/gpu.py measures GPU figures and no CUDA device is available "
                         "(torch.cuda.is_available() is False); use --smoke to check it runs, or "
                         "benchmarks/token_logprobs.py and benchmarks/sampler.py on a CPU")
    only = set(args.only.split(","))
    name = device_name(device)
    peak_gbs = args.peak_gbs or next((v for k, v in PEAK_GBS.items() if k in name), 3350.0)
    with_triton = kernels.triton is not None and (device == "cuda" or os.environ.get("TRITON_INTERPRET") == "1")
    try:
        import transformers
        hf_version = transformers.__version__
    except ImportError:
        hf_version = None
    print(f"# benchmarks/gpu.py on {name}: torch {torch.__version__}, triton "
          f"{getattr(kernels.triton, '__version__', 'not installed')}, transformers {hf_version or 'not installed'}, "
          f"peak bandwidth taken as {peak_gbs:.0f} GB/s{' (SMOKE: tiny shapes)' if args.smoke else ''}")
    start = time.time()
    dtypes = [torch.float32, torch.bfloat16]

    if "sampler" in only:
        torch.manual_seed(0)
        if args.smoke:
            model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, vocab_size=503, block_size=64)).to(device).eval()
            sampler_table(model, 2, 3, 8, 8, device, dtypes, hf_version is not None, 1)
            sampler_table(model, 3, 2, 15, 8, device, dtypes[:1], False, 1)
        else:
            model = GPT(preset("gpt2")).to(device).eval()
            sampler_table(model, 8, 16, 32, 256, device, dtypes, hf_version is not None, 2)
            sampler_table(model, 32, 8, 150, 256, device, dtypes, hf_version is not None, 1)
        del model
    if "kernel" in only:
        sizes = [(64, 1000), (32, 3000)] if args.smoke else [(4096, 50257), (16384, 50257), (8192, 151936)]
        methods = method_table(device, use_compile=not args.smoke)
        if with_triton and device != "cuda":  # the interpreter: correct, not a timing
            methods["gift triton (interpreted)"] = lambda x, t: kernels.token_logprobs(x, t, backend="triton")
        for N, V in sizes:
            benchmark_size(N, V, torch.bfloat16, device, methods, 3 if args.smoke else 20, peak_gbs)
        accuracy_table(device)  # the launch table's configurations, against float64
    if "sweep" in only and with_triton:
        for N, V in ([(4, 1000)] if args.smoke else [(4096, 50257), (16384, 50257), (8192, 151936)]):
            kernel_sweep(N, V, device, peak_gbs, 1 if args.smoke else 10)
    if "linear" in only:
        N, d, V = (64, 32, 1000) if args.smoke else (16384, 896, 151936)
        if args.smoke:
            kernels.LINEAR_CHUNK_ELEMENTS = 16 * V  # several blocks of rows, as at full size
        linear_table(N, d, V, device, 2 if args.smoke else 10, with_triton)
        linear_accuracy(d, V, device, ["torch", "triton"] if with_triton else ["torch"])
    print(f"\n(total {time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
