"""Tests of the course assignments (scripts/assignments.py, scripts/course_report.py), and graded tests of three
assignment parts.

The first test is graded and stays in the student edition: the sampler part's check that `generate` uses its
key/value cache as described (one prefill of the B prompts, then one new token per live row per step). The graded
tests after it are in the course's copy only (between the INSTRUCTOR ONLY lines, which the builder drops), because
their oracles would give answers away: the rl_step part's log-ratio recomputed with a plain log_softmax, and the
update part's gradient of a whole mini-batch computed in one pass. The rest is for the instructor too: it builds
editions into temporary folders and checks that every part of the full edition scores 0 blank and full marks with
only its own solution filled in, that the grader ignores the student's copy of the tests, that no line of solution
code reaches the student edition, and the report part's runner and checker (a doctored report is rejected).
"""
import csv
import inspect
import json
import math
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
from gift import tasks
from gift.loss import RLBatch
from gift.model import GPT, GPTConfig
from gift.sampler import generate
from scripts import assignments, course_report

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


# BEGIN INSTRUCTOR ONLY
# ----------------------------------------------------------------- graded, in the course's copy only: rl_step part


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
    run.opt = torch.optim.SGD(policy.parameters(), lr=0.0)  # the weights stay put: the expected values can be redone
    total, stats = train.rl_step(run, cfg)
    run.close()

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


# ------------------------------------------------------------------ graded, in the course's copy only: update part


def rollout_in_float64(tmp_path, monkeypatch, method, *args):
    """A run of 6 prompts in K = 2 mini-batches of 3 groups, micro-batches of 2 and 1 groups, no gradient clipping,
    and one rollout of it. Rewards: the parity of the response's length, so the groups are informative."""
    monkeypatch.setattr(tasks, "verifier_reward", lambda text, ex: float(len(text) % 2 == 0))
    cfg = train.parse_args(["--init=nano", "--device=cpu", "--sft_steps=0", "--prompts=6", "--group_size=4",
                            "--max_new_tokens=10", "--micro_batch=2", "--minibatches=2", "--grad_clip=0",
                            "--eval_problems=1", "--rl_lr=0.003", f"--method={method}", f"--out_dir={tmp_path}", *args])
    torch.manual_seed(0)
    run = train.setup(cfg)
    if run.reference.kind == "frozen":
        run.reference.copy_of(run.policy)
        with torch.no_grad():
            for p in run.reference.model.parameters():
                p.add_(0.05 * torch.randn_like(p))  # pi_ref != pi_theta: GIFT's log-ratios spread from the start
    r = train.rollout(run, cfg)
    assert [[(s.start, s.stop) for s in mb] for mb in r.batches] == [[(0, 8), (8, 12)], [(12, 20), (20, 24)]]
    assert 0 < r.rewards.mean() < 1
    return run, cfg, r


def spy_optimizer(run):
    """Record, at each run.opt.step(), the weights before the step and their gradients."""
    steps, real_step = [], run.opt.step

    def step(*args, **kwargs):
        params = list(run.model.parameters())
        steps.append(([p.detach().clone() for p in params],
                      [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]))
        return real_step(*args, **kwargs)

    run.opt.step = step
    return steps


