"""Every experiment of docs/results.md, numbered once, in one order, each with the command that made its report.

    python experiments/all.py --list                    # the numbered list and each experiment's command lines
    python experiments/all.py writers_plateau rlhf      # those experiments, in the list's order
    python experiments/all.py                           # the built-in task's set: compare, reference, overfit,
                                                        # group_size, beta (about 95 minutes on 2 cores)
    options: [--runs out/experiments] [--out docs/experiments] [--jobs 2] [--threads 1] [--report_only]

Each experiment runs as `python experiments/<name>.py` with the options its report was made with (COMMANDS) and this
run's --runs, --out, --jobs, --threads and --report_only. The scripts share runs: a run an earlier script finished is
reused, so a script can be stopped and started again. --seeds is not taken: each experiment keeps the seeds of its
report. The writers experiments take hours each on 2 cores (docs/experiments/<name>.md gives each one's time and
machine), which is why a plain `python experiments/all.py` runs only the built-in task's set.
"""

import os
import subprocess
import sys

from common import parser

# name: the command lines (the script's own options) that made the committed report, in the order docs/results.md
# numbers the experiments (0 faithful ... 15 writers_batch). An option "--out=SUB" names a folder under --out
# ("--out=.." is --out's parent: bandit.png lives in docs/, beside the pages that show it).
COMMANDS = {
    "faithful": [[]],
    "compare": [[]],
    "overfit": [[]],
    "group_size": [[]],
    "beta": [[]],
    "reference": [[]],
    "bandit": [["--plot", "--out=.."]],
    "noise_floor": [[]],  # runs nothing: pairs writers.json (CPU) with writers_lr.json (H100)
    "writers": [[]],
    "writers_overfit": [[]],
    "writers_lr": [[]],
    "writers_ablations": [["--seeds", "0", "1", "2", "3", "4"]],
    "writers_baselines": [["--tuning_seeds", "0", "1", "--seeds", "5", "6", "7", "8", "9", "--share_rate",
                           "grpo-kl=grpo", "--pass_problems", "100"]],
    "writers_plateau": [["--rates", "4e-5", "--seeds", "0", "1", "2"],
                        ["--rates", "8e-5", "--seeds", "0", "1", "2", "--arms", "base", "cosine",
                         "--out=writers_plateau_lr8e-5"]],
    "rlhf": [[]],
    "writers_batch": [["--long_steps", "450", "--long_prompts", "16", "64", "--tune_prompts", "64", "32"]],
}
BUILTIN = ("compare", "reference", "overfit", "group_size", "beta")  # a plain run's set, in this order
OWN_OPTIONS = {"bandit": (), "noise_floor": ()}  # scripts without common.parser's --runs/--jobs/--threads
HERE = os.path.dirname(os.path.abspath(__file__))


def command_lines(name, args):
    """The argument lists of experiment `name`'s commands with this run's options (python first)."""
    out = []
    for own in COMMANDS[name]:
        sub = next((o.split("=", 1)[1] for o in own if o.startswith("--out=")), "")
        folder = os.path.normpath(os.path.join(args.out, sub)) if sub else args.out
        own = [o for o in own if not o.startswith("--out=")]
        if name == "noise_floor":  # the two reports it pairs are read from the same folder it writes to
            passed = [f"--out={folder}", f"--cpu={os.path.join(folder, 'writers.json')}",
                      f"--gpu={os.path.join(folder, 'writers_lr.json')}"]
        elif name in OWN_OPTIONS:
            passed = [f"--out={folder}"]
        else:
            passed = [f"--runs={args.runs}", f"--out={folder}", f"--jobs={args.jobs}", f"--threads={args.threads}"]
            passed += ["--report_only"] if args.report_only else []
        out.append([sys.executable, os.path.join(HERE, f"{name}.py"), *own, *passed])
    return out


def commands(args):
    """(name, argument list) of every command to run, in order: the named experiments, or the built-in set."""
    names = [n for n in COMMANDS if n in args.names] if args.names else list(BUILTIN)
    return [(name, cmd) for name in names for cmd in command_lines(name, args)]


def listing(args):
    """The numbered list, one experiment a line, each followed by its command lines as all.py would run them."""
    lines = []
    for number, name in enumerate(COMMANDS):
        lines.append(f"{number:2d} {name}")
        for cmd in command_lines(name, args):
            lines.append("     python " + " ".join([os.path.relpath(cmd[1])] + cmd[2:]))
    return lines


PARSER = parser(__doc__)
PARSER.add_argument("names", nargs="*", metavar="NAME", help="experiments to run (default: the built-in task's set)")
PARSER.add_argument("--list", action="store_true", help="print the numbered list and each experiment's commands")


def main(argv=None, call=subprocess.call):
    """call: runs one command line and returns its exit status (subprocess.call; tests pass their own)."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a.startswith("--seeds") for a in argv):
        raise SystemExit("error: experiments/all.py runs each experiment with the seeds of its report (its default "
                         "seeds or the ones COMMANDS names); run the script itself for other seeds")
    args = PARSER.parse_args(argv)
    unknown = [n for n in args.names if n not in COMMANDS]
    if unknown:
        raise SystemExit(f"error: no experiment named {', '.join(unknown)}; the experiments: {', '.join(COMMANDS)}")
    if args.list:
        print("\n".join(listing(args)))
        return
    for name, cmd in commands(args):
        print(f"== {name}", flush=True)
        status = call(cmd)
        if status:
            raise SystemExit(f"error: experiments/{name}.py failed (exit {status}); the later experiments did not run")


if __name__ == "__main__":
    main()
