"""Benchmark token log-probabilities: eager log_softmax + gather, torch.compile of it, gift's chunked torch fallback
and gift's Triton kernel. Prints Markdown tables: forward and forward+backward time, forward bandwidth, peak extra
memory, and the worst errors against a float64 reference.

    python benchmarks/token_logprobs.py                      # CPU: torch paths at small sizes (about a minute)
    python benchmarks/token_logprobs.py --sizes 4096x50257,16384x50257,8192x151936   # the issue's sizes (default on CUDA)
    TRITON_INTERPRET=1 python benchmarks/token_logprobs.py   # CPU, and the accuracy table includes the interpreted kernel

On CUDA, times come from CUDA events (median of --reps) and memory from torch.cuda.max_memory_allocated; on CPU from
time.perf_counter and from torch.profiler's allocation events. "Peak extra" is the most memory in use at once above
what existed before the call (the logits and targets), including the gradient of the logits that backward must write.
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gift import kernels  # noqa: E402


def eager(logits, targets):
    """The naive version: a full float32 log-softmax, (N, V), kept by autograd for backward."""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)


def method_table(device, use_compile):
    methods = {"eager log_softmax+gather": eager}
    if use_compile:
        methods["torch.compile(eager)"] = torch.compile(eager)
    methods["gift torch (chunked)"] = lambda x, t: kernels.token_logprobs(x, t, backend="torch")
    if device == "cuda" and kernels.triton is not None:
        methods["gift triton"] = lambda x, t: kernels.token_logprobs(x, t, backend="triton")
    return methods


def median_ms(fn, device, reps):
    """Median wall time of fn() in milliseconds, after two warm-up calls (which also trigger any compilation)."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(reps):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def peak_cpu_bytes(fn):
    """Peak CPU memory (bytes allocated minus freed) while fn() runs, from torch.profiler's allocation events.

    Every allocation and free the CPU allocator reports is one event with a signed size; the running sum in time
    order is the memory in use above the starting point, and its maximum is the peak, temporaries inside ops included.
    (tests/test_kernels.py uses this too, to test the torch fallback's memory bound.)
    """
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        stack.extend(event.children)
        if event.typed[0] == _EventType.Allocation:
            events.append((event.start_time_ns, event.typed[1].alloc_size))
    in_use = peak = 0
    for _, size in sorted(events):
        in_use += size
        peak = max(peak, in_use)
    return peak


