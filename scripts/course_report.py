"""The course's experiment-and-report part: GIFT, GRPO and Dr. GRPO on the built-in task, three seeds, on a CPU.

    python scripts/course_report.py run      # 3 SFT runs, then 9 RL runs from them, into out/course/ (resumable)
    python scripts/course_report.py check    # every number assignments/report/REPORT.md quotes, against the runs

`run` starts `python train.py` for each run not finished yet, --jobs at a time (an RL run once its seed's SFT run
has finished): sft-s<seed> (SFT only, its sft.pt is the RL runs' start), then gift-s<seed>, grpo-s<seed> and
dr_grpo-s<seed>. A killed run continues from its checkpoint; a finished run made with other settings is refused.
With the COURSE settings the twelve runs take about 520 s of CPU time (docs/assignments.md has the measurement).

`check` reads the report (the template is TEMPLATE below; the student fills it in) and returns its checks: the runs
are there and finished with the settings; the results table is complete; each question is answered with at least
one citation and no uncited number. A citation is `RUN/KEY = VALUE` between backticks (KEYS below): RUN a run's
folder name, or a glob such as gift-s* for the mean over the runs it matches; VALUE with any number of decimals, or
a percentage. A number with a decimal point or a % outside a citation is refused. One citation (or table cell)
whose value is not its run's, rounded to the decimals written, rejects the whole report: every check fails.
scripts/assignments.py grades the report part with this function, from the course's own copy of this file.
"""
import argparse
import fnmatch
import json
import math
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = (0, 1, 2)
METHODS = ("gift", "grpo", "dr_grpo")
# The settings of each profile's runs, on top of train.py's defaults (the built-in task, the micro model). COURSE is
# the assignment's; TINY is for the tests (seconds per run). The check refuses runs whose summary.json says otherwise.
PROFILES = {
    "course": dict(sft=dict(sft_steps=1200, eval_problems=200),
                   rl=dict(rl_steps=20, prompts=8, group_size=8, minibatches=2, eval_problems=200)),
    "tiny": dict(sft=dict(init="nano", sft_steps=4, sft_batch=4, eval_problems=4, max_new_tokens=24),
                 rl=dict(rl_steps=2, prompts=2, group_size=4, minibatches=2, eval_problems=4, max_new_tokens=24)),
}
PLACEHOLDER = "_Write your answer here._"
QUESTIONS = ("Question 1", "Question 2", "Question 3")
TABLE_KEYS = ("sft_accuracy", "rl_accuracy", "rl_mean.reward", "rl_last.response_tokens")
KEYS = """KEY is a number in the run's summary.json (sft_accuracy, rl_accuracy, wall_time_s), config.NAME (a setting),
or rl_first.FIELD, rl_last.FIELD, rl_mean.FIELD: the first, the last, or the mean over the RL steps of a field of
metrics.jsonl (reward, response_tokens, corr, logratio_std, entropy, clip_frac, ...)"""

TEMPLATE = f"""# Report: GIFT, GRPO and Dr. GRPO on the built-in task

The runs: `python scripts/course_report.py run` (they go to out/course/). Check this file against them:
`python scripts/course_report.py check`. Quote every number as a citation between backticks, `RUN/KEY = VALUE`,
for example `gift-s0/rl_accuracy = 0.5` (the value is made up) or `gift-s*/rl_accuracy = ...` for the mean over the
three seeds. RUN is a run's folder name; {KEYS}.

## Results

Fill in every cell with the run's own number (as many decimals as you like: the check rounds the run's value).

| run | {' | '.join(TABLE_KEYS)} |
|---|{'---|' * len(TABLE_KEYS)}
""" + "".join(f"| {m}-s{s} |{' |' * len(TABLE_KEYS)}\n" for m in METHODS for s in SEEDS) + f"""
## Question 1: which method learns the task best here?

Which method has the highest held-out accuracy after RL (`rl_accuracy`), averaged over the three seeds, and how much
did each gain over its SFT model (`sft_accuracy`)? Is the lead of the best method over the second larger than the
spread between the seeds of one method? Quote the means and the per-seed values you compare.

### Answer

{PLACEHOLDER}

## Question 2: the length normalisation

GRPO as run here averages its per-token losses over all the tokens of a mini-batch and divides each advantage by its
group's reward std; Dr. GRPO divides the token sum by a constant (N times the longest possible response) and keeps
the raw advantages. Compare the response lengths (`response_tokens`) and the sampled rewards (`reward`) of the two
over the RL steps. Did dropping the two normalisations change the lengths here? In which direction does each
normalisation push the length of a wrong response, and of a right one?

### Answer

{PLACEHOLDER}

## Question 3: GIFT's regression

GIFT fits the z-scored log-ratios of a group to its z-scored rewards. From GIFT's metrics, how did the in-group
correlation of the log-ratio with the reward (`corr`) and the log-ratio's spread (`logratio_std`) change from the
first RL step to the last? With `--ref=old` (the default) pi_ref is the sampling policy of each step: what is the
log-ratio on each step's first mini-batch, and what does that mean for the values you quote (they are means over a
step's mini-batches)?

### Answer

{PLACEHOLDER}
"""


