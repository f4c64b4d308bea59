"""The faithful-GIFT check: the paper's loss as its author runs it, against the project's previous default and GRPO.

    python experiments/faithful.py [--seeds 0 1 2] [--runs out/experiments] [--out docs/experiments]

Per seed, from one SFT checkpoint, 50 RL steps each (same prompts, sampling seeds, optimiser and learning rate):
  gift       train.py's default: pi_ref = pi_old, K = 4 rollout mini-batches, std floor 1e-3, std detached,
             degenerate groups kept (the author's verl recipe)
  gift-prev  the previous default: 1-nat floor, std differentiated, degenerate groups masked, K = 1 (GRPO's step)
  grpo       clipped GRPO with the same K = 4 mini-batches
and, on the first seed only (the choice of the default K), gift-k2 and grpo-k2 with K = 2.
Writes faithful.json (per run: accuracy per evaluation, sampled reward per step) and faithful.png (three-seed runs).
"""

import argparse

from common import (BUILTIN_EVAL_EVERY, BUILTIN_METHODS, BUILTIN_STEPS, collect_methods, figure, parser, rl, run_all,
                    sft, write_json)

METHODS = {  # name: train.py settings; everything else is train.py's default (gift and grpo: compare.py's runs)
    "gift": BUILTIN_METHODS["gift"],
    "gift-prev": dict(method="gift", std_floor=1.0, detach_std=False, mask_degenerate=True, minibatches=1),
    "grpo": BUILTIN_METHODS["grpo"],
}
K_CHOICE = {"gift-k2": dict(method="gift", minibatches=2), "grpo-k2": dict(method="grpo", minibatches=2)}


def runs(args, steps=BUILTIN_STEPS, eval_every=BUILTIN_EVAL_EVERY):
    out = [sft(seed) for seed in args.seeds]
    for seed in args.seeds:
        out += [rl(args.runs, name, seed, rl_steps=steps, eval_every=eval_every, **cfg) for name, cfg in METHODS.items()]
    return out + [rl(args.runs, name, args.seeds[0], rl_steps=steps, eval_every=eval_every, **cfg)
                  for name, cfg in K_CHOICE.items()]


def report(args):
    result = collect_methods(args, METHODS)
    first = argparse.Namespace(**{**vars(args), "seeds": args.seeds[:1]})
    k_choice = collect_methods(first, {"gift": {}, "grpo": {}, **K_CHOICE})
    write_json(args, "faithful", dict(seeds=args.seeds, steps=BUILTIN_STEPS, methods=METHODS, results=result,
                                      k_choice_methods=K_CHOICE, k_choice=k_choice))
    print(f"K = 4 against K = 2, seed {args.seeds[0]}:")
    for name, entry in k_choice.items():
        print(f"  {name:8s} final {entry['final_mean']:.3f}  reward steps 1-10 / 41-50 "
              f"{entry['reward_first10_mean']:.3f} / {entry['reward_last10_mean']:.3f}")
    print(f"{'run':10s} " + " ".join(f"seed {s:<5d}" for s in args.seeds)
          + " mean   paired diff vs gift (min..max)  train s  reward steps 1-10 / 41-50")
    base = [v["final_accuracy"] for v in result["gift"]["per_seed"].values()]
    for name, entry in result.items():
        finals = [v["final_accuracy"] for v in entry["per_seed"].values()]
        diffs = [a - b for a, b in zip(finals, base)]
        print(f"{name:10s} " + " ".join(f"{f:<10.3f}" for f in finals) + f" {entry['final_mean']:.3f}  "
              f"{sum(diffs) / len(diffs):+.3f} ({min(diffs):+.3f}..{max(diffs):+.3f})        "
              f"{entry['train_seconds_mean']:<8.0f} {entry['reward_first10_mean']:.3f} / {entry['reward_last10_mean']:.3f}")
    figure(args, result, "built-in task: faithful GIFT, the previous default and GRPO; mean over seeds "
           f"{args.seeds} (band: min-max)", "faithful")


PARSER = parser(__doc__)

if __name__ == "__main__":
    args = PARSER.parse_args()
    run_all(runs(args), args)
    report(args)
