"""The 4-bit base under LoRA (gift/quant.py, --quant=nf4), on the CPU with the real bitsandbytes: the storage (4.5
bits a weight, each weight within NF4's rounding of itself), the logits' error against the full-precision model,
adapter gradients against peft's QLoRA on the same 4-bit bytes, the frozen reference (adapters off), merging into
plain layers, the state-dict round trip through torch.load(weights_only=True), deterministic bytes, a bit-identical
resume, sampling with the KV cache, gradient checkpointing and autocast, and the refusals."""

import copy
import io
import sys

import pytest
import torch
from torch.nn import functional as F

from gift import quant
from gift.lora import LoRALinear, adapters_disabled, add_lora, lora_parameters, merge_lora, merged_state_dict
from gift.model import GPT, GPTConfig
from gift.sampler import generate
from tests.test_lora import QWEN2_MAP, copy_adapters, paired, peft_adapters, stacked_grads

bnb = pytest.importorskip("bitsandbytes")  # requirements-dev.txt installs it; --quant=nf4 needs it

V = 97
# the test_lora shapes, with the Qwen2 MLP 128 wide: a 4-bit layer's rows must be whole blocks of 64 (gift/quant.py)
GPT2 = dict(n_layer=2, n_head=4, n_embd=64, block_size=48, vocab_size=V)
QWEN2 = dict(n_layer=2, n_head=4, n_kv_head=2, n_embd=64, block_size=48, vocab_size=V, rope_theta=10000.0,
             rmsnorm=True, norm_eps=1e-6, mlp_hidden=128, bias=False, qkv_bias=True, tie_embeddings=False)
ARCHS = pytest.mark.parametrize("arch", [GPT2, QWEN2], ids=["gpt2", "qwen2"])
NF4_HALF_GAP = 0.152  # half the widest gap between NF4's levels (-1 and -0.6962): the most a weight moves, over absmax


