"""Gradient checkpointing (`model.grad_ckpt`, gift/model.py): the same loss and the same gradients as the plain
forward (GPT-2 and Qwen2 shapes, with dropout, with LoRA adapters), the blocks really recomputed in backward, and
never with a KV cache or without grad: sampling is unaffected."""

import pytest
import torch
from torch.nn import functional as F

from gift.lora import add_lora, lora_parameters
from gift.model import GPT, GPTConfig, KVCache
from gift.sampler import generate

V = 97
GPT2 = dict(n_layer=3, n_head=4, n_embd=64, block_size=48, vocab_size=V)
QWEN2 = dict(n_layer=3, n_head=4, n_kv_head=2, n_embd=64, block_size=48, vocab_size=V, rope_theta=10000.0,
             rmsnorm=True, norm_eps=1e-6, mlp_hidden=96, bias=False, qkv_bias=True, tie_embeddings=False)
ARCHS = pytest.mark.parametrize("arch", [GPT2, QWEN2], ids=["gpt2", "qwen2"])


def tiny(arch, lora=False, **overrides):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{**arch, **overrides}))
    if lora:
        add_lora(model, rank=4, alpha=8)
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in lora_parameters(model):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return model


def loss_and_grads(model, idx, ckpt):
    model.grad_ckpt = ckpt
    model.zero_grad(set_to_none=True)
    torch.manual_seed(123)  # the same dropout masks in both runs (checkpointing replays them in the recompute)
    loss = F.cross_entropy(model(idx[:, :-1]).reshape(-1, V), idx[:, 1:].reshape(-1))
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def count_block_calls(model):
    calls = []
    for block in model.transformer.h:
        # a pre-hook: the recompute stops as soon as it has what backward needs, before a forward hook would run
        block.register_forward_pre_hook(lambda *_: calls.append(1))
    return calls


@ARCHS
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("dropout", [0.0, 0.1], ids=["nodrop", "dropout"])
def test_checkpointing_gives_the_same_loss_and_gradients(arch, lora, dropout):
    model = tiny(arch, lora, dropout=dropout).train()
    assert model.grad_ckpt is False  # off by default
    idx = torch.randint(0, V, (3, 40), generator=torch.Generator().manual_seed(2))
    calls = count_block_calls(model)
    loss, grads = loss_and_grads(model, idx, ckpt=False)
    assert len(calls) == arch["n_layer"]
    calls.clear()
    loss_ck, grads_ck = loss_and_grads(model, idx, ckpt=True)
    assert len(calls) == 2 * arch["n_layer"]  # each block ran again in backward
    assert torch.equal(loss_ck, loss)
    expected = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(grads) == set(grads_ck) == expected and (not lora or all("lora_" in n for n in expected))
    worst = max((grads_ck[n] - grads[n]).abs().max().item() for n in grads)
    print(f"grad_ckpt: max |gradient difference| {worst:.2e}")
    assert worst <= 1e-6, f"max |gradient difference| {worst:.2e}"


@ARCHS
def test_checkpoint_only_where_backward_may_follow(arch, monkeypatch):
    import gift.model

    used = []
    real = gift.model.checkpoint
    monkeypatch.setattr(gift.model, "checkpoint", lambda *a, **kw: (used.append(1), real(*a, **kw))[1])
    model = tiny(arch).eval()
    model.grad_ckpt = True
    idx = torch.randint(0, V, (2, 20), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        plain = model(idx)
    assert not used
    # with a cache the blocks run plainly even with grad enabled (they write the cache in place)
    cache = KVCache(model.config, batch_size=2, max_len=24)
    cache.valid[:, :20] = True
    cached = model(idx, cache=cache)
    assert not used and torch.allclose(cached, plain, atol=1e-5)
    trained = model(idx)
    assert len(used) == arch["n_layer"] and torch.equal(trained.detach(), plain)


@ARCHS
@pytest.mark.parametrize("decode_graphs", [False, True], ids=["plain", "static"])
def test_sampling_is_unaffected(arch, decode_graphs):
    prompts = [[5, 9, 2], [7, 3, 1, 8, 8, 2, 4]]
    kw = dict(num_samples=3, max_new_tokens=10, temperature=1.0, seed=[4, 5], decode_graphs=decode_graphs)
    model = tiny(arch, lora=True)
    expected = generate(model, prompts, **kw)
    model.grad_ckpt = True
    got = generate(model, prompts, **kw)
    assert got.sequences == expected.sequences and torch.equal(got.logprobs, expected.logprobs)
