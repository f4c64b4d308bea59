"""Held-out evaluation: greedy pass@1, and pass@k from n samples, with 95% confidence intervals.

    python eval.py out/builtin-gift-s0/ckpt.pt --task builtin
    python eval.py gpt2 --task gsm8k --n 16 --k 1,4,16 --temperature 0.8

pass@k uses the unbiased estimator of Chen et al. (2021): with n samples of which c are correct,
pass@k = 1 - C(n-c, k) / C(n, k), averaged over problems. The interval is mean +- 1.96 standard errors over problems.
For GSM8K both the strict (`#### N` or `\\boxed{N}`) and the flexible (last number) readings of an answer are reported.
The commands for the default run's checkpoints: docs/training.md; for GSM8K: docs/gsm8k.md.
"""

import argparse
import json
import math
import os

import torch

from gift import data
from gift.model import GPT, GPTConfig, PRESETS, checkpoint_dir, preset
from gift.sampler import generate
from gift.tokenizer import builtin_tokenizer, get_tokenizer, response_text, stop_ids
from gift.verifier import calculate, is_correct


def load_checkpoint(path, map_location="cpu", **kwargs):
    """A .pt file written by train.py (ckpt.pt, sft.pt); a missing, truncated or unreadable file is one error line
    naming it, not a traceback."""
    if not os.path.isfile(path):
        raise SystemExit(f"error: checkpoint {path!r} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=False, **kwargs)
    except Exception as e:  # a truncated zip (a copy cut short, a full disk) fails deep inside torch.load
        raise SystemExit(f"error: cannot read checkpoint {path} ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
                         f"the file is truncated or not a torch checkpoint: copy it again, or start the run afresh "
                         f"(train.py --overwrite)") from None


def load_model(init, task):
    """(model, tokenizer) from a preset name (random init), one of our ckpt.pt files, an HF directory or a hub name.
    On GSM8K the names of the published GPT-2 models (gpt2, gpt2-medium, ...) load their weights, not a random init.

    The tokenizer: the built-in byte tokenizer for the built-in task; otherwise the vocab.json/merges.txt of the
    checkpoint directory or hub snapshot (for a ckpt.pt: of the one its run started from) when present, else GPT-2's.
    """
    ckpt = None
    if init.endswith(".pt"):
        ckpt = load_checkpoint(init)
        if "model_config" not in ckpt or ckpt.get("config", {}).get("task") != task:
            raise SystemExit(f"error: {init} is not a gift checkpoint for --task {task}")
    source = ckpt["config"]["init"] if ckpt else init
    if task != "builtin" and source not in PRESETS and not os.path.isdir(source):
        source = checkpoint_dir(source)  # a hub name: its snapshot, tokenizer files included (downloaded once)
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
    elif init in PRESETS and not os.path.isdir(init) and (task == "builtin" or not init.startswith("gpt2")):
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
        prompts = [data.encode_prompt(enc, ex.question) for ex in batch]  # the chat format for chat tokenizers
        out = generate(model, prompts, num_samples=n, max_new_tokens=max_new_tokens, temperature=temperature,
                       stop_tokens=stop_ids(enc), calculator=calculate, tokenizer=enc, seed=seed + b)
        texts = [response_text(enc, seq) for seq in out.sequences]
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


def fit_max_new_tokens(asked, saved, block_size, longest_prompt):
    """max_new_tokens for eval.py: the value asked for, else the run's own (a train.py checkpoint's config), else 256;
    prompt + response must fit in the model's block size (position embeddings), so an unasked default is cut to fit
    and an asked value that cannot fit is an error."""
    room = block_size - longest_prompt if block_size else None
    if asked is not None:
        if room is not None and asked > room:
            raise SystemExit(f"error: --max_new_tokens={asked} does not fit: the longest prompt has {longest_prompt} "
                             f"tokens and the model's block size is {block_size}; use at most {room}")
        return asked
    default = saved.get("max_new_tokens", 256)
    return default if room is None else min(default, room)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a ckpt.pt from train.py, an HF-layout directory, or a hub name such as gpt2")
    p.add_argument("--task", choices=("builtin", "gsm8k"), required=True)
    p.add_argument("--problems", type=int, default=1000, help="held-out problems (GSM8K's test split has 1,319)")
    p.add_argument("--n", type=int, default=1, help="samples per problem (1 with temperature 0: greedy)")
    p.add_argument("--k", default="1", help="comma-separated k values for pass@k, each <= n")
    p.add_argument("--temperature", type=float, default=None, help="default: 0 (greedy) when n=1, else 1.0")
    p.add_argument("--max_new_tokens", type=int, default=None,
                   help="default: the run's own for a train.py checkpoint, else 256 (cut to fit the block size)")
    p.add_argument("--batch_size", type=int, default=250)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data_root", default="data/gsm8k", help="where python -m gift.data gsm8k put GSM8K")
    p.add_argument("--out", default=None, help="JSON results path (default: beside the checkpoint or ./eval.json)")
    args = p.parse_args(argv)
    ks = [int(k) for k in args.k.split(",")]
    if any(k < 1 or k > args.n for k in ks):
        p.error(f"every k must be in 1..n={args.n}, got {ks}")
    temperature = args.temperature if args.temperature is not None else (0.0 if args.n == 1 else 1.0)

    if args.task == "gsm8k":  # the data first: a missing download is reported before any model is loaded
        try:
            examples = data.load_gsm8k("test", args.data_root)[: args.problems]
        except (OSError, ValueError) as e:
            raise SystemExit(f"error: {e}") from None
    model, enc = load_model(args.model, args.task)
    model.to(args.device)
    saved = load_checkpoint(args.model, mmap=True)["config"] if args.model.endswith(".pt") else {}  # the run's config
    knobs = {}
    if args.task == "builtin":  # the held-out problems of the run's own task settings, when we know them
        knobs = dict(max_steps=saved.get("max_events", 1), mistakes=saved.get("mistakes", 0.0))
        examples = [data.builtin_example("test", i, **knobs) for i in range(args.problems)]
    longest = max(len(data.encode_prompt(enc, ex.question)) for ex in examples)
    max_new_tokens = fit_max_new_tokens(args.max_new_tokens, saved, getattr(model.config, "block_size", None), longest)
    modes = ("strict", "flexible") if args.task == "gsm8k" else ("strict",)
    res = evaluate(model, enc, examples, n=args.n, ks=ks, temperature=temperature, batch_size=args.batch_size,
                   max_new_tokens=max_new_tokens, seed=args.seed, modes=modes)

    print(f"| {'metric':<18} | {'value':>7} | {'95% CI':>8} |\n|{'-' * 20}|{'-' * 9}|{'-' * 10}|")
    for key in [k for k in res if k.startswith(("pass", "flexible")) and not k.endswith("_ci")]:
        print(f"| {key:<18} | {res[key]:7.4f} | +-{res[key + '_ci']:6.4f} |")
    out = args.out or (os.path.join(os.path.dirname(args.model), "eval.json") if args.model.endswith(".pt") else "eval.json")
    with open(out, "w") as f:
        json.dump(dict(model=args.model, task=args.task, problems=len(examples), n=args.n, temperature=temperature,
                       max_new_tokens=max_new_tokens,
                       knobs=knobs,
                       **{k: v for k, v in res.items() if k.startswith(("pass", "flexible"))}), f, indent=2)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