@pytest.mark.parametrize("method,inner", [("gift", 2), ("dr_grpo", 1)])
def test_update_policy_steps_on_each_whole_mini_batchs_gradient(tmp_path, monkeypatch, method, inner):
    """Each optimiser step's gradient is the gradient of its whole mini-batch's loss computed in one pass, within
    1e-6 (GIFT, with a frozen reference moved away from the policy, two passes; Dr. GRPO, one); the update returns
    the mean of the mini-batches' losses and the UpdateLog's summary with one gradient norm per step."""
    args = ["--ref=frozen", f"--inner_steps={inner}"] if method == "gift" else []
    run, cfg, r = rollout_in_float64(tmp_path, monkeypatch, method, *args)
    steps = spy_optimizer(run)
    loss, stats = train.update_policy(run, cfg, r)
    assert len(steps) == 2 * inner
    assert len(stats["grad_norm_mb"]) == 2 * inner and {"reward", "entropy", "response_tokens"} <= set(stats)
    expected_losses = []
    for k, (weights, grads) in enumerate(steps):
        rows = slice(12 * (k % 2), 12 * (k % 2) + 12)  # the whole mini-batch: 3 groups of 4
        with torch.no_grad():
            for p, w in zip(run.model.parameters(), weights):
                p.copy_(w)
        run.model.zero_grad(set_to_none=True)
        logp, _ = train.response_logprobs(run.model, r.idx[rows], r.mask[rows], cfg, cfg.temperature)
        batch = RLBatch(logp, r.old_logp[rows], None if r.ref_logp is None else r.ref_logp[rows], r.rewards[rows],
                        r.mask[rows], 4, cfg.max_new_tokens, r.truncated[rows])
        reference, _ = run.loss_fn(batch, cfg)
        reference.backward()
        expected_losses.append(reference.item())
        for p, g in zip(run.model.parameters(), grads):
            torch.testing.assert_close(g, p.grad, atol=1e-6, rtol=1e-6)
        assert any(g.abs().max() > 1e-4 for g in grads)  # a gradient that could be wrong
    run.close()
    assert loss == pytest.approx(sum(expected_losses) / len(expected_losses), abs=1e-6)


def test_update_policy_skips_a_non_finite_mini_batch_and_stops(tmp_path, monkeypatch):
    """A loss that is NaN on the second mini-batch: the first mini-batch steps, the second does not, and the update
    returns (nan, skipped) at once, its gradients cleared (optimizer_step's doing: the update must call it)."""
    run, cfg, r = rollout_in_float64(tmp_path, monkeypatch, "gift")
    steps, calls, real_loss = spy_optimizer(run), [], run.loss_fn

    def loss_fn(batch, cfg):
        calls.append(len(batch.rewards))
        loss, stats = real_loss(batch, cfg)
        return (loss * math.nan if len(calls) > 2 else loss), stats

    run.loss_fn = loss_fn
    loss, stats = train.update_policy(run, cfg, r)
    run.close()
    assert calls[:2] == [8, 4] and len(steps) == 1  # micro-batches of 2 and 1 groups; one step taken
    assert math.isnan(loss) and stats == dict(skipped=True)
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in run.model.parameters())


# ------------------------------------------------------------------------------------------- the assignment builder
ROOT = assignments.ROOT
F_LINES = ["def f(x):", '    """Doc."""', "    # BEGIN SOLUTION loss", "    # HINT: add one", "    y = x + 1",
           "    return y", "    # END SOLUTION", ""]


def test_markers_become_raise_lines_and_bad_markers_name_the_problem():
    text = "\n".join(F_LINES)
    student, regions = assignments.student_text(text, ["loss"], "f.py")
    assert student == ('def f(x):\n    """Doc."""\n    # BEGIN YOUR CODE loss\n'
                       '    raise NotImplementedError("loss: add one")\n    # END YOUR CODE loss\n')
    assert regions[0]["lines"] == ["    y = x + 1", "    return y"] and regions[0]["line"] == 4
    assert assignments.enclosing_function(student, 4) == "f"
    kept, removed = assignments.student_text(text, ["verifier"], "f.py")  # another part: the code stays
    assert kept == 'def f(x):\n    """Doc."""\n    y = x + 1\n    return y\n' and removed == []
    dropped, _ = assignments.student_text("a = 1\n# BEGIN INSTRUCTOR ONLY\nb = 2\n# END INSTRUCTOR ONLY\nc = 3", [])
    assert dropped == "a = 1\nc = 3"
    bad = [(F_LINES[:6], "f.py:3: BEGIN SOLUTION loss is never closed"),
           (F_LINES[:2] + F_LINES[4:], "f.py:5: END SOLUTION without BEGIN"),
           (F_LINES[:3] + F_LINES[2:], "f.py:4: BEGIN SOLUTION inside the region opened at line 3"),
           ([F_LINES[2].replace("loss", "lose")], "unknown part 'lose'"),
           ([F_LINES[2].replace("loss", "report")], "unknown part 'report'"),  # not a code part
           (F_LINES[:3] + F_LINES[4:5] + F_LINES[3:4], "f.py:5: a HINT line must come right after BEGIN")]
    for lines, match in bad:
        with pytest.raises(ValueError, match=re.escape(match)):
            assignments.student_text("\n".join(lines), ["loss"], "f.py")


