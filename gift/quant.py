"""A 4-bit base under the LoRA adapters (--quant=nf4): QLoRA's storage ("QLoRA: Efficient Finetuning of Quantized
LLMs", Dettmers et al., 2023), with bitsandbytes doing the quantisation and the matmul.

    add_lora(model, rank, alpha)          # gift/lora.py: adapters, the rest frozen
    quantize_base(model)                  # every adapted layer's frozen weight W -> NF4; the adapters stay as they are

NF4 (4-bit NormalFloat). W (out, in) is flattened row by row and cut into blocks of 64 consecutive weights. Each block
keeps its absolute maximum m (absmax, float32) and each weight the index i of the level q_i nearest to w / m, among
16 levels in [-1, 1] placed at quantiles of a normal distribution (with an exact 0): 4 bits, two weights a byte.
Dequantised, w ~ m * q_i. The levels are bitsandbytes' constant, built into its kernels, so they are not stored.

What is stored in 4 bits: the base weight of every layer add_lora adapted. With train.py's targets (gift.lora's
default) that is every Linear of the blocks: q/k/v, the attention output, the MLP's two. The rest stays as it is:
the biases and norms (a few numbers a layer), the token embedding (a row lookup, not a matmul) and the LM head (tied
to the embedding in GPT-2 and Qwen2.5-0.5B; kept in full precision as transformers' 4-bit loading keeps it). A frozen
Linear that add_lora left without adapters (only with non-default targets) is not quantised: merging and export
then have only one kind of 4-bit layer to turn back into nn.Linear.

Rows must be whole blocks (in a multiple of 64, as in every GPT-2 and Qwen2 model): quantising cuts the flattened
weight into blocks, but bitsandbytes 0.50's CPU kernel dequantises blocks within rows, so a block that ran over a
row's end would come back with the wrong scales. quantize_base refuses such a model.

Storage: out * in / 2 bytes of 4-bit indices plus 4 bytes of absmax a block, 0.5 + 4 / 64 = 0.5625 bytes a weight
(4.5 bits; float32 takes 4, bfloat16 2). In the state dict, per quantised layer (LAYER: transformer.h.0.attn.c_attn):

    LAYER.nf4.packed   uint8 (out * in / 2, 1)   two 4-bit indices a byte, bitsandbytes' layout
    LAYER.nf4.absmax   int32 (out * in / 64,)    the float32 block maxima, kept as their bits (see NF4Weight)

plain tensors only, so torch.load(weights_only=True) reads a checkpoint, and it loads into a model built and quantised
the same way (load_state_dict copies the bytes in). Quantising is deterministic: the same weights give the same bytes.

No double quantisation. QLoRA also quantises the absmax values (8 bits, in blocks of 256, less their mean), saving
0.37 bits a weight (8% of the base). Without it, each block of a fused layer (our c_attn = q | k | v, c_fc = gate | up)
is the same block transformers' separate q/k/v or gate/up layers get (each part's out_j * in is a multiple of 64), so
a model here is bit for bit the 4-bit model transformers + bitsandbytes load (tests/test_quant.py checks it against
peft's QLoRA); with it, the second level's mean and blocks span the whole fused tensor.

The matmul: bitsandbytes.matmul_4bit dequantises W into the compute dtype and multiplies. Its backward keeps only the
4-bit W and dequantises it again for the input's gradient (the base itself gets none), so no full-precision copy of a
weight outlives its layer's forward. The compute dtype is quantize_base's compute_dtype, or by default the input's
(under autocast the autocast dtype, as nn.Linear would compute).

Merging: gift.lora.merge_lora and merged_state_dict dequantise W into the adapters' dtype (the model's) and add
scale * B A: the merged (and exported) model is the 4-bit base plus the adapters, dequantised.
"""
import logging

import torch
import torch.nn as nn

from gift.lora import _lora_layers

QUANTS = ("none", "nf4")  # train.py's --quant (gift/memory.py reads this list)
BLOCK = 64  # weights per absmax: QLoRA's and bitsandbytes' default
MISSING = "error: --quant=nf4 needs bitsandbytes: pip install bitsandbytes"


