"""Held-out evaluation: greedy pass@1, and pass@k and maj@k from n samples, with 95% confidence intervals.

    python eval.py out/builtin-gift-s0/ckpt.pt --task builtin
    python eval.py gpt2 --task gsm8k --n 16 --k 1,4,16 --temperature 0.8

pass@k uses the unbiased estimator of Chen et al. (2021): with n samples of which c are correct,
pass@k = 1 - C(n-c, k) / C(n, k), averaged over problems. The interval is mean +- 1.96 standard errors over problems.
With --n > 1, maj@k is reported beside each pass@k: the problem is solved when the most common final answer of its
first k samples is right (majority vote; ties, unanswered samples: gift/evaluation.py).
For GSM8K both the strict (`#### N` or `\\boxed{N}`) and the flexible (last number) readings of an answer are reported.
The commands for the default run's checkpoints: docs/training.md; for GSM8K: docs/gsm8k.md.
"""

import argparse
import json
import math
import os

import torch

from gift import data, runs
from gift.evaluation import Progress, evaluate, mean_ci, pass_at_k  # noqa: F401  (pass_at_k, mean_ci: eval.pass_at_k)
from gift.runs import load_checkpoint
from gift.tasks import make_task


def load_model(model, task):
    """gift.runs.load_model, its error lines worded for eval.py: the model is this command's first argument, not
    train.py's --init ("error: no such file: PATH", "error: PATH is a run folder: evaluate its checkpoint, ...")."""
    return runs.load_model(model, task, option=None)


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


# Command-line checks. argparse calls these `type=` functions while parsing, so a bad value is reported before any
# model is loaded, and its message names the option ("argument --k: ...").
def _positive_int(text):
    """An integer >= 1: 0 problems, samples, tokens or batch would evaluate nothing or divide by zero later on."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _k_list(text):
    """--k: comma-separated whole numbers >= 1, such as 1,4,16 (each <= n is checked once --n is known)."""
    try:
        ks = [int(k) for k in text.split(",")]
    except ValueError:  # "abc", "1,,4", "1.5"
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers such as 1,4,16, "
                                         f"got {text!r}") from None
    if min(ks) < 1:
        raise argparse.ArgumentTypeError(f"every k must be at least 1, got {text!r}")
    return ks


def _temperature(text):
    """A finite number >= 0 (0: greedy); the sampler divides logits by it, so a negative one would invert them."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0 (0: greedy), got {text!r}")
    return value


def _device(text):
    """cpu, cuda[:N] or mps, usable by this torch: otherwise torch would fail only at model.to(), after the model
    loaded, with a long traceback."""
    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text}: CUDA is not available in this torch build/machine "
                                         f"(torch {torch.__version__}); use --device=cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{text}: MPS is not available on this machine; use --device=cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"unsupported device {text!r}; use cpu, cuda, cuda:N or mps")
    return text


def _error_line(message):
    """argparse's errors as one line (not usage text and a message on stderr, easily missed), like the others here."""
    raise SystemExit(f"error: {message} (python eval.py --help)")


DEFAULT_PROBLEMS = 1000


def default_out(model, task, problems, n, temperature, ks, max_new_tokens=None, seed=0):
    """Where results go without --out: named after what was evaluated, so that evaluations of a run (ckpt and sft,
    greedy and sampled) do not overwrite each other, and kept out of the source tree. A train.py checkpoint
    out/RUN/ckpt.pt gives out/RUN/eval-ckpt-builtin-n1-t0.json, beside it; a hub name or directory gives
    out/eval/<name>-gsm8k-p1319-n1-t0-len512.json. Parts: the task, then p<problems> unless 1000, n<samples>,
    t<temperature>, k<list> unless 1, len<max_new_tokens> when given, s<seed> unless 0."""
    parts = [task] + ([f"p{problems}"] if problems != DEFAULT_PROBLEMS else []) + [f"n{n}", f"t{temperature:g}"]
    parts += ["k" + ",".join(map(str, ks))] if list(ks) != [1] else []
    parts += [f"len{max_new_tokens}"] if max_new_tokens is not None else []
    parts += [f"s{seed}"] if seed else []
    if model.endswith(".pt"):
        stem = os.path.splitext(os.path.basename(model))[0]
        return os.path.join(os.path.dirname(model), "-".join(["eval", stem, *parts]) + ".json")
    name = os.path.basename(os.path.normpath(model)) if os.path.isdir(model) else model  # an HF dir: its own name
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in name).strip("-.") or "model"  # Qwen/X: Qwen-X
    return os.path.join("out", "eval", "-".join([name, *parts]) + ".json")


