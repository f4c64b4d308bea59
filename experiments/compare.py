"""Experiment 1: GIFT against GRPO (with and without its KL term) on the built-in task.

    python experiments/compare.py [--seeds 0 1 2] [--runs out/experiments] [--out docs/experiments]

Per seed: one SFT run, then from its checkpoint 50 RL steps of each method (common.BUILTIN_METHODS) with the same
prompts, sampling seeds, sampling budget (16 prompts x 8 samples per step), optimiser and learning rate; held-out
accuracy (1,000 problems, greedy) every 10 steps. Writes compare.json (per method and seed: accuracy against step
and against training seconds, evaluations excluded) and compare.png (mean over seeds, the band spans the seeds' min
to max).
"""

from common import (BUILTIN_EVAL_EVERY, BUILTIN_METHODS, BUILTIN_STEPS, collect_methods, figure, parser, rl, run_all,
                    sft, write_json)


def runs(args, methods=BUILTIN_METHODS, steps=BUILTIN_STEPS, eval_every=BUILTIN_EVAL_EVERY):
    out = [sft(seed) for seed in args.seeds]
    for seed in args.seeds:
        out += [rl(args.runs, name, seed, rl_steps=steps, eval_every=eval_every, **cfg)
                for name, cfg in methods.items()]
    return out


def report(args):
    result = collect_methods(args, BUILTIN_METHODS)
    write_json(args, "compare", dict(seeds=args.seeds, steps=BUILTIN_STEPS, methods=BUILTIN_METHODS, results=result))
    print(f"{'method':10s} " + " ".join(f"seed {s:<5d}" for s in args.seeds)
          + " mean   sd     train s  reward steps 1-10 / 41-50")
    for name, entry in result.items():
        finals = " ".join(f"{v['final_accuracy']:<10.3f}" for v in entry["per_seed"].values())
        print(f"{name:10s} {finals} {entry['final_mean']:.3f}  {entry['final_sd']:.3f}  "
              f"{entry['train_seconds_mean']:<8.0f} {entry['reward_first10_mean']:.3f} / "
              f"{entry['reward_last10_mean']:.3f}")
    figure(args, result, f"built-in task, mean over seeds {args.seeds} (band: min-max)", "compare")


PARSER = parser(__doc__)

if __name__ == "__main__":
    args = PARSER.parse_args()
    run_all(runs(args), args)
    report(args)
