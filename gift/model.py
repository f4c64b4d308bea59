"""GPT-2 and Qwen2, written from scratch as one decoder, with a key/value cache for sampling.

GPT-2 ("Language Models are Unsupervised Multitask Learners", Radford et al., 2019): token and learned position
embeddings, n_layer pre-norm transformer blocks (LayerNorm -> causal self-attention -> residual, LayerNorm -> MLP
with GELU -> residual), a final LayerNorm, and an LM head that shares its weight with the token embedding.

Qwen2 (and Qwen2.5, the same architecture) is the same decoder with four modern parts, each a GPTConfig field:
- rotary position embeddings (`rope_theta` > 0) instead of learned ones: each (q, k) pair of channels is rotated by
  an angle pos * theta^(-2i/D), so q.k depends only on the distance between the two positions;
- RMSNorm (`rmsnorm`): x / sqrt(mean(x^2) + eps) * weight, no mean subtraction and no bias;
- the SwiGLU MLP (`mlp_hidden` > 0): down(silu(gate(x)) * up(x)) instead of proj(gelu(fc(x)));
- grouped-query attention (`n_kv_head` < n_head): n_head query heads share n_kv_head key/value heads, so the KV
  cache is n_head / n_kv_head times smaller.
Its Linear layers have biases on q, k and v only (`bias=False, qkv_bias=True`), and the LM head is tied to the token
embedding or not (`tie_embeddings`). `GPT.from_pretrained` loads either family from a Hugging Face-style directory
or hub name.

Gradient checkpointing (`model.grad_ckpt = True`, off by default): in a forward pass that builds a graph (grad enabled,
no KV cache), each block keeps only its input (B, T, C); its intermediate tensors are recomputed during backward, one
block at a time. Activation memory falls from every block's intermediates to the n_layer inputs plus one block's
intermediates, for about one extra forward pass of compute. The values and gradients are those of the plain forward.

Activation offloading (`model.offload_activations = True`, off by default; `OffloadActivations`): in the same kind of
forward pass, every tensor the blocks save for backward is kept in (pinned) CPU memory and copied back when backward
needs it. With grad_ckpt the blocks save only their inputs, so the GPU then holds no activations between forward and
backward but the one block being recomputed. On a CPU the tensors are already in CPU memory: nothing is copied, the
run is unchanged. The values and gradients are exactly those of the run without it (a copy changes no bit).

Shapes: B batch, T new tokens, S cached + new tokens (keys), C = n_embd, H = n_head, K = n_kv_head (H for GPT-2),
D = C // H, V = vocab_size.
"""

import contextlib
import copy
import json
import math
import os
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint


@dataclass
class GPTConfig:
    block_size: int = 1024  # longest sequence (number of position embeddings)
    vocab_size: int = 50257
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # GPT-2 has biases in every Linear and LayerNorm
    # Qwen2's parts; the defaults are GPT-2's (see the module docstring)
    n_kv_head: int = 0  # key/value heads for grouped-query attention (0: n_head)
    rope_theta: float = 0.0  # rotary position embeddings with this base (0: learned position embeddings)
    rmsnorm: bool = False  # RMSNorm instead of LayerNorm
    norm_eps: float = 1e-5
    mlp_hidden: int = 0  # SwiGLU MLP with this hidden size (0: GPT-2's GELU MLP with 4 * n_embd)
    qkv_bias: bool = False  # biases on q, k, v even when bias is False (Qwen2)
    tie_embeddings: bool = True  # the LM head shares the token embedding's weight

    @property
    def kv_heads(self):
        return self.n_kv_head or self.n_head


