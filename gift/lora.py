"""LoRA: low-rank adapters on a frozen model ("LoRA: Low-Rank Adaptation of Large Language Models", Hu et al., 2021).

A frozen Linear layer y = W x + b (W: (out, in)) gets a trainable low-rank update:

    y = W x + b + (alpha / r) * B A x        A: (r, in), B: (out, r), r << min(in, out)

A starts random (Kaiming-uniform, as nn.Linear's own init and peft's) and B at zero, so B A = 0 and the adapted
model starts exactly equal to the base. Only A and B are trained: r * (in + out) numbers per layer instead of
in * out, and the optimiser keeps state for those alone, which is what lets a larger model train on a small GPU.
alpha / r scales the update; alpha defaults to r (scale 1). The paper sets alpha to the first r it tries and does not
tune it, since with Adam tuning alpha is roughly tuning the learning rate.

Fused layers. gift/model.py computes q, k, v with one Linear (attn.c_attn, out = (H + 2K) * D) and SwiGLU's gate and
up with one (mlp.c_fc, out = 2 * mlp_hidden). An adapter is put on each projection of such a layer, as if they were
separate Linear layers (like loralib's MergedLinear, the LoRA authors' code for GPT-2's fused c_attn): part j of the
output has its own A_j (r, in) and B_j (out_j, r). They are stored stacked: lora_A (P * r, in) holds A_1..A_P, lora_B
(out, r) holds B_1..B_P along the rows, so

    delta W = scale * [B_1 A_1; B_2 A_2; ...]       rows of part j: B_j A_j (out_j, in)

and a rank-r adapter on Qwen2's fused layers equals peft's rank-r adapters on q_proj, k_proj, v_proj, gate_proj and
up_proj (tests/test_lora.py checks this). A layer with one part is plain LoRA.

Targets are module-name suffixes of gift/model.py's Linear layers (the same names for GPT-2 and Qwen2):
    attn.c_attn   q, k, v (three adapters)            attn.c_proj   attention output (Qwen2: o_proj)
    mlp.c_fc      GPT-2: fc; Qwen2: gate, up (two)    mlp.c_proj    MLP output (Qwen2: down_proj)
The default is all four (all the Linear layers of the blocks, as in QLoRA, which found adapting every layer needed to
match full fine-tuning). The embeddings and the LM head are never adapted.

The adapted layer keeps the base layer's parameters under their names (weight, bias) and adds lora_A and lora_B, so
a LoRA model's state dict is the base model's plus the adapters: it saves and loads like any model, a base checkpoint
loads into it with strict=False, and `merged_state_dict` gives a plain model's state dict for export.

A 4-bit base (--quant=nf4, gift/quant.py): quantize_base moves an adapted layer's frozen weight into `layer.nf4`
(its weight becomes None) and the layer computes its base with the 4-bit matmul. Merging dequantises it first: the
merged model is the 4-bit base plus the adapters, in ordinary nn.Linear layers of the adapters' dtype.
"""

import contextlib
import math

import torch
import torch.nn as nn
from torch.nn import functional as F

from gift.model import CausalSelfAttention, SwiGLU

TARGETS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
DEFAULT_TARGETS = TARGETS


class LoRALinear(nn.Module):
    """A frozen Linear layer plus (alpha / r) B A, one adapter per output part (see the module docstring).

    weight (out, in) and bias (out,) are the base layer's own Parameter objects; lora_A (P * r, in), lora_B (out, r).
    With `disabled` True it computes exactly the base layer. nf4: None, or after gift.quant.quantize_base the base
    weight in 4 bits (a gift.quant.NF4Weight; weight is then None).
    """

    def __init__(self, base, rank, alpha, parts=None, dropout=0.0):
        super().__init__()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight  # the same tensors, not copies: tied or shared references keep working
        self.register_parameter("bias", base.bias)  # (None when the base has no bias)
        self.parts = tuple(parts) if parts else (base.out_features,)  # output sizes of the projections, in order
        if sum(self.parts) != self.out_features:
            raise ValueError(f"parts {self.parts} do not add up to the layer's {self.out_features} outputs")
        self.rank, self.alpha, self.scale = rank, alpha, alpha / rank
        kw = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(len(self.parts) * rank, self.in_features, **kw))  # A_1..A_P stacked
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's init, peft's default for A
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank, **kw))  # B_1..B_P stacked; zero: B A = 0
        self.lora_dropout = nn.Dropout(dropout)  # on the adapter's input only (as in peft)
        self.disabled = False
        self.nf4 = None  # the base weight in 4 bits (gift/quant.py), once quantised

    def forward(self, x):
        """x (..., in) -> (..., out)."""
        if self.nf4 is None:
            y = F.linear(x, self.weight, self.bias)  # the base layer, exactly as nn.Linear computes it
        else:
            y = self.nf4.linear(x, self.bias)  # the same with W in 4 bits (gift/quant.py)
        if self.disabled:
            return y
        u = F.linear(self.lora_dropout(x), self.lora_A)  # (..., P * r): every A_j x at once
        if len(self.parts) == 1:
            delta = F.linear(u, self.lora_B)  # (..., out)
        else:  # part j: B_j (A_j x), (..., out_j); the parts side by side give (..., out)
            delta = torch.cat([F.linear(u_j, B_j) for u_j, B_j in
                               zip(u.split(self.rank, dim=-1), self.lora_B.split(self.parts, dim=0))], dim=-1)
        return y + delta * self.scale

    def base_weight(self):
        """W (out, in) in the adapters' dtype: the weight Parameter, or the 4-bit weight dequantised (a new tensor)."""
        return self.weight if self.nf4 is None else self.nf4.dequantize(self.lora_A.dtype)

    def delta_weight(self):
        """scale * B A as a (out, in) tensor: the update merging adds to the weight."""
        blocks = [B_j @ A_j for A_j, B_j in zip(self.lora_A.split(self.rank, dim=0), self.lora_B.split(self.parts))]
        return torch.cat(blocks, dim=0) * self.scale

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, "
                f"alpha={self.alpha}, parts={self.parts}")


