"""LoRA (gift/lora.py): logits and adapter gradients against peft on the same weights (Qwen2: every projection,
fused ones included; GPT-2: the unfused ones), the zero start, disabled adapters, merging, what is trainable, the
state-dict round trip, target validation, and sampling through the adapted model."""

import io

import pytest
import torch
from torch.nn import functional as F

from gift.lora import (DEFAULT_TARGETS, LoRALinear, adapters_disabled, add_lora, lora_parameters, merge_lora,
                       merged_state_dict)
from gift.model import GPT, GPTConfig
from gift.sampler import generate

V = 97
GPT2 = dict(n_layer=2, n_head=4, n_embd=64, block_size=48, vocab_size=V)
QWEN2 = dict(n_layer=2, n_head=4, n_kv_head=2, n_embd=64, block_size=48, vocab_size=V, rope_theta=10000.0,
             rmsnorm=True, norm_eps=1e-6, mlp_hidden=96, bias=False, qkv_bias=True, tie_embeddings=False)
ARCHS = pytest.mark.parametrize("arch", [GPT2, QWEN2], ids=["gpt2", "qwen2"])


def tiny(arch, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(**arch)).eval()


def randomize_adapters(model, seed=1, std=0.05):
    """Nonzero A and B, so the adapters change the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lora_parameters(model):
            p.copy_(std * torch.randn(p.shape, generator=g))
    return model


def tokens(shape, seed=2):
    return torch.randint(0, V, shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------------------------
# parity with peft


def peft_lora(hf, rank, alpha, target_modules, **kw):
    peft = pytest.importorskip("peft")
    cfg = peft.LoraConfig(r=rank, lora_alpha=alpha, target_modules=target_modules, lora_dropout=0.0, **kw)
    return peft.get_peft_model(hf, cfg)


def peft_adapters(pm):
    """{module path in the HF model: (A (r, in), B (out, r))} of a peft model."""
    out = {}
    for name, m in pm.named_modules():
        if hasattr(m, "lora_A") and "default" in getattr(m, "lora_A", {}):
            out[name.removeprefix("base_model.model.")] = (m.lora_A["default"].weight, m.lora_B["default"].weight)
    return out


# gift's adapted layer -> the HF projections it stands for, in the order of its parts
QWEN2_MAP = {"attn.c_attn": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
             "attn.c_proj": ("self_attn.o_proj",), "mlp.c_fc": ("mlp.gate_proj", "mlp.up_proj"),
             "mlp.c_proj": ("mlp.down_proj",)}
GPT2_MAP = {"attn.c_proj": ("attn.c_proj",), "mlp.c_fc": ("mlp.c_fc",), "mlp.c_proj": ("mlp.c_proj",)}


def paired(ours, theirs, mapping, hf_layers):
    """[(our LoRALinear, [(A_j, B_j) of peft for each part])] for every adapted layer."""
    pairs = []
    for i in range(ours.config.n_layer):
        for target, projections in mapping.items():
            layer = ours.get_submodule(f"transformer.h.{i}.{target}")
            assert isinstance(layer, LoRALinear) and len(layer.parts) == len(projections)
            pairs.append((layer, [theirs[f"{hf_layers}.{i}.{p}"] for p in projections]))
    return pairs


def copy_adapters(pairs):
    """peft's A_j, B_j into our stacked lora_A (P * r, in) and lora_B (out, r)."""
    with torch.no_grad():
        for layer, parts in pairs:
            layer.lora_A.copy_(torch.cat([A for A, _ in parts]))
            layer.lora_B.copy_(torch.cat([B for _, B in parts]))


def stacked_grads(parts):
    return torch.cat([A.grad for A, _ in parts]), torch.cat([B.grad for _, B in parts])


def check_against_peft(ours, pm, pairs, rank):
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():  # peft's adapters: random A and B (B nonzero, unlike its init)
        for _, parts in pairs:
            for A, B in parts:
                A.copy_(torch.randn(A.shape, generator=g) / rank)
                B.copy_(0.1 * torch.randn(B.shape, generator=g))
    copy_adapters(pairs)
    idx = tokens((3, 40))
    expected = pm(idx).logits
    got = ours(idx)
    err = (got - expected).abs().max().item()
    print(f"peft parity: max |logit difference| {err:.2e}")
    assert err <= 1e-5
    with torch.no_grad(), adapters_disabled(ours):  # the adapters matter: the base is far from both
        assert (ours(idx) - expected).abs().max() > 1e-2

    loss_fn = lambda logits: F.cross_entropy(logits[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1))  # noqa: E731
    loss_fn(expected).backward()
    loss_fn(got).backward()
    worst = 0.0
    for layer, parts in pairs:
        gA, gB = stacked_grads(parts)
        worst = max(worst, (layer.lora_A.grad - gA).abs().max().item(), (layer.lora_B.grad - gB).abs().max().item())
        assert layer.lora_B.grad.abs().max() > 0 and layer.lora_A.grad.abs().max() > 0
    print(f"peft parity: max |adapter gradient difference| {worst:.2e}")
    assert worst <= 1e-5


