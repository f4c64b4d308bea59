"""GPT-2, written from scratch, with a key/value cache for sampling.

The architecture of "Language Models are Unsupervised Multitask Learners" (Radford et al., 2019): token and learned
position embeddings, n_layer pre-norm transformer blocks (LayerNorm -> causal self-attention -> residual,
LayerNorm -> MLP with GELU -> residual), a final LayerNorm, and an LM head that shares its weight with the token
embedding. `GPT.from_pretrained` loads the published checkpoints (or any directory in the Hugging Face layout).

Shapes: B batch, T new tokens, S cached + new tokens (keys), C = n_embd, H = n_head, D = C // H, V = vocab_size.
"""

import json
import math
import os
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class GPTConfig:
    block_size: int = 1024  # longest sequence (number of position embeddings)
    vocab_size: int = 50257
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # GPT-2 has biases in every Linear and LayerNorm


# The published GPT-2 shapes, and small ones for the built-in CPU task (vocab_size set by its tokenizer).
PRESETS = {
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768),  # 124M
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),  # 350M
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600),  # 1558M
    "nano": dict(n_layer=2, n_head=2, n_embd=64, block_size=256, vocab_size=257),
    "micro": dict(n_layer=4, n_head=4, n_embd=128, block_size=256, vocab_size=257),
}


