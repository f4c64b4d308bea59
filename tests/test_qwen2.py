"""Qwen2 in the from-scratch decoder: logit parity with transformers' Qwen2ForCausalLM through a saved directory
(tied and untied heads, grouped-query attention, both config layouts, sharded weights), cached generation against a
full-recompute loop (left-padded batches included), the hidden-state contract, and refused configurations."""

import json

import pytest
import torch

from gift.model import GPT, KVCache, qwen2_config
from gift.sampler import generate

SMALL = dict(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6)


def save_random_qwen2(path, seed=0, **overrides):
    """A small Qwen2ForCausalLM with perturbed weights (biases and norms non-trivial), saved in the HF layout."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.Qwen2Config(**{**SMALL, **overrides})
    torch.manual_seed(seed)
    hf = transformers.Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.05 * torch.randn_like(p))
    hf.save_pretrained(path, safe_serialization=True)
    return hf


@pytest.mark.parametrize("tie,kv_heads,theta", [(True, 2, 10000.0), (False, 1, 1e6), (False, 4, 500.0)])
def test_logits_match_transformers(tmp_path, tie, kv_heads, theta):
    hf = save_random_qwen2(tmp_path, tie_word_embeddings=tie, num_key_value_heads=kv_heads, rope_theta=theta)
    ours = GPT.from_pretrained(str(tmp_path)).eval()
    assert ours.config.tie_embeddings == tie and ours.config.kv_heads == kv_heads and ours.config.rope_theta == theta
    assert (ours.lm_head.weight is ours.transformer.wte.weight) == tie
    idx = torch.randint(0, SMALL["vocab_size"], (3, SMALL["max_position_embeddings"]),
                        generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(idx).logits
        got = ours(idx)
        hidden = ours(idx, return_hidden=True)
    err = (got - expected).abs().max().item()
    print(f"qwen2 parity tie={tie} n_kv_head={kv_heads}: max |logit difference| {err:.2e}")
    assert err <= 1e-4, f"max |logit difference| {err:.2e}"
    assert hidden.shape == (3, SMALL["max_position_embeddings"], SMALL["hidden_size"])
    assert torch.allclose(hidden @ ours.lm_head.weight.T, got, atol=1e-5)


def test_transformers4_config_layout_and_sharded_weights(tmp_path):
    """The hub's Qwen2.5 files: top-level rope_theta, sliding_window set but switched off, weights in two shards."""
    from safetensors.torch import load_file, save_file

    hf = save_random_qwen2(tmp_path, tie_word_embeddings=True, num_key_value_heads=2, rope_theta=1e6)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg.pop("rope_parameters")
    cfg.pop("layer_types")
    cfg.update(rope_theta=1e6, sliding_window=32768, use_sliding_window=False, max_window_layers=21, rope_scaling=None)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    sd = load_file(str(tmp_path / "model.safetensors"))
    (tmp_path / "model.safetensors").unlink()
    names = sorted(sd)
    weight_map = {}
    for i, part in enumerate((names[: len(names) // 2], names[len(names) // 2 :])):
        save_file({k: sd[k].to(torch.bfloat16) for k in part}, str(tmp_path / f"model-0000{i + 1}-of-00002.safetensors"))
        weight_map.update({k: f"model-0000{i + 1}-of-00002.safetensors" for k in part})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    ours = GPT.from_pretrained(str(tmp_path)).eval()
    assert ours.config.rope_theta == 1e6
    with torch.no_grad():
        for p in hf.parameters():  # the shards hold bf16 copies: compare against the same rounding
            p.copy_(p.to(torch.bfloat16).float())
        idx = torch.randint(0, SMALL["vocab_size"], (2, 40), generator=torch.Generator().manual_seed(2))
        err = (ours(idx) - hf(idx).logits).abs().max().item()
    assert err <= 1e-4, f"max |logit difference| {err:.2e}"


@pytest.mark.parametrize("change,message", [
    (dict(use_sliding_window=True), "sliding-window attention"),
    (dict(layer_types=["sliding_attention", "full_attention"]), "sliding-window attention"),
    (dict(rope_scaling={"type": "yarn", "factor": 4.0}), "rope scaling"),
    (dict(rope_parameters={"rope_theta": 1e6, "rope_type": "yarn", "factor": 4.0}), "rope scaling"),
    (dict(hidden_act="gelu"), "hidden_act 'gelu'"),
    (dict(head_dim=32), "head_dim"),
])
def test_unimplemented_configurations_are_refused(change, message):
    hf = {**SMALL, "model_type": "qwen2", **change}
    with pytest.raises(ValueError, match=message):
        qwen2_config(hf, "ckpt")


def test_missing_and_extra_tensors_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    save_random_qwen2(tmp_path, tie_word_embeddings=False)
    path = str(tmp_path / "model.safetensors")
    sd = load_file(path)
    save_file({k: v for k, v in sd.items() if k != "lm_head.weight"}, path)
    with pytest.raises(ValueError, match="lm_head.weight"):
        GPT.from_pretrained(str(tmp_path))
    save_file({**sd, "model.layers.5.mlp.up_proj.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match=r"unexpected tensor 'model\.layers\.5"):
        GPT.from_pretrained(str(tmp_path))
    sd["model.layers.1.self_attn.k_proj.bias"] = torch.zeros(5)
    save_file(sd, path)
    with pytest.raises(ValueError, match=r"h\.1\.attn\.c_attn\.bias.*shape"):
        GPT.from_pretrained(str(tmp_path))


def random_qwen2(tmp_path, seed=0):
    save_random_qwen2(tmp_path, seed=seed, num_key_value_heads=2, tie_word_embeddings=False, rope_theta=100.0)
    return GPT.from_pretrained(str(tmp_path)).eval()


def naive_greedy(model, prompt, max_new_tokens):
    """Re-run the whole sequence every step and take the argmax: the reference for the cached sampler."""
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(max_new_tokens):
            seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
    return seq[len(prompt) :]


def test_cache_stores_only_the_kv_heads_and_matches_full_forward(tmp_path):
    model = random_qwen2(tmp_path)
    cache = KVCache(model.config, batch_size=2, max_len=24)
    assert cache.k.shape == (2, 2, 2, 24, 16)  # (layers, B, K=2 not H=4, max_len, D)
    idx = torch.randint(0, SMALL["vocab_size"], (2, 20), generator=torch.Generator().manual_seed(3))
    cache.valid[:, :20] = True
    with torch.no_grad():
        full = model(idx)
        steps = [model(idx[:, :12], cache=cache)] + [model(idx[:, t : t + 1], cache=cache) for t in range(12, 20)]
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)


def test_greedy_generation_equals_full_recompute_with_left_padding(tmp_path):
    """Prompts of different lengths in one batch are left-padded; rotary angles come from each row's own positions,
    so every row must decode exactly what a full-recompute loop gives for that prompt alone."""
    model = random_qwen2(tmp_path, seed=1)
    prompts = [[5, 9, 2], [7] * 9 + [3, 1], [11, 4, 8, 8, 20, 1, 2, 3, 4, 5, 6, 7, 30, 31, 32, 33, 1]]
    out = generate(model, prompts, num_samples=2, max_new_tokens=12, temperature=0)
    for i, p in enumerate(prompts):
        expected = naive_greedy(model, p, 12)
        assert out.sequences[2 * i] == out.sequences[2 * i + 1] == expected