def test_qwen2_matches_peft_on_every_projection(tmp_path):
    """Qwen2 has q, k, v, gate, up as separate Linear layers in transformers: peft's rank-r adapters on all seven
    projections equal ours on our four (fused) layers, logits and gradients."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.Qwen2Config(vocab_size=V, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=48,
                                   rms_norm_eps=1e-6, tie_word_embeddings=False)
    torch.manual_seed(0)
    hf = transformers.Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.05 * torch.randn_like(p))
    hf.save_pretrained(tmp_path, safe_serialization=True)
    ours = add_lora(GPT.from_pretrained(str(tmp_path)).eval(), rank=4, alpha=8)
    pm = peft_lora(hf, 4, 8, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]).eval()
    assert sum(p.numel() for p in lora_parameters(ours)) == pm.get_nb_trainable_parameters()[0]
    check_against_peft(ours, pm, paired(ours, peft_adapters(pm), QWEN2_MAP, "model.layers"), rank=4)


def test_gpt2_matches_peft_on_its_unfused_layers(tmp_path):
    """GPT-2's c_attn is one fused Conv1D in transformers, where peft puts one adapter on all of q, k, v; ours puts one
    on each (as loralib's MergedLinear does), so the comparison takes the other three layers (Conv1D, so
    fan_in_fan_out)."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=48, vocab_size=V)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.05 * torch.randn_like(p))
    hf.save_pretrained(tmp_path, safe_serialization=True)
    ours = add_lora(GPT.from_pretrained(str(tmp_path)).eval(), rank=3, alpha=5,
                    targets=("attn.c_proj", "mlp.c_fc", "mlp.c_proj"))
    assert not isinstance(ours.transformer.h[0].attn.c_attn, LoRALinear)
    pm = peft_lora(hf, 3, 5, ["c_proj", "c_fc"], fan_in_fan_out=True).eval()
    check_against_peft(ours, pm, paired(ours, peft_adapters(pm), GPT2_MAP, "transformer.h"), rank=3)


# ---------------------------------------------------------------------------------------------------------------
# our own contract


@ARCHS
def test_zero_b_gives_the_base_and_disabled_adapters_give_the_base(arch):
    idx = tokens((2, 30))
    with torch.no_grad():
        base = tiny(arch)(idx)
        model = add_lora(tiny(arch), rank=4)
        assert torch.equal(model(idx), base)  # B = 0 at the start: exactly the base model
        randomize_adapters(model)
        adapted = model(idx)
        assert (adapted - base).abs().max() > 1e-3
        with adapters_disabled(model) as m:
            assert m is model and torch.equal(model(idx), base)
        assert torch.equal(model(idx), adapted)  # back on after the block


def test_disabled_adapters_come_back_on_after_an_exception():
    model = randomize_adapters(add_lora(tiny(GPT2), rank=2))
    with pytest.raises(RuntimeError), adapters_disabled(model):
        raise RuntimeError
    assert not any(m.disabled for m in model.modules() if isinstance(m, LoRALinear))


@ARCHS
def test_only_adapters_are_trainable_and_get_gradients(arch):
    model = add_lora(tiny(arch), rank=4, alpha=8).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    adapters = lora_parameters(model)
    assert {id(p) for p in trainable} == {id(p) for p in adapters}
    C, L, r = arch["n_embd"], arch["n_layer"], 4
    hidden = arch.get("mlp_hidden") or 4 * C
    qkv_parts, fc_parts = 3, 2 if arch.get("mlp_hidden") else 1
    qkv_out = C + 2 * C * arch.get("n_kv_head", arch["n_head"]) // arch["n_head"]
    fc_out = (2 if arch.get("mlp_hidden") else 1) * hidden
    per_layer = (r * (qkv_parts * C + qkv_out) + r * (C + C) + r * (fc_parts * C + fc_out) + r * (hidden + C))
    assert sum(p.numel() for p in adapters) == L * per_layer
    assert not isinstance(model.lm_head, LoRALinear) and not model.transformer.wte.weight.requires_grad
    randomize_adapters(model)
    idx = tokens((2, 20))
    F.cross_entropy(model(idx)[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1)).backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == ("lora_" in name), name