def tiny(arch, seed=0):
    """A tiny model with perturbed weights (not just the N(0, 0.02) init; biases and norms non-trivial)."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**arch)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def qlora(arch, seed=0, rank=4, alpha=8, adapters=True):
    model = quant.quantize_base(add_lora(tiny(arch, seed), rank=rank, alpha=alpha))
    if adapters:  # nonzero A and B, so the adapters change the logits
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for p in lora_parameters(model):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return model


def tokens(shape, seed=2):
    return torch.randint(0, V, shape, generator=torch.Generator().manual_seed(seed))


def nf4_layers(model):
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LoRALinear)]


# ---------------------------------------------------------------------------------------------------------------
# storage and error


@ARCHS
def test_weights_take_4_5_bits_and_stay_within_nf4_rounding(arch):
    base = tiny(arch)
    model = qlora(arch, adapters=False)
    layers = nf4_layers(model)
    assert len(layers) == 4 * arch["n_layer"]
    for name, layer in layers:
        W = base.get_submodule(name).weight.detach()  # (out, in), the full-precision weight it was quantised from
        assert layer.weight is None and layer.nf4.packed.dtype == torch.uint8
        assert layer.nf4.packed.numel() == W.numel() // 2  # two 4-bit indices a byte
        blocks = W.flatten().view(-1, 64)
        absmax = layer.nf4.absmax.view(torch.float32)
        assert torch.equal(absmax, blocks.abs().amax(dim=1))  # each block's scale is its largest |w|
        err = (layer.nf4.dequantize() - W).flatten().view(-1, 64).abs()
        assert (err <= NF4_HALF_GAP * absmax[:, None]).all()  # each weight at its nearest level
        assert (err > 0).any()
    state = model.state_dict()
    assert not any(k.endswith(("c_attn.weight", "c_fc.weight", "c_proj.weight")) for k in state)
    assert torch.equal(state["transformer.wte.weight"], base.transformer.wte.weight)  # the embedding is untouched
    assert isinstance(model.lm_head, torch.nn.Linear) and torch.equal(model.lm_head.weight, base.lm_head.weight)
    if arch is GPT2:
        assert model.lm_head.weight is model.transformer.wte.weight  # still tied

    # bytes: 0.5625 a quantised weight (4 bits + a float32 absmax per 64), 4 before; the rest as it was
    nbytes, weights = quant.quantized_bytes(model)
    assert weights == sum(l.in_features * l.out_features for _, l in layers) and nbytes == 0.5625 * weights
    size = lambda sd: sum(t.numel() * t.element_size() for t in sd.values())  # noqa: E731
    base_sd, lora_sd = base.state_dict(), {k: v for k, v in state.items() if "lora_" in k}
    assert size(state) - size(lora_sd) == size(base_sd) - (4 - 0.5625) * weights

    # the error: NF4 moves the weights by 9.2% of their size (relative RMS, these Gaussian weights; 0.0915-0.0923 over
    # seeds 0-9), and the logits by 1.6-2.1 times that through GPT-2's two blocks, 2.0-2.4 times through Qwen2's
    # (0.148-0.188 and 0.179-0.217 relative RMS, seeds 0-9). Bounds: 0.1 and 3 times the weights' error.
    idx = tokens((3, 40))
    with torch.no_grad():
        exact, got = base(idx), model(idx)
        num = sum((l.nf4.dequantize() - base.get_submodule(n).weight).square().sum() for n, l in layers)
        weights_rel = (num / sum(base.get_submodule(n).weight.square().sum() for n, _ in layers)).sqrt().item()
    rel = ((got - exact).norm() / exact.norm()).item()
    print(f"nf4 vs fp32: relative error of the weights {weights_rel:.4f}, of the logits {rel:.4f}")
    assert 0.05 < weights_rel <= 0.1 and 0 < rel <= 3 * weights_rel


def test_quantising_is_deterministic_and_survives_a_cast():
    a, b = qlora(QWEN2, adapters=False), qlora(QWEN2, adapters=False)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa if "nf4." in k)  # the same bytes
    # a cast copy (model.to(bfloat16), the sampler's --dtype=bfloat16 copy) keeps the 4-bit weights exact: absmax is
    # held as its bits
    half = copy.deepcopy(a).to(torch.bfloat16)
    assert all(torch.equal(t, sa[k]) for k, t in half.state_dict().items() if "nf4." in k)
    layer = half.transformer.h[0].mlp.c_fc
    assert torch.equal(layer.nf4.dequantize(torch.bfloat16), a.transformer.h[0].mlp.c_fc.nf4.dequantize(torch.bfloat16))


# ---------------------------------------------------------------------------------------------------------------
# parity with peft's QLoRA


def test_adapter_gradients_match_peft_qlora(tmp_path):
    """transformers loads the same Qwen2 weights in 4 bits (bitsandbytes' Linear4bit: NF4, block 64, no double
    quantisation, float32 compute) and peft puts rank-4 adapters on all seven projections. Both sides hold the same
    4-bit bytes (checked), so the logits and the adapters' gradients agree to float32 round-off: within 1e-5 (we
    measured 1e-6 and 1e-7), where the full-precision base's gradients differ from them by about 0.05."""
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    cfg = transformers.Qwen2Config(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=48,
                                   rms_norm_eps=1e-6, tie_word_embeddings=False)
    torch.manual_seed(0)
    hf = transformers.Qwen2ForCausalLM(cfg)
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.05 * torch.randn_like(p))
    hf.save_pretrained(tmp_path, safe_serialization=True)
    bits = transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                           bnb_4bit_compute_dtype=torch.float32, bnb_4bit_use_double_quant=False)
    hf4 = transformers.Qwen2ForCausalLM.from_pretrained(tmp_path, quantization_config=bits, dtype=torch.float32,
                                                        device_map="cpu")
    ours = quant.quantize_base(add_lora(GPT.from_pretrained(str(tmp_path)), rank=4, alpha=8))
    full = add_lora(GPT.from_pretrained(str(tmp_path)), rank=4, alpha=8)  # the same adapters on the fp32 base
    for i in range(2):  # our fused layers hold exactly transformers' separate layers' bytes, side by side
        theirs, mine = hf4.model.layers[i], ours.transformer.h[i]
        for target, projections in QWEN2_MAP.items():
            linears = [theirs.get_submodule(p) for p in projections]
            nf4 = mine.get_submodule(target).nf4
            assert all(isinstance(m, bnb.nn.Linear4bit) for m in linears)
            assert torch.equal(nf4.packed, torch.cat([m.weight.data for m in linears]))
            assert torch.equal(nf4.absmax.view(torch.float32),
                               torch.cat([m.weight.quant_state.absmax for m in linears]))
    pm = peft.get_peft_model(hf4, peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    # training mode on both sides (as in training): in eval mode bitsandbytes' Linear4bit repacks its weight for a
    # bfloat16 CPU kernel on CPUs with AVX512-BF16, a different computation
    pm.train(), ours.train(), full.train()
    pairs = paired(ours, peft_adapters(pm), QWEN2_MAP, "model.layers")
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for _, parts in pairs:
            for A, B in parts:
                A.copy_(torch.randn(A.shape, generator=g) / 4)
                B.copy_(0.1 * torch.randn(B.shape, generator=g))
    copy_adapters(pairs)
    full_pairs = paired(full, peft_adapters(pm), QWEN2_MAP, "model.layers")
    copy_adapters(full_pairs)
    idx = tokens((3, 40))
    expected, got = pm(idx).logits, ours(idx)
    err = (got - expected).abs().max().item()
    print(f"peft QLoRA parity: max |logit difference| {err:.2e}")
    assert err <= 1e-5

    loss_fn = lambda logits: F.cross_entropy(logits[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1))  # noqa: E731
    for logits in (expected, got, full(idx)):
        loss_fn(logits).backward()
    worst = far = 0.0
    for (layer, parts), (full_layer, _) in zip(pairs, full_pairs):
        gA, gB = stacked_grads(parts)
        assert layer.lora_A.grad.abs().max() > 0 and layer.lora_B.grad.abs().max() > 0
        worst = max(worst, (layer.lora_A.grad - gA).abs().max().item(), (layer.lora_B.grad - gB).abs().max().item())
        far = max(far, (full_layer.lora_A.grad - gA).abs().max().item(),
                  (full_layer.lora_B.grad - gB).abs().max().item())
    print(f"peft QLoRA parity: max |adapter gradient difference| {worst:.2e} (fp32 base: {far:.2e})")
    assert worst <= 1e-5 and far > 1e-3  # a test that would tell the 4-bit base from the full-precision one


# ---------------------------------------------------------------------------------------------------------------
# the contract train.py relies on


def dequantised_base(model, arch):
    """A plain GPT whose adapted weights are the 4-bit ones dequantised (float32): what the base should compute."""
    plain = GPT(GPTConfig(**arch)).eval()
    state = {k: v for k, v in model.state_dict().items() if "lora_" not in k and "nf4." not in k}
    for name, layer in nf4_layers(model):
        state[name + ".weight"] = layer.nf4.dequantize(torch.float32)
    plain.load_state_dict(state)
    return plain


@ARCHS
def test_adapters_disabled_give_the_quantised_base(arch):
    model = qlora(arch)
    idx = tokens((2, 30))
    with torch.no_grad():
        adapted = model(idx)
        with adapters_disabled(model):
            frozen = model(idx)
        expected = dequantised_base(model, arch)(idx)
        full = tiny(arch)(idx)
    assert (frozen - expected).abs().max() <= 1e-5
    assert (adapted - frozen).abs().max() > 1e-2 and (full - frozen).abs().max() > 1e-2  # neither the adapted model
    with torch.no_grad():  # nor the full-precision base; and the adapters come back on after the block
        assert torch.equal(model(idx), adapted)


@ARCHS
def test_merging_dequantises_into_plain_layers(arch):
    model = qlora(arch)
    idx = tokens((2, 30))
    with torch.no_grad():
        adapted = model(idx)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        state = merged_state_dict(model)
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # untouched
        plain = GPT(GPTConfig(**arch)).eval()
        plain.load_state_dict(state)  # strict: exactly a plain model's keys, float32
        assert all(v.dtype == torch.float32 for v in state.values())
        assert (plain(idx) - adapted).abs().max() <= 1e-5
        merge_lora(model)
        assert not any(isinstance(m, (LoRALinear, quant.NF4Weight)) for m in model.modules())
        layer = model.transformer.h[0].attn.c_attn
        assert type(layer) is torch.nn.Linear and layer.weight.dtype == torch.float32
        assert not layer.weight.requires_grad
        assert set(model.state_dict()) == set(plain.state_dict())
        assert torch.equal(model(idx), plain(idx))
    # the merged model can start new adapters and be quantised again (SFT -> RL in train.py)
    quant.quantize_base(add_lora(model, rank=2))
    assert model.transformer.h[1].mlp.c_proj.nf4 is not None


@ARCHS
def test_state_dict_round_trip_with_weights_only(arch):
    model = qlora(arch)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)  # plain tensors only: the safe unpickler reads it
    assert all(type(t) is torch.Tensor for t in state.values())
    fresh = qlora(arch, seed=7)  # other base weights (other 4-bit bytes), other adapters
    assert not torch.equal(fresh.transformer.h[0].attn.c_attn.nf4.packed, model.transformer.h[0].attn.c_attn.nf4.packed)
    fresh.load_state_dict(state)  # strict
    idx = tokens((2, 30))
    with torch.no_grad():
        assert torch.equal(fresh(idx), model(idx))
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))