def test_the_grader_splices_only_the_students_blocks_into_the_reference():
    """The student's lines between the YOUR CODE markers replace the region; everything else is the reference's
    (a change outside the markers is not graded); moved markers or code that does not compile name the problem."""
    reference = "\n".join(F_LINES[:-1] + ["z = 1  # BEGIN YOUR CODE is only a marker on a line of its own", ""])
    student, _ = assignments.student_text(reference, ["loss"], "f.py")
    mine = student.replace('raise NotImplementedError("loss: add one")', "return x + 2").replace("z = 1", "z = 5")
    assert assignments.splice(reference, "loss", mine, "f.py") == (
        'def f(x):\n    """Doc."""\n    return x + 2\nz = 1  # BEGIN YOUR CODE is only a marker on a line of its own\n')
    problems = [(mine.replace("    # END YOUR CODE loss\n", ""), "f.py:3: BEGIN YOUR CODE loss is never closed"),
                (mine.replace("    # BEGIN YOUR CODE loss\n", ""), "f.py:4: END YOUR CODE loss without BEGIN"),
                (mine.replace("# BEGIN YOUR CODE loss", "# BEGIN YOUR CODE").replace("# END YOUR CODE loss", "#"),
                 "f.py has 0 block(s) between '# BEGIN YOUR CODE loss'"),
                (mine.replace("return x + 2", "return x +"), "your code for part loss does not compile: line 3")]
    for text, match in problems:
        with pytest.raises(ValueError, match=re.escape(match)):
            assignments.splice(reference, "loss", text, "f.py")


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




def code_of(line):
    """A line's code for comparing solutions: no trailing comment, no whitespace (so reformatting does not hide it)."""
    return re.sub(r"\s+", "", re.split(r"\s+#", line.strip(), maxsplit=1)[0] if not line.strip().startswith("#")
                  else "")


def solution_lines():
    """Per part, the code of its regions' lines, less the lines that are given anyway: those that also occur outside
    every region in the method's own source (gift/, train.py, eval.py: boilerplate such as `return None`). Lines in
    tests/, experiments/, docs/, scripts/ never count as given: a solution line there is a leak."""
    inside, given = {}, set()
    for rel in assignments.list_files(ROOT):
        if not rel.endswith(".py") or rel == assignments.THIS_FILE:
            continue
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            items = assignments.regions_of(f.read(), rel)
        for item in items:
            if isinstance(item, dict):
                inside.setdefault(item["part"], set()).update(code_of(x) for x in item["lines"])
            elif isinstance(item, str) and (rel.startswith("gift/") or rel in ("train.py", "eval.py")):
                given.add(code_of(item))
    return {p: lines - given - {""} for p, lines in inside.items()}


def edition_files(out):
    return {os.path.relpath(os.path.join(d, f), out).replace(os.sep, "/") for d, _, names in os.walk(out)
            for f in names}