def main(argv=None):
    """Returns the path of the results file it wrote."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.error = _error_line
    p.add_argument("model", help="a ckpt.pt from train.py (out/RUN/ckpt.pt or sft.pt), an HF-layout directory (such as "
                                 "python -m gift.export writes), or a hub name such as gpt2")
    p.add_argument("--task", choices=("builtin", "gsm8k"), required=True)
    p.add_argument("--problems", type=_positive_int, default=DEFAULT_PROBLEMS,
                   help="held-out problems (GSM8K's test split has 1,319)")
    p.add_argument("--n", type=_positive_int, default=1, help="samples per problem (1 with temperature 0: greedy)")
    p.add_argument("--k", type=_k_list, default="1",
                   help="comma-separated k values for pass@k (and maj@k when n > 1), each <= n")
    p.add_argument("--temperature", type=_temperature, default=None, help="default: 0 (greedy) when n=1, else 1.0")
    p.add_argument("--max_new_tokens", type=_positive_int, default=None,
                   help="default: the run's own for a train.py checkpoint, else 256 (cut to fit the block size)")
    p.add_argument("--batch_size", type=_positive_int, default=250)
    p.add_argument("--device", type=_device, default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu, cuda, cuda:N or mps (default: cuda when this torch has it, else cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data_root", default="data/gsm8k", help="where python -m gift.data gsm8k put GSM8K")
    p.add_argument("--out", default=None,
                   help="JSON results path. Default: named after what was evaluated, "
                        "eval-<ckpt|sft>-<task>[-p<problems>]-n<n>-t<temperature>[-k<ks>][-len<max_new_tokens>]"
                        "[-s<seed>].json beside a train.py checkpoint (out/RUN/eval-ckpt-builtin-n1-t0.json), "
                        "out/eval/<name>-<task>-...json for a hub name or directory")
    args = p.parse_args(argv)
    ks = args.k
    if max(ks) > args.n:
        p.error(f"argument --k: every k must be at most --n={args.n}, got {','.join(map(str, ks))}")
    temperature = args.temperature if args.temperature is not None else (0.0 if args.n == 1 else 1.0)
    out = args.out or default_out(args.model, args.task, args.problems, args.n, temperature, ks, args.max_new_tokens,
                                  args.seed)

    if args.task == "gsm8k":  # the data first: a missing download is reported before any model is loaded
        try:
            examples = data.load_gsm8k("test", args.data_root)[: args.problems]
        except (OSError, ValueError) as e:
            raise SystemExit(f"error: {e}") from None
    model, enc = load_model(args.model, args.task)
    model.to(args.device)
    # The results folder now, not after the evaluation: a bad --out costs seconds, not the run. After load_model, so
    # that a mistyped checkpoint path leaves no empty folder behind.
    try:
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    except OSError as e:
        raise SystemExit(f"error: cannot create the folder of {out} ({e.strerror}); give another --out") from None
    saved = load_checkpoint(args.model, mmap=True)["config"] if args.model.endswith(".pt") else {}  # the run's config
    knobs = {}
    if args.task == "builtin":  # the held-out problems of the run's own task settings, when we know them
        knobs = dict(max_events=saved.get("max_events", 1), mistakes=saved.get("mistakes", 0.0))
        task_cfg = argparse.Namespace(task="builtin", seed=0, eval_problems=args.problems, tool_fraction=1.0, **knobs)
        examples = make_task(task_cfg).heldout  # the built-in task's held-out problems (gift/tasks.py)
        if not saved:  # an exported folder keeps the weights only, not the run's --max_events and --mistakes
            print(f"note: {args.model} is not a train.py checkpoint, so its run's task settings are unknown: "
                  f"evaluating the default built-in problems (max_events=1, mistakes=0)")
    longest = max(len(data.encode_prompt(enc, ex.question)) for ex in examples)
    max_new_tokens = fit_max_new_tokens(args.max_new_tokens, saved, getattr(model.config, "block_size", None), longest)
    modes = ("strict", "flexible") if args.task == "gsm8k" else ("strict",)
    print(f"evaluating {len(examples)} problems x {args.n} sample{'s' if args.n > 1 else ''} on {args.device}, "
          f"{min(args.batch_size, len(examples))} problems a batch", flush=True)
    res = evaluate(model, enc, examples, n=args.n, ks=ks, temperature=temperature, batch_size=args.batch_size,
                   max_new_tokens=max_new_tokens, seed=args.seed, modes=modes, progress=Progress("problems"))

    print(f"| {'metric':<18} | {'value':>7} | {'95% CI':>8} |\n|{'-' * 20}|{'-' * 9}|{'-' * 10}|")
    reported = ("pass", "maj", "flexible")  # pass@k, maj@k (n > 1), flexible/pass@k, flexible/maj@k
    for key in [k for k in res if k.startswith(reported) and not k.endswith("_ci")]:
        print(f"| {key:<18} | {res[key]:7.4f} | +-{res[key + '_ci']:6.4f} |")
    with open(out, "w") as f:
        json.dump(dict(model=args.model, task=args.task, problems=len(examples), n=args.n, temperature=temperature,
                       max_new_tokens=max_new_tokens,
                       knobs=knobs,
                       **{k: v for k, v in res.items() if k.startswith(reported)}), f, indent=2)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
