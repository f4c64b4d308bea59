"""The writers setting: ablations of faithful GIFT's options, paired by seed.

    python experiments/writers_ablations.py [--seeds 0 1 2] [--runs out/experiments] [--out docs/experiments]

From each seed's writers SFT checkpoint, GIFT with train.py's defaults (the author's recipe; the run is
experiments/writers.py's writers-gift-s<seed>) and with one option changed at a time, same learning rate
(common.WRITERS_METHODS), 150 steps, held-out accuracy every 10 steps:
  - the reference: frozen (the SFT model, the paper's pi_ref) or refreshed from the policy every 10 steps, against
    the default (the sampling policy of each step, `--ref=old`);
  - the log-ratio's group std differentiated (`--detach_std=false`) instead of a constant;
  - groups with equal rewards masked (`--mask_degenerate=true`) instead of kept;
  - the std floor at 1 nat (`--std_floor=1`) instead of 1e-3.
Reported: final held-out accuracy per seed, the paired difference from the default with a 95% t-interval, and the
steps to reach 90% of the run's final accuracy. Writes writers_ablations.json and writers_ablations.png.
"""

from common import (WRITERS_EVAL_EVERY, WRITERS_METHODS, WRITERS_STEPS, WRITERS_TASK, accuracy_runs, bracket,
                    paired_difference, parser, pyplot, run_all, save_figure, write_json, writers_rl, writers_sft)

VARIANTS = {  # name: train.py settings changed from the default (writers.py's "gift" run has none)
    "gift": {},
    "ref-frozen": dict(ref="frozen"),
    "ref-refresh-10": dict(ref="refresh", ref_every=10),
    "std-differentiated": dict(detach_std=False),
    "masked": dict(mask_degenerate=True),
    "floor-1": dict(std_floor=1.0),
}


def runs(args, steps=WRITERS_STEPS, eval_every=WRITERS_EVAL_EVERY):
    out = [writers_sft(seed) for seed in args.seeds]
    for seed in args.seeds:
        out += [writers_rl(args, f"writers-{name}", seed, steps, eval_every, **WRITERS_METHODS["gift"], **cfg)
                for name, cfg in VARIANTS.items()]
    return out


def collect(args):
    result = {}
    for name in VARIANTS:
        entry = dict(settings=VARIANTS[name], **accuracy_runs(args, f"writers-{name}"))
        if name != "gift":
            entry["minus_default"] = paired_difference(
                [entry["per_seed"][s]["final_accuracy"] - result["gift"]["per_seed"][s]["final_accuracy"]
                 for s in args.seeds])
        result[name] = entry
    return result


def report(args):
    result = collect(args)
    write_json(args, "writers_ablations", dict(seeds=args.seeds, steps=WRITERS_STEPS, task=WRITERS_TASK,
                                               lr=WRITERS_METHODS["gift"]["rl_lr"], results=result))
    for name, e in result.items():
        line = f"{name:20s} " + " ".join(f"{v['final_accuracy']:.3f}" for v in e["per_seed"].values())
        line += f"  mean {e['final_mean']:.3f}"
        if "minus_default" in e:
            d = e["minus_default"]
            interval = "" if d["ci95"] is None else " " + bracket(d)
            line += f"  minus default {d['mean']:+.3f}{interval}"
        print(line)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, e in result.items():
        seeds = list(e["per_seed"].values())
        mean = [sum(a) / len(a) for a in zip(*[s["accuracy"] for s in seeds])]
        ax.plot(seeds[0]["steps"], mean, marker="o", markersize=3, label=f"{name} (final {e['final_mean']:.3f})")
    ax.set_xlabel("RL step")
    ax.set_ylabel(f"held-out accuracy (greedy, mean of seeds {args.seeds})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(args, fig, "writers_ablations")


PARSER = parser(__doc__, seeds=(0, 1, 2))

if __name__ == "__main__":
    args = PARSER.parse_args()
    run_all(runs(args), args)
    report(args)