def test_student_edition_has_handouts_and_no_solution_text(tmp_path, capsys):
    out = tmp_path / "student"
    assert assignments.main(["build", str(out)]) == 0
    files = edition_files(out)
    handouts = {f"assignments/{p}/ASSIGNMENT.md" for p in assignments.PARTS} | {"assignments/parts.json",
                                                                               "assignments/report/REPORT.md"}
    assert files == set(assignments.list_files(ROOT)) | handouts  # no .git, out/ or data/
    assert json.loads((out / "assignments" / "parts.json").read_text())["parts"] == list(assignments.PARTS)

    secret = solution_lines()
    assert set(secret) == set(assignments.code_parts()) and all(len(x) >= 2 for x in secret.values()), secret
    raises, leaks = 0, []
    for rel in files:  # every file: the method, tests/, experiments/, docs/, scripts/, binary ones too (docs/*.png)
        text = (out / rel).read_bytes().decode("utf-8", errors="replace")
        if rel.endswith(".py"):  # (docs/assignments.md shows one as an example)
            raises += len(re.findall(r"raise NotImplementedError\(\"(?:%s): " % "|".join(assignments.PARTS), text))
        assert not re.search(r"^\s*# (BEGIN|END) (SOLUTION|INSTRUCTOR)", text, re.M) or rel == assignments.THIS_FILE
        for n, line in enumerate(text.split("\n"), start=1):
            leaks += [f"{rel}:{n}: {part}: {line.strip()}" for part, lines in secret.items() if code_of(line) in lines]
    assert not leaks, "solution lines in the student edition:\n" + "\n".join(leaks)
    printed = capsys.readouterr().out
    assert raises == printed.count("removed ") >= 14

    for name, part in assignments.PARTS.items():
        handout = (out / "assignments" / name / "ASSIGNMENT.md").read_text()
        assert part["title"] in handout and f"({part['points']} points)" in handout and "## Needs" in handout
        assert "## The equations" in handout or "## The rules" in handout or name == "report"
        assert name == "report" or part["k"] in handout
        for r in re.findall(r"- `([^`]+)`, `(\w+)` \(line (\d+)\)", handout):  # each "where" line names a raise
            lines = (out / r[0]).read_text().split("\n")
            assert "raise NotImplementedError" in lines[int(r[2]) - 1]
            assert lines[int(r[2]) - 2].strip() == f"# BEGIN YOUR CODE {name}"
    assert (out / "assignments" / "report" / "REPORT.md").read_text() == course_report.TEMPLATE
    student_tests = (out / "tests" / "test_assignments.py").read_text()
    assert "def test_generate_prefills" in student_tests and "def test_rl_step" not in student_tests
    assert "def test_update_policy" not in student_tests and "def test_student_edition" not in student_tests
    assert "def test_gift_objective_is_gift_loss" not in (out / "tests" / "test_loss.py").read_text()

    assert assignments.main(["grade", str(out), "--parts", "loss"]) == 1  # the CLI: nothing written yet, 0 points
    table = capsys.readouterr().out
    assert re.search(r"loss\s+0/\d+\s+0\.0 / 20", table) and re.search(r"total\s+0\.0 / 20", table)
    failed = re.findall(r"^    FAILED (tests/test_loss.py::test_\w+(?:\[[^\]]*\])?): (.*)$", table, re.M)
    assert len(failed) == assignments.MAX_FAILURES and "more (--failures 0 lists them all)" in table
    assert all(message.startswith("NotImplementedError: loss: ") for _, message in failed), failed


def fill_in(out, part):
    """Write the reference's code for `part` between its YOUR CODE lines in the edition `out` (that part only).
    Returns {path: the blank text} to put back."""
    blank = {}
    for rel in assignments.reference_regions(ROOT)[part]:
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            regions = [x for x in assignments.regions_of(f.read(), rel) if isinstance(x, dict) and x["part"] == part]
        blank[rel] = (out / rel).read_text()
        filled, inside = [], False
        for line in blank[rel].split("\n"):
            if line.strip() == f"# BEGIN YOUR CODE {part}":
                filled += [line, *regions.pop(0)["lines"]]
                inside = True
            elif line.strip() == f"# END YOUR CODE {part}":
                inside = False
            if not inside:
                filled.append(line)
        assert not regions
        (out / rel).write_text("\n".join(filled))
    return blank


def filled_report(runs_dir):
    """A report that answers with citations of the runs' own numbers (the reference solution of the report part)."""
    runs = course_report.Runs(runs_dir)
    text = course_report.TEMPLATE
    keys = course_report.TABLE_KEYS
    for m in course_report.METHODS:
        for s in course_report.SEEDS:
            cells = " | ".join(f"{runs.value(f'{m}-s{s}', k):.4f}" for k in keys)
            text = text.replace(f"| {m}-s{s} |{' |' * len(keys)}", f"| {m}-s{s} | {cells} |")
    cite = lambda run, key, d=3: f"`{run}/{key} = {runs.value(run, key):.{d}f}`"
    answers = [f"GIFT ends at {cite('gift-s*', 'rl_accuracy')} over 3 seeds, GRPO at "
               f"{cite('grpo-s*', 'rl_accuracy')} and Dr. GRPO at {cite('dr_grpo-s*', 'rl_accuracy', 2)}; seed 1 of "
               f"GIFT: {cite('gift-s1', 'rl_accuracy')}.",
               f"GRPO's responses have {cite('grpo-s*', 'rl_mean.response_tokens', 1)} tokens on average, Dr. GRPO's\n"
               f"{cite('dr_grpo-s*', 'rl_mean.response_tokens', 1)}; the last step's reward: "
               f"{cite('grpo-s0', 'rl_last.reward', 2)}.",
               f"corr goes from {cite('gift-s0', 'rl_first.corr')} to {cite('gift-s0', 'rl_last.corr', 2)} in 2 "
               f"steps."]
    for answer in answers:
        text = text.replace(course_report.PLACEHOLDER, answer, 1)
    return text