# The published GPT-2 shapes, and small ones for the built-in CPU task (vocab_size set by its tokenizer).
PRESETS = {
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768),  # 124M
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),  # 350M
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600),  # 1558M
    "qwen2.5-0.5b": dict(n_layer=24, n_head=14, n_kv_head=2, n_embd=896, mlp_hidden=4864, vocab_size=151936,
                         block_size=32768, rope_theta=1e6, rmsnorm=True, norm_eps=1e-6, bias=False, qkv_bias=True),
    "qwen2.5-1.5b": dict(n_layer=28, n_head=12, n_kv_head=2, n_embd=1536, mlp_hidden=8960, vocab_size=151936,
                         block_size=32768, rope_theta=1e6, rmsnorm=True, norm_eps=1e-6, bias=False, qkv_bias=True),
    "qwen2.5-3b": dict(n_layer=36, n_head=16, n_kv_head=2, n_embd=2048, mlp_hidden=11008, vocab_size=151936,
                       block_size=32768, rope_theta=1e6, rmsnorm=True, norm_eps=1e-6, bias=False, qkv_bias=True),
    "qwen2.5-7b": dict(n_layer=28, n_head=28, n_kv_head=4, n_embd=3584, mlp_hidden=18944, vocab_size=152064,
                       block_size=32768, rope_theta=1e6, rmsnorm=True, norm_eps=1e-6, bias=False, qkv_bias=True,
                       tie_embeddings=False),  # 7B: a larger (padded) vocabulary and its own LM head
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

    k, v: (n_layer, B, K, max_len, D): only the K key/value heads are stored. The first `length` slots are filled;
    all rows advance together.
    valid: (B, max_len) bool, False for slots that hold padding (left-padded prompts); attention skips them.

    Static shapes (a decode step captured in a CUDA graph, see gift/sampler.py): a view from `static_view` has
    `slot`, a (1,) long tensor, and `window`, an int. One token per row is written at slot `slot` (read from the
    tensor, so one captured step serves every position) and attention reads the first `window` slots, those after
    `slot` masked out; `length` is then left to the caller.
    """
    slot = window = None

    def __init__(self, config, batch_size, max_len, device=None, dtype=torch.float32):
        if max_len > config.block_size:
            raise ValueError(f"cache length {max_len} exceeds block_size {config.block_size}")
        shape = (config.n_layer, batch_size, config.kv_heads, max_len, config.n_embd // config.n_head)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.valid = torch.zeros(batch_size, max_len, dtype=torch.bool, device=device)
        self.length = 0

    def repeat_interleave(self, n):
        """Copy each row n times (row b becomes rows b*n .. b*n+n-1): one prefill shared by n samples."""
        self.k = self.k.repeat_interleave(n, dim=1)
        self.v = self.v.repeat_interleave(n, dim=1)
        self.valid = self.valid.repeat_interleave(n, dim=0)

    def share(self, prefill, n):
        """Start decoding from a prefill in this (larger) cache's memory: returns a cache over this one's first B * n
        rows, row b of `prefill` copied to rows b*n .. b*n+n-1 (one prefill shared by n samples), its first S slots
        holding prefill's keys, values and valid flags and the later ones marked invalid (they may hold stale values
        of an earlier use; attention skips them until they are written). prefill: a cache of B rows and S slots.

        The buffers are written in place and never reallocated, so one cache serves every chunk of prompts of a
        sampling call, and CUDA graphs captured on its memory (gift/sampler.py's StaticDecoder) stay valid.
        """
        B, S, R = prefill.k.shape[1], prefill.k.shape[3], prefill.k.shape[1] * n
        if R > self.k.shape[1] or S > self.k.shape[3]:
            raise ValueError(f"share() needs {R} rows and {S} slots, the cache has {self.k.shape[1]} and "
                             f"{self.k.shape[3]}")
        view = copy.copy(self)
        view.k, view.v, view.valid = self.k[:, :R], self.v[:, :R], self.valid[:R]
        for mine, theirs in ((view.k, prefill.k), (view.v, prefill.v)):  # (L, B * n, K, S, D) <- (L, B, 1, K, S, D)
            mine[:, :, :, :S].unflatten(1, (B, n)).copy_(theirs[:, :, None])  # a broadcast copy: no repeated tensor
        view.valid.fill_(False)
        view.valid[:, :S] = prefill.valid.repeat_interleave(n, dim=0)
        view.length = prefill.length
        return view

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

    def static_view(self, rows, window, slot):
        """The first `rows` rows as a static-shape cache sharing this one's memory (see the class docstring)."""
        view = copy.copy(self)
        view.k, view.v, view.valid = self.k[:, :rows], self.v[:, :rows], self.valid[:rows]
        view.window, view.slot = window, slot
        return view


def rotary(pos, head_dim, theta):
    """cos and sin of the rotary angles for positions pos (B, T): two (B, 1, T, D) float32 tensors.

    Channel pair (i, i + D/2) of a head is rotated by the angle pos * theta^(-2i/D): fast rotations in the first
    channels, slow ones in the last. The angles are computed in float32 whatever the autocast dtype.
    """
    inv_freq = theta ** -(torch.arange(0, head_dim, 2, device=pos.device, dtype=torch.float32) / head_dim)  # (D/2,)
    angles = pos.float()[..., None] * inv_freq  # (B, T, D/2)
    angles = torch.cat([angles, angles], dim=-1)[:, None]  # (B, 1, T, D): the same angle for channels i and i + D/2
    return angles.cos(), angles.sin()


def apply_rotary(x, cos, sin):
    """Rotate each channel pair (a, b) = (x_i, x_{i+D/2}) of x (B, H, T, D) by its angle:
    (a, b) -> (a cos - b sin, b cos + a sin)."""
    a, b = x.chunk(2, dim=-1)
    rotated = torch.cat([-b, a], dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0, "n_embd must be divisible by n_head"
        assert config.n_head % config.kv_heads == 0, "n_head must be a multiple of n_kv_head"
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.kv_heads, config.n_embd // config.n_head
        qkv = (config.n_head + 2 * config.kv_heads) * self.head_dim  # H query heads, K key and K value heads
        self.c_attn = nn.Linear(config.n_embd, qkv, bias=config.bias or config.qkv_bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.dropout = config.dropout

    def forward(self, x, mask=None, cache=None, layer=0, rope=None):
        """x (B, T, C) -> (B, T, C). mask: (B, 1, T, S) bool (True = may attend) or None for plain causal.
        rope: the (cos, sin) of `rotary` for these T positions, or None (GPT-2: positions are in x already)."""
        B, T, C = x.shape
        H, K, D = self.n_head, self.n_kv_head, self.head_dim
        q, k, v = self.c_attn(x).split([H * D, K * D, K * D], dim=2)
        q = q.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k, v = (t.view(B, T, K, D).transpose(1, 2) for t in (k, v))  # (B, K, T, D)
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        if cache is not None and cache.slot is not None:  # static shapes: write at the slot tensor, read a window
            cache.k[layer].index_copy_(2, cache.slot, k)  # (B, K, max_len, D) <- (B, K, 1, D) at slot
            cache.v[layer].index_copy_(2, cache.slot, v)
            k, v = cache.k[layer, :, :, : cache.window], cache.v[layer, :, :, : cache.window]  # (B, K, W, D)
        elif cache is not None:  # write the new keys/values after the cached ones, then attend to all S of them
            start = cache.length
            cache.k[layer, :, :, start : start + T] = k
            cache.v[layer, :, :, start : start + T] = v
            k, v = cache.k[layer, :, :, : start + T], cache.v[layer, :, :, : start + T]  # (B, K, S, D)
        p = self.dropout if self.training else 0.0
        if K != H and T == 1 and mask is not None:
            # grouped-query decoding: the H/K query heads of a group attend as H/K query rows of their one
            # key/value head, so the cache is read as it is, never copied H/K times (mask (B, 1, 1, S) broadcasts)
            y = F.scaled_dot_product_attention(q.reshape(B, K, H // K, D), k, v, attn_mask=mask, dropout_p=p)
            y = y.reshape(B, H, 1, D)
        else:
            if K != H:  # grouped-query attention: query head h reads key/value head h // (H / K)
                k, v = k.repeat_interleave(H // K, dim=1), v.repeat_interleave(H // K, dim=1)  # (B, H, S, D)
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


class SwiGLU(nn.Module):
    """Qwen2's MLP: down(silu(gate(x)) * up(x)), hidden size mlp_hidden; gate and up in one matmul (c_fc)."""

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 2 * config.mlp_hidden, bias=config.bias)  # [gate | up]
        self.c_proj = nn.Linear(config.mlp_hidden, config.n_embd, bias=config.bias)  # down
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        gate, up = self.c_fc(x).chunk(2, dim=-1)  # (B, T, mlp_hidden) each
        return self.dropout(self.c_proj(F.silu(gate) * up))


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight, over the last dimension, computed in float32."""

    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        x32 = x.float()
        return self.weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


def norm(config):
    if config.rmsnorm:
        return RMSNorm(config.n_embd, config.norm_eps)
    return nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.bias)


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = norm(config)
        self.mlp = SwiGLU(config) if config.mlp_hidden else MLP(config)

    def forward(self, x, mask=None, cache=None, layer=0, rope=None):
        x = x + self.attn(self.ln_1(x), mask, cache, layer, rope)
        return x + self.mlp(self.ln_2(x))


def _to_host(t):
    """A copy of t in pinned CPU memory, queued behind the GPU's work (the copy back is queued on the same stream, so
    it never reads the host copy early); a tensor already in CPU memory is returned as it is."""
    if t.device.type == "cpu":
        return t
    host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    return host.copy_(t, non_blocking=True)


class OffloadActivations(torch.autograd.graph.saved_tensors_hooks):
    """A context in which the tensors autograd saves for backward are kept in CPU memory (`_to_host`) and copied back
    to their device when backward unpacks them. The model's parameters and buffers, and views of them (a weight
    saved as W.t() by a matmul), stay where they are: they are in memory anyway. Copies of weights are moved like
    any activation: without grad_ckpt, autocast's bf16 copies that matmuls save (2 bytes a weight each way)."""

    def __init__(self, model):
        kept = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}

        def pack(t):
            if t.untyped_storage().data_ptr() in kept:
                return t
            return t.device, _to_host(t)

        def unpack(packed):
            if isinstance(packed, torch.Tensor):
                return packed
            device, host = packed
            return host.to(device, non_blocking=True)

        super().__init__(pack, unpack)


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        modules = dict(wte=nn.Embedding(config.vocab_size, config.n_embd))  # token embedding (V, C)
        if not config.rope_theta:  # learned position embedding (block_size, C); rotary ones have no weights
            modules["wpe"] = nn.Embedding(config.block_size, config.n_embd)
        modules.update(drop=nn.Dropout(config.dropout), h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                       ln_f=norm(config))
        self.transformer = nn.ModuleDict(modules)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)  # weight (V, C)
        self.grad_ckpt = False  # gradient checkpointing: see the module docstring
        self.offload_activations = False  # saved activations in CPU memory: see the module docstring
        if config.tie_embeddings:
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
        Returns logits (B, T, V) in float32 (or the autocast dtype); with return_hidden, the final-normed hidden
        states h (B, T, C) instead, so that logits == h @ self.lm_head.weight.T (for a fused loss over the vocabulary).
        """
        B, T = idx.shape
        static = cache is not None and cache.slot is not None
        start = 0 if cache is None or static else cache.length
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of length {start + T} is longer than block_size {self.config.block_size}")
        if pos is None:
            pos = torch.arange(start, start + T, device=idx.device).expand(B, T)
        mask = None
        if static:  # one new token per row, in slot `cache.slot`: it reads the valid slots up to its own
            if T != 1 or pos is None:
                raise ValueError("a static-shape cache takes one token per row and explicit positions")
            k_slot = torch.arange(cache.window, device=idx.device)  # (W,)
            mask = ((k_slot <= cache.slot) & cache.valid[:, : cache.window]) | (k_slot == cache.slot)  # (B, W)
            mask = mask[:, None, None]  # (B, 1, 1, W)
        elif cache is not None:
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
        # (B, T, C). The residual stream is kept in the norms' dtype: a bfloat16 embedding (--quant=nf4 with
        # --dtype=bfloat16 stores the frozen embedding so, gift/quant.py) still feeds a float32 stream under autocast
        x, rope = self.transformer.wte(idx).to(self.transformer.ln_f.weight.dtype), None
        if self.config.rope_theta:
            rope = rotary(pos, self.config.n_embd // self.config.n_head, self.config.rope_theta)
        else:
            x = x + self.transformer.wpe(pos)
        x = self.transformer.drop(x)
        # gradient checkpointing: only where a backward pass may follow (sampling, with its cache, never recomputes).
        # The non-reentrant variant gives parameter gradients even when x does not require grad (frozen embeddings
        # under LoRA), and replays dropout with the same random numbers.
        ckpt = self.grad_ckpt and cache is None and torch.is_grad_enabled()
        offload = self.offload_activations and cache is None and torch.is_grad_enabled()
        with OffloadActivations(self) if offload else contextlib.nullcontext():  # under grad_ckpt: the block inputs
            for layer, block in enumerate(self.transformer.h):
                if ckpt:
                    x = checkpoint(block, x, mask, None, layer, rope, use_reentrant=False)
                else:
                    x = block(x, mask, cache, layer, rope)
        if cache is not None and not static:
            cache.length = start + T
        x = self.transformer.ln_f(x)
        return x if return_hidden else self.lm_head(x)  # (B, T, C) or (B, T, V)

    @classmethod
    def from_pretrained(cls, name_or_dir):
        """Load GPT-2 or Qwen2 weights from a Hugging Face-style directory or a hub name.

        The directory holds config.json (model_type gpt2 or qwen2) and model.safetensors, or shards listed in
        model.safetensors.index.json. A hub name such as "gpt2" or "Qwen/Qwen2.5-0.5B-Instruct" is downloaded once
        into the Hugging Face cache (`checkpoint_dir`). transformers is never needed: the safetensors files are read
        directly and their tensors renamed.
        """
        from safetensors.torch import load_file  # imported here: only weight loading needs these packages

        path = checkpoint_dir(name_or_dir)
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise FileNotFoundError(f"{path!r} has no config.json: a checkpoint needs config.json and weights")
        single, index = os.path.join(path, "model.safetensors"), os.path.join(path, "model.safetensors.index.json")
        if os.path.isfile(single):
            files = [single]
        elif os.path.isfile(index):  # sharded: {"weight_map": {tensor name: shard file}}
            with open(index) as f:
                files = [os.path.join(path, name) for name in sorted(set(json.load(f)["weight_map"].values()))]
        else:
            raise FileNotFoundError(f"{path!r} has no model.safetensors (nor model.safetensors.index.json)")
        with open(os.path.join(path, "config.json")) as f:
            hf = json.load(f)
        kind = hf.get("model_type")
        if kind not in ("gpt2", "qwen2"):
            raise ValueError(f"{path}/config.json has model_type {kind!r}, expected 'gpt2' or 'qwen2'")
        model = cls(gpt2_config(hf, path) if kind == "gpt2" else qwen2_config(hf, path))
        state = {}
        for file in files:
            state.update(load_file(file))
        if kind == "gpt2":
            model.load_hf_state_dict(state)
        else:
            model.load_qwen2_state_dict(state)
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

    def load_qwen2_state_dict(self, hf_sd):
        """Copy a Hugging Face Qwen2 state dict into this model, checking every name and shape.

        HF's names are model.embed_tokens, model.layers.i.{input_layernorm, self_attn.{q,k,v,o}_proj,
        post_attention_layernorm, mlp.{gate,up,down}_proj}, model.norm and lm_head. Our c_attn holds q, k, v and our
        c_fc holds gate, up, stacked along the output dimension in that order, so those are concatenated.
        """
        hf_sd = {k: v for k, v in hf_sd.items() if not k.endswith("rotary_emb.inv_freq")}  # a buffer, not a weight

        def take(key):
            if key not in hf_sd:
                raise ValueError(f"checkpoint is missing tensor {key!r}")
            return hf_sd.pop(key)

        renamed = {"transformer.wte.weight": take("model.embed_tokens.weight"),
                   "transformer.ln_f.weight": take("model.norm.weight")}
        for i in range(self.config.n_layer):
            hf, ours = f"model.layers.{i}.", f"transformer.h.{i}."
            renamed[ours + "ln_1.weight"] = take(hf + "input_layernorm.weight")
            renamed[ours + "ln_2.weight"] = take(hf + "post_attention_layernorm.weight")
            for kind in ("weight", "bias"):
                qkv = [take(hf + f"self_attn.{x}_proj.{kind}") for x in "qkv"]
                renamed[ours + f"attn.c_attn.{kind}"] = torch.cat(qkv)
            renamed[ours + "attn.c_proj.weight"] = take(hf + "self_attn.o_proj.weight")
            gate_up = [take(hf + "mlp.gate_proj.weight"), take(hf + "mlp.up_proj.weight")]
            renamed[ours + "mlp.c_fc.weight"] = torch.cat(gate_up)
            renamed[ours + "mlp.c_proj.weight"] = take(hf + "mlp.down_proj.weight")
        head = hf_sd.pop("lm_head.weight", None)
        if not self.config.tie_embeddings:
            if head is None:
                raise ValueError("checkpoint is missing tensor 'lm_head.weight' "
                                 "(config.json says tie_word_embeddings: false)")
            renamed["lm_head.weight"] = head
        elif head is not None and not torch.equal(head, renamed["transformer.wte.weight"]):
            raise ValueError("checkpoint has an LM head that differs from the token embedding, but config.json says "
                             "tie_word_embeddings: true")
        if hf_sd:
            raise ValueError(f"unexpected tensor {sorted(hf_sd)[0]!r} in the checkpoint")
        ours = self.state_dict()
        for name, tensor in renamed.items():
            if tensor.shape != ours[name].shape:
                raise ValueError(f"checkpoint tensors for {name!r} have shape {tuple(tensor.shape)}, "
                                 f"expected {tuple(ours[name].shape)}")
            with torch.no_grad():
                ours[name].copy_(tensor)


# the files a hub snapshot needs: weights (one file or shards), the config, and the tokenizer's files
HUB_FILES = ["config.json", "model*.safetensors", "model.safetensors.index.json", "vocab.json", "merges.txt",
             "tokenizer.json", "tokenizer_config.json"]


def published(name):
    """The hub name of a preset that names a published model: qwen2.5-1.5b -> Qwen/Qwen2.5-1.5B-Instruct (the
    instruct models the recipes start from); gpt2 names are hub names already. Any other name is returned as it is."""
    return f"Qwen/Qwen{name[4:].upper()}-Instruct" if name.startswith("qwen2.5-") and name in PRESETS else name


def is_hub_name(name):
    """Whether `name` can be a Hugging Face hub repository id: "gpt2" or "owner/name" (one slash, no leading "/", ".",
    "~"), as opposed to a local path."""
    return bool(name) and name.count("/") <= 1 and not name.startswith(("/", ".", "~")) and "\\" not in name


def checkpoint_dir(name_or_dir):
    """A local directory for a checkpoint: the directory itself, or a hub name's snapshot (downloaded once into the
    Hugging Face cache by huggingface_hub, then read from there)."""
    if os.path.isdir(name_or_dir):
        return name_or_dir
    if not is_hub_name(name_or_dir):  # a path that is not there (a hub name is "name" or "owner/name")
        raise FileNotFoundError(f"checkpoint directory {name_or_dir!r} does not exist")
    from huggingface_hub import snapshot_download  # imported here: only hub checkpoints need it

    return snapshot_download(repo_id=name_or_dir, allow_patterns=HUB_FILES)


def gpt2_config(hf, path):
    """GPTConfig from a Hugging Face GPT-2 config.json (as a dict); what we do not implement is refused."""
    act = hf.get("activation_function", "gelu_new")
    if act != "gelu_new" or hf.get("layer_norm_epsilon", 1e-5) != 1e-5:
        raise ValueError(f"{path}/config.json: only GPT-2's gelu_new activation and layer_norm_epsilon 1e-5 are supported")
    return GPTConfig(block_size=hf["n_positions"], vocab_size=hf["vocab_size"], n_layer=hf["n_layer"],
                     n_head=hf["n_head"], n_embd=hf["n_embd"], dropout=0.0, bias=True)


def qwen2_config(hf, path):
    """GPTConfig from a Hugging Face Qwen2 config.json (as a dict), in either layout: transformers 4 writes a
    top-level rope_theta (and rope_scaling), transformers 5 writes rope_parameters: {rope_theta, rope_type}.
    Sliding-window attention and rope scaling are not implemented: a config that switches them on is refused."""
    where = f"{path}/config.json"
    missing = [k for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                           "num_attention_heads") if k not in hf]
    if missing:
        raise ValueError(f"{where} has no {missing[0]!r}")
    if hf.get("hidden_act", "silu") != "silu":
        raise ValueError(f"{where}: hidden_act {hf['hidden_act']!r} is not implemented (only silu)")
    sliding = [t for t in hf.get("layer_types") or [] if t != "full_attention"]
    if hf.get("use_sliding_window") or sliding:
        raise ValueError(f"{where}: sliding-window attention (use_sliding_window: true, or layer_types "
                         f"{sorted(set(sliding))}) is not implemented")
    rope = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or {}
    for params in (rope, scaling):
        kind = params.get("rope_type", params.get("type", "default"))
        if kind != "default" or params.get("factor", 1.0) != 1.0:
            raise ValueError(f"{where}: rope scaling (rope_type {kind!r}) is not implemented")
    C, H = hf["hidden_size"], hf["num_attention_heads"]
    if C % H or hf.get("head_dim", C // H) != C // H:
        raise ValueError(f"{where}: head_dim {hf.get('head_dim')} with hidden_size {C} and {H} heads is not "
                         f"implemented (head_dim must be hidden_size / num_attention_heads)")
    K = hf.get("num_key_value_heads") or H
    if H % K:
        raise ValueError(f"{where}: num_attention_heads {H} is not a multiple of num_key_value_heads {K}")
    return GPTConfig(
        block_size=hf.get("max_position_embeddings", 32768), vocab_size=hf["vocab_size"],
        n_layer=hf["num_hidden_layers"],
        n_head=H, n_embd=C, n_kv_head=K,
        rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))), rmsnorm=True,
        norm_eps=hf.get("rms_norm_eps", 1e-6), mlp_hidden=hf["intermediate_size"], bias=False, qkv_bias=True,
        tie_embeddings=hf.get("tie_word_embeddings", False), dropout=0.0,
    )