# ----------------------------------------------------------------------------------------------------------------
# the runs


def plan(runs_dir, profile="course"):
    """The runs of a profile, in order: dicts of name, settings (train.py fields) and needs (a run to finish first)."""
    if profile not in PROFILES:
        raise SystemExit(f"error: unknown profile {profile!r}; the profiles are {', '.join(PROFILES)}")
    sft, rl = PROFILES[profile]["sft"], PROFILES[profile]["rl"]
    out = [dict(name=f"sft-s{s}", needs=None, settings=dict(seed=s, rl_steps=0, **sft)) for s in SEEDS]
    for s in SEEDS:
        init = os.path.join(runs_dir, f"sft-s{s}", "sft.pt")
        out += [dict(name=f"{m}-s{s}", needs=f"sft-s{s}", settings=dict(seed=s, method=m, init=init, sft_steps=0, **rl))
                for m in METHODS]
    return out


def settings_problems(run, summary):
    """What in a finished run's summary.json differs from the settings the profile asks for (a list of strings)."""
    config = summary.get("config", {})
    problems = []
    for key, want in run["settings"].items():
        have = config.get(key)
        if key == "init" and run["needs"]:  # the path may differ (another folder); the SFT run it names may not
            same = isinstance(have, str) and os.path.basename(os.path.dirname(have)) == run["needs"]
        else:
            same = have == want
        if not same:
            problems.append(f"{key}={have} (asked: {want})")
    return problems


def finished(runs_dir, run):
    """True if the run has its summary.json; SystemExit if that run was made with other settings."""
    path = os.path.join(runs_dir, run["name"], "summary.json")
    if not os.path.exists(path):
        return False
    with open(path, encoding="utf-8") as f:
        problems = settings_problems(run, json.load(f))
    if problems:
        raise SystemExit(f"error: {os.path.dirname(path)} was made with other settings ({', '.join(problems)}); "
                         f"remove it to run it again")
    return True


def argv_of(runs_dir, run, threads):
    resume = os.path.exists(os.path.join(runs_dir, run["name"], "ckpt.pt"))  # a killed run continues
    return ([f"--{k}={v}" for k, v in run["settings"].items()]
            + [f"--run_name={run['name']}", f"--out_dir={runs_dir}", f"--threads={threads}", "--log_every=50"]
            + (["--resume"] if resume else []))


def run_all(runs_dir="out/course", profile="course", jobs=2, threads=1):
    """Run every run of the profile not finished yet, `jobs` train.py processes at a time (0: one after the other in
    this process), each with `threads` torch threads. Each process's output goes to <runs_dir>/<name>.log."""
    runs_dir = os.path.abspath(runs_dir)
    os.makedirs(runs_dir, exist_ok=True)
    todo = [r for r in plan(runs_dir, profile) if not finished(runs_dir, r)]
    done = {r["name"] for r in plan(runs_dir, profile)} - {r["name"] for r in todo}
    start = time.time()
    if jobs == 0:
        sys.path.insert(0, ROOT)
        import train  # noqa: E402  (only here: the check needs neither torch nor the model)
        for r in todo:
            print(f"{time.time() - start:6.0f} s  {r['name']}", flush=True)
            train.main(argv_of(runs_dir, r, threads))
        return
    running = {}
    while todo or running:
        for name, (proc, log) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[name]
            if proc.returncode != 0:
                for other, _ in running.values():
                    other.terminate()
                raise SystemExit(f"error: run {name} failed (exit code {proc.returncode}); its output: "
                                 f"{os.path.join(runs_dir, name + '.log')}")
            done.add(name)
            print(f"{time.time() - start:6.0f} s  {name} finished", flush=True)
        for r in [r for r in todo if r["needs"] is None or r["needs"] in done][: max(0, jobs - len(running))]:
            todo.remove(r)
            log = open(os.path.join(runs_dir, r["name"] + ".log"), "a", encoding="utf-8")
            command = [sys.executable, os.path.join(ROOT, "train.py"), *argv_of(runs_dir, r, threads)]
            running[r["name"]] = (subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log)
            print(f"{time.time() - start:6.0f} s  {r['name']} started", flush=True)
        time.sleep(0.5)
    print(f"all {len(plan(runs_dir, profile))} runs finished in {runs_dir} ({time.time() - start:.0f} s)")


# ----------------------------------------------------------------------------------------------------------------
# the check

