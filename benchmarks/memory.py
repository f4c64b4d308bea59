"""Memory of one RL step at the Qwen2.5 recipe's shapes, with and without the small-GPU options (--grad_ckpt,
--lora_rank, --optim=adamw8bit): which settings fit a 16 GB and a 24 GB card. Runs on a CPU in about a minute.

    python benchmarks/memory.py                        # the table for Qwen2.5-0.5B and 1.5B (docs/gsm8k.md)
    python benchmarks/memory.py --tokens 128 --check   # also checks the 2-layer measurement against a 3-layer one

What is measured and what is arithmetic. On a CPU nothing of the full shapes runs; instead, for each shape:
- the bytes autograd saves for backward per token (the training phase's activations), measured with
  torch.autograd.graph.saved_tensors_hooks on a slice of the model at full width (1 and 2 layers, so the per-layer
  part and the embedding/LM-head part are told apart; rows of T and 2T tokens, so what does not grow with the
  length, autocast's bf16 copies of the weights, is told apart too), under bf16 autocast as on a GPU, through train.py's own
  response_logprobs (the fused LM head at this vocabulary: no (N, L, V) logits), with and without --grad_ckpt
  and LoRA (with --grad_ckpt the blocks' inputs, which torch.utils.checkpoint keeps itself, are added: 4 bytes x
  width per layer and token). Attention is PyTorch's scaled_dot_product_attention, linear in the length.
- the bytes of the optimiser's state per trainable parameter, measured by one step of AdamW and of bitsandbytes'
  AdamW8bit on a slice (8 and about 2 bytes), and the trainable parameters with LoRA counted on the same slice.
Then per configuration: weights (fp32, 4 bytes a parameter) + gradients (4 bytes a trainable parameter) + optimiser
state + activations of one micro-batch (--micro-batch groups x group size x tokens per row), for the training phase;
and weights + a bf16 copy + the KV cache of the whole rollout (bf16), for the sampling phase. The step's peak is the
larger. Allocator overhead and fragmentation (10-20% on a GPU) are not in it, so "fits" below leaves 10% free; the
GPU measurement (benchmarks/rl_step.py --memory-cap 16 / 24, on a card) is what decides, and is owed.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train  # noqa: E402
from gift.lora import add_lora  # noqa: E402
from gift.model import GPT, preset  # noqa: E402

GIB = 2**30
SHAPES = ("qwen2.5-0.5b", "qwen2.5-1.5b")


def saved_bytes(model, idx, mask, cfg):
    """Bytes autograd keeps for backward over one forward of response_logprobs + a sum (unique storages)."""
    seen = {}

    def pack(t):
        try:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        except (RuntimeError, NotImplementedError):
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logp, _ = train.response_logprobs(model, idx, mask, cfg)
        logp.sum()
    return sum(seen.values())


def slice_model(name, layers, lora_rank, grad_ckpt):
    torch.manual_seed(0)
    model = GPT(preset(name, n_layer=layers, block_size=4096))
    model.grad_ckpt = grad_ckpt
    if lora_rank:
        add_lora(model, lora_rank)
    return model.train()


def measure(name, tokens, lora_rank, grad_ckpt, layers=(1, 2)):
    """(per-layer bytes per token, the rest's bytes per token, trainable parameters per layer and the rest, and the
    bytes kept whatever the length: the bf16 weight copies autocast saves). Bytes per token are the slope between
    `tokens` and 2 x `tokens`, so the weight copies (a fixed size) do not count as activations."""
    cfg = train.parse_args(["--task=gsm8k", "--dtype=bfloat16", "--fused_head=auto"])
    vocab = preset(name).vocab_size
    slope, fixed, trainable = [], [], []
    for n in layers:
        model = slice_model(name, n, lora_rank, grad_ckpt)
        kept = []
        for length in (tokens, 2 * tokens):
            idx = torch.randint(0, min(1000, vocab), (1, length + 1), generator=torch.Generator().manual_seed(0))
            kept.append(saved_bytes(model, idx, torch.ones(1, length), cfg))
        slope.append((kept[1] - kept[0]) / tokens)
        fixed.append(kept[0] - slope[-1] * tokens)
        trainable.append(sum(p.numel() for p in model.parameters() if p.requires_grad))
    per_layer = (slope[-1] - slope[0]) / (layers[-1] - layers[0])
    if grad_ckpt:  # checkpoint keeps each block's input itself (the fp32 residual stream), outside autograd's hooks
        per_layer += 4 * preset(name).n_embd
    t_layer = (trainable[-1] - trainable[0]) / (layers[-1] - layers[0])
    f_layer = (fixed[-1] - fixed[0]) / (layers[-1] - layers[0])
    return (per_layer, slope[0] - per_layer * layers[0], t_layer, trainable[0] - t_layer * layers[0],
            (f_layer, fixed[0] - f_layer * layers[0]))


def optimiser_bytes_per_param(optim):
    """Bytes of optimiser state per parameter after one step, on a 4M-parameter tensor (8-bit needs >= 4096)."""
    holder = torch.nn.Module()
    holder.p = p = torch.nn.Parameter(torch.randn(4 * 2**20))
    opt = train.make_optimizer(holder, 1e-3, train.parse_args([f"--optim={optim}"]))
    p.grad = torch.randn_like(p)
    opt.step()
    state = [t for s in opt.state.values() for t in s.values() if torch.is_tensor(t)]
    return sum(t.numel() * t.element_size() for t in state) / p.numel()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, default=128, help="tokens of the measured rows (T and 2T: the slope)")
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--row-tokens", type=int, default=712, help="prompt + response tokens of a row (200 + 512)")
    p.add_argument("--micro-batch", type=int, default=2, help="groups per forward/backward pass")
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--check", action="store_true", help="also measure 3 layers and compare with the 1-2 fit")
    args = p.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    try:
        optim8 = optimiser_bytes_per_param("adamw8bit")
    except SystemExit as e:  # bitsandbytes missing: its figure is bitsandbytes' documented 2 bytes
        print(f"note: {e}; using 2 bytes a parameter for adamw8bit")
        optim8 = 2.0
    optim_bytes = {"adamw": optimiser_bytes_per_param("adamw"), "adamw8bit": optim8}
    micro_tokens = args.micro_batch * args.group_size * args.row_tokens
    rollout_rows = args.prompts * args.group_size
    print(f"optimiser state per trainable parameter: AdamW {optim_bytes['adamw']:.2f} bytes, AdamW8bit "
          f"{optim_bytes['adamw8bit']:.2f} bytes (measured on a CPU)")
    print(f"training micro-batch: {args.micro_batch} groups x {args.group_size} x {args.row_tokens} tokens = "
          f"{micro_tokens:,} tokens; rollout: {rollout_rows} rows x {args.row_tokens} slots\n")
    print("| shape | options | activations / token (measured) | trainable | training peak | sampling peak | "
          "16 GB | 24 GB |")
    print("|---|---|---:|---:|---:|---:|:-:|:-:|")
    for name in SHAPES:
        full = preset(name)
        p1, p2 = (sum(p.numel() for p in slice_model(name, n, 0, False).parameters()) for n in (1, 2))
        params = p1 + (p2 - p1) * (full.n_layer - 1)
        configs = [("full fine-tuning, AdamW", 0, False, "adamw"), ("--grad_ckpt", 0, True, "adamw"),
                   ("--grad_ckpt --optim=adamw8bit", 0, True, "adamw8bit"),
                   (f"--grad_ckpt --lora_rank={args.lora_rank}", args.lora_rank, True, "adamw")]
        for label, rank, ckpt, optim in configs:
            per_layer, rest, t_layer, t_rest, (f_layer, f_rest) = measure(name, args.tokens, rank, ckpt)
            n_layer = full.n_layer
            trainable = t_rest + t_layer * n_layer
            acts = (rest + per_layer * n_layer) * micro_tokens + f_rest + f_layer * n_layer  # + bf16 weight copies
            training = 4 * params + (4 + optim_bytes[optim]) * trainable + acts
            head_dim = full.n_embd // full.n_head
            kv = 2 * n_layer * (full.n_kv_head or full.n_head) * head_dim * 2 * rollout_rows * args.row_tokens
            sampling = 4 * params + 2 * params + kv
            peak = max(training, sampling)
            fits = ["yes" if peak <= 0.9 * cap * 1e9 else "no" for cap in (16, 24)]
            print(f"| {name} ({params / 1e6:.0f}M) | {label} | {(rest + per_layer * n_layer) / 1e6:.2f} MB | "
                  f"{trainable / 1e6:.1f}M | {training / GIB:.1f} GiB | {sampling / GIB:.1f} GiB | {fits[0]} | "
                  f"{fits[1]} |", flush=True)
    if args.check:  # the 1-2 layer fit predicts 3 layers
        per_layer, rest, *_ = measure(SHAPES[0], args.tokens, 0, False)
        per_layer3, rest3, *_ = measure(SHAPES[0], args.tokens, 0, False, layers=(2, 3))
        print(f"\ncheck: per-layer bytes per token from 1-2 layers {per_layer:,.0f}, from 2-3 layers {per_layer3:,.0f}")


if __name__ == "__main__":
    main()