def preset(name, **overrides):
    """GPTConfig for a preset name, e.g. preset("gpt2") or preset("micro", vocab_size=300)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
    return GPTConfig(**{**PRESETS[name], **overrides})


class KVCache:
    """Preallocated keys and values of every layer, for incremental decoding.

    k, v: (n_layer, B, H, max_len, D). The first `length` slots are filled; all rows advance together.
    valid: (B, max_len) bool, False for slots that hold padding (left-padded prompts); attention skips them.
    """

    def __init__(self, config, batch_size, max_len, device=None, dtype=torch.float32):
        if max_len > config.block_size:
            raise ValueError(f"cache length {max_len} exceeds block_size {config.block_size}")
        shape = (config.n_layer, batch_size, config.n_head, max_len, config.n_embd // config.n_head)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.valid = torch.zeros(batch_size, max_len, dtype=torch.bool, device=device)
        self.length = 0

    def repeat_interleave(self, n):
        """Copy each row n times (row b becomes rows b*n .. b*n+n-1): one prefill shared by n samples."""
        self.k = self.k.repeat_interleave(n, dim=1)
        self.v = self.v.repeat_interleave(n, dim=1)
        self.valid = self.valid.repeat_interleave(n, dim=0)

    def keep(self, rows):
        """Keep only these rows (a LongTensor of indices; new row i is old row rows[i]), e.g. to drop finished samples.

        Works in place: only rows with rows[i] != i are copied, then the batch is cut to len(rows). Filling the
        holes left by dropped rows with rows from the end moves few rows, so dropping finished samples stays cheap.
        """
        n = len(rows)
        if n > self.k.shape[1]:
            raise ValueError(f"keep() got {n} rows but the cache has {self.k.shape[1]}: it can only drop rows")
        moved = torch.nonzero(rows != torch.arange(n, device=rows.device)).flatten()
        if len(moved) > 0:  # the right-hand sides are gathered (copied) before anything is overwritten
            src = rows[moved]
            self.k[:, moved], self.v[:, moved], self.valid[moved] = self.k[:, src], self.v[:, src], self.valid[src]
        self.k, self.v, self.valid = self.k[:, :n], self.v[:, :n], self.valid[:n]


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0, "n_embd must be divisible by n_head"
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.dropout = config.dropout

    def forward(self, x, mask=None, cache=None, layer=0):
        """x (B, T, C) -> (B, T, C). mask: (B, 1, T, S) bool (True = may attend) or None for plain causal."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
        if cache is not None:  # write the new keys/values after the cached ones, then attend to all S of them
            start = cache.length
            cache.k[layer, :, :, start : start + T] = k
            cache.v[layer, :, :, start : start + T] = v
            k, v = cache.k[layer, :, :, : start + T], cache.v[layer, :, :, : start + T]  # (B, H, S, D)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=mask is None)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble the heads
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2 used the tanh approximation of GELU
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=1e-5, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=1e-5, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, mask=None, cache=None, layer=0):
        x = x + self.attn(self.ln_1(x), mask, cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embedding (V, C)
                wpe=nn.Embedding(config.block_size, config.n_embd),  # position embedding (block_size, C)
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, eps=1e-5, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # weight tying
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2 scales the residual projections by 1/sqrt(2 * n_layer)
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self):
        """Parameters counted once (the tied embedding/LM head weight is one tensor)."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx, pos=None, cache=None, return_hidden=False):
        """Next-token logits.

        idx: (B, T) token ids. pos: (B, T) position ids (default 0..T-1 after the cached tokens).
        cache: a KVCache; the T new tokens are appended to it and attend to every valid cached slot.
        Returns logits (B, T, V) in float32 (or the autocast dtype); with return_hidden=True the final-normed hidden
        states (B, T, C) instead, so that logits == hidden @ self.lm_head.weight.T (gift.kernels.linear_token_logprobs).
        """
        B, T = idx.shape
        start = 0 if cache is None else cache.length
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of length {start + T} is longer than block_size {self.config.block_size}")
        if pos is None:
            pos = torch.arange(start, start + T, device=idx.device).expand(B, T)
        mask = None
        if cache is not None:
            if start + T > cache.k.shape[3]:
                raise ValueError(f"KV cache holds {cache.k.shape[3]} positions, {start + T} needed")
            if cache.k.shape[1] != B:
                raise ValueError(f"KV cache has {cache.k.shape[1]} rows, input has {B}")
            # slot j may be read by the query in slot start+i if j <= start+i and j holds a real token.
            # A query always sees its own slot, so padding rows never attend to nothing (that would give NaN).
            q_slot = torch.arange(start, start + T, device=idx.device)[:, None]  # (T, 1)
            k_slot = torch.arange(start + T, device=idx.device)[None, :]  # (1, S)
            causal = k_slot <= q_slot  # (T, S)
            mask = (causal & cache.valid[:, None, : start + T]) | (k_slot == q_slot)  # (B, T, S)
            mask = mask[:, None]  # (B, 1, T, S), broadcast over heads
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        for layer, block in enumerate(self.transformer.h):
            x = block(x, mask, cache, layer)
        if cache is not None:
            cache.length = start + T
        x = self.transformer.ln_f(x)  # (B, T, C)
        return x if return_hidden else self.lm_head(x)  # (B, T, V)

    @classmethod
    def from_pretrained(cls, name_or_dir):
        """Load GPT-2 weights from a Hugging Face-style directory (config.json + model.safetensors) or a hub name.

        A hub name such as "gpt2" is downloaded once into the Hugging Face cache (huggingface_hub), then read from
        there. transformers is never needed: the safetensors file is read directly and its tensors renamed.
        """
        from safetensors.torch import load_file  # imported here: only weight loading needs these packages

        path = name_or_dir
        if not os.path.isdir(path):
            if os.path.sep in path or path.startswith("."):
                raise FileNotFoundError(f"checkpoint directory {path!r} does not exist")
            from huggingface_hub import snapshot_download

            path = snapshot_download(repo_id=name_or_dir, allow_patterns=["config.json", "model.safetensors"])
        for f in ("config.json", "model.safetensors"):
            if not os.path.isfile(os.path.join(path, f)):
                raise FileNotFoundError(f"{path!r} has no {f}: a GPT-2 checkpoint needs config.json and model.safetensors")
        with open(os.path.join(path, "config.json")) as f:
            hf = json.load(f)
        if hf.get("model_type") != "gpt2":
            raise ValueError(f"{path}/config.json has model_type {hf.get('model_type')!r}, expected 'gpt2'")
        act = hf.get("activation_function", "gelu_new")
        if act != "gelu_new" or hf.get("layer_norm_epsilon", 1e-5) != 1e-5:
            raise ValueError(f"{path}/config.json: only GPT-2's gelu_new activation and layer_norm_epsilon 1e-5 are supported")
        config = GPTConfig(
            block_size=hf["n_positions"], vocab_size=hf["vocab_size"], n_layer=hf["n_layer"],
            n_head=hf["n_head"], n_embd=hf["n_embd"], dropout=0.0, bias=True,
        )
        model = cls(config)
        model.load_hf_state_dict(load_file(os.path.join(path, "model.safetensors")))
        return model

    def load_hf_state_dict(self, hf_sd):
        """Copy a Hugging Face GPT-2 state dict into this model, checking every name and shape.

        HF's GPT-2 keeps its Linear layers as Conv1D, whose weight is stored (in, out): those are transposed.
        The attention-mask buffers (attn.bias, attn.masked_bias) are not weights and are skipped.
        """
        transposed = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
        ours = self.state_dict()
        loaded = set()
        for key, tensor in hf_sd.items():
            name = key if key.startswith(("transformer.", "lm_head.")) else "transformer." + key
            if name == "lm_head.weight":  # tied to wte: checked once wte is loaded
                continue
            if name.endswith(("attn.bias", "attn.masked_bias")) and name not in ours:
                continue  # causal-mask buffers of the HF implementation
            if name not in ours:
                raise ValueError(f"unexpected tensor {key!r} in the checkpoint")
            if name.endswith(transposed):
                tensor = tensor.t()
            if tensor.shape != ours[name].shape:
                raise ValueError(f"tensor {key!r} has shape {tuple(tensor.shape)}, expected {tuple(ours[name].shape)}")
            with torch.no_grad():
                ours[name].copy_(tensor)
            loaded.add(name)
        missing = set(ours) - loaded - {"lm_head.weight"}  # the LM head is tied to wte
        if missing:
            raise ValueError(f"checkpoint is missing tensors: {sorted(missing)[:5]}")
        head = hf_sd.get("lm_head.weight")
        if head is not None and not torch.equal(head, self.transformer.wte.weight.detach().to(head.dtype)):
            raise ValueError("checkpoint has an LM head that differs from the token embedding; GPT-2 ties them")
