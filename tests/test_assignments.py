"""Tests of the course assignments (scripts/assignments.py), and two graded tests that belong to assignment parts.

The first two tests are graded: the sampler part's check that `generate` uses its key/value cache as described (one
prefill of the B prompts, then one new token per live row per step), and the RL part's check of the log-ratio that
`rl_step` hands to `gift_loss`. They stay in the student edition. The rest is for the instructor and is dropped from
the student edition: it builds the student edition into a temporary directory and checks that every graded test
fails there with its part's NotImplementedError, passes once the solution is put back, and that no line of solution
code reaches the student edition.
"""
import inspect
import json
import os
import re
import shlex
import shutil
import subprocess

import pytest
import torch
from torch.nn import functional as F

import train
from gift import loss as loss_module
from scripts import assignments
from gift.model import GPT, GPTConfig
from gift.sampler import generate

# ------------------------------------------------------------------------------------------ graded: sampler part


def test_generate_prefills_each_prompt_once_then_feeds_one_token_per_row():
    """The model sees the B prompts once (not B * N rows), then one position per row still sampling, per step."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=32, vocab_size=23))
    shapes = []

    def record(module, args, kwargs):
        shapes.append(tuple((args[0] if args else kwargs["idx"]).shape))

    model.register_forward_pre_hook(record, with_kwargs=True)
    prompts, N, T = [[1, 2, 3], [4, 5, 6, 7, 8]], 3, 6
    out = generate(model, prompts, num_samples=N, max_new_tokens=T, seed=0)
    assert out.tokens.shape == (6, T)
    assert shapes == [(2, 5)] + [(6, 1)] * (T - 1)  # the last token is never fed

    shapes.clear()  # with stop tokens, finished rows leave the batch (the host reads the flags one step late, so a
    out = generate(model, prompts, num_samples=N, max_new_tokens=T, seed=1, stop_tokens=range(0, 23, 3))
    lengths = [len(s) for s in out.sequences]  # row that stops at step t is fed at step t and is gone at t + 1)
    fed = [sum(n > t for n in lengths) for t in range(T - 1)]  # rows still sampling at step t
    assert len(set(lengths)) > 1 and min(lengths) < T - 1, "fixture should make rows stop at different steps"
    assert shapes == [(2, 5)] + [(a, 1) for a in fed if a > 0]


# ------------------------------------------------------------------------------------------ graded: rl_step part


def summed_logratio(policy, ref, prompts, gen, G):
    """l_i = sum over the response tokens the model chose of log pi_theta - log pi_ref, by a plain log_softmax."""
    values = []
    for i, seq in enumerate(gen.sequences):
        ids, n = torch.tensor([prompts[i // G] + seq]), len(seq)
        with torch.no_grad():
            lp = [F.log_softmax(m(ids)[0, -n - 1 : -1], dim=-1)[torch.arange(n), seq] for m in (policy, ref)]
        values.append(((lp[0] - lp[1]) * gen.mask[i, :n]).sum())
    return torch.stack(values)


def test_rl_step_hands_gift_loss_the_summed_response_logratio(monkeypatch, tmp_path):
    cfg = train.parse_args(["--init=nano", "--device=cpu", "--sft_steps=0", "--prompts=2", "--group_size=4",
                            "--max_new_tokens=12", "--micro_batch=1", "--ref=frozen", "--std_floor=0.5",
                            "--detach_std=true", "--eval_problems=1", "--minibatches=1", f"--out_dir={tmp_path}"])
    torch.manual_seed(0)
    run = train.setup(cfg)  # the policy, the task, the loss (LOSSES["gift"]) and the reference
    policy = run.policy
    run.reference.copy_of(policy)
    ref = run.reference.model
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))  # pi_ref != pi_theta: the log-ratios are not 0
    seen, calls = {}, []
    real_generate, real_gift_loss = train.generate, loss_module.gift_loss

    def spy_generate(model, prompts, **kwargs):
        seen["prompts"], seen["out"] = prompts, real_generate(model, prompts, **kwargs)
        return seen["out"]

    def spy_gift_loss(*args, **kwargs):
        bound = inspect.signature(real_gift_loss).bind(*args, **kwargs)
        bound.apply_defaults()
        calls.append(dict(bound.arguments))
        return real_gift_loss(*args, **kwargs)

    monkeypatch.setattr(train, "generate", spy_generate)
    monkeypatch.setattr(loss_module, "gift_loss", spy_gift_loss)  # what gift_objective calls
    run.opt = torch.optim.SGD(policy.parameters(), lr=0.0)  # the weights stay put: the expected values can be recomputed
    total, stats = train.rl_step(run, cfg)

    assert len(calls) == 2  # micro_batch=1: one call per group of G = 4
    for call in calls:
        assert call["logratio"].shape == (4,) and call["logratio"].requires_grad  # the policy term carries the gradient
        assert (call["group_size"], call["std_floor"], call["detach_std"]) == (4, 0.5, True)
    expected = summed_logratio(policy, ref, seen["prompts"], seen["out"], 4)
    assert expected.abs().min() > 1e-3
    torch.testing.assert_close(torch.cat([c["logratio"].detach() for c in calls]), expected, atol=1e-4, rtol=1e-4)
    rewards = torch.cat([c["rewards"] for c in calls])
    assert rewards.mean().item() == pytest.approx(stats["reward"])
    losses = [real_gift_loss(expected[4 * g : 4 * g + 4], rewards[4 * g : 4 * g + 4], 4, std_floor=0.5)[0]
              for g in range(2)]
    assert total == pytest.approx(sum(losses).item() / 2, abs=1e-5)


# BEGIN INSTRUCTOR ONLY
# ------------------------------------------------------------------------------------------- the assignment builder
ROOT = assignments.ROOT
F_LINES = ["def f(x):", '    """Doc."""', "    # BEGIN SOLUTION loss", "    # HINT: add one", "    y = x + 1",
           "    return y", "    # END SOLUTION", ""]


def test_markers_become_raise_lines_and_bad_markers_name_the_problem():
    text = "\n".join(F_LINES)
    student, regions = assignments.student_text(text, ["loss"], "f.py")
    assert student == 'def f(x):\n    """Doc."""\n    raise NotImplementedError("loss: add one")\n'
    assert regions[0]["lines"] == ["    y = x + 1", "    return y"] and regions[0]["line"] == 3
    assert assignments.enclosing_function(student, 3) == "f"
    kept, removed = assignments.student_text(text, ["verifier"], "f.py")  # another part: the code stays
    assert kept == 'def f(x):\n    """Doc."""\n    y = x + 1\n    return y\n' and removed == []
    dropped, _ = assignments.student_text("a = 1\n# BEGIN INSTRUCTOR ONLY\nb = 2\n# END INSTRUCTOR ONLY\nc = 3", [])
    assert dropped == "a = 1\nc = 3"
    bad = [(F_LINES[:6], "f.py:3: BEGIN SOLUTION loss is never closed"),
           (F_LINES[:2] + F_LINES[4:], "f.py:5: END SOLUTION without BEGIN"),
           (F_LINES[:3] + F_LINES[2:], "f.py:4: BEGIN SOLUTION inside the region opened at line 3"),
           ([F_LINES[2].replace("loss", "lose")], "unknown part 'lose'"),
           (F_LINES[:3] + F_LINES[4:5] + F_LINES[3:4], "f.py:5: a HINT line must come right after BEGIN")]
    for lines, match in bad:
        with pytest.raises(ValueError, match=re.escape(match)):
            assignments.student_text("\n".join(lines), ["loss"], "f.py")


def test_build_refuses_unknown_parts_and_used_directories(tmp_path):
    with pytest.raises(SystemExit, match="unknown part"):
        assignments.build(str(tmp_path / "a"), ["loss", "lose"])
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("x")
    with pytest.raises(SystemExit, match="not an empty directory"):
        assignments.build(str(tmp_path / "b"))
    with pytest.raises(SystemExit, match="parts.json not found"):
        assignments.grade(str(tmp_path / "b"))


def copy_of_repo(dest):
    """Copy the files the builder would copy from the repository to dest (a few MB: no .git, out/, data/ or venv).
    Returns their relative paths."""
    files = assignments.list_files(ROOT)
    for rel in files:
        os.makedirs(dest / os.path.dirname(rel), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), dest / rel)
    return files


def write_files(root, files):
    for rel, text in files.items():
        os.makedirs(root / os.path.dirname(rel), exist_ok=True)
        (root / rel).write_text(text)


def test_build_from_a_source_archive_without_git(tmp_path):
    """A downloaded zip has no .git: the files come from walking the tree, without runs, data, venvs or caches."""
    archive = tmp_path / "gift-main"
    files = copy_of_repo(archive)
    junk = ["out/builtin-gift-s0/ckpt.pt", "data/gsm8k/train.jsonl", ".venv/pyvenv.cfg", ".venv/lib/site.py",
            "env2/pyvenv.cfg", "env2/bin/python", "gift/__pycache__/loss.cpython-311.pyc", ".pytest_cache/v/x",
            "tests/__pycache__/x.pyc", "gift.egg-info/PKG-INFO", "runs/gift/events.out.tfevents.1", "eval.json",
            ".env", "lib/python3.11/site-packages/torch/x.py", "conda/conda-meta/history", "conda/lib/y.py",
            ".git"]  # .git as a file: a stray worktree link
    write_files(archive, {rel: "x" for rel in junk})
    assert assignments.list_files(str(archive)) == files
    (archive / "NOTES.md").write_text("a teacher's own file")  # untracked files are copied, as from a checkout
    assert "NOTES.md" in assignments.list_files(str(archive))
    regions = assignments.build(str(tmp_path / "student"), ["loss"], root=str(archive))
    assert {r["part"] for r in regions} == {"loss"} and (tmp_path / "student" / "NOTES.md").exists()
    assert not (tmp_path / "student" / "out").exists() and not (tmp_path / "student" / ".venv").exists()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git program")
def test_build_never_copies_a_venv_or_caches_that_git_lists_as_untracked(tmp_path):
    """A checkout whose .gitignore misses the venv (an older clone, a venv under another name): git lists its 20,000
    files as untracked, and torch ships .py files that do not compile. The builder skips them by its own rules."""
    repo = tmp_path / "checkout"
    files = copy_of_repo(repo)
    git = ["git", "-C", str(repo), "-c", "core.excludesFile=/dev/null"]  # the user's global ignores play no part
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    (repo / ".gitignore").write_text("__pycache__/\n")  # an older .gitignore: no venv, cache or output entries
    junk = {"myenv/pyvenv.cfg": "home = /usr/bin\n",  # a venv named as the user liked: found by its pyvenv.cfg
            "myenv/lib/python3.11/site-packages/x.py": "def f(:\n",  # a syntax error, as in some of torch's files
            "myenv/bin/python": "",
            ".venv/lib/python3.11/site-packages/y.py": "def f(:\n",  # by its name (no pyvenv.cfg)
            "tools/site-packages/z.py": "def f(:\n",  # any site-packages folder
            "miniconda/conda-meta/history": "", "miniconda/lib/w.py": "def f(:\n",  # a conda environment
            ".mypy_cache/3.11/gift/loss.json": "{}", "gift.egg-info/PKG-INFO": "x", "gift/loss.cpython-311.pyc": "x",
            ".env": "TOKEN=secret\n", "eval.json": "{}", "runs/gift/events.out.tfevents.1": "x",
            "student/assignments/parts.json": "{}", "student/gift/loss.py": "x = 1\n"}  # an earlier edition
    write_files(repo, junk)
    listed = subprocess.run(git + ["ls-files", "--others", "--exclude-standard"], capture_output=True, text=True,
                            check=True).stdout.split("\n")
    assert "myenv/lib/python3.11/site-packages/x.py" in listed and ".env" in listed  # git would copy them
    (repo / "NOTES.md").write_text("a teacher's own file")  # untracked and not junk: still copied

    assert assignments.list_files(str(repo)) == sorted(files + ["NOTES.md"])
    out = tmp_path / "student"
    assignments.build(str(out), ["loss"], root=str(repo))
    written = {os.path.relpath(os.path.join(d, f), out).replace(os.sep, "/") for d, _, names in os.walk(out)
               for f in names}
    assert written == set(files) | {"NOTES.md", "assignments/loss/ASSIGNMENT.md", "assignments/parts.json"}


BAD_SOURCES = {  # untracked files that make a build fail after it has written everything else (zz_ sorts last)
    "mid_statement": ("x = (\n    # BEGIN SOLUTION loss\n    1\n    # END SOLUTION\n)\n", "does not compile"),
    "unclosed": ("# BEGIN SOLUTION loss\nx = 1\n", "zz_bad.py:1: BEGIN SOLUTION loss is never closed"),
    "not_utf8": (b"x = '\xff'\n", "zz_bad.py is not UTF-8 text"),
    "disk_full": ("x = 1\n", "No space left on device"),
}


@pytest.mark.parametrize("case", list(BAD_SOURCES))
def test_a_failed_build_prints_one_error_line_and_leaves_no_partial_edition(case, tmp_path, monkeypatch):
    root = tmp_path / "repo"
    copy_of_repo(root)
    source, message = BAD_SOURCES[case]
    (root / "zz_bad.py").write_bytes(source if isinstance(source, bytes) else source.encode())
    if case == "disk_full":  # every 20th copied file finds the disk full: midway through each build
        copies, real_copy2 = [], shutil.copy2

        def copy2(src, dst, **kwargs):
            copies.append(dst)
            if len(copies) % 20 == 0:
                raise OSError(28, "No space left on device", dst)
            return real_copy2(src, dst, **kwargs)

        monkeypatch.setattr(assignments.shutil, "copy2", copy2)
    (tmp_path / "empty").mkdir()
    # OUT new (with a missing parent: both go) or an empty folder the user made (it stays, empty)
    outs = [(tmp_path / "new" / "student", tmp_path / "new"), (tmp_path / "empty", None)]
    for out, created in outs:
        with pytest.raises(SystemExit) as failed:
            assignments.build(str(out), ["loss"], root=str(root))
        text = str(failed.value)
        assert text.startswith("error: ") and "\n" not in text and message in text, text
        assert not created.exists() if created else os.listdir(out) == []
    (root / "zz_bad.py").unlink()  # the problem fixed, the same command works: nothing was left to refuse
    monkeypatch.undo()
    for out, _ in outs:
        assert {r["part"] for r in assignments.build(str(out), ["loss"], root=str(root))} == {"loss"}


def test_the_docs_build_commands_work_one_after_the_other(tmp_path):
    """docs/assignments.md's build examples, run in order as a reader would (with /tmp/ moved into tmp_path)."""
    with open(os.path.join(ROOT, "docs", "assignments.md"), encoding="utf-8") as f:
        lines = [x.split("#")[0] for x in f.read().split("\n") if x.startswith("python scripts/assignments.py build")]
    assert len(lines) >= 2, lines
    editions = []
    for line in lines:
        argv = [a.replace("/tmp/", f"{tmp_path}/", 1) if a.startswith("/tmp/") else a for a in shlex.split(line)]
        assert assignments.main(argv[2:]) == 0, line
        out, parts = argv[3], argv[argv.index("--parts") + 1 :] if "--parts" in argv else list(assignments.PARTS)
        with open(os.path.join(out, "assignments", "parts.json"), encoding="utf-8") as f:
            assert json.load(f)["parts"] == parts
        editions.append(out)
    assert len(set(editions)) == len(editions)  # each edition is still there, in its own folder


