"""Held-out evaluation: greedy pass@1, and pass@k from n samples, with 95% confidence intervals.

    python eval.py out/builtin-gift-s0/ckpt.pt --task builtin
    python eval.py gpt2 --task gsm8k --n 16 --k 1,4,16 --temperature 0.8

pass@k uses the unbiased estimator of Chen et al. (2021): with n samples of which c are correct,
pass@k = 1 - C(n-c, k) / C(n, k), averaged over problems. The interval is mean +- 1.96 standard errors over problems.
For GSM8K both the strict (`#### N`) and the flexible (last number) readings of an answer are reported.
"""

import argparse
import json
import math
import os

import torch

from gift import data
from gift.model import GPT, GPTConfig, PRESETS, preset
from gift.sampler import generate
from gift.tokenizer import builtin_tokenizer, eot_id, get_tokenizer
from gift.verifier import calculate, is_correct


def load_model(init, task):
    """(model, tokenizer) from a preset name (random init), one of our ckpt.pt files, an HF directory or a hub name.

    The tokenizer: the built-in byte tokenizer for the built-in task; otherwise the vocab.json/merges.txt of the
    checkpoint directory (for a ckpt.pt: of the directory its run started from) when present, else GPT-2's.
    """
    ckpt = None
    if init.endswith(".pt"):
        if not os.path.isfile(init):
            raise SystemExit(f"error: checkpoint {init!r} does not exist")
        ckpt = torch.load(init, map_location="cpu", weights_only=False)
        if "model_config" not in ckpt or ckpt.get("config", {}).get("task") != task:
            raise SystemExit(f"error: {init} is not a gift checkpoint for --task {task}")
    source = ckpt["config"]["init"] if ckpt else init
    if task == "builtin":
        enc = builtin_tokenizer()
    elif os.path.isfile(os.path.join(source, "vocab.json")):
        enc = get_tokenizer(source)  # the checkpoint's own vocabulary files: no download
    else:
        try:
            enc = get_tokenizer("gpt2")  # tiktoken downloads GPT-2's BPE files once, then reads its cache
        except Exception as e:
            raise SystemExit(f"error: could not load GPT-2's tokenizer ({type(e).__name__}); it is downloaded on first "
                             f"use, or give --init a checkpoint directory with vocab.json and merges.txt") from None
    if ckpt:
        model = GPT(GPTConfig(**ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
    elif init in PRESETS and not os.path.isdir(init):
        model = GPT(preset(init, vocab_size=enc.n_vocab))  # trained from scratch
    else:
        model = GPT.from_pretrained(init)
    if model.config.vocab_size < enc.n_vocab:
        raise SystemExit(f"error: model vocabulary {model.config.vocab_size} < tokenizer's {enc.n_vocab}")
    return model, enc


def pass_at_k(n, c, k):
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def mean_ci(values):
    """Mean and half-width of its 95% normal interval."""
    m = sum(values) / len(values)
    var = sum((v - m) ** 2 for v in values) / max(1, len(values) - 1)
    return m, 1.96 * math.sqrt(var / len(values))


@torch.no_grad()
def evaluate(model, enc, examples, n=1, ks=(1,), temperature=0.0, batch_size=250, max_new_tokens=256, seed=0,
             modes=("strict",)):
    """Score a model on examples. n=1 with temperature 0 is greedy pass@1.

    Returns {"pass@k" (strict): float, "pass@k_ci": half-width, "<mode>/pass@k": ..., "per_problem": correct counts
    (strict), "completions": the first sample's text for each problem}.
    """
    model.eval()
    correct, completions = {mode: [] for mode in modes}, []
    for b in range(0, len(examples), batch_size):
        batch = examples[b : b + batch_size]
        prompts = [enc.encode(data.format_prompt(ex.question)) for ex in batch]
        out = generate(model, prompts, num_samples=n, max_new_tokens=max_new_tokens, temperature=temperature,
                       stop_tokens=(eot_id(enc),), calculator=calculate, tokenizer=enc, seed=seed + b)
        texts = [enc.decode([t for t in seq if t != eot_id(enc)]) for seq in out.sequences]
        completions += texts[::n]
        for mode in modes:
            for i, ex in enumerate(batch):
                correct[mode].append(sum(is_correct(t, ex.answer, mode=mode) for t in texts[i * n : (i + 1) * n]))
    results = {}
    for mode in modes:
        for k in ks:
            m, ci = mean_ci([pass_at_k(n, c, k) for c in correct[mode]])
            prefix = "" if mode == "strict" else f"{mode}/"
            results[f"{prefix}pass@{k}"], results[f"{prefix}pass@{k}_ci"] = m, ci
    results["per_problem"], results["completions"] = correct[modes[0]], completions
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a ckpt.pt from train.py, an HF-layout directory, or a hub name such as gpt2")
    p.add_argument("--task", choices=("builtin", "gsm8k"), required=True)
    p.add_argument("--problems", type=int, default=1000, help="held-out problems (GSM8K's test split has 1,319)")
    p.add_argument("--n", type=int, default=1, help="samples per problem (1 with temperature 0: greedy)")
    p.add_argument("--k", default="1", help="comma-separated k values for pass@k, each <= n")
    p.add_argument("--temperature", type=float, default=None, help="default: 0 (greedy) when n=1, else 1.0")
    p.add_argument("--max_new_tokens", type=int, default=256)
    p.add_argument("--batch_size", type=int, default=250)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data_root", default="data/gsm8k", help="where python -m gift.data gsm8k put GSM8K")
    p.add_argument("--out", default=None, help="JSON results path (default: beside the checkpoint or ./eval.json)")
    args = p.parse_args()
    ks = [int(k) for k in args.k.split(",")]
    if any(k < 1 or k > args.n for k in ks):
        p.error(f"every k must be in 1..n={args.n}, got {ks}")
    temperature = args.temperature if args.temperature is not None else (0.0 if args.n == 1 else 1.0)

    model, enc = load_model(args.model, args.task)
    model.to(args.device)
    if args.task == "builtin":  # the held-out problems of the run's own task settings, when we know them
        saved = torch.load(args.model, map_location="cpu", weights_only=False)["config"] if args.model.endswith(".pt") else {}
        knobs = dict(max_steps=saved.get("max_events", 1), mistakes=saved.get("mistakes", 0.0))
        examples = [data.builtin_example("test", i, **knobs) for i in range(args.problems)]
    else:
        knobs = {}
        examples = data.load_gsm8k("test", args.data_root)[: args.problems]
    modes = ("strict", "flexible") if args.task == "gsm8k" else ("strict",)
    res = evaluate(model, enc, examples, n=args.n, ks=ks, temperature=temperature, batch_size=args.batch_size,
                   max_new_tokens=args.max_new_tokens, seed=args.seed, modes=modes)

    print(f"| {'metric':<18} | {'value':>7} | {'95% CI':>8} |\n|{'-' * 20}|{'-' * 9}|{'-' * 10}|")
    for key in [k for k in res if k.startswith(("pass", "flexible")) and not k.endswith("_ci")]:
        print(f"| {key:<18} | {res[key]:7.4f} | +-{res[key + '_ci']:6.4f} |")
    out = args.out or (os.path.join(os.path.dirname(args.model), "eval.json") if args.model.endswith(".pt") else "eval.json")
    with open(out, "w") as f:
        json.dump(dict(model=args.model, task=args.task, problems=len(examples), n=args.n, temperature=temperature,
                       knobs=knobs,
                       **{k: v for k, v in res.items() if k.startswith(("pass", "flexible"))}), f, indent=2)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
