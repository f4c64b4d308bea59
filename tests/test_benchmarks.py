"""benchmarks/gpu.py: the unattended GPU run refuses clearly without CUDA, and every section runs (--smoke, CPU)."""
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_gpu_script(*args):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # interpreted Triton: minutes
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given on a machine without CUDA")
def test_gpu_script_without_cuda_says_so():
    proc = run_gpu_script()
    assert proc.returncode == 1 and proc.stderr.strip().startswith("error:") and "CUDA" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_gpu_script_smoke_runs_every_section():
    proc = run_gpu_script("--smoke")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for heading in ("### Sampler: 2 prompts x 3 samples", "### Sampler: 3 prompts x 2 samples",
                    "### (tokens, V) = (64, 1000)", "### linear_token_logprobs, N = 64", "### Worst absolute error",
                    "### linear_token_logprobs vs float64"):
        assert heading in out, heading
    assert "failed" not in out
    assert out.count("| bfloat16 | gift generate") == 2 and "| float32 | transformers generate |" in out
    assert "| fused linear_token_logprobs (torch) |" in out


def test_rl_step_benchmark_runs_its_documented_cpu_check():
    """benchmarks/rl_step.py: the CPU check command of its docstring runs with train.py's rl_step as it is now."""
    path = os.path.join(ROOT, "benchmarks", "rl_step.py")
    with open(path) as f:
        command = next(line for line in f if line.strip().startswith("python benchmarks/rl_step.py --preset nano"))
    argv = command.split("#")[0].split()[2:]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, path, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "step 2: rollout" in proc.stdout and "loss nan" not in proc.stdout
    assert "nan GiB" not in proc.stdout and " 0M parameters" not in proc.stdout and "0.13M parameters" in proc.stdout
    bad = subprocess.run([sys.executable, path, "--preset", "nano", "--prompts", "3", "--device", "cpu"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "divisible by --minibatches" in bad.stderr
    if not torch.cuda.is_available():  # the default shape is a GPU benchmark: one line on a CPU, before any work
        refused = subprocess.run([sys.executable, path], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and refused.stderr.strip().startswith("error: benchmarks/rl_step.py is a GPU")
        assert "\n" not in refused.stderr.strip()


def test_memory_benchmark_counts_what_backward_keeps_and_the_options_cut_it():
    """benchmarks/memory.py's measurement on a small shape: checkpointing keeps less for backward than not, LoRA trains
    a small fraction of the parameters, and the per-layer fit from 1-2 layers predicts 3 layers."""
    from benchmarks import memory

    plain = memory.measure("micro", 64, 0, False, layers=(1, 2))
    ckpt = memory.measure("micro", 64, 0, True, layers=(1, 2))
    lora = memory.measure("micro", 64, 4, True, layers=(1, 2))
    assert 0 < ckpt[0] < plain[0]  # bytes per token per layer
    assert lora[2] < 0.2 * plain[2]  # trainable parameters per layer
    three = memory.measure("micro", 64, 0, False, layers=(2, 3))
    assert abs(three[0] - plain[0]) <= 0.02 * plain[0]
    assert 7.5 <= memory.optimiser_bytes_per_param("adamw") <= 8.5