@ARCHS
def test_merge_gives_the_same_logits(arch):
    idx = tokens((2, 30))
    model = randomize_adapters(add_lora(tiny(arch), rank=4, alpha=2))
    with torch.no_grad():
        adapted = model(idx)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        state = merged_state_dict(model)
        assert not any("lora_" in k for k in state)
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # untouched
        plain = GPT(GPTConfig(**arch)).eval()
        plain.load_state_dict(state)  # strict: exactly a plain model's keys
        assert (plain(idx) - adapted).abs().max() <= 1e-5
        merged = merge_lora(model)
        assert merged is model and not any(isinstance(m, LoRALinear) for m in model.modules())
        assert type(model.transformer.h[0].attn.c_attn) is torch.nn.Linear
        assert set(model.state_dict()) == set(plain.state_dict())
        assert (model(idx) - adapted).abs().max() <= 1e-5
        assert torch.equal(model(idx), plain(idx))


@ARCHS
def test_state_dict_round_trip(arch):
    idx = tokens((2, 30))
    model = randomize_adapters(add_lora(tiny(arch), rank=4, alpha=6))
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    fresh = add_lora(tiny(arch, seed=7), rank=4, alpha=6)  # other base weights, other A
    fresh.load_state_dict(torch.load(buf))
    with torch.no_grad():
        assert torch.equal(fresh(idx), model(idx))
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
    # the base layers keep their names: a checkpoint of the base model loads into an adapted one
    base = tiny(arch, seed=3)
    target = add_lora(tiny(arch, seed=4), rank=2)
    result = target.load_state_dict(base.state_dict(), strict=False)
    assert not result.unexpected_keys and all("lora_" in k for k in result.missing_keys) and result.missing_keys
    with torch.no_grad():
        assert torch.equal(target(idx), base(idx))


def test_targets_are_validated_and_chosen():
    with pytest.raises(ValueError, match=r"unknown LoRA targets \['q_proj', 'lm_head'\]"):
        add_lora(tiny(GPT2), rank=2, targets=("attn.c_attn", "q_proj", "lm_head"))
    with pytest.raises(ValueError, match="rank"):
        add_lora(tiny(GPT2), rank=0)
    model = add_lora(tiny(QWEN2), rank=2, targets=("attn.c_attn", "mlp.c_proj"))
    block = model.transformer.h[1]
    assert isinstance(block.attn.c_attn, LoRALinear) and isinstance(block.mlp.c_proj, LoRALinear)
    assert type(block.attn.c_proj) is torch.nn.Linear and type(block.mlp.c_fc) is torch.nn.Linear
    assert block.attn.c_attn.parts == (64, 32, 32)  # q: 4 heads, k and v: 2 heads of 16
    assert block.attn.c_attn.lora_A.shape == (6, 64) and block.attn.c_attn.lora_B.shape == (128, 2)
    with pytest.raises(ValueError, match="already has LoRA"):
        add_lora(model, rank=2)
    merge_lora(model)
    add_lora(model, rank=2)  # merged, new adapters can start
    assert set(DEFAULT_TARGETS) == {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"}


def test_default_alpha_is_rank_and_dropout_is_off_in_eval():
    layer = add_lora(tiny(GPT2), rank=8).transformer.h[0].mlp.c_fc
    assert layer.scale == 1.0
    idx = tokens((2, 20))
    a = randomize_adapters(add_lora(tiny(GPT2), rank=4, dropout=0.5)).eval()
    b = randomize_adapters(add_lora(tiny(GPT2), rank=4)).eval()
    with torch.no_grad():
        assert torch.equal(a(idx), b(idx))


@ARCHS
@pytest.mark.parametrize("decode_graphs", [False, True], ids=["plain", "static"])
def test_greedy_sampling_with_adapters_equals_the_merged_model(arch, decode_graphs):
    model = randomize_adapters(add_lora(tiny(arch), rank=4), std=0.2)
    merged = GPT(GPTConfig(**arch)).eval()
    merged.load_state_dict(merged_state_dict(model))
    prompts = [[5, 9, 2], [7, 3, 1, 8, 8, 2, 4], [11]]
    kw = dict(num_samples=2, max_new_tokens=12, temperature=0, decode_graphs=decode_graphs)
    out = generate(model, prompts, **kw)
    assert out.sequences == generate(merged, prompts, **kw).sequences
    with adapters_disabled(model):
        base = generate(model, prompts, **kw).sequences
    assert base == generate(tiny(arch), prompts, **kw).sequences and base != out.sequences
    # a copy cast to another dtype (as --dtype=bfloat16 samples) keeps its adapters; the caller's model is untouched
    generate(model, prompts, **{**kw, "temperature": 1.0}, dtype=torch.float64, seed=0)
    assert next(model.parameters()).dtype == torch.float32 and isinstance(model.transformer.h[0].mlp.c_fc, LoRALinear)
    assert lora_parameters(model)[0].requires_grad
