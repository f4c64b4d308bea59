"""Refresh the documented default run: docs/default_run.json (the run's own summary.json), docs/default_run.png (its
curves, drawn by gift.plot) and the sentence that quotes them in the README and docs (scripts/check_default_run.py's
SENTENCE_RE, in each of its SENTENCE_FILES).

    python scripts/refresh_default_run.py                        # runs `python train.py` in a temporary folder
    python scripts/refresh_default_run.py out/builtin-gift-s0     # or takes a finished default run

Make the run the way CI makes it (.ci/run runs plain `python train.py`, with torch's default thread count, on the
project's 2-core machine): greedy decoding is deterministic for a given thread count, but 1 and 2 threads round
differently and flip a few held-out answers, so a run that is not a default run, or that used another thread count
than a plain `python train.py` here (OMP_NUM_THREADS=1, --threads=1), is refused. This script runs train.py with
OMP_NUM_THREADS and MKL_NUM_THREADS removed from its environment. The wall time it records is that run's, on
whatever else the machine was doing; CI does not check it.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import train  # noqa: E402
from gift import plot  # noqa: E402
from scripts.check_default_run import (DOCS, SENTENCE_FILES, SENTENCE_RE, config_differences,  # noqa: E402
                                      readme_sentence)

ENV = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}  # torch's default


def default_threads():
    """The thread count a plain `python train.py` gets here (torch's default, no OMP_NUM_THREADS)."""
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=ENV,
                         capture_output=True, text=True, check=True).stdout
    return int(out)


def main(argv):
    if len(argv) > 1:
        raise SystemExit("usage: python scripts/refresh_default_run.py [OUT/builtin-gift-s0]")
    tmp = None
    if argv:
        run_dir = argv[0]
    else:
        tmp = tempfile.mkdtemp(prefix="default-run-")
        print(f"running python train.py --out_dir={tmp} (a few minutes)", flush=True)
        subprocess.run([sys.executable, "train.py", f"--out_dir={tmp}"], cwd=ROOT, env=ENV, check=True)
        run_dir = os.path.join(tmp, train.parse_args([]).run_name)
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    differences = config_differences(asdict(train.parse_args([])), summary["config"])
    if differences:
        raise SystemExit(f"error: {run_dir} is not a default run: {'; '.join(differences)}")
    if summary.get("threads") != default_threads():
        raise SystemExit(f"error: {run_dir} used {summary.get('threads')} threads; a plain `python train.py` here "
                         f"uses {default_threads()} (unset OMP_NUM_THREADS, no --threads)")

    with open(DOCS, "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    print(f"wrote {DOCS}")
    plot.plot([run_dir], os.path.join(ROOT, "docs", "default_run.png"))
    for name in SENTENCE_FILES:
        path = os.path.join(ROOT, name)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        text, n = re.subn(SENTENCE_RE, lambda _: readme_sentence(summary), text)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"{name}: {n} sentence(s) now read: {readme_sentence(summary)}")
    if tmp:
        print(f"the run stays in {run_dir}")


if __name__ == "__main__":
    main(sys.argv[1:])