def peak_extra_bytes(fn, device):
    """Most memory in use at once while fn() runs, above what was in use before it."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    return peak_cpu_bytes(fn)


def benchmark_size(N, V, dtype, device, methods, reps, peak_gbs):
    g = torch.Generator(device=device).manual_seed(0)
    logits = (3 * torch.randn(N, V, generator=g, device=device)).to(dtype).requires_grad_()
    targets = torch.randint(0, V, (N,), generator=g, device=device)
    read_gb = N * V * logits.element_size() / 1e9  # forward reads the logits once
    grad_mib = N * V * logits.element_size() / 2**20
    print(f"\n### (tokens, V) = ({N}, {V}), {str(dtype).replace('torch.', '')}, {device_name(device)}\n")
    print(f"Peak extra includes the {grad_mib:.0f} MiB gradient of the logits. Forward reads {read_gb:.2f} GB.\n")
    print("| method | fwd ms | fwd GB/s | fwd+bwd ms | fwd+bwd vs eager | vs compile | peak extra fwd+bwd MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    baseline = {}  # fwd+bwd ms of eager and torch.compile, for the speedup columns
    for name, method in methods.items():
        def forward():
            with torch.no_grad():
                method(logits, targets)

        def forward_backward():
            method(logits, targets).sum().backward()
            logits.grad = None

        try:
            fwd = median_ms(forward, device, reps)
            fwd_bwd = median_ms(forward_backward, device, reps)
            peak = peak_extra_bytes(forward_backward, device)
        except Exception as error:  # e.g. torch.compile without a working C++ compiler, or out of memory
            print(f"| {name} | failed: {type(error).__name__}: {str(error).splitlines()[0][:80]} | | | | | |")
            continue
        for b in ("eager", "torch.compile"):
            if name.startswith(b):
                baseline[b] = fwd_bwd
        speedups = [f"{baseline[b] / fwd_bwd:.2f}x" if b in baseline else "n/a" for b in ("eager", "torch.compile")]
        gbs = read_gb / (fwd / 1000)
        bandwidth = f"{gbs:.1f}" + (f" ({100 * gbs / peak_gbs:.0f}%)" if device == "cuda" else "")
        print(f"| {name} | {fwd:.2f} | {bandwidth} | {fwd_bwd:.2f} | {speedups[0]} | {speedups[1]} | "
              f"{peak / 2**20:.1f} |")
        sys.stdout.flush()


def accuracy_table(device):
    """Worst absolute errors against float64 log_softmax + gather, on random rows plus a few hard ones."""
    backends = ["torch"]
    if kernels.triton is not None and (device == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"):
        backends.append("triton")
    V, temperature = 50257, 0.7
    g = torch.Generator().manual_seed(0)
    base = 5 * torch.randn(8, V, generator=g)
    targets = torch.randint(0, V, (8,), generator=g)
    base[0, torch.rand(V, generator=g) < 0.5] = float("-inf")  # masked vocabulary
    base[0, targets[0]] = 1.0
    base[1] = 65504.0 - 32.0 * torch.randint(0, 16, (V,), generator=g)  # fp16 near its limit
    base[2, targets[2]] = -300.0  # the target's probability underflows float32
    weights = torch.randn(8, dtype=torch.float64, generator=g)
    print(f"\n### Worst absolute error vs float64 log_softmax+gather (8 x {V}, T = {temperature}, 3 hard rows)\n")
    print("| dtype | backend | log-prob | entropy | grad |")
    print("|---|---|---:|---:|---:|")
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        logits = base.to(dtype)
        x64 = logits.double().requires_grad_()
        all_logprobs = torch.log_softmax(x64 / temperature, -1)
        ref = all_logprobs.gather(-1, targets[:, None]).squeeze(-1)
        (ref * weights).sum().backward()
        ref_entropy = torch.special.entr(all_logprobs.exp()).sum(-1)
        for backend in backends:
            x = logits.to(device, copy=True).requires_grad_()
            logprobs, entropy = kernels.token_logprobs_and_entropy(x, targets.to(device), temperature, backend=backend)
            (logprobs * weights.float().to(device)).sum().backward()
            errors = [(logprobs.double().cpu() - ref).abs().max(),
                      (entropy.double().cpu() - ref_entropy).abs().max(),
                      (x.grad.double().cpu() - x64.grad).abs().max()]
            name = str(dtype).replace("torch.", "")
            print(f"| {name} | {backend} | " + " | ".join(f"{e:.2e}" for e in errors) + " |")


def device_name(device):
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"CPU ({torch.get_num_threads()} threads)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default=None, help="comma-separated NxV; default: the issue's sizes on CUDA, "
                                                       "256x50257,128x151936 on CPU")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (default 20 on CUDA, 3 on CPU)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--peak-gbs", type=float, default=3350.0, help="the GPU's memory bandwidth, for the %% "
                                                                        "column (H100 SXM: 3350, H100 PCIe: 2000)")
    parser.add_argument("--block", type=int, default=kernels.BLOCK_SIZE, help="Triton BLOCK_SIZE to try (default: the table, kernels.launch_config)")
    parser.add_argument("--warps", type=int, default=kernels.NUM_WARPS, help="Triton num_warps to try (default: the table)")
    args = parser.parse_args()

    device = args.device
    default_sizes = "4096x50257,16384x50257,8192x151936" if device == "cuda" else "256x50257,128x151936"
    sizes = [tuple(int(n) for n in size.split("x")) for size in (args.sizes or default_sizes).split(",")]
    reps = args.reps or (20 if device == "cuda" else 3)
    kernels.BLOCK_SIZE, kernels.NUM_WARPS = args.block, args.warps
    print(f"torch {torch.__version__}, device: {device_name(device)}, "
          f"triton: {getattr(kernels.triton, '__version__', 'not installed')}")
    if device != "cuda":
        print("No GPU: the Triton kernel is not timed (it needs CUDA; the interpreter is a test tool, not a timing).")
    methods = method_table(device, not args.no_compile)
    for N, V in sizes:
        benchmark_size(N, V, getattr(torch, args.dtype), device, methods, reps, args.peak_gbs)
    accuracy_table(device)


if __name__ == "__main__":
    main()
