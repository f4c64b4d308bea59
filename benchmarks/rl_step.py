"""Time and peak memory of one RL step (`train.rl_step`) at a model shape, with random weights: the figures the
Qwen2.5 recipe in docs/gsm8k.md estimates by arithmetic (measured on an H100: docs/benchmarks.md).

The model is a preset (default: the Qwen2.5-0.5B shape, vocabulary 151,936) with random weights; prompts are
--prompt-tokens bytes of text under the byte tokenizer, and the verifier's rewards are replaced by coin flips so the
loss has a gradient. A random model never emits a stop token, so every row samples all --max-new-tokens tokens: the
worst case of a real step. The first step is a warm-up; the others are timed (sampling, the rest of the step) and
the peak memory of each phase is reported.

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
from gift.model import GPT, preset  # noqa: E402
from gift.tokenizer import builtin_tokenizer  # noqa: E402


def main():
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
    args = p.parse_args()
    if args.steps < 2:
        p.error("--steps must be >= 2 (the first step is a warm-up)")
    if args.minibatches < 1 or args.prompts % args.minibatches:
        p.error(f"--prompts={args.prompts} must be divisible by --minibatches={args.minibatches}")

    cuda = args.device.startswith("cuda")
    cfg = train.Config(task="gsm8k", device=args.device, dtype="bfloat16" if cuda else "float32",
                       prompts=args.prompts, group_size=args.group_size, max_new_tokens=args.max_new_tokens,
                       micro_batch=args.micro_batch, minibatches=args.minibatches, sft_steps=0, rl_lr=1e-6)
    torch.manual_seed(0)
    model = GPT(preset(args.preset, block_size=args.prompt_tokens + 64 + args.max_new_tokens)).to(args.device)
    enc = builtin_tokenizer()  # ids >= 257 that the random model samples are dropped from the texts
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.rl_lr, betas=(0.9, 0.99), weight_decay=0.0)
    question = ("Ann has 12 pens. " * 100)[: args.prompt_tokens - len("Question: \nAnswer:")]
    train_example = lambda i: Example(question, "#### 1", "1")  # noqa: E731
    coin = random.Random(0)
    train.is_correct = lambda text, answer: coin.random() < 0.5  # rewards with variance in every group

    phases = {}
    real_generate = train.generate

    def timed_generate(*a, **kw):  # sampling on its own: time and peak memory
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        out = real_generate(*a, **kw, **({} if args.decode_graphs == "auto" else dict(decode_graphs=False)))
        if cuda:
            torch.cuda.synchronize()
            phases["sample_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
            torch.cuda.reset_peak_memory_stats()
        phases["sample_s"] = time.perf_counter() - t0
        return out

    train.generate = timed_generate
    print(f"{args.preset}: {model.num_params() / 1e6:.0f}M parameters, {args.prompts} prompts x {args.group_size} "
          f"samples, {args.prompt_tokens}-token prompts + {args.max_new_tokens} new tokens, micro-batches of "
          f"{args.micro_batch} groups, {cfg.dtype}, {args.device}, decode graphs {args.decode_graphs}"
          + (f" ({torch.cuda.get_device_name()})" if cuda else ""))
    for step in range(args.steps):
        t0 = time.perf_counter()
        result = train.rl_step(step, model, None, opt, enc, train_example, cfg, 0, 1)
        if cuda:
            torch.cuda.synchronize()
        total = time.perf_counter() - t0
        train_peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
        print(f"step {step}{' (warm-up)' if step == 0 else ''}: sampling {phases['sample_s']:.2f} s "
              f"(peak {phases.get('sample_peak_gib', float('nan')):.1f} GiB), rest of the step "
              f"{total - phases['sample_s']:.2f} s (peak {train_peak:.1f} GiB), loss "
              f"{result[0] if result else float('nan'):.4f}", flush=True)


if __name__ == "__main__":
    main()