@pytest.mark.parametrize("optim", ["adamw", "adamw8bit"])
def test_training_resumes_bit_identically(optim):
    """A few optimiser steps, a checkpoint (weights + optimiser state through weights_only), a fresh model built and
    quantised the same way that loads it: the next steps give exactly the weights the uninterrupted run gets."""
    idx = tokens((4, 33))

    def start():
        model = qlora(GPT2, adapters=False).train()
        params = [p for p in model.parameters() if p.requires_grad]
        assert {id(p) for p in params} == {id(p) for p in lora_parameters(model)}  # the optimiser gets the adapters
        opt = (torch.optim.AdamW if optim == "adamw" else bnb.optim.AdamW8bit)(params, lr=1e-2)
        return model, opt

    def steps(model, opt, n=3):
        for _ in range(n):
            opt.zero_grad()
            F.cross_entropy(model(idx[:, :-1]).reshape(-1, V), idx[:, 1:].reshape(-1)).backward()
            opt.step()

    model, opt = start()
    steps(model, opt)
    buf = io.BytesIO()
    torch.save(dict(model=model.state_dict(), opt=opt.state_dict()), buf)
    steps(model, opt)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    resumed, opt2 = start()
    resumed.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["opt"])
    steps(resumed, opt2)
    assert all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), model.state_dict().values()))


