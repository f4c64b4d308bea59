"""The README and docs/ link to files that exist: every relative Markdown link `[text](path)` and image
`![text](path)` in README.md and docs/**/*.md must resolve, relative to the file it is in.

Web and mail links (http:, https:, mailto:) and pure anchors (#section) are not checked; a path's #anchor suffix is
dropped before the check. Links inside code (fenced blocks and `inline code`) are text, not links, and are skipped.

Below those: docs/results.md stays a summary with one page per experiment, in experiments/all.py's order; the wording
the README and docs use for the RLHF and comparison-set results follows the committed reports; and the figures that
the README and results.md show redraw from committed JSON alone.
"""
import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)  # a fenced code block, fences included
CODE = re.compile(r"(`+)[^`].*?\1", re.S)  # an inline code span
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")  # [..](target "title")


def markdown_files():
    return [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"),
                                                                 recursive=True))


def link_targets(text):
    """The targets of the Markdown links and images in text, outside code, in order."""
    text = CODE.sub("", FENCE.sub("", text))
    return LINK.findall(text)


def broken_links(text, folder):
    """The relative link targets in text (a Markdown file's contents) that name no file or folder under `folder`."""
    broken = []
    for target in link_targets(text):
        if re.match(r"(?i)(https?|mailto):", target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        if not os.path.exists(os.path.join(folder, path)):
            broken.append(target)
    return broken


def test_the_link_parser_finds_links_and_images_and_skips_code_and_the_web(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n")
    (tmp_path / "pic.png").write_bytes(b"")
    text = ("See [a](docs/a.md#a), ![a picture](pic.png \"title\") and [the paper](https://arxiv.org/abs/1),\n"
            "[mail](mailto:x@y.z), [here](#top), [gone](docs/missing.md) and ![lost](img/lost.png#x).\n"
            "`[not a link](nowhere.md)`\n```\n[nor this](nowhere.md)\n```\n")
    assert link_targets(text) == ["docs/a.md#a", "pic.png", "https://arxiv.org/abs/1", "mailto:x@y.z", "#top",
                                  "docs/missing.md", "img/lost.png#x"]
    assert broken_links(text, str(tmp_path)) == ["docs/missing.md", "img/lost.png#x"]
    assert broken_links("[up](../pic.png)", str(tmp_path / "docs")) == []  # relative to the file's own folder


def test_every_relative_link_and_image_in_the_readme_and_docs_resolves():
    files = markdown_files()
    assert len(files) >= 8, files  # README.md and the docs/ pages
    broken = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            bad = broken_links(f.read(), os.path.dirname(path))
        if bad:
            broken[os.path.relpath(path, ROOT)] = bad
    assert not broken, f"links to files that do not exist: {broken}"


def heading_anchors(text):
    """The anchors GitHub gives the headings of a Markdown text: lower case, punctuation dropped, spaces to hyphens,
    a repeated heading numbered (-1, -2, ...)."""
    anchors, seen = set(), {}
    for title in re.findall(r"^#{1,6}\s+(.*?)\s*#*\s*$", FENCE.sub("", text), re.M):
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def broken_anchors(text, path):
    """The link targets in text (the contents of the Markdown file at path) whose #anchor names no heading of the
    Markdown file they point to (or of this file, for a pure #anchor)."""
    broken = []
    for target in link_targets(text):
        file, hash_, anchor = target.partition("#")
        if not hash_ or re.match(r"(?i)(https?|mailto):", target):
            continue
        into = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
        if into.endswith(".md") and os.path.exists(into):
            with open(into, encoding="utf-8") as f:
                if anchor not in heading_anchors(f.read()):
                    broken.append(target)
    return broken


def test_anchors_name_a_heading(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# The default run (`python train.py`)\n\n## Notes\n\n## Notes\n\n```\n# not a heading\n```\n")
    assert heading_anchors(page.read_text()) == {"the-default-run-python-trainpy", "notes", "notes-1"}
    text = "[a](page.md#the-default-run-python-trainpy) [b](page.md#notes-1) [c](page.md#not-a-heading) [d](#nope)"
    assert broken_anchors(text, str(tmp_path / "other.md")) == ["page.md#not-a-heading"]
    assert broken_anchors("[d](#notes)", str(page)) == []
    broken = {}
    for path in markdown_files():
        with open(path, encoding="utf-8") as f:
            bad = broken_anchors(f.read(), path)
        if bad:
            broken[os.path.relpath(path, ROOT)] = bad
    assert not broken, f"anchors that name no heading: {broken}"


def test_every_figure_in_the_docs_is_shown_somewhere():
    """Nothing was lost when the README moved into docs/: every picture under docs/ is shown by some page."""
    shown = set()
    for path in markdown_files():
        with open(path, encoding="utf-8") as f:
            for target in link_targets(f.read()):
                shown.add(os.path.normpath(os.path.join(os.path.dirname(path), target.split("#", 1)[0])))
    pictures = {os.path.normpath(p) for p in glob.glob(os.path.join(ROOT, "docs", "**", "*.png"), recursive=True)}
    assert pictures and not pictures - shown, sorted(os.path.relpath(p, ROOT) for p in pictures - shown)


def test_the_seams_snippets_of_code_md_plug_a_new_loss_and_task_into_train(tmp_path, monkeypatch):
    """docs/code.md shows the few lines a new method and a new task need: they run through train.main as written."""
    import textwrap

    import train
    from gift import loss, tasks

    with open(os.path.join(ROOT, "docs", "code.md"), encoding="utf-8") as f:
        section = f.read().split("## The seams", 1)[1].split("\n## ", 1)[0]
    snippets = [textwrap.dedent(block) for block in re.findall(r"```python\n(.*?)```", section, re.S)]
    assert len(snippets) == 2
    monkeypatch.setitem(loss.LOSSES, "reinforce", None)  # the snippets add these entries; undone after the test
    monkeypatch.setitem(tasks.TASKS, "even", None)
    exec(snippets[0], vars(loss))
    exec(snippets[1], vars(tasks))
    tiny = ["--init=nano", "--sft_steps=4", "--sft_batch=4", "--rl_steps=2", "--prompts=2", "--group_size=4",
            "--minibatches=2", "--eval_problems=4", "--max_new_tokens=16", "--threads=1", f"--out_dir={tmp_path}"]
    summary = train.main(tiny + ["--method=reinforce", "--task=even"])
    assert summary["config"]["method"] == "reinforce" and 0 <= summary["rl_accuracy"] <= 1
    records = [l for l in (tmp_path / "even-reinforce-s0" / "metrics.jsonl").read_text().splitlines() if '"rl"' in l]
    assert len(records) == 2


# ----------------------------------------------------------------------------------------------------------------
# docs/results.md is a summary with one page per experiment; the numbers the summary and the README quote stay those
# of the committed reports.

def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def experiments_list():
    import importlib
    import sys

    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    return list(importlib.import_module("all").COMMANDS)


def test_the_readme_and_results_stay_short():
    assert len(read("README.md").splitlines()) <= 200
    assert len(read("docs/results.md").splitlines()) <= 250


def test_results_numbers_every_experiment_once_in_all_pys_order_and_each_has_its_page():
    """docs/results.md's list numbers the experiments 0..N-1 in experiments/all.py's order, each linking its page
    docs/experiments/<name>.md; each page is titled with that number and its script, and has the parts a reader
    looks for (command, machine, verdict or a pending report, what is not done yet). A page whose report JSON is
    committed names it; a page without one says its report is pending."""
    names = experiments_list()
    results = read("docs/results.md")
    listed = re.findall(r"^ ?(\d+)\. \[[^\]]+\]\(experiments/(\w+)\.md\)", results, re.M)
    assert listed == [(str(i), name) for i, name in enumerate(names)], listed
    for number, name in enumerate(names):
        page = read(f"docs/experiments/{name}.md")
        title = page.splitlines()[0]
        assert title.startswith(f"# {number}. ") and f"python experiments/{name}.py" in title, title
        assert f"experiment {number} of {len(names) - 1}" in page, name
        headings = set(re.findall(r"^## (.+)$", page, re.M))
        assert {"Command", "Machine", "Not done yet"} <= headings, (name, headings)
        assert f"python experiments/{name}.py" in page.split("## Command", 1)[1].split("\n## ", 1)[0], name
        committed = os.path.exists(os.path.join(ROOT, "docs", "experiments", f"{name}.json"))
        if committed:
            assert "Verdict" in headings and f"{name}.json" in page, name
        elif name != "bandit":  # bandit.py writes its JSON beside docs/bandit.png, uncommitted (its page says so)
            assert "Report: pending" in headings, name


def test_the_base_model_is_explained_once_with_the_numbers_of_the_code():
    """The experiments' SFT length (experiments/common.py) and `python train.py`'s (docs/default_run.json) are stated
    where results.md explains why they differ, and nowhere else says why."""
    import json
    import sys

    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    import common

    documented = json.loads(read("docs/default_run.json"))["config"]["sft_steps"]
    section = read("docs/results.md").split("## The base model of the experiments", 1)[1].split("\n## ", 1)[0]
    assert f"Every experiment's SFT runs {common.SFT_STEPS:,} steps" in section
    assert f"while `python train.py` now runs\n{documented:,}" in section or \
        f"while `python train.py` now runs {documented:,}" in section
    for path in ["README.md"] + sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)):
        if os.path.relpath(path, ROOT) != os.path.join("docs", "results.md"):
            assert "the experiments keep it so that" not in read(path), path


def test_rlhf_wording_follows_the_committed_report():
    """docs/experiments/rlhf.json decides the RLHF wording: no RLHF claim says "supported" unless the report's verdict
    for it does (which needs both protocols and no chosen rate at a grid's edge); the T = 1 win rates quoted in the
    README, results.md and the page are a protocol's range (the README and results.md quote the rates chosen by u);
    and "in the order of the KL" is said only if the drops from the peak follow the KL."""
    import json

    report = json.loads(read("docs/experiments/rlhf.json"))
    rows = [line for path in ("README.md", "docs/results.md") for line in read(path).splitlines()
            if line.startswith("|") and ("RLHF" in line.split("|")[1] or "true reward" in line)]
    assert len(rows) >= 4, rows  # two claims in each claims table
    if any(a["lr_at_grid_edge"] for a in report["arms"].values()) or "supported" not in report["verdicts"].values():
        for row in rows:
            verdict = row.split("|")[2]
            assert "supported" not in verdict or "not" in verdict, row
    protocols = report["protocols"]
    span = r"([+-]\d+\.\d to [+-]\d+\.\d)"
    everywhere, page = ("README.md", "docs/results.md", "docs/experiments/rlhf.md"), ("docs/experiments/rlhf.md",)
    for key, before, where in (("win_rate_minus_half", r"T = 1\D{0,40}?", everywhere),
                               ("length_controlled_minus_half", r"\(length-controlled ", page)):
        quoted = {}
        for p, rep in protocols.items():
            means = [100 * w["t1"][key]["mean"] for arm, w in rep["win_rates"].items() if arm != "gspo"]
            quoted[p] = f"{min(means):+.1f} to {max(means):+.1f}"
        for path in where:
            found = set(re.findall(before + span, " ".join(read(path).split())))  # lines joined
            assert quoted["true"] in found and found <= set(quoted.values()), (path, quoted, found)
    for rep in protocols.values():
        results = rep["results"]
        by_kl = sorted(results, key=lambda a: results[a]["kl_final_mean"])
        by_drop = sorted(results, key=lambda a: results[a]["true_reward_drop_from_best_mean"])
        if by_kl != by_drop:
            for path in ["README.md"] + sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)):
                assert "in the order of the KL" not in read(path), path


