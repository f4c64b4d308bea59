"""The writers setting's noise floor between machines: one configuration run from the same SFT checkpoints on the
CPU and on a GPU, which differ only in their float arithmetic.

    python experiments/noise_floor.py [--cpu docs/experiments/writers.json] [--gpu docs/experiments/writers_lr.json]
                                      [--out docs/experiments]

No runs: it reads two finished reports. writers.json holds the shared 2-core CPU's runs (experiments/writers.py);
writers_lr.json holds an H100's runs of the same settings (experiments/writers_lr.py), started from the CPU's
writers SFT checkpoints of seeds 0-2. Same start, same prompts, same sampling seeds, same learning rate: whatever
differs at the end is the rounding of another machine, amplified by 150 steps of training. Per configuration (GIFT
and GRPO at 2e-5, the rate both reports share) and seed: the final held-out accuracy on each machine, GPU minus CPU,
and the same for the paired difference GIFT - GRPO. Writes noise_floor.json.

A difference between methods smaller than this floor cannot be told from the machine's arithmetic: report the
machine with every number, and compare methods only within one machine.
"""

import argparse
import json
import os

from common import paired_difference, write_json

RATE = "2e-5"  # the learning rate both reports ran both methods at
CONFIGS = {"gift": ("gift", "gift"), "grpo": ("grpo-lr2e-5", "grpo")}  # name in writers.json, name in writers_lr.json
MACHINES = {"cpu": "the shared 2-core CPU (x86-64, torch 2.13 CPU; docs/results.md, experiments/writers.py)",
            "gpu": "one NVIDIA H100 80GB (torch 2.11.0+cu130; docs/results.md, experiments/writers_lr.py)"}


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"error: cannot read the report {path}: {e}") from None


def finals(cpu, gpu):
    """{config: {seed: (cpu final, gpu final)}} over the seeds both reports hold for every configuration."""
    out = {}
    for config, (cpu_name, gpu_name) in CONFIGS.items():
        try:
            c = cpu["results"][cpu_name]["per_seed"]
            g = gpu["results"][gpu_name][RATE]["per_seed"]
        except KeyError as e:
            raise SystemExit(f"error: a report lacks {config} ({e}); expected writers.json and writers_lr.json") \
                from None
        out[config] = {s: (c[s]["accuracy"][-1], g[s]["final_accuracy"]) for s in g if s in c}
    seeds = sorted(set.intersection(*(set(v) for v in out.values())), key=int)
    if len(seeds) < 2:
        raise SystemExit(f"error: the two reports share {len(seeds)} seed(s) for every configuration; need 2")
    return {config: {s: v[s] for s in seeds} for config, v in out.items()}, seeds


def main(args):
    per, seeds = finals(load(args.cpu), load(args.gpu))
    result = dict(machines=MACHINES, seeds=[int(s) for s in seeds], rate=RATE,
                  configs={k: list(v) for k, v in CONFIGS.items()},
                  finals={c: {s: dict(cpu=v[0], gpu=v[1]) for s, v in p.items()} for c, p in per.items()})
    result["gpu_minus_cpu"] = {c: paired_difference([per[c][s][1] - per[c][s][0] for s in seeds]) for c in per}
    result["gift_minus_grpo"] = {m: paired_difference([per["gift"][s][i] - per["grpo"][s][i] for s in seeds])
                                 for i, m in enumerate(("cpu", "gpu"))}
    write_json(args, "noise_floor", result)
    for c, d in result["gpu_minus_cpu"].items():
        print(f"{c} at {RATE}, GPU minus CPU per seed: " + " ".join(f"{x:+.3f}" for x in d["per_seed"])
              + f"  mean {d['mean']:+.3f}")
    for m, d in result["gift_minus_grpo"].items():
        print(f"GIFT - GRPO on the {m}: " + " ".join(f"{x:+.3f}" for x in d["per_seed"]) + f"  mean {d['mean']:+.3f}")
    return result


DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "experiments")
PARSER = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
PARSER.add_argument("--out", default="docs/experiments", help="folder for noise_floor.json")
PARSER.add_argument("--cpu", default=os.path.join(DOCS, "writers.json"), help="the CPU's writers.py report")
PARSER.add_argument("--gpu", default=os.path.join(DOCS, "writers_lr.json"), help="the GPU's writers_lr.py report")

if __name__ == "__main__":
    main(PARSER.parse_args())