def solution_lines():
    """Per part, the stripped lines of its regions that occur nowhere outside the regions in the repository."""
    inside, outside, part = {}, set(), None
    for rel in assignments.list_files(ROOT):
        if not rel.endswith(".py") or rel == assignments.THIS_FILE:
            continue
        for line in open(os.path.join(ROOT, rel), encoding="utf-8").read().split("\n"):
            s = line.strip()
            if s.startswith("# BEGIN SOLUTION"):
                part = s.split()[-1]
            elif s.startswith("# END SOLUTION"):
                part = None
            elif part and not s.startswith("# HINT:"):
                inside.setdefault(part, set()).add(s)
            else:
                outside.add(s)
    return {p: lines - outside for p, lines in inside.items()}


def test_student_edition_has_handouts_and_no_solution_text(tmp_path, capsys):
    out = tmp_path / "student"
    assert assignments.main(["build", str(out)]) == 0
    files = {os.path.relpath(os.path.join(d, f), out) for d, _, names in os.walk(out) for f in names}
    handouts = {f"assignments/{p}/ASSIGNMENT.md" for p in assignments.PARTS} | {"assignments/parts.json"}
    assert files == set(assignments.list_files(ROOT)) | handouts  # no .git, out/ or data/
    assert json.loads((out / "assignments" / "parts.json").read_text())["parts"] == list(assignments.PARTS)

    secret = solution_lines()
    assert set(secret) == set(assignments.PARTS) and all(len(lines) >= 2 for lines in secret.values()), secret
    raises = 0
    for rel in files:
        text = (out / rel).read_bytes().decode("utf-8", errors="replace")  # binary files (docs/*.png) too
        raises += len(re.findall(r"raise NotImplementedError\(\"(?:loss|verifier|sampler|kernel|rl_step|gspo): ", text))
        assert not re.search(r"^\s*# (BEGIN|END) (SOLUTION|INSTRUCTOR)", text, re.M) or rel == assignments.THIS_FILE
        for line in text.split("\n"):
            for part, lines in secret.items():
                assert line.strip() not in lines, f"{rel} contains solution text of part {part}: {line.strip()}"
    printed = capsys.readouterr().out
    assert raises == printed.count("removed ") >= 8

    for name, part in assignments.PARTS.items():
        handout = (out / "assignments" / name / "ASSIGNMENT.md").read_text()
        assert part["title"] in handout and f"({part['points']} points)" in handout and part["k"] in handout
        assert "## The equations" in handout or "## The rules" in handout
        for r in re.findall(r"- `([^`]+)`, `(\w+)` \(line (\d+)\)", handout):  # each "where" line names a raise
            assert "raise NotImplementedError" in (out / r[0]).read_text().split("\n")[int(r[2]) - 1]
    student_tests = (out / "tests" / "test_assignments.py").read_text()
    assert "def test_rl_step" in student_tests and "def test_student_edition" not in student_tests

    assert assignments.main(["grade", str(out), "--parts", "loss"]) == 1  # the CLI: nothing written yet, 0 points
    table = capsys.readouterr().out
    assert re.search(r"loss\s+0/\d+\s+0\.0 / 20", table) and re.search(r"total\s+0\.0 / 20", table)


