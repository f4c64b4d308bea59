"""Check a fresh default run against the documented band (docs/default_run.json), as CI does (.ci/run):

    python train.py --out_dir=/tmp/run && python scripts/check_default_run.py /tmp/run/builtin-gift-s0/summary.json

The default run is exactly reproducible on one machine (resume is bit-identical), but another CPU or thread count
rounds differently, and greedy decoding turns that into different answers. So what is documented is a band: the
range of held-out accuracies over seeds 0-4 at 1 and 2 threads (scripts/refresh_default_run.py measures it). A run
passes when its accuracy after RL is at least the band's low end minus TOLERANCE, its accuracy after SFT is within
the SFT band widened by TOLERANCE, and RL gained at least MIN_GAIN. It fails, naming each problem, otherwise, or when
the band was measured with settings that are no longer train.py's defaults (refresh it then). Wall time is reported,
not checked (machines differ).
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dataclasses import fields  # noqa: E402

from train import RESUMABLE, Config  # noqa: E402  (config keys that do not change what a run computes)

DOCS = os.path.join(ROOT, "docs", "default_run.json")
TOLERANCE = 0.02  # held-out accuracy points beyond the measured band (a standard error over 1,000 problems is ~0.7)
MIN_GAIN = 0.1  # RL must raise held-out accuracy by at least this much over the SFT model (10 points)
BOOKKEEPING = RESUMABLE | {"out_dir", "run_name", "seed"}  # the band spans seeds 0-4


# the sentence quoting the band, in each of these files (relative to ROOT); written by scripts/refresh_default_run.py,
# checked by tests/test_default_run.py
SENTENCE_FILES = ("README.md", "docs/training.md", "docs/results.md")
SENTENCE_RE = (r"`python train\.py` over seeds \d+-\d+ at 1 and 2 threads \(torch [^)]*\): held-out accuracy "
               r"\d\.\d{3}-\d\.\d{3} after SFT\s+-> \d\.\d{3}-\d\.\d{3} after \w+ on [\d,]+ problems, \d+-\d+ s a run "
               r"on 2 threads \(`docs/default_run\.json`\)")


def readme_sentence(doc):
    """The sentence (README and docs, SENTENCE_FILES) for a documented band (docs/default_run.json), in two lines."""
    band, seeds = doc["band"], sorted({r["seed"] for r in doc["runs"]})
    two = [r["wall_time_s"] for r in doc["runs"] if r["threads"] == 2]
    return (f"`python train.py` over seeds {seeds[0]}-{seeds[-1]} at 1 and 2 threads (torch {doc['torch']}): held-out "
            f"accuracy {band['sft_accuracy'][0]:.3f}-{band['sft_accuracy'][1]:.3f} after SFT\n-> "
            f"{band['rl_accuracy'][0]:.3f}-{band['rl_accuracy'][1]:.3f} after {doc['config']['method'].upper()} on "
            f"{doc['heldout_problems']:,} problems, {min(two):.0f}-{max(two):.0f} s a run on 2 threads "
            f"(`docs/default_run.json`)")


def band_of(runs):
    """{"sft_accuracy": [lo, hi], "rl_accuracy": [lo, hi]} over a list of run summaries."""
    return {k: [min(r[k] for r in runs), max(r[k] for r in runs)] for k in ("sft_accuracy", "rl_accuracy")}


def config_differences(documented, measured):
    """["key: documented X, now Y", ...] over the config keys that change results. A key the documented run does not
    have is a setting added since, whose default (the project's rule) does what the code did before: it counts as
    equal when the measured run has the default."""
    keys = sorted((set(documented) | set(measured)) - BOOKKEEPING)
    defaults = {f.name: f.default for f in fields(Config)}
    return [f"{k}: documented {documented.get(k, '(absent)')!r}, now {measured.get(k, '(absent)')!r}"
            for k in keys if documented.get(k, defaults.get(k, "(absent)")) != measured.get(k, "(absent)")]


def compare(documented, measured, tolerance=TOLERANCE, min_gain=MIN_GAIN):
    """The problems (strings) that put a measured summary.json outside the documented band; [] if none."""
    problems = [f"the documented band used other settings ({d}); refresh it: python scripts/refresh_default_run.py"
                for d in config_differences(documented["config"], measured["config"])]
    (sft_lo, sft_hi), (rl_lo, _) = documented["band"]["sft_accuracy"], documented["band"]["rl_accuracy"]
    sft, rl = measured["sft_accuracy"], measured["rl_accuracy"]
    if not sft_lo - tolerance <= sft <= sft_hi + tolerance:
        problems.append(f"sft_accuracy {sft:.3f} is outside the documented band {sft_lo:.3f}-{sft_hi:.3f} "
                        f"(+- {tolerance:.2f})")
    if rl < rl_lo - tolerance:
        problems.append(f"rl_accuracy {rl:.3f} is below the documented band's low end {rl_lo:.3f} (- {tolerance:.2f})")
    if rl - sft < min_gain:
        problems.append(f"RL gained {rl - sft:+.3f}, less than {min_gain:.2f}")
    return problems


def main(argv):
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: python scripts/check_default_run.py OUT/builtin-gift-s0/summary.json")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    with open(DOCS) as f:
        documented = json.load(f)
    try:
        with open(argv[0]) as f:
            measured = json.load(f)
    except OSError as e:
        raise SystemExit(f"error: cannot read {argv[0]} ({e.strerror}); run python train.py first") from None
    except json.JSONDecodeError as e:
        raise SystemExit(f"error: {argv[0]} is not a summary.json ({e})") from None
    for key in ("sft_accuracy", "rl_accuracy"):
        lo, hi = documented["band"][key]
        print(f"{key}: documented band {lo:.3f}-{hi:.3f}, this run {measured[key]:.3f}")
    two = [r["wall_time_s"] for r in documented["runs"] if r["threads"] == 2]
    print(f"wall time: documented {min(two):.0f}-{max(two):.0f} s on 2 threads, this run {measured['wall_time_s']:.0f} "
          f"s on {measured.get('threads')} (not checked)")
    problems = compare(documented, measured)
    for p in problems:
        print(f"error: {p}")
    print("default run: " + ("fails" if problems else "meets") + f" the documented guarantees of "
          f"docs/default_run.json: RL accuracy at least the band's low end {documented['band']['rl_accuracy'][0]:.3f} "
          f"minus {TOLERANCE:.2f} (no upper edge), SFT accuracy within its band +- {TOLERANCE:.2f}, RL gain at least "
          f"{MIN_GAIN:.2f}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