_CITATION_RE = re.compile(r"`\s*([\w.*?\[\]-]+)/([\w.]+)\s*=\s*(-?[0-9]+(?:\.[0-9]+)?)\s*(%?)\s*`")
# a quantity that needs a citation: a number with a decimal point, or one followed by %
_QUANTITY_RE = re.compile(r"(?<![\w.])-?(?:[0-9]+\.[0-9]+|\.[0-9]+|[0-9]+(?:\.[0-9]+)?\s*%)")


class Runs:
    """The runs' own numbers, read once: summary.json and the RL records of metrics.jsonl of each run folder."""

    def __init__(self, runs_dir):
        self.dir, self.cache = runs_dir, {}

    def names(self):
        if not os.path.isdir(self.dir):
            return []
        return sorted(n for n in os.listdir(self.dir) if os.path.isfile(os.path.join(self.dir, n, "summary.json")))

    def files(self, name):
        if name not in self.cache:
            folder = os.path.join(self.dir, name)
            with open(os.path.join(folder, "summary.json"), encoding="utf-8") as f:
                summary = json.load(f)
            records = []
            if os.path.exists(os.path.join(folder, "metrics.jsonl")):
                with open(os.path.join(folder, "metrics.jsonl"), encoding="utf-8") as f:
                    records = [json.loads(line) for line in f if line.strip()]
            self.cache[name] = summary, [r for r in records if r.get("stage") == "rl"]
        return self.cache[name]

    def value(self, run, key):
        """The number KEY of RUN (a folder name, or a glob: the mean over the runs it matches). ValueError if none."""
        names = fnmatch.filter(self.names(), run) if any(c in run for c in "*?[") else [run]
        if not names:
            raise ValueError(f"no finished run matches {run!r} in {self.dir}")
        values = []
        for name in names:
            if not os.path.isfile(os.path.join(self.dir, name, "summary.json")):
                raise ValueError(f"no run {name!r} (no summary.json in {os.path.join(self.dir, name)})")
            summary, rl = self.files(name)
            kind, _, field = key.partition(".")
            if kind in ("rl_first", "rl_last", "rl_mean") and field:
                series = [r[field] for r in rl if isinstance(r.get(field), (int, float))]
                if not series:
                    raise ValueError(f"{name} has no RL step with a number {field!r} in metrics.jsonl")
                values.append({"rl_first": series[0], "rl_last": series[-1],
                               "rl_mean": sum(series) / len(series)}[kind])
            elif kind == "config" and field:
                v = summary.get("config", {}).get(field)
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    raise ValueError(f"{name}'s config has no number {field!r}")
                values.append(v)
            else:
                v = summary.get(key)
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    raise ValueError(f"{name}'s summary.json has no number {key!r}")
                values.append(v)
        return sum(values) / len(values)


def matches(value, written, percent):
    """True if `written` (a string of digits, as in the report) is `value` rounded to the decimals written."""
    decimals = len(written.partition(".")[2]) + (2 if percent else 0)
    number = float(written) / (100 if percent else 1)
    return math.isfinite(value) and abs(value - number) <= 0.5 * 10 ** -decimals + 1e-9 * max(1.0, abs(value))


def sections(text):
    """{heading: its lines (number, text)} of the report's '## ' sections."""
    out, current = {}, None
    for n, line in enumerate(text.split("\n"), start=1):
        if line.startswith("## "):
            current = line[3:].strip()
            out[current] = []
        elif current is not None:
            out[current].append((n, line))
    return out


def check_text(lines, runs):
    """Citations and uncited quantities of some lines: (citations checked, wrong: [str], uncited: [str])."""
    cited, wrong, uncited = 0, [], []
    for n, line in lines:
        for m in _CITATION_RE.finditer(line):
            cited += 1
            run, key, written, percent = m.groups()
            try:
                value = runs.value(run, key)
            except ValueError as exc:
                wrong.append(f"line {n}: {m.group(0)}: {exc}")
                continue
            if not matches(value, written, bool(percent)):
                wrong.append(f"line {n}: {m.group(0)}: the run's value is {value:.6g}")
        rest = _CITATION_RE.sub("", line)
        uncited += [f"line {n}: {q.group(0).strip()} is not cited (write `RUN/KEY = VALUE`)"
                    for q in _QUANTITY_RE.finditer(rest)]
    return cited, wrong, uncited


