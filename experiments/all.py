"""Experiments 1-5 of docs/results.md: all their train.py runs in one pool, then every report.

    python experiments/all.py [--runs out/experiments] [--out docs/experiments] [--jobs 2] [--threads 1]

Each script can also be run on its own (they share runs). On a 2-core CPU with --jobs 2 --threads 1 the whole set
took about the time given in docs/results.md. --seeds is not taken here: each experiment uses its own default seeds.
"""

import sys

import beta
import compare
import group_size
import overfit
import reference
from common import parser, run_all

EXPERIMENTS = (compare, reference, overfit, group_size, beta)  # runs start in this order


def main():
    p = parser(__doc__)
    args = p.parse_args()
    if any(a.startswith("--seeds") for a in sys.argv[1:]):
        raise SystemExit("error: experiments/all.py uses each experiment's default seeds; run the scripts for others")
    argv = [f"--runs={args.runs}", f"--out={args.out}", f"--jobs={args.jobs}", f"--threads={args.threads}"]
    per_experiment = [(module, module.PARSER.parse_args(argv)) for module in EXPERIMENTS]
    run_all([run for module, a in per_experiment for run in module.runs(a)], args)
    for module, a in per_experiment:
        print(f"== {module.__name__}")
        module.report(a)


if __name__ == "__main__":
    main()