def test_the_comparison_sets_wording_says_what_was_measured():
    """The area under the curve is a trapezoid average (experiments/common.py's area_under), not the plain mean of the
    evaluations; GRPO + KL took GRPO's rate; DAPO's resampling budget is the code's default."""
    import sys

    import train

    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    import common

    assert common.area_under([0, 10, 20], [0.0, 1.0, 1.0]) != (0.0 + 1.0 + 1.0) / 3  # not the plain mean
    pages = {p: read(p) for p in ("README.md", "docs/results.md", "docs/experiments/writers_baselines.md")}
    for path, text in pages.items():
        assert "mean held-out accuracy over the 16" not in text, path
    assert "trapezoid average" in pages["README.md"] and "trapezoid average" in pages["docs/results.md"]
    assert "took GRPO's rate" in pages["README.md"] and "`--share_rate grpo-kl=grpo`" in pages["README.md"]
    draws = train.parse_args([]).max_draws
    for path in ("README.md", "docs/experiments/writers_baselines.md"):
        assert f"up to {draws} rounds" in pages[path], path


def test_the_default_runs_figure_redraws_from_its_json_alone(tmp_path):
    """scripts/refresh_default_run.py keeps seed 0's curves in docs/default_run.json (only what gift.plot reads), and
    --replot draws the figure from them without the run; a JSON without curves is refused in one line."""
    import json

    from scripts import refresh_default_run as refresh

    run = tmp_path / "default-s0-t2"
    run.mkdir()
    records = [dict(step=0, stage="sft", loss=2.0), dict(step=1, stage="sft_eval", heldout_accuracy=0.2)]
    records += [dict(step=1 + k, stage="rl", reward=0.1 * k, loss=0.5, kl=0.0, entropy=1.0, rl_lr=1e-4,
                     **({"watch_accuracy": 0.5} if k == 1 else {})) for k in range(3)]
    records.append(dict(step=4, stage="final", heldout_accuracy=0.9, time=3.0))
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    kept = refresh.curves(str(run))
    assert [r["stage"] for r in kept] == ["sft_eval", "rl", "rl", "rl", "final"]  # no SFT steps
    assert "rl_lr" not in kept[1] and "time" not in kept[-1] and kept[2]["watch_accuracy"] == 0.5
    assert refresh.curves(str(tmp_path)) == []  # no metrics.jsonl: nothing to keep
    config = json.loads(read("docs/default_run.json"))["config"]
    refresh.replot(dict(config=config, curves=kept), str(tmp_path / "fig.png"))
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match="^error: docs/default_run.json holds no curves"):
        refresh.replot(dict(config=config), str(tmp_path / "none.png"))


def test_the_headline_figure_redraws_from_its_json_alone(tmp_path):
    """experiments/writers_baselines.py --replot draws writers_baselines.png from the committed JSON (no runs)."""
    import shutil
    import sys

    sys.path.insert(0, os.path.join(ROOT, "experiments"))
    import writers_baselines as exp

    shutil.copy(os.path.join(ROOT, "docs", "experiments", "writers_baselines.json"), tmp_path)
    exp.main(exp.PARSER.parse_args(["--replot", f"--out={tmp_path}", f"--runs={tmp_path / 'no-runs'}"]))
    assert (tmp_path / "writers_baselines.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "no-runs").exists()  # nothing was run
    with pytest.raises(SystemExit, match="^error: --replot"):
        exp.main(exp.PARSER.parse_args(["--replot", f"--out={tmp_path / 'empty'}"]))
