"""Check a fresh default run against the documented one (docs/default_run.json), as CI does (.ci/run):

    python train.py --out_dir=/tmp/run && python scripts/check_default_run.py /tmp/run/builtin-gift-s0/summary.json

Exit 1, naming each difference, when the held-out accuracy after SFT or after RL differs from the documented one by
more than TOLERANCE (3 points), or when the documented run was made with settings that are no longer train.py's
defaults (then the figures describe another run: refresh them with scripts/refresh_default_run.py). Wall time is
not checked (machines differ); a different thread count is reported, not failed (it can flip a few greedy answers).
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from train import RESUMABLE  # noqa: E402  (config keys that do not change what a run computes)

DOCS = os.path.join(ROOT, "docs", "default_run.json")
TOLERANCE = 0.03  # 3 points of held-out accuracy: about twice the standard error over 1,000 problems
ACCURACIES = ("sft_accuracy", "rl_accuracy")
BOOKKEEPING = RESUMABLE | {"out_dir"}


# the sentence quoting the documented run, in each of these files (relative to ROOT); written by
# scripts/refresh_default_run.py, checked by tests/test_default_run.py
SENTENCE_FILES = ("README.md", "docs/training.md", "docs/results.md")
SENTENCE_RE = (r"`python train\.py` \(seed \d+, \d+ threads?, torch [^)]*\): held-out accuracy \d\.\d{3} after SFT -> "
               r"\d\.\d{3} after \w+\s+on [\d,]+ problems, \d+ s \(`docs/default_run\.json`\)")


def readme_sentence(doc):
    """The sentence (README and docs, SENTENCE_FILES) for a documented run (a summary.json dict), in two lines."""
    return (f"`python train.py` (seed {doc['seed']}, {doc['threads']} threads, torch {doc['torch']}): "
            f"held-out accuracy {doc['sft_accuracy']:.3f} after SFT -> {doc['rl_accuracy']:.3f} after "
            f"{doc['config']['method'].upper()}\non {doc['heldout_problems']:,} problems, {doc['wall_time_s']:.0f} s "
            f"(`docs/default_run.json`)")


def config_differences(documented, measured):
    """["key: documented X, now Y", ...] over the config keys that change results."""
    keys = sorted((set(documented) | set(measured)) - BOOKKEEPING)
    return [f"{k}: documented {documented.get(k, '(absent)')!r}, now {measured.get(k, '(absent)')!r}"
            for k in keys if documented.get(k, "(absent)") != measured.get(k, "(absent)")]


def compare(documented, measured, tolerance=TOLERANCE):
    """The problems (strings) that make a measured summary.json disagree with the documented one; [] if none."""
    problems = [f"the documented run used other settings ({d}); refresh it: python scripts/refresh_default_run.py"
                for d in config_differences(documented["config"], measured["config"])]
    for key in ACCURACIES:
        diff = measured[key] - documented[key]
        if abs(diff) > tolerance:
            problems.append(f"{key} {measured[key]:.3f}, documented {documented[key]:.3f}: {100 * diff:+.1f} points "
                            f"(tolerance {100 * tolerance:.0f})")
    return problems


def main(argv):
    if len(argv) != 1:
        raise SystemExit("usage: python scripts/check_default_run.py OUT/builtin-gift-s0/summary.json")
    with open(DOCS) as f:
        documented = json.load(f)
    try:
        with open(argv[0]) as f:
            measured = json.load(f)
    except OSError as e:
        raise SystemExit(f"error: cannot read {argv[0]} ({e.strerror}); run python train.py first") from None
    for key in ACCURACIES:
        print(f"{key}: documented {documented[key]:.3f}, this run {measured[key]:.3f}")
    print(f"wall time: documented {documented['wall_time_s']:.0f} s, this run {measured['wall_time_s']:.0f} s "
          f"(not checked)")
    if measured.get("threads") != documented.get("threads"):
        print(f"note: this run used {measured.get('threads')} threads, the documented one {documented.get('threads')}")
    problems = compare(documented, measured)
    for p in problems:
        print(f"error: {p}")
    print("default run: " + ("differs from docs/default_run.json" if problems else "matches docs/default_run.json"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
