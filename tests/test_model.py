"""GPT-2 from scratch: parameter counts, logit parity with transformers, the KV cache, and clear errors."""

import json

import pytest
import torch

from gift.model import GPT, GPTConfig, KVCache, preset

SMALL = dict(n_layer=2, n_head=4, n_embd=64, block_size=48, vocab_size=101)


def test_gpt2_parameter_count():
    with torch.device("meta"):  # shapes only: no memory, no weights
        model = GPT(preset("gpt2"))
    assert model.num_params() == 124_439_808


@pytest.mark.parametrize("name,expected", [("gpt2-medium", 354_823_168), ("gpt2-large", 774_030_080)])
def test_larger_presets_match_published_counts(name, expected):
    with torch.device("meta"):
        assert GPT(preset(name)).num_params() == expected


def _save_random_hf_gpt2(path, seed=0, **overrides):
    """A small GPT2LMHeadModel with perturbed weights (biases and norms non-trivial), saved in the HF layout."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(
        n_layer=SMALL["n_layer"], n_head=SMALL["n_head"], n_embd=SMALL["n_embd"],
        n_positions=SMALL["block_size"], vocab_size=SMALL["vocab_size"], **overrides,
    )
    torch.manual_seed(seed)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.05 * torch.randn_like(p))
    hf.save_pretrained(path, safe_serialization=True)
    return hf


def test_logits_match_transformers(tmp_path):
    hf = _save_random_hf_gpt2(tmp_path)
    ours = GPT.from_pretrained(str(tmp_path)).eval()
    idx = torch.randint(0, SMALL["vocab_size"], (3, SMALL["block_size"]), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(idx).logits
        got = ours(idx)
    err = (got - expected).abs().max().item()
    assert err < 1e-4, f"max |logit difference| {err:.2e}"


def test_kv_cache_matches_full_forward():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL)).eval()
    idx = torch.randint(0, SMALL["vocab_size"], (2, 20))
    with torch.no_grad():
        full = model(idx)
        cache = KVCache(model.config, batch_size=2, max_len=32)
        cache.valid[:, :20] = True
        step = [model(idx[:, :12], cache=cache)]  # prefill 12 tokens, then one token at a time
        for t in range(12, 20):
            step.append(model(idx[:, t : t + 1], cache=cache))
    assert torch.allclose(torch.cat(step, dim=1), full, atol=1e-5)


def test_left_padding_with_positions_matches_unpadded():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL)).eval()
    seq = torch.randint(0, SMALL["vocab_size"], (1, 10))
    pad = 5
    idx = torch.cat([torch.zeros(1, pad, dtype=torch.long), seq], dim=1)
    cache = KVCache(model.config, batch_size=1, max_len=16)
    cache.valid[0, pad:] = True
    pos = torch.cat([torch.zeros(pad, dtype=torch.long), torch.arange(10)])[None]
    with torch.no_grad():
        padded = model(idx, pos=pos, cache=cache)[:, pad:]
        plain = model(seq)
    assert torch.isfinite(model(idx, pos=pos, cache=KVCache(model.config, 1, 16))).all()  # all-pad rows: no NaN
    assert torch.allclose(padded, plain, atol=1e-5)


def test_cache_repeat_interleave_and_keep():
    cache = KVCache(GPTConfig(**SMALL), batch_size=2, max_len=4)
    cache.k[:, 1] = 1.0
    cache.repeat_interleave(3)
    assert cache.k.shape[1] == 6 and cache.k[:, 3:].eq(1).all() and cache.k[:, :3].eq(0).all()
    cache.keep(torch.tensor([0, 5]))
    assert cache.k.shape[1] == 2 and cache.k[:, 1].eq(1).all()


def test_sequence_longer_than_block_size_is_refused():
    model = GPT(GPTConfig(**SMALL))
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, SMALL["block_size"] + 1, dtype=torch.long))


def test_bad_checkpoints_are_refused_with_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        GPT.from_pretrained(str(tmp_path / "nowhere"))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        GPT.from_pretrained(str(tmp_path))

    llama = tmp_path / "llama"
    _save_random_hf_gpt2(llama)
    cfg = json.loads((llama / "config.json").read_text())
    (llama / "config.json").write_text(json.dumps({**cfg, "model_type": "llama"}))
    with pytest.raises(ValueError, match="model_type 'llama'"):
        GPT.from_pretrained(str(llama))

    from safetensors.torch import load_file, save_file

    bad = tmp_path / "bad"
    _save_random_hf_gpt2(bad)
    sd = load_file(str(bad / "model.safetensors"))
    key = next(k for k in sd if k.endswith("h.1.mlp.c_fc.weight"))
    sd[key] = torch.zeros(3, 3)
    save_file(sd, str(bad / "model.safetensors"))
    with pytest.raises(ValueError, match=r"h\.1\.mlp\.c_fc\.weight.*shape"):
        GPT.from_pretrained(str(bad))


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown model preset"):
        preset("gpt5")


def test_return_hidden_times_the_tied_head_gives_the_logits():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL)).eval()
    idx = torch.randint(0, SMALL["vocab_size"], (2, 12))
    with torch.no_grad():
        hidden = model(idx, return_hidden=True)
        assert hidden.shape == (2, 12, SMALL["n_embd"]) and model.lm_head.weight is model.transformer.wte.weight
        assert torch.allclose(hidden @ model.lm_head.weight.T, model(idx), atol=1e-5)


def test_a_hub_name_with_an_owner_reaches_the_hub_and_a_missing_path_does_not(monkeypatch, tmp_path):
    """Qwen/Qwen2.5-0.5B-Instruct (owner/name) is a hub id, downloaded once; ./x, /x and a/b/c are paths."""
    import huggingface_hub

    from gift.model import checkpoint_dir

    asked = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kw: asked.append(repo_id) or "snap")
    assert checkpoint_dir("Qwen/Qwen2.5-0.5B-Instruct") == "snap" and checkpoint_dir("gpt2") == "snap"
    assert asked == ["Qwen/Qwen2.5-0.5B-Instruct", "gpt2"]
    for path in ("./missing", str(tmp_path / "missing"), "a/b/c", "~/x"):
        with pytest.raises(FileNotFoundError):
            checkpoint_dir(path)
    assert checkpoint_dir(str(tmp_path)) == str(tmp_path) and asked == ["Qwen/Qwen2.5-0.5B-Instruct", "gpt2"]