def check_table(lines, runs, expected_rows):
    """The results table: (problems, wrong): empty cells, missing rows or columns; values that are not the run's."""
    table = [(n, line.strip()) for n, line in lines if line.strip().startswith("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for _, line in table]
    numbers = [n for n, _ in table]
    if len(rows) < 2:
        return ["no results table"], []
    header, problems, wrong = rows[0], [], []
    missing = [k for k in TABLE_KEYS if k not in header[1:]]
    if missing:
        problems.append(f"the table has no column {', '.join(missing)}")
    seen = set()
    for n, row in zip(numbers[2:], rows[2:]):
        run = row[0]
        seen.add(run)
        for key, cell in zip(header[1:], row[1:]):
            if not cell:
                problems.append(f"line {n}: {run}'s {key} is empty")
            elif not re.fullmatch(r"-?[0-9]+(?:\.[0-9]+)?%?", cell):
                problems.append(f"line {n}: {run}'s {key} is not a number: {cell!r}")
            else:
                try:
                    value = runs.value(run, key)
                except ValueError as exc:
                    wrong.append(f"line {n}: {run}'s {key}: {exc}")
                    continue
                if not matches(value, cell.rstrip("%"), cell.endswith("%")):
                    wrong.append(f"line {n}: {run}'s {key} = {cell}: the run's value is {value:.6g}")
    problems += [f"the table has no row {r}" for r in expected_rows if r not in seen]
    return problems, wrong


def check_name(what):
    return f"report::{what.lower().replace(' ', '_')}"


def check(report_path, runs_dir, profile="course"):
    """The report part's checks: a list of (name, passed, message). See the module docstring."""
    results = []
    runs = Runs(runs_dir)
    expected = plan(runs_dir, profile)
    missing, other = [], []
    for r in expected:
        path = os.path.join(runs_dir, r["name"], "summary.json")
        if not os.path.exists(path):
            missing.append(r["name"])
            continue
        try:
            with open(path, encoding="utf-8") as f:
                problems = settings_problems(r, json.load(f))
        except ValueError as exc:  # not JSON
            problems = [f"summary.json is not readable ({exc})"]
        if problems:
            other.append(f"{r['name']}: {', '.join(problems)}")
    message = "; ".join(([f"not finished in {runs_dir}: {', '.join(missing)}"] if missing else [])
                        + ([f"other settings than profile {profile!r} (or unreadable): {'; '.join(other)}"]
                           if other else []))
    results.append((check_name("runs"), not message, message))
    if not os.path.exists(report_path):
        return results + [(check_name(name), False, f"{report_path} not found") for name in ("table", *QUESTIONS)]
    with open(report_path, encoding="utf-8") as f:
        parts = sections(f.read())
    wrong_all = []
    problems, wrong = check_table(parts.get("Results", []), runs, [r["name"] for r in expected if r["needs"]])
    wrong_all += wrong
    results.append((check_name("table"), not problems and not wrong, "; ".join(problems + wrong)))
    own = {check_name("runs"): message, check_name("table"): "; ".join(problems)}  # all but the wrong numbers
    for q in QUESTIONS:
        heading = next((h for h in parts if h.startswith(q)), None)
        lines = parts.get(heading, [])
        answer = [(n, line) for n, line in lines[next((i + 1 for i, (_, x) in enumerate(lines)
                                                        if x.strip() == "### Answer"), len(lines)):]]
        text = " ".join(line for _, line in answer).replace(PLACEHOLDER, "").strip()
        cited, wrong, uncited = check_text(answer, runs)
        wrong_all += wrong
        problems = (["not answered"] if not text else []) + (["no citation"] if text and not cited else [])
        problems += uncited
        own[check_name(q)] = "; ".join(problems)
        results.append((check_name(q), not problems and not wrong, "; ".join(problems + wrong)))
    if wrong_all:  # a number that is not its run's: the report is rejected
        reason = f"rejected: {len(wrong_all)} quoted number(s) do not match their runs: {'; '.join(wrong_all)}"
        results = [(name, False, "; ".join(x for x in (reason, own[name]) if x)) for name, _, _ in results]
    return results


def main(argv=None):
    p = argparse.ArgumentParser(prog="python scripts/course_report.py", description=__doc__.split("\n")[0])
    commands = p.add_subparsers(dest="command", required=True)
    r = commands.add_parser("run", help="make the runs the report quotes (resumable)")
    c = commands.add_parser("check", help="check every number of the report against the runs")
    for sub in (r, c):
        sub.add_argument("--runs", default="out/course", help="the runs' folder")
        sub.add_argument("--profile", default="course", choices=list(PROFILES), help="the runs' settings")
    r.add_argument("--jobs", type=int, default=2, help="train.py processes at once (0: in this process)")
    r.add_argument("--threads", type=int, default=1, help="torch threads per process")
    c.add_argument("--report", default="assignments/report/REPORT.md")
    args = p.parse_args(argv)
    if args.command == "run":
        run_all(args.runs, args.profile, args.jobs, args.threads)
        return 0
    results = check(args.report, args.runs, args.profile)
    for name, ok, message in results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f": {message}" if message else ""))
    passed = sum(ok for _, ok, _ in results)
    print(f"{passed}/{len(results)} checks pass")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