_bitsandbytes = None


def _bnb():
    """bitsandbytes, imported on first use (an optional package); one error line when it is missing."""
    global _bitsandbytes
    if _bitsandbytes is None:
        # On a CPU with AVX512-BF16, importing bitsandbytes logs a warning that an optional kernel package could not
        # be loaded; our matmul never uses that kernel (it serves Linear4bit's bfloat16 CPU inference), so the line
        # would only mislead. The import is quiet below ERROR.
        logger = logging.getLogger("bitsandbytes")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            import bitsandbytes
            import bitsandbytes.functional  # noqa: F401
        except ImportError:
            raise SystemExit(MISSING) from None
        finally:
            logger.setLevel(level)
        _bitsandbytes = bitsandbytes
    return _bitsandbytes


def check_quant(quant, lora_rank, device):
    """Refuse, in one `error:` line, a --quant that cannot run: an unknown one; nf4 without --lora_rank (the 4-bit
    base is frozen, only adapters can train on it); without bitsandbytes; on a device bitsandbytes has no NF4 kernels
    for. bitsandbytes names the device types it has backends for (supported_torch_devices: CPU and CUDA among them);
    a 64-weight quantise and matmul on the device then checks that its kernels really load and compute."""
    if quant not in QUANTS:
        raise SystemExit(f"error: --quant={quant!r}: choose one of {', '.join(QUANTS)}")
    if quant == "none":
        return
    if not lora_rank:
        raise SystemExit("error: --quant=nf4 keeps the frozen base in 4 bits under LoRA adapters: it needs "
                         "--lora_rank (e.g. --lora_rank=16)")
    bnb = _bnb()
    kind = torch.device(device).type
    if kind not in bnb.supported_torch_devices:
        raise SystemExit(f"error: --quant=nf4: bitsandbytes {bnb.__version__} has no backend for device {device!r} "
                         f"(it has: {', '.join(sorted(bnb.supported_torch_devices))})")
    try:  # 128 weights in [-1, 1]: dequantised, each within half NF4's widest gap (0.304 / 2) of itself
        w = torch.linspace(-1, 1, 2 * BLOCK, device=device).view(2, BLOCK)
        nf4 = NF4Weight(w)
        d = nf4.dequantize()
        ok = (d - w).abs().max().item() <= 0.16 and torch.allclose(nf4.linear(w, None), w @ d.t(), atol=1e-4)
    except Exception as e:  # no kernel registered for the device, its library failed to load, ...
        raise SystemExit(f"error: --quant=nf4: bitsandbytes {bnb.__version__} cannot run NF4 on {device!r} "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else 'no message'})") from None
    if not ok:
        raise SystemExit(f"error: --quant=nf4: bitsandbytes {bnb.__version__} computes NF4 wrongly on {device!r}")


class NF4Weight(nn.Module):
    """A frozen weight W (out, in) in NF4 (see the module docstring): buffers `packed` (4-bit indices) and `absmax`.

    absmax holds float32 values as their bits in an int32 tensor: casting a model (model.to(torch.bfloat16), or the
    sampler's cast copy for --dtype=bfloat16) casts every floating-point tensor, and would round the block maxima.
    """

    def __init__(self, weight, compute_dtype=None):
        super().__init__()
        bnb = _bnb()
        w = weight.detach()
        if w.dim() != 2 or w.shape[1] % BLOCK:
            raise ValueError(f"NF4 stores 2-D weights whose rows are whole blocks of {BLOCK}, got shape "
                             f"{tuple(w.shape)} (see the module docstring)")
        packed, state = bnb.functional.quantize_4bit(w, blocksize=BLOCK, quant_type="nf4", compress_statistics=False)
        self.shape = tuple(w.shape)
        self.compute_dtype = compute_dtype
        self.register_buffer("packed", packed)  # uint8 (out * in / 2, 1)
        self.register_buffer("absmax", state.absmax.float().view(torch.int32))  # (ceil(out * in / 64),)

    def quant_state(self, dtype):
        """bitsandbytes' description of W, built from the buffers each time (they move with .to(device))."""
        return _bnb().functional.QuantState(absmax=self.absmax.view(torch.float32), shape=torch.Size(self.shape),
                                            blocksize=BLOCK, quant_type="nf4", dtype=dtype)

    def dequantize(self, dtype=torch.float32):
        """W (out, in) in dtype: m * q_i for every weight."""
        return _bnb().functional.dequantize_4bit(self.packed, self.quant_state(dtype))

    def linear(self, x, bias=None):
        """x (..., in) -> x W^T + b (..., out), in the compute dtype; returned in x's dtype, except under autocast
        (returned in the autocast dtype, as nn.Linear does)."""
        autocast = torch.is_autocast_enabled(x.device.type)
        dtype = self.compute_dtype or (torch.get_autocast_dtype(x.device.type) if autocast else x.dtype)
        y = _bnb().matmul_4bit(x.to(dtype), self.packed.t(), self.quant_state(dtype))
        if bias is not None:  # added here: bitsandbytes' backward sums a bias gradient over 2-D inputs only
            y = y + bias.to(dtype)
        return y if autocast else y.to(x.dtype)

    def extra_repr(self):
        return f"shape={self.shape}, nf4, blocksize={BLOCK}, compute_dtype={self.compute_dtype}"


