"""Experiments 1-5 of docs/results.md: each script in turn (its train.py runs, then its report).

    python experiments/all.py [--runs out/experiments] [--out docs/experiments] [--jobs 2] [--threads 1]

Each script can also be run on its own (they share runs: a run an earlier script finished is reused). On a 2-core
CPU with --jobs 2 --threads 1 the whole set took about the time given in docs/results.md. --seeds is not taken here:
each experiment uses its own default seeds. --report_only is passed on to every script.
"""

import os
import subprocess
import sys

from common import parser

EXPERIMENTS = ("compare", "reference", "overfit", "group_size", "beta")  # run in this order
HERE = os.path.dirname(os.path.abspath(__file__))


def commands(args):
    """The command line of each experiment script, in order: python experiments/<name>.py with this run's options."""
    passed = [f"--runs={args.runs}", f"--out={args.out}", f"--jobs={args.jobs}", f"--threads={args.threads}"]
    passed += ["--report_only"] if args.report_only else []
    return [[sys.executable, os.path.join(HERE, f"{name}.py"), *passed] for name in EXPERIMENTS]


def main(argv=None, call=subprocess.call):
    """call: runs one command line and returns its exit status (subprocess.call; tests pass their own)."""
    argv = sys.argv[1:] if argv is None else argv
    args = parser(__doc__).parse_args(argv)
    if any(a.startswith("--seeds") for a in argv):
        raise SystemExit("error: experiments/all.py uses each experiment's default seeds; run the scripts for others")
    for name, cmd in zip(EXPERIMENTS, commands(args)):
        print(f"== {name}", flush=True)
        status = call(cmd)
        if status:
            raise SystemExit(f"error: experiments/{name}.py failed (exit {status}); the later experiments did not run")


if __name__ == "__main__":
    main()