@ARCHS
@pytest.mark.parametrize("decode_graphs", [False, True], ids=["plain", "static"])
def test_sampling_with_the_kv_cache(arch, decode_graphs):
    model = qlora(arch)
    model.transformer.h[0].attn.c_attn.lora_B.data.mul_(4)  # adapters strong enough to change greedy tokens
    merged = GPT(GPTConfig(**arch)).eval()
    merged.load_state_dict(merged_state_dict(model))
    prompts = [[5, 9, 2], [7, 3, 1, 8, 8, 2, 4], [11]]
    kw = dict(num_samples=2, max_new_tokens=12, temperature=0, decode_graphs=decode_graphs)
    out = generate(model, prompts, **kw).sequences
    assert out == generate(merged, prompts, **kw).sequences
    with adapters_disabled(model):
        base = generate(model, prompts, **kw).sequences
    assert base == generate(dequantised_base(model, arch), prompts, **kw).sequences and base != out
    # a bfloat16 copy (train.py's --dtype=bfloat16 sampling) runs the 4-bit base in bfloat16; the model is untouched
    generate(model, prompts, **{**kw, "temperature": 1.0}, dtype=torch.bfloat16, seed=0)
    assert lora_parameters(model)[0].dtype == torch.float32 and model.transformer.h[0].mlp.c_fc.nf4 is not None