@torch.no_grad()
def quantize_base(model, compute_dtype=None):
    """Store the frozen base weight of every LoRA-adapted layer of `model` in NF4 (in place, on the weight's device),
    freeing the full-precision one; the adapters and everything else are untouched. Call it after gift.lora.add_lora
    and before building the optimiser. Layers already in 4 bits are left as they are. Returns the model.

    compute_dtype: the dtype the base is dequantised into for its matmul; None: the input's (see NF4Weight.linear).
    """
    layers = _lora_layers(model)
    if not layers:
        raise ValueError("the model has no LoRA adapters: --quant=nf4 quantises the frozen base under them "
                         "(call gift.lora.add_lora first)")
    ragged = [(name, layer.in_features) for name, layer in layers if layer.in_features % BLOCK]
    if ragged:  # checked before any layer changes: a refused model is left as it was
        raise SystemExit(f"error: --quant=nf4 needs every adapted layer's input size to be a multiple of {BLOCK} "
                         f"(bitsandbytes' CPU kernel keeps its blocks within rows); {ragged[0][0]} has "
                         f"{ragged[0][1]}")
    for _, layer in layers:
        if layer.nf4 is None:
            layer.nf4 = NF4Weight(layer.weight, compute_dtype)
            layer.weight = None  # the full-precision Parameter goes (its memory too, unless held elsewhere)
    return model


@torch.no_grad()
def frozen_matrices_in(model, dtype):
    """Store the frozen embedding and LM head (and GPT-2's position embedding) in `dtype` (in place; tied weights
    stay tied): with --quant=nf4 and --dtype=bfloat16 (train.py), what transformers' 4-bit loading does with the
    layers it leaves unquantised. For Qwen2.5-7B (untied, vocabulary 152,064 x 3,584) that is 2.03 GiB instead of 4.06.

    What it changes: under bfloat16 autocast the head's matmul already computes with a bfloat16 copy of its weight
    (nn.Linear and gift.kernels.model_logprobs cast it), so the log-probs are the same; the embedding's rows are
    rounded to bfloat16 before they enter the residual stream, which stays float32 (gift/model.py). Sampling's
    bfloat16 copy then shares them instead of casting a copy (gift/sampler.py). Norms and biases (vectors) and any
    trained parameter keep their dtype. Returns the model."""
    inner = model.transformer
    for module in (inner.wte, getattr(inner, "wpe", None), model.lm_head):
        p = None if module is None else module.weight
        if p is not None and not p.requires_grad and p.dtype != dtype:
            p.data = p.data.to(dtype)
    return model


def quantized_bytes(model):
    """(bytes the 4-bit weights take, buffers included; how many weights they hold): 0.5625 bytes a weight."""
    nf4 = [m for m in model.modules() if isinstance(m, NF4Weight)]
    return (sum(t.numel() * t.element_size() for m in nf4 for t in (m.packed, m.absmax)),
            sum(m.shape[0] * m.shape[1] for m in nf4))
