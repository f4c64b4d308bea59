"""The README and docs/ link to files that exist: every relative Markdown link `[text](path)` and image
`![text](path)` in README.md and docs/**/*.md must resolve, relative to the file it is in.

Web and mail links (http:, https:, mailto:) and pure anchors (#section) are not checked; a path's #anchor suffix is
dropped before the check. Links inside code (fenced blocks and `inline code`) are text, not links, and are skipped.
"""
import glob
import os
import re

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