@ARCHS
def test_grad_ckpt_and_autocast_train_the_adapters(arch):
    model = qlora(arch).train()
    idx = tokens((3, 33))

    def grads(ckpt, autocast=False):
        model.grad_ckpt = ckpt
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(model(idx[:, :-1]).float().reshape(-1, V), idx[:, 1:].reshape(-1))
        loss.backward()
        return [p.grad.clone() for p in lora_parameters(model)]

    plain, ckpt = grads(False), grads(True)
    assert all(torch.equal(a, b) for a, b in zip(plain, ckpt))  # recomputing the blocks gives the same gradients
    assert all(p.grad is None for n, p in model.named_parameters() if "lora_" not in n)  # frozen: no gradient
    low = grads(False, autocast=True)  # under autocast the base runs in bfloat16, as nn.Linear would
    assert all(g.dtype == torch.float32 for g in low)
    rel = max(((a - b).norm() / b.norm()).item() for a, b in zip(low, plain))
    assert 0 < rel < 0.1  # bfloat16's rounding (measured: at most 0.02), not another computation
    x = torch.randn(2, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.transformer.h[0].attn.c_proj.nf4.linear(x).dtype == torch.bfloat16
    assert model.transformer.h[0].attn.c_proj.nf4.linear(x).dtype == torch.float32


@ARCHS
def test_frozen_matrices_in_bfloat16_compute_what_autocast_computes(arch):
    """--quant=nf4 --dtype=bfloat16 keeps the frozen embedding and head in bfloat16 (gift/quant.py): under bfloat16
    autocast the logits and the adapters' gradients are exactly those of the float32 model whose embedding rows are
    rounded to bfloat16 (the head's matmul casts its weight anyway); the residual stream stays float32; sampling with
    dtype=None takes the narrowest dtype and shares the bfloat16 matrices, drawing what dtype=bfloat16 draws."""
    model, ref = qlora(arch).train(), qlora(arch).train()
    quant.frozen_matrices_in(model, torch.bfloat16)
    big = [model.transformer.wte.weight, model.lm_head.weight] + ([model.transformer.wpe.weight]
                                                                    if "rope_theta" not in arch else [])
    assert all(p.dtype == torch.bfloat16 and not p.requires_grad for p in big)
    assert all(p.dtype == torch.float32 for p in lora_parameters(model))
    assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if p.dim() == 1)  # norms, biases
    with torch.no_grad():  # the reference: float32 storage holding the same (rounded) values
        for p in (ref.transformer.wte.weight, ref.lm_head.weight, getattr(ref.transformer, "wpe", ref.lm_head).weight):
            p.copy_(p.to(torch.bfloat16))
    idx = tokens((3, 33))
    seen = []
    hook = model.transformer.h[0].register_forward_pre_hook(lambda m, a: seen.append(a[0].dtype))
    out = []
    for m in (model, ref):
        m.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = m(idx[:, :-1])
        F.cross_entropy(logits.float().reshape(-1, V), idx[:, 1:].reshape(-1)).backward()
        out.append((logits, [p.grad for p in lora_parameters(m)]))
    hook.remove()
    assert seen == [torch.float32]  # the bfloat16 embedding feeds a float32 residual stream
    assert torch.equal(out[0][0], out[1][0]) and all(torch.equal(a, b) for a, b in zip(out[0][1], out[1][1]))
    prompts, kw = [[5, 9, 2], [7, 3, 1, 8]], dict(num_samples=2, max_new_tokens=10, temperature=1.0, seed=3)
    assert generate(model, prompts, **kw).sequences == generate(model, prompts, dtype=torch.bfloat16, **kw).sequences


# ---------------------------------------------------------------------------------------------------------------
# refusals


def test_refusals(monkeypatch):
    quant.check_quant("none", 0, "cpu")  # nothing to check
    quant.check_quant("nf4", 8, "cpu")  # bitsandbytes runs NF4 on the CPU
    with pytest.raises(SystemExit, match=r"^error: --quant=nf4 keeps the frozen base in 4 bits .* needs --lora_rank"):
        quant.check_quant("nf4", 0, "cpu")
    with pytest.raises(SystemExit, match=r"^error: --quant=nf4: bitsandbytes \S+ has no backend for device 'meta'"):
        quant.check_quant("nf4", 8, "meta")
    with pytest.raises(SystemExit, match=r"^error: --quant='int3': choose one of none, nf4$"):
        quant.check_quant("int3", 8, "cpu")
    with monkeypatch.context() as m:  # a device bitsandbytes lists but whose kernels fail
        m.setattr(quant.NF4Weight, "linear", lambda *a: (_ for _ in ()).throw(NotImplementedError("no kernel")))
        with pytest.raises(SystemExit, match=r"^error: --quant=nf4: bitsandbytes \S+ cannot run NF4 on 'cpu' "
                                             r"\(NotImplementedError: no kernel\)$"):
            quant.check_quant("nf4", 8, "cpu")
    with monkeypatch.context() as m:  # as if not installed
        m.setitem(sys.modules, "bitsandbytes", None)
        m.setattr(quant, "_bitsandbytes", None)
        with pytest.raises(SystemExit, match=r"^error: --quant=nf4 needs bitsandbytes: pip install bitsandbytes$"):
            quant.check_quant("nf4", 8, "cpu")
    # models it cannot quantise: no adapters; rows that are not whole blocks (the Qwen2 MLP of test_lora, 96 wide)
    with pytest.raises(ValueError, match="no LoRA adapters"):
        quant.quantize_base(tiny(GPT2))
    ragged = add_lora(tiny({**QWEN2, "mlp_hidden": 96}), rank=2)
    with pytest.raises(SystemExit, match=r"^error: --quant=nf4 needs .* multiple of 64 .* transformer\.h\.0\.mlp"
                                         r"\.c_proj has 96$"):
        quant.quantize_base(ragged)
    assert all(layer.nf4 is None for _, layer in nf4_layers(ragged))  # left as it was
