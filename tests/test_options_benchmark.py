"""The memory options' own checks: activation offloading (`model.offload_activations`, gift/model.py) gives bit for bit
the gradients of the run without it, with and without gradient checkpointing, keeps the weights where they are and,
under checkpointing, moves exactly the blocks' inputs; and benchmarks/options.py, which times every option, runs
(--smoke)."""
import os
import subprocess
import sys

import pytest
import torch
from torch.nn import functional as F

import gift.model
from gift.lora import add_lora
from gift.model import GPT, GPTConfig
from gift.sampler import generate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
V = 97
GPT2 = dict(n_layer=3, n_head=4, n_embd=64, block_size=48, vocab_size=V)
QWEN2 = dict(n_layer=3, n_head=4, n_kv_head=2, n_embd=64, block_size=48, vocab_size=V, rope_theta=10000.0,
             rmsnorm=True, norm_eps=1e-6, mlp_hidden=96, bias=False, qkv_bias=True, tie_embeddings=False)


def tiny(arch, lora=False, dropout=0.0):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{**arch, "dropout": dropout})).train()
    if lora:
        add_lora(model, rank=4, alpha=8)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_" in name:
                    p.normal_(0, 0.05)
    return model


def loss_and_grads(model, idx, grad_ckpt, offload):
    model.grad_ckpt, model.offload_activations = grad_ckpt, offload
    model.zero_grad(set_to_none=True)
    torch.manual_seed(123)  # the same dropout masks in every run
    loss = F.cross_entropy(model(idx[:, :-1]).reshape(-1, V), idx[:, 1:].reshape(-1))
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.fixture
def host_copies(monkeypatch):
    """Make `_to_host` really copy on a CPU (a clone, as the pinned copy on a GPU is): records each tensor it gets."""
    moved = []

    def copy(t):
        moved.append(t)
        return t.clone()

    monkeypatch.setattr(gift.model, "_to_host", copy)
    return moved


@pytest.mark.parametrize("arch", [GPT2, QWEN2], ids=["gpt2", "qwen2"])
@pytest.mark.parametrize("grad_ckpt", [False, True], ids=["plain", "ckpt"])
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_offloading_gives_bitwise_the_same_gradients(arch, grad_ckpt, lora, host_copies):
    model = tiny(arch, lora, dropout=0.1)
    assert model.offload_activations is False  # off by default
    idx = torch.randint(0, V, (3, 40), generator=torch.Generator().manual_seed(2))
    loss, grads = loss_and_grads(model, idx, grad_ckpt, offload=False)
    assert not host_copies
    loss_off, grads_off = loss_and_grads(model, idx, grad_ckpt, offload=True)
    assert torch.equal(loss_off, loss)
    assert set(grads_off) == set(grads) and all(torch.equal(grads_off[n], grads[n]) for n in grads)
    weights = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    assert host_copies and not any(t.untyped_storage().data_ptr() in weights for t in host_copies)
    if grad_ckpt:  # the checkpoints keep only the blocks' inputs, and those are what moves
        assert [tuple(t.shape) for t in host_copies] == [(3, 39, 64)] * arch["n_layer"]
    else:  # everything the blocks save: far more than their inputs
        assert len(host_copies) > 5 * arch["n_layer"]


@pytest.mark.parametrize("grad_ckpt", [False, True], ids=["plain", "ckpt"])
def test_offloading_on_a_cpu_runs_as_it_is(grad_ckpt):
    """Without the test's copy: on a CPU the saved tensors stay where they are, and the gradients are the same."""
    model = tiny(QWEN2, dropout=0.1)
    idx = torch.randint(0, V, (2, 30), generator=torch.Generator().manual_seed(3))
    loss, grads = loss_and_grads(model, idx, grad_ckpt, offload=False)
    loss_off, grads_off = loss_and_grads(model, idx, grad_ckpt, offload=True)
    assert torch.equal(loss_off, loss) and all(torch.equal(grads_off[n], grads[n]) for n in grads)


def test_offloading_only_where_backward_may_follow(host_copies):
    """Sampling (a KV cache, inference mode) and forwards without grad save nothing: nothing is offloaded."""
    model = tiny(GPT2)
    model.offload_activations = model.grad_ckpt = True
    idx = torch.randint(0, V, (2, 20), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        model(idx)
    generate(model, [[1, 2, 3], [4, 5]], num_samples=2, max_new_tokens=5, seed=0)
    assert not host_copies
    model(idx).sum().backward()
    assert len(host_copies) == GPT2["n_layer"]


def test_options_benchmark_smoke():
    """benchmarks/options.py --smoke: a row per option, each with a positive time ratio (or the nf4 row's note)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "options.py"), "--smoke"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| option | phase | without (s) | with (s) | time ratio |")
    table = {line.split(" | ")[0][2:]: line.strip("| ").split(" | ") for line in lines[1:]}
    for option in ("grad_ckpt", "offload_activations", "grad_ckpt + offload_activations", "micro_batch=2",
                   "sample_chunk=2"):
        assert float(table[option][4]) > 0, table[option]
    quant = [row for name, row in table.items() if name.startswith("quant=nf4")]
    assert len(quant) == 1 and (quant[0][4].startswith("skipped: ") or float(quant[0][4]) > 0)
    bad = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "options.py"), "--repeats", "0"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.strip() == "error: --repeats must be >= 1, got 0"