@pytest.mark.slow
def test_every_part_of_the_full_edition_scores_alone_and_a_tampered_test_copy_scores_nothing(tmp_path):
    """The full edition: graded blank, every part scores 0, each graded test failing on its own part's
    NotImplementedError (every other part is the reference's in the grading copy); with only a part's solution
    filled in, that part scores full marks, whatever the other parts hold. The table in docs/assignments.md states
    each part's graded tests and points. Then the tampering case: the student's copy of tests/test_loss.py with
    every test body replaced by `return` still scores 0."""
    out = tmp_path / "edition"
    regions = assignments.build(str(out))
    with open(os.path.join(ROOT, "docs", "assignments.md"), encoding="utf-8") as f:
        docs = f.read()
    blank = assignments.grade(str(out), profile="tiny", quiet=True)
    assert list(blank) == list(assignments.PARTS)
    for part, res in blank.items():
        assert res["error"] is None and res["mode"] == "graded" and res["total"] > 0 and res["passed"] == 0, part
        messages = [r["message"] for r in regions if r["part"] == part]
        for test, _, failure in res["tests"]:
            assert part == "report" or any(m in failure for m in messages), \
                f"{part}: {test} failed for another reason:\n{failure[-1500:]}"
        row = re.search(rf"^\| `{part}` \|.*\| (\d+) \| (\d+) \|$", docs, re.M)
        assert row, f"docs/assignments.md has no row for part {part} in the assignments table"
        assert (int(row.group(1)), int(row.group(2))) == (res["total"], assignments.PARTS[part]["points"]), \
            f"docs/assignments.md says part {part} has {row.group(1)} graded tests, {row.group(2)} points; the " \
            f"grader: {res['total']} tests, {assignments.PARTS[part]['points']} points"

    for part in assignments.code_parts():
        put_back = fill_in(out, part)
        solved = assignments.grade(str(out), [part], quiet=True)[part]
        failed = [(test, failure[-1500:]) for test, ok, failure in solved["tests"] if not ok]
        assert not failed and solved["total"] == blank[part]["total"], (part, failed)
        assert solved["points"] == assignments.PARTS[part]["points"]
        for rel, text in put_back.items():
            (out / rel).write_text(text)

    course_report.run_all(str(out / "out" / "course"), "tiny", jobs=0)  # the report part: runs and a report
    (out / "assignments" / "report" / "REPORT.md").write_text(filled_report(str(out / "out" / "course")))
    solved = assignments.grade(str(out), ["report"], profile="tiny", quiet=True)["report"]
    assert solved["passed"] == solved["total"] == blank["report"]["total"], solved["tests"]

    tests = out / "tests" / "test_loss.py"  # the loss part still blank: group_zscore raises
    tests.write_text(re.sub(r"^(def test_\w+\(.*\):\n)", r"\1    return\n", tests.read_text(), flags=re.M))
    assert tests.read_text().count("    return\n") >= 20
    tampered = assignments.grade(str(out), ["loss"], quiet=True)["loss"]
    assert tampered["passed"] == 0 and tampered["total"] == blank["loss"]["total"]
    own = assignments.grade(str(out), ["loss"], root=str(out), quiet=True)["loss"]  # inside the edition: a self-check
    assert own["mode"] == "self-check" and 0 < own["passed"] == own["total"] < tampered["total"]  # of its own tests