def _parts(parent, child_name, linear):
    """The output parts of a fused Linear: q, k, v of attention's c_attn; gate, up of SwiGLU's c_fc; else one."""
    if isinstance(parent, CausalSelfAttention) and child_name == "c_attn":
        D = parent.head_dim
        return (parent.n_head * D, parent.n_kv_head * D, parent.n_kv_head * D)
    if isinstance(parent, SwiGLU) and child_name == "c_fc":
        return (linear.out_features // 2, linear.out_features // 2)
    return None


def _lora_layers(model):
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LoRALinear)]


def add_lora(model, rank, alpha=None, targets=DEFAULT_TARGETS, dropout=0.0):
    """Put rank-`rank` adapters on the target Linear layers of `model` (in place) and freeze everything else.

    alpha: the update is scaled by alpha / rank; None gives alpha = rank (scale 1). targets: module-name suffixes
    from TARGETS. A and B are created on the base weights' device and dtype, A drawn from torch's global RNG.
    Returns the model. Call it before wrapping the model in DDP and before building the optimiser.
    """
    if isinstance(targets, str):
        targets = (targets,)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise ValueError(f"unknown LoRA targets {unknown}; choose from {list(TARGETS)}")
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"LoRA rank must be an integer >= 1, got {rank!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout!r}")
    if _lora_layers(model):
        raise ValueError("the model already has LoRA adapters (merge_lora it first to start new ones)")
    alpha = rank if alpha is None else alpha
    model.requires_grad_(False)  # the base is frozen: embeddings, norms, every Linear, the LM head
    chosen = [(name, module) for name, module in model.named_modules()
              if isinstance(module, nn.Linear) and any(name == t or name.endswith("." + t) for t in targets)]
    if not chosen:
        raise ValueError(f"no Linear layer of the model matches the LoRA targets {list(targets)}")
    for name, linear in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoRALinear(linear, rank, alpha, _parts(parent, child, linear), dropout))
    return model


def lora_parameters(model):
    """The trainable adapter parameters (every lora_A and lora_B), in module order: what the optimiser gets."""
    return [p for _, m in _lora_layers(model) for p in (m.lora_A, m.lora_B)]


@contextlib.contextmanager
def adapters_disabled(model):
    """Inside this block the model computes its base exactly (every adapter skipped), e.g. for a frozen reference's
    log-probs with no second copy of the model. Meant for forwards without backward (under torch.no_grad): with
    gradient checkpointing, a backward run after the block would recompute the blocks with the adapters on."""
    layers = [m for _, m in _lora_layers(model)]
    before = [m.disabled for m in layers]
    for m in layers:
        m.disabled = True
    try:
        yield model
    finally:
        for m, state in zip(layers, before):
            m.disabled = state


@torch.no_grad()
def merge_lora(model):
    """Fold every adapter into its weight, W <- W + scale * B A, and put back plain nn.Linear layers (in place).

    The merged layers keep the base's Parameter objects (and their requires_grad, False after add_lora); a 4-bit
    base (gift/quant.py) is dequantised into a new frozen Parameter of the adapters' dtype. Returns the model, which
    computes what the adapted model computed (up to float round-off) at the cost of the base.
    """
    for name, layer in _lora_layers(model):
        if layer.nf4 is None:
            layer.weight.add_(layer.delta_weight().to(layer.weight.dtype))
            weight = layer.weight
        else:
            weight = nn.Parameter(layer.base_weight() + layer.delta_weight(), requires_grad=False)
        plain = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None, device="meta")
        plain.weight = weight
        plain.register_parameter("bias", layer.bias)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, plain)
    return model


@torch.no_grad()
def merged_state_dict(model):
    """The state dict of the plain model that computes what `model` computes: each adapted weight replaced by
    W + scale * B A, the lora_A / lora_B entries dropped (and a 4-bit base's nf4 entries: W is its dequantised weight).
    The model is untouched (the merged weights are new tensors; the others are the model's own, as in any state
    dict). It loads into a GPT without adapters."""
    state = model.state_dict()
    for name, layer in _lora_layers(model):
        prefix = name + "."
        weight = layer.base_weight()
        for key in [k for k in state if k.startswith(prefix + "nf4.")]:
            del state[key]
        state[prefix + "weight"] = weight + layer.delta_weight().to(weight.dtype)
        del state[prefix + "lora_A"], state[prefix + "lora_B"]
    return state
