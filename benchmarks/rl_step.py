"""Time and peak memory of one RL step of train.py (`train.rollout`, then `train.update_policy`) at a model shape,
with random weights: the figures the Qwen2.5 recipe in docs/gsm8k.md estimates by arithmetic (measured on an H100:
docs/benchmarks.md). A GPU benchmark: on a CPU only the small presets run (the check below); the Qwen2.5 shape
would take hours there.

The model is a preset (default: the Qwen2.5-0.5B shape, vocabulary 151,936) with random weights; prompts are
--prompt-tokens bytes of text under the byte tokenizer, and the task's reward is a coin flip (a Task of its own,
gift/tasks.py) so the loss has a gradient. A random model never emits a stop token, so every row samples all
--max-new-tokens tokens: the worst case of a real step. The first step is a warm-up; the others are timed (the
rollout: sampling and the pi_old pass; the update: K mini-batch steps) with the peak GPU memory of each phase.

    python benchmarks/rl_step.py                                   # the Qwen2.5 recipe's settings, on a CUDA GPU
    python benchmarks/rl_step.py --preset nano --prompts 4 --group-size 2 --max-new-tokens 8 --device cpu  # check
"""

import argparse
import os
import random
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train  # noqa: E402
from gift.data import Example  # noqa: E402
from gift.lora import add_lora  # noqa: E402
from gift.model import GPT, preset  # noqa: E402
from gift.reference import Reference  # noqa: E402
from gift.resample import one_round  # noqa: E402
from gift.runs import Run  # noqa: E402
from gift.shard import Shard  # noqa: E402
from gift.tasks import Task  # noqa: E402
from gift.tokenizer import builtin_tokenizer  # noqa: E402

SMALL = ("nano", "micro")  # the presets a CPU runs in seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="qwen2.5-0.5b")
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--prompt-tokens", type=int, default=200)
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--micro-batch", type=int, default=2, help="groups per forward/backward pass")
    p.add_argument("--minibatches", type=int, default=train.Config.minibatches, help="optimiser steps per RL step")
    p.add_argument("--steps", type=int, default=3, help="RL steps; the first is a warm-up")
    p.add_argument("--decode-graphs", choices=["auto", "off"], default="auto",
                   help="auto: the sampler's default (CUDA graphs on a GPU); off: eager decode steps")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--grad-ckpt", action="store_true", help="train.py --grad_ckpt: recompute each block in backward")
    p.add_argument("--lora-rank", type=int, default=0, help="train.py --lora_rank: LoRA adapters, the rest frozen")
    p.add_argument("--optim", choices=train.OPTIMIZERS, default="adamw", help="train.py --optim")
    p.add_argument("--memory-cap", type=float, default=0,
                   help="GiB: cap this process's GPU memory (torch.cuda.set_per_process_memory_fraction), as a card of "
                        "that size would; an out-of-memory step is reported, not a traceback")
    p.add_argument("--layers", type=int, default=0, help="override the preset's layer count (a quick, smaller check)")
    args = p.parse_args(argv)
    if args.steps < 2:
        p.error("--steps must be >= 2 (the first step is a warm-up)")
    if args.minibatches < 1 or args.prompts % args.minibatches:
        p.error(f"--prompts={args.prompts} must be divisible by --minibatches={args.minibatches}")
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit(f"error: --device={args.device} but this torch ({torch.__version__}) sees no CUDA GPU")
    if not cuda and args.preset not in SMALL:
        raise SystemExit(f"error: benchmarks/rl_step.py is a GPU benchmark: on a CPU the {args.preset} shape would "
                         f"take hours; run the small check instead: python benchmarks/rl_step.py --preset nano "
                         f"--prompts 4 --group-size 2 --max-new-tokens 8 --device cpu")

    cfg = train.Config(task="gsm8k", device=args.device, dtype="bfloat16" if cuda else "float32",
                       prompts=args.prompts, group_size=args.group_size, max_new_tokens=args.max_new_tokens,
                       micro_batch=args.micro_batch, minibatches=args.minibatches, sft_steps=0, rl_lr=1e-6,
                       optim=args.optim, lora_rank=args.lora_rank, grad_ckpt=args.grad_ckpt)
    if args.memory_cap and cuda:
        total = torch.cuda.get_device_properties(0).total_memory / 2**30
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.memory_cap / total))
    torch.manual_seed(0)
    shape = dict(block_size=args.prompt_tokens + 64 + args.max_new_tokens, **({"n_layer": args.layers} if args.layers
                                                                               else {}))
    model = GPT(preset(args.preset, **shape)).to(args.device)
    model.grad_ckpt = args.grad_ckpt
    if args.lora_rank:
        add_lora(model, args.lora_rank)
    question = ("Ann has 12 pens. " * 100)[: args.prompt_tokens - len("Question: \nAnswer:")]
    coin = random.Random(0)
    task = Task("coin", lambda i: Example(question, "#### 1", "1"), [], lambda text, ex: float(coin.random() < 0.5),
                lambda *a: {})  # rewards with variance in every group
    run = Run(Shard(), "", task, [], model, builtin_tokenizer(), train.make_optimizer(model, cfg.rl_lr, cfg),
              train.LOSSES[cfg.method], Reference("old"), one_round,
              decode_graphs=False if args.decode_graphs == "off" else None)
    print(f"{args.preset}: {model.num_params() / 1e6:.2f}M parameters, {args.prompts} prompts x {args.group_size} "
          f"samples, {args.prompt_tokens}-token prompts + {args.max_new_tokens} new tokens, micro-batches of "
          f"{args.micro_batch} groups, {cfg.dtype}, {args.device}, decode graphs {args.decode_graphs}, grad_ckpt "
          f"{args.grad_ckpt}, lora_rank {args.lora_rank}, optim {args.optim}, memory cap {args.memory_cap or 'none'}"
          + (f" ({torch.cuda.get_device_name()})" if cuda else " (peak memory is measured on a GPU only)"), flush=True)

    def timed(fn, *a):  # (result, seconds, peak GiB or None)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        out = fn(*a)
        if cuda:
            torch.cuda.synchronize()
        return out, time.perf_counter() - t0, torch.cuda.max_memory_allocated() / 2**30 if cuda else None

    peak = lambda gib: f", peak {gib:.1f} GiB" if gib is not None else ""  # noqa: E731
    for step in range(args.steps):
        run.step = step
        try:
            rollout, t_roll, m_roll = timed(train.rollout, run, cfg)
            (loss, stats), t_upd, m_upd = timed(train.update_policy, run, cfg, rollout)
        except torch.cuda.OutOfMemoryError:
            print(f"step {step}: out of memory under the {args.memory_cap:g} GiB cap", flush=True)
            return 1
        print(f"step {step}{' (warm-up)' if step == 0 else ''}: rollout {t_roll:.2f} s (sampling "
              f"{rollout.sample_time:.2f} s{peak(m_roll)}), update {t_upd:.2f} s ({args.minibatches} optimiser "
              f"steps{peak(m_upd)}), loss {loss:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