@pytest.mark.slow
def test_a_class_is_graded_into_one_table(tmp_path, capsys):
    """One folder per student, one table out (and a CSV): a student who wrote the loss part, one who wrote nothing,
    and a folder that is not an edition, whose row says so."""
    students = tmp_path / "submissions"
    for name in ("ada", "bob"):
        assignments.build(str(students / name), ["loss"])
    fill_in(students / "ada", "loss")
    (students / "carl").mkdir()
    table = tmp_path / "grades.csv"
    code = assignments.main(["grade", *(str(students / n) for n in ("ada", "bob", "carl")), "--csv", str(table)])
    assert code == 1
    rows = list(csv.reader(table.open()))
    assert rows[0] == ["student", "loss", "total", "notes"]
    assert rows[1][:3] == ["ada", "20.0", "20.0"] and rows[2][:3] == ["bob", "0.0", "0.0"]
    assert rows[3][0] == "carl" and rows[3][1] == "" and "parts.json not found" in rows[3][3]
    printed = capsys.readouterr().out
    assert re.search(r"^ada\s+20\.0\s+20\.0", printed, re.M) and f"wrote {table}" in printed


@pytest.mark.slow
def test_the_report_check_accepts_the_runs_numbers_and_rejects_a_doctored_report(tmp_path):
    """scripts/course_report.py run (tiny settings, in this process) makes the twelve runs; a report that cites
    their own numbers passes every check; one number changed rejects the whole report; an uncited number, a missing
    answer, an empty cell or the runs of another profile fail their own check."""
    runs = tmp_path / "out" / "course"
    assert course_report.main(["run", "--runs", str(runs), "--profile", "tiny", "--jobs", "0"]) == 0
    assert sorted(os.listdir(runs)) == sorted(r["name"] for r in course_report.plan(str(runs), "tiny"))
    report = tmp_path / "REPORT.md"
    good = filled_report(str(runs))
    report.write_text(good)
    check = lambda profile="tiny": {n: (ok, m) for n, ok, m in course_report.check(str(report), str(runs), profile)}
    assert all(ok for ok, _ in check().values()) and len(check()) == 5, check()
    for name in ("sft-s2", "gift-s2"):  # made again by train.py processes, two at a time, gift-s2 after its SFT run
        shutil.rmtree(runs / name)
    assert course_report.main(["run", "--runs", str(runs), "--profile", "tiny", "--jobs", "2"]) == 0
    assert (runs / "gift-s2.log").exists() and not (runs / "gift-s1.log").exists()  # the others were finished
    assert all(ok for ok, _ in check().values()), check()  # the same numbers: the runs are seeded

    cited = re.search(r"`gift-s1/rl_accuracy = ([0-9.]+)`", good)
    doctored = f"{float(cited.group(1)) + 0.01:.3f}"
    report.write_text(good.replace(cited.group(0), f"`gift-s1/rl_accuracy = {doctored}`"))
    result = check()
    assert not any(ok for ok, _ in result.values())
    assert all(m.startswith("rejected: 1 quoted number(s) do not match") and "gift-s1/rl_accuracy" in m
               for _, m in result.values())
    cell = re.search(r"^\| grpo-s2 \| ([0-9.]+) \|", good, re.M)
    report.write_text(good.replace(cell.group(0), f"| grpo-s2 | {float(cell.group(1)) + 0.5:.4f} |"))
    assert "grpo-s2's sft_accuracy" in check()["report::runs"][1]

    lines = good.split("\n")
    answer_2 = next(i for i, x in enumerate(lines) if x.startswith("GRPO's responses"))
    broken = lines.copy()
    broken[answer_2] += " It rose by 0.3 tokens, or 12%."
    report.write_text("\n".join(broken))
    result = check()
    assert not result["report::question_2"][0] and "0.3 is not cited" in result["report::question_2"][1]
    assert "12%" in result["report::question_2"][1] and result["report::question_1"][0] and result["report::table"][0]
    report.write_text(good.replace(good.split("### Answer")[3].split("\n")[2], course_report.PLACEHOLDER))
    assert check()["report::question_3"] == (False, "not answered")
    report.write_text(re.sub(r"^(\| dr_grpo-s0 \| [0-9.]+ \|) [0-9.]+", r"\1 ", good, flags=re.M))
    row = 1 + next(i for i, x in enumerate(lines) if x.startswith("| dr_grpo-s0 |"))
    assert check()["report::table"] == (False, f"line {row}: dr_grpo-s0's rl_accuracy is empty")
    report.write_text(good)
    ok, message = check("course")["report::runs"]
    assert not ok and "other settings than profile 'course'" in message and "sft_steps=4 (asked: 1200)" in message
    assert course_report.main(["check", "--runs", str(runs), "--profile", "tiny", "--report", str(report)]) == 0
# END INSTRUCTOR ONLY