@pytest.mark.parametrize("part", list(assignments.PARTS))
def test_graded_tests_fail_without_the_solution_and_pass_with_it(part, tmp_path):
    """Build with only this part removed: each graded test must fail on one of its NotImplementedErrors; put the
    reference code back: all must pass. So no test that cannot fail gives points, and each part grades alone."""
    out = str(tmp_path / "edition")
    regions = assignments.build(out, [part])
    student = assignments.grade(out)[part]
    assert student["error"] is None and student["total"] > 0 and student["passed"] == 0
    with open(os.path.join(ROOT, "docs", "assignments.md"), encoding="utf-8") as f:  # its table states what grades
        row = re.search(rf"^\| `{part}` \|.*\| (\d+) \| (\d+) \|$", f.read(), re.M)
    assert row, f"docs/assignments.md has no row for part {part} in the assignments table"
    assert (int(row.group(1)), int(row.group(2))) == (student["total"], assignments.PARTS[part]["points"]), \
        f"docs/assignments.md says part {part} has {row.group(1)} graded tests, {row.group(2)} points; the grader: " \
        f"{student['total']} tests, {assignments.PARTS[part]['points']} points"
    messages = [r["message"] for r in regions]
    for test, _, failure in student["tests"]:
        assert any(m in failure for m in messages), f"{test} failed for another reason:\n{failure[-1500:]}"

    for path in {r["path"] for r in regions}:  # the reference file, markers dropped, code kept
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            text, _ = assignments.student_text(f.read(), [], path)
        with open(os.path.join(out, path), "w", encoding="utf-8") as f:
            f.write(text)
    solved = assignments.grade(out)[part]
    failed = [(test, failure[-1500:]) for test, ok, failure in solved["tests"] if not ok]
    assert not failed and solved["total"] == student["total"], failed
    assert solved["points"] == assignments.PARTS[part]["points"]
# END INSTRUCTOR ONLY
