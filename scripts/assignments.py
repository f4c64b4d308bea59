"""Course assignments generated from the code itself: a student edition with the key parts removed, handouts, a grader.

The reference code marks each solution region with comment lines, and nothing else changes in it:

    BEGIN SOLUTION <part>     (as a comment line, "# BEGIN SOLUTION loss", at the region's indentation)
    HINT: <one line>          (optional, as a comment line right after BEGIN)
    ... the reference lines ...
    END SOLUTION              (as a comment line)

    python scripts/assignments.py build OUT [--parts loss verifier ...]   # default: all six parts
    python scripts/assignments.py grade OUT [--parts ...]                 # default: the parts OUT was built with

`build` copies the repository (git-tracked files and untracked ones git does not ignore; never .git, out/, data/ or
runs/) to OUT; from a source archive without git (a downloaded zip) it walks the tree instead. Untracked files also
pass the builder's own rules, so a checkout whose .gitignore misses something still builds clean: never a virtual
environment (a folder holding pyvenv.cfg or conda-meta, or named .venv, venv, env or ENV, or anything under
site-packages), caches, compiled files, .env files, eval.py's ./eval*.json, nor an earlier edition built inside the
checkout. OUT must be new or an empty folder (a build never deletes what it did not write: to rebuild, remove OUT
or choose another); a build that fails removes what it wrote. In every Python file a region of a chosen part becomes
`raise NotImplementedError("<part>: <hint>")` at the region's indentation, so the function's signature and docstring
(shapes, equations) stay; regions of the other parts keep their code and lose only the marker lines. Lines between
the comment lines "# BEGIN INSTRUCTOR ONLY" and "# END INSTRUCTOR ONLY" are dropped (the builder's own tests, which
need the marked sources). Each part gets a handout, OUT/assignments/<part>/ASSIGNMENT.md, and
OUT/assignments/parts.json records the parts removed.

`grade` runs each part's graded tests inside OUT (pytest in a subprocess, cwd=OUT, TRITON_INTERPRET=1 so the Triton
kernel runs on a CPU) and prints a score table: points x tests passed / tests graded. A part is graded only by tests
that fail in the student edition and pass with the solution put back: tests/test_assignments.py checks both, so no
test that cannot fail gives points. The selections below are files plus a pytest -k expression; -k also matches the
test file's name, so the expressions avoid words such as "loss" or "train" that occur in file names.
"""
import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THIS_FILE = "scripts/assignments.py"  # holds the marker words in its own text: never scanned for markers
SKIP_DIRS = (".git/", "out/", "data/", "runs/")  # never copied: git state, run outputs, downloaded data, TensorBoard
# Folders never copied from the untracked files (anywhere in the tree): caches, tool folders, virtual environments by
# their usual names. git usually ignores them already; these rules hold where .gitignore misses one (an older clone,
# a source archive, a venv created inside a folder git does not ignore). Tracked files are always copied: a tracked
# folder named env/ or build/ is part of the project.
SKIP_NAMES = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox", ".nox",
              ".ipynb_checkpoints", ".eggs", "build", "dist", "node_modules",
              ".venv", "venv", "env", "ENV", "site-packages"}
# A virtual environment under any other name is recognised by what it holds: pyvenv.cfg (venv, virtualenv, uv) or
# conda-meta/ (conda). An earlier student edition built inside the checkout holds assignments/parts.json.
FOLDER_MARKERS = ("pyvenv.cfg", "conda-meta", "assignments/parts.json")
# files never copied from the untracked ones (matched against the whole relative path): .env files (secrets), compiled
# Python, eval.py's default output ./eval.json (and eval-*.json beside it, at the top only)
SKIP_FILE_RE = re.compile(r"(?:.*/)?(?:\.env|[^/]*\.py[cod])|eval[^/]*\.json")
TIMEOUT_S = 300  # per part: each grader must finish on a CPU laptop in under 5 minutes

PARTS = {
    "loss": dict(
        title="The GIFT loss and group z-scoring",
        points=20,
        tests=["tests/test_loss.py"],
        k="not rejects_bad_input and not kl_k3 and not aggregate and not test_grpo and not dpo and not una_loss "
          "and not dapo and not gspo and not dr_grpo and not every_method",
        graded="The tests of group_zscore and gift_loss in tests/test_loss.py (identities, invariances, the first "
               "step, degenerate groups, statistics) and GRPO's advantages, which use group_zscore",
        body="""\
## Goal

GIFT matches rewards instead of maximising them. For each prompt x the policy samples a group of G responses; each
gets an explicit reward r_i from the verifier and an implicit reward beta * l_i + beta log Z(x), where

    l_i = sum_t [ log pi_theta(y_it | x, y_i<t) - log pi_ref(y_it | x, y_i<t) ]        (the log-ratio)

Neither beta nor log Z(x) is known. Z-scoring both rewards within the group removes them: the group mean removes
beta log Z(x) (the same for every response to x), the group std removes beta (it scales every response alike).
You write the z-scoring and the loss.

## The equations

    z(v)_i = (v_i - mean_j v_j) / std_j v_j            population std (divide by G), one group = G consecutive rows
    L(x)   = 1/G sum_i ( z(r)_i - z(l)_i )^2  =  2 (1 - rho(x))      rho: Pearson correlation of l and r in the group
    L      = 1/B sum_x L(x)                            B = all groups, informative or not

Two details, explained in the module docstring of gift/loss.py:

- The first step: with pi_ref = pi_theta every l_i is 0 and its std is 0. Divide by max(std, std_floor) instead,
  and floor the *variance* before the square root (sqrt has an infinite derivative at 0: autograd would give NaN
  even where the floor is active).
- Degenerate groups (all rewards equal) have no z(r). Select them away with torch.where (never NaN * 0): zero loss,
  exactly zero gradient; they still count in the 1/B.

## What to write

- `group_zscore(x, group_size, std_floor, eps, detach_std)`: (B*G,) -> (B, G), the formula in its docstring.
- `gift_loss`: the lines that compute `r` (B, G), `informative` (B,), `z_r`, `z_l`, `per_group` (B,) and `loss`.
  `per_group` is the mean over the group of (z(r) - beta z(l))^2 (beta = 1 by default: the author's coefficient).
  The statistics after them use these names; the input checks before them are given.
""",
    ),
    "verifier": dict(
        title="The GSM8K verifier and the safe calculator",
        points=20,
        tests=["tests/test_verifier.py"],
        k="not rejects_unknown_mode and not format_number",
        graded="The tests of extract_answer, is_correct and calculate in tests/test_verifier.py (the number formats, "
               "exact comparison, refused expressions, megabyte inputs in under a second)",
        body="""\
## Goal

The explicit reward of RL on GSM8K is r(x, y) = 1 if the final answer of the response y equals the reference answer,
else 0. The reward is only as good as this judge: a lenient one teaches the model to cheat, a strict one hides real
gains. During sampling the model also calls a calculator for GSM8K's `<<48/2=24>>` annotations: it must never run
the model's text as code.

## The rules

They are written out in the module docstring of gift/verifier.py; in short:

    answer(y) = the number right after the last "####" (strict), else the last number in y (flexible mode only)
    r(x, y)   = 1  if  Decimal(answer(y)) == Decimal(answer(reference))  else 0        (exact, never a float tolerance)

- Numbers: ASCII digits, an optional minus sign, comma groups of exactly three digits, an optional decimal part.
  A number that runs on into a form not read (`#### 3/4`, `#### 1e5`, `#### 1,2`) gives no answer (None).
- Nothing raises on odd input (None, bytes, unicode, megabytes of text) and everything runs in linear time.
- `calculate(expr)`: parse with `ast` (never `eval`); allow only number literals written with digits and a point,
  + - * / // % **, unary signs and parentheses; compute with exact `Fraction`s (0.1 + 0.2 is exactly 0.3); return an
  int when the value is integral, else a float; return None for anything else, for division by zero, for results
  that are too big (`_power`, `_too_big` are given) and for expressions longer than MAX_CHARS.

## What to write

- `extract_answer` (after the mode check), with the helpers `_as_text`, `_normalise` and the regular expressions
  `_NUMBER_RE`, `_SKIP_RE`, `_RUN_ON_RE` defined above it.
- `_evaluate(node, expr)`: the exact value of an `ast` node, or None.
- `calculate(expr)`: length check, thousands commas (`_THOUSANDS_RE`), parse, evaluate, int or float, None on errors.
""",
    ),
    "sampler": dict(
        title="The sampler's KV cache and group expansion",
        points=20,
        tests=["tests/test_sampler.py",
               "tests/test_assignments.py::test_generate_prefills_each_prompt_once_then_feeds_one_token_per_row"],
        k="not format_result and not clear_errors and not mix64 and not uniforms and not static_view "
          "and not calculation_skips",
        graded="The sampling tests of tests/test_sampler.py (cached decoding equals a full forward loop, padding "
               "and finished rows change nothing, sampling statistics, the calculator) and one test in "
               "tests/test_assignments.py that checks the model sees one prefill of the B prompts, then one new "
               "token per live row per step",
        body="""\
## Goal

Every RL step starts by sampling G responses for each of B prompts, and on a CPU most of the run's time goes here.
A key/value cache makes step t cost one position instead of t, and the G samples of a prompt share one prefill.

## The equations

    y_t ~ softmax(f(x, y_<t) / T)          f: the model's last-position logits, T: the temperature
    cost without a cache: sum_t (P + t) positions per row      with a cache: P once per prompt, then 1 per step

## What to write (in `_sample`, which `generate` calls once per chunk of prompts)

1. Prefill: left-pad the B prompts to the call's longest length P (given); give each row its own positions
   0..len-1 (padding takes position 0); allocate `KVCache(model.config, B, P, ...)` for the prompts' slots and mark
   the slots of real tokens in `prefill.valid`; run the model once with `return_hidden=True` and apply
   `model.lm_head` to the last position only: (B, V) logits, never (B, P, V).
2. Share: `cache = buffers.share(prefill, N)` copies the prefill into the call's decode cache, N rows per prompt
   (R = B * N rows, all samples of prompt 0 first); the logits repeated N times, and each row's next position (R,).
3. The decode step: mark the new slot valid for every live row, feed the rows' new tokens (one position each, at
   their own positions) through the model with the cache, and advance the positions.

Read `KVCache` (valid, length, share, keep) and `GPT.forward(idx, pos, cache, return_hidden)` in gift/model.py first.
""",
    ),
    "kernel": dict(
        title="The Triton log-prob kernel",
        points=20,
        tests=["tests/test_kernels.py"],
        k="triton and not without_triton",
        graded="The Triton-backend tests of tests/test_kernels.py against a float64 log_softmax + gather (three "
               "dtypes, temperatures, -inf logits, fp16 logits near 65504, a GPT-2-sized vocabulary, the entropy), "
               "run on a CPU through Triton's interpreter (TRITON_INTERPRET=1)",
        body="""\
## Goal

GIFT's implicit reward needs log pi(y_t | x, y_<t) of every sampled token under the policy and the reference. The
obvious `log_softmax(logits).gather(...)` writes a float32 (tokens x vocab) copy of the logits; we only need one
number per token. Write the forward kernel: one program per row walks the vocabulary in blocks with an online
max and sum, reads the logits once and saves two floats per row for the backward kernel (which is given).

## The equations

With x = logits / T, m = max_v logits_v and s = sum_v exp((logits_v - m) / T):

    log p(y) = x_y - logsumexp(x) = (logits_y - m) / T - log s            (subtract m before dividing by T)

Online over blocks, with m' = max(m, max of the block) and alpha = exp((m - m') / T):

    s' = alpha s + sum_block exp((logits_v - m') / T)

The entropy H = -sum_v p_v log p_v = log s - t / s with t = sum_v exp(z_v) z_v, z_v = (logits_v - m) / T, and
t' = alpha (t + s (m - m') / T) + sum_block exp(z'_v) z'_v.

Edge cases the tests check: -inf logits (masked vocabulary) get probability 0; a block that is entirely -inf so far
must not give exp(-inf - (-inf)) = NaN; a -inf target logit gives log p = -inf; the target is never exponentiated.

## What to write

The body of `_logprobs_fwd_kernel` in gift/kernels.py: store the log-prob, m and log s for each row (and the entropy
when WITH_ENTROPY). The torch fallback `_torch_forward` computes the same quantities a chunk at a time: read it.
On a CPU the tests run the kernel through Triton's interpreter: `TRITON_INTERPRET=1` must be set before the import.
""",
    ),
    "rl_step": dict(
        title="The GIFT objective: from token log-probs to the loss (gift/loss.py, gift_objective)",
        points=20,
        tests=["tests/test_train.py",
               "tests/test_assignments.py::test_rl_step_hands_gift_loss_the_summed_response_logratio"],
        k="default_pipeline or (resume and frozen) or rl_step",
        graded="The end-to-end run and the bit-identical resume of GIFT in tests/test_train.py, and one test in "
               "tests/test_assignments.py that recomputes each response's log-ratio with a plain log_softmax and "
               "checks what train.rl_step, through gift_objective, passes to gift_loss. These tests sample and "
               "score, so they also need the sampler, the verifier and the loss to work",
        body="""\
## Goal

Connect the pieces: in `gift_objective` (gift/loss.py, the function `train.py --method=gift` finds in `LOSSES`), turn
the per-token log-probabilities of the policy and of the reference into each response's log-ratio (its implicit
reward divided by beta) and compute the GIFT loss. `train.rl_step` calls it once per micro-batch of whole groups.

## The equations

    l_i = sum_t mask_it [ log pi_theta(y_it | x, y_i<t) - log pi_ref(y_it | x, y_i<t) ]      (paper eq. 6)
    L   = gift_loss(l, r, G, std_floor, detach_std)

mask_it is 1 for the response tokens the model chose, 0 for the prompt, the padding and the calculator's tokens;
`train.response_logprobs` already returns 0 at masked positions, for the policy (`batch.logp`) and the reference
(`batch.ref_logp`). The policy term must carry the gradient; the reference term must not.

## What to write

In `gift_objective(batch, cfg)`: `logratio` (N,) from the batch (an `RLBatch`), then return `gift_loss(...)` with the
batch's rewards and group size and the config's `std_floor`, `detach_std` and `mask_degenerate`.
""",
    ),
    "gspo": dict(
        title="A new objective through the loss seam: GSPO's sequence-level ratio (gift/loss.py, gspo_objective)",
        points=20,
        tests=["tests/test_loss.py", "tests/test_rollout.py"],
        k="gspo",
        graded="The GSPO test in tests/test_loss.py (the loss and its gradient, response by response, against the "
               "formula written out with plain floats, with padding, a degenerate group, a truncated response, the "
               "paper's clip range and a wide one) and a short train.py --method=gspo run in tests/test_rollout.py "
               "(finite losses, nothing clipped on each rollout's first mini-batch, the weights move). The "
               "advantages come from group_zscore, so this part also needs the loss part",
        body="""\
## Goal

Every RL method in this project is one function of the loss family in gift/loss.py: `LOSSES[name](batch, cfg)` gets
an `RLBatch` (one micro-batch of whole groups: log-probs under the policy and under the sampling policy pi_old,
rewards, the response mask) and returns `(loss, stats)`. `train.py --method=NAME` looks the function up; nothing in
the training loop changes. Here you write one: GSPO (Zheng et al. 2025, arXiv 2507.18071).

GRPO weighs every token by its own importance ratio pi_theta / pi_old and clips each one. GSPO uses one ratio per
response, the geometric mean of its token ratios, so the ratio of a long response is not a product of hundreds of
noisy factors and the whole response is clipped or not:

## The equations

    log s_i = (1 / |y_i|) sum_t mask_it [ log pi_theta(y_it | ...) - log pi_old(y_it | ...) ]
    A_i     = (r_i - mean of the group's r) / (std of the group's r + 1e-4)        (group_advantages, given)
    L       = (1 / N) sum_i  -min( s_i A_i,  clip(s_i, 1 - eps_low, 1 + eps_high) A_i )

|y_i| is the number of response tokens (the mask's row sum). pi_old's log-probs carry no gradient. The paper's
clip range is tiny (eps_low 3e-4, eps_high 4e-4; `cfg.gspo_eps_low`, `cfg.gspo_eps_high`) because a length-averaged
ratio stays much closer to 1 than a token's. The gradient of an unclipped term is -A_i s_i / (N |y_i|) on each of
response i's tokens: every token of a response is pushed alike, unlike GRPO.

## What to write

In `gspo_objective(batch, cfg)`: `s` (N,), the sequence ratios, and `loss`, the clipped surrogate's mean; the
statistics after your code use `s`.

## See it train

    python train.py --method=gspo --run_name=gspo           # the built-in task: SFT, then 50 GSPO steps
    python train.py --method=grpo --run_name=grpo           # the same prompts and samples' seeds, GRPO's loss

Compare the held-out accuracy after RL with the SFT model's (both runs print it) and the `clip_frac` in
out/gspo/metrics.jsonl: on each rollout's first mini-batch the policy is pi_old, so nothing is clipped there.
""",
    ),
}

# ----------------------------------------------------------------------------------------------------------------
# the student text of one file

_MARKER_RE = re.compile(r"^(\s*)# (BEGIN SOLUTION|END SOLUTION|HINT:|BEGIN INSTRUCTOR ONLY|END INSTRUCTOR ONLY)(.*)$")


def student_text(text, remove, path="<text>"):
    """The student version of one Python file and the regions removed from it.

    remove: names of the parts whose regions become `raise NotImplementedError(...)`; the other regions keep their
    code. Marker lines never survive. Returns (text, regions), each region a dict with part, path, hint, message,
    lines (the removed reference lines) and line (1-based line number of the raise in the new text).
    """
    out, regions, region, instructor = [], [], None, False
    for n, line in enumerate(text.split("\n"), start=1):
        marker = _MARKER_RE.match(line)
        kind = marker.group(2) if marker else None
        where = f"{path}:{n}"
        if kind == "BEGIN SOLUTION":
            part = marker.group(3).strip()
            if region is not None:
                raise ValueError(f"{where}: BEGIN SOLUTION inside the region opened at line {region['start']}")
            if part not in PARTS:
                raise ValueError(f"{where}: unknown part {part!r}; the parts are {', '.join(PARTS)}")
            region = dict(part=part, path=path, indent=marker.group(1), hint="", lines=[], start=n)
        elif kind == "HINT:":
            if region is None or region["lines"] or region["hint"]:
                raise ValueError(f"{where}: a HINT line must come right after BEGIN SOLUTION")
            region["hint"] = marker.group(3).strip()
        elif kind == "END SOLUTION":
            if region is None:
                raise ValueError(f"{where}: END SOLUTION without BEGIN SOLUTION")
            if region["part"] in remove:
                if not any(x.strip() for x in region["lines"]):
                    raise ValueError(f"{where}: the region of part {region['part']!r} is empty")
                region["message"] = f"{region['part']}: {region['hint'] or 'write this part'}"
                region["line"] = len(out) + 1
                out.append(f"{region['indent']}raise NotImplementedError({json.dumps(region['message'])})")
                regions.append(region)
            else:
                out.extend(region["lines"])
            region = None
        elif kind == "BEGIN INSTRUCTOR ONLY":
            instructor = True
        elif kind == "END INSTRUCTOR ONLY":
            instructor = False
        elif region is not None:
            region["lines"].append(line)
        elif not instructor:
            out.append(line)
    if region is not None:
        raise ValueError(f"{path}:{region['start']}: BEGIN SOLUTION {region['part']} is never closed")
    if instructor:
        raise ValueError(f"{path}: BEGIN INSTRUCTOR ONLY is never closed")
    return "\n".join(out), regions


def enclosing_function(text, line):
    """Name of the def that contains 1-based `line` of text (the nearest def above it, indented less)."""
    lines = text.split("\n")
    indent = len(lines[line - 1]) - len(lines[line - 1].lstrip())
    for above in reversed(lines[: line - 1]):
        match = re.match(r"(\s*)(?:async\s+)?def (\w+)", above)
        if match and len(match.group(1)) < indent:
            return match.group(2)
    return "(module level)"


# ----------------------------------------------------------------------------------------------------------------
# build


def list_files(root=ROOT):
    """Repository files to copy, relative paths with /: git-tracked files plus the untracked files git does not
    ignore, minus SKIP_DIRS; the untracked ones also pass `untracked_rule`. Without a git checkout (a source archive,
    or no git installed) every file under root is untracked: the tree is walked with the same rules."""
    tracked = untracked = None
    if os.path.exists(os.path.join(root, ".git")):  # a directory, or a file in a git worktree
        try:
            tracked = git_ls_files(root, "--cached")
            untracked = git_ls_files(root, "--others", "--exclude-standard")
        except (OSError, subprocess.CalledProcessError):
            tracked = untracked = None  # no git program: walk the tree as for an archive
    if tracked is None:
        tracked, untracked = [], walk_tree(root)
    else:
        # git lists every file of an untracked folder it does not ignore: a venv named myenv/ is 20,000 files here
        skipped = untracked_rule(root)
        untracked = [f for f in untracked if f and not skipped(f)]
    files = sorted({f for f in tracked + untracked if f and not f.startswith(SKIP_DIRS)})
    return [f for f in files if os.path.isfile(os.path.join(root, f))]  # a tracked file may be deleted in the tree


def git_ls_files(root, *flags):
    command = ["git", "-C", root, "ls-files", "-z", *flags]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.split("\0")


def untracked_rule(root):
    """A function rel -> True for an untracked file the builder never copies: one in a folder `skipped_folder`
    refuses (or below one), or a name SKIP_FILE_RE matches. Each folder is looked at once: a venv has 20,000 files."""
    folders = {"": False}

    def folder_skipped(rel):
        if rel not in folders:
            parent, _, name = rel.rpartition("/")
            folders[rel] = folder_skipped(parent) or skipped_folder(root, rel, name)
        return folders[rel]

    return lambda rel: bool(SKIP_FILE_RE.fullmatch(rel)) or folder_skipped(rel.rpartition("/")[0])


def skipped_folder(root, rel, name):
    """True for a folder never copied from the untracked files: a cache, a virtual environment, an earlier edition."""
    return (name in SKIP_NAMES or name.endswith(".egg-info")
            or any(os.path.exists(os.path.join(root, rel, marker)) for marker in FOLDER_MARKERS))


def walk_tree(root):
    """Relative paths (with /) of the files under root that a source archive would hold (see list_files)."""
    found = []
    for folder, dirs, names in os.walk(root):
        rel = os.path.relpath(folder, root).replace(os.sep, "/")
        rel = "" if rel == "." else rel + "/"
        dirs[:] = sorted(d for d in dirs if not skipped_folder(root, rel + d, d))  # never enters a venv
        found += [rel + n for n in names if not SKIP_FILE_RE.fullmatch(rel + n) and n not in SKIP_NAMES]
    return found


def handout(name, regions):
    """The ASSIGNMENT.md text of one part."""
    part = PARTS[name]
    where = "\n".join(f"- `{r['path']}`, `{r['function']}` (line {r['line']})" for r in regions)
    command = " ".join(["python -m pytest -q", *part["tests"], "-k", f'"{part["k"]}"'])
    return f"""# Assignment: {part['title']} ({part['points']} points)

{part['body']}
## Where

Each `raise NotImplementedError` below replaces code you write (the signature and the docstring above it stay):

{where}

## What is graded

{part['graded']}.

Each graded test fails until your code is in place. Score: {part['points']} points x tests passed / tests graded.
Run the grader from the repository root:

    python scripts/assignments.py grade . --parts {name}

or the tests themselves (-x stops at the first failure, -v lists them):

    TRITON_INTERPRET=1 {command}
"""


def build(out, parts=None, root=ROOT):
    """Write the student edition of `root` to `out` with the regions of `parts` (default: all) removed.

    Returns the removed regions (dicts, see `student_text`; path relative to out, plus the enclosing function).
    `out` must not exist or be an empty folder; errors are SystemExit("error: ..."), after removing what was written.
    """
    parts = list(PARTS) if parts is None else list(parts)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"error: unknown part(s) {', '.join(unknown)}; the parts are {', '.join(PARTS)}")
    # Never write into a used folder: it may be an earlier edition a student has since worked in (grade runs there),
    # and a build must not delete files it did not write. To rebuild, remove OUT or build into another folder.
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise SystemExit(f"error: {out} exists and is not an empty directory; build into a new folder or remove it")
    # What a failed build removes: the highest folder it creates (OUT or a missing parent), or only OUT's contents
    # when OUT was an empty folder already (the user's, perhaps the shell's working directory: it stays).
    created = os.path.abspath(out)
    while not os.path.exists(os.path.dirname(created)):
        created = os.path.dirname(created)
    existed = os.path.exists(created)
    try:
        return write_edition(out, parts, root)
    except BaseException as exc:  # also Ctrl-C: no partial edition that the next build would refuse
        if existed:
            for name in os.listdir(created):
                path = os.path.join(created, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.remove(path)
        else:
            shutil.rmtree(created, ignore_errors=True)
        if isinstance(exc, OSError):  # a full disk, an unreadable file: one line naming it, not a traceback
            raise SystemExit(f"error: {exc}; the partial edition in {out} was removed") from None
        raise


def write_edition(out, parts, root):
    """The body of `build`: copy, strip the regions, write the handouts. Problems in the sources: SystemExit."""
    regions = []
    for rel in list_files(root):
        src, dst = os.path.join(root, rel), os.path.join(out, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if not rel.endswith(".py") or rel == THIS_FILE:
            shutil.copy2(src, dst)
            continue
        try:
            with open(src, encoding="utf-8") as f:
                original = f.read()
            text, found = student_text(original, parts, rel)
            # only a file the builder changed is compiled: a region must not end in the middle of a statement. A file
            # without markers is copied as it is, whatever Python version it is written for.
            if text != original:
                compile(text, rel, "exec")
        except UnicodeDecodeError:
            raise SystemExit(f"error: {rel} is not UTF-8 text; the builder reads every Python file as UTF-8") from None
        except ValueError as exc:  # a marker problem, already "path:line: what"; or compile's (a NUL byte)
            where = "" if str(exc).startswith(rel) else f"{rel}: "
            raise SystemExit(f"error: {where}{exc}") from None
        except SyntaxError as exc:
            try:  # the reference itself, or the removal of a region?
                compile(original, rel, "exec")
            except SyntaxError as own:
                raise SystemExit(f"error: {rel}:{own.lineno}: {own.msg} (in the reference file itself)") from None
            raise SystemExit(f"error: {rel}: line {exc.lineno} of its student text does not compile ({exc.msg}); "
                             f"does a region end in the middle of a statement?") from None
        with open(dst, "w", encoding="utf-8") as f:
            f.write(text)
        shutil.copymode(src, dst)
        for r in found:
            r["function"] = enclosing_function(text, r["line"])
        regions += found
    for name in parts:
        mine = [r for r in regions if r["part"] == name]
        if not mine:
            raise SystemExit(f"error: part {name!r} has no '# BEGIN SOLUTION {name}' region in {root}")
        os.makedirs(os.path.join(out, "assignments", name), exist_ok=True)
        with open(os.path.join(out, "assignments", name, "ASSIGNMENT.md"), "w", encoding="utf-8") as f:
            f.write(handout(name, mine))
    os.makedirs(os.path.join(out, "assignments"), exist_ok=True)
    with open(os.path.join(out, "assignments", "parts.json"), "w", encoding="utf-8") as f:
        json.dump(dict(parts=parts), f, indent=2)
    return regions


# ----------------------------------------------------------------------------------------------------------------
# grade


def run_part(out, name, timeout=TIMEOUT_S):
    """Run one part's graded tests in `out`. Returns dict(tests=[(test id, passed, failure text)], seconds, error)."""
    part = PARTS[name]
    # the graded tests need no pytest plugins; skipping the installed ones (e.g. hypothesis) saves seconds per part
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.xml")
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                   *part["tests"], "-k", part["k"]]
        start = time.time()
        try:
            proc = subprocess.run(command, cwd=out, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return dict(tests=[], seconds=time.time() - start, error=f"timed out after {timeout} s")
        seconds = time.time() - start
        if not os.path.exists(report):
            return dict(tests=[], seconds=seconds, error=f"pytest exit code {proc.returncode}: {proc.stderr[-500:]}")
        tests = []
        for case in ET.parse(report).iter("testcase"):
            problems = [c for c in case if c.tag in ("failure", "error", "skipped")]
            text = "\n".join((c.get("message") or "") + "\n" + (c.text or "") for c in problems)
            tests.append((f"{case.get('classname')}::{case.get('name')}", not problems, text))
    error = None if tests else f"no test selected (pytest exit code {proc.returncode})"
    return dict(tests=tests, seconds=seconds, error=error)


def grade(out, parts=None, timeout=TIMEOUT_S):
    """Grade the parts (default: those recorded in out/assignments/parts.json) and print the score table.

    Returns {part: run_part result plus passed, total, points}.
    """
    if parts is None:
        manifest = os.path.join(out, "assignments", "parts.json")
        if not os.path.exists(manifest):
            raise SystemExit(f"error: {manifest} not found: build OUT first, or name the parts with --parts")
        with open(manifest, encoding="utf-8") as f:
            parts = json.load(f)["parts"]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"error: unknown part(s) {', '.join(unknown)}; the parts are {', '.join(PARTS)}")
    results = {}
    print(f"{'part':<10} {'tests passed':>13} {'points':>13} {'time':>8}  notes")
    for name in parts:
        res = run_part(out, name, timeout)
        passed, total = sum(ok for _, ok, _ in res["tests"]), len(res["tests"])
        res.update(passed=passed, total=total, points=PARTS[name]["points"] * passed / max(total, 1))
        results[name] = res
        print(f"{name:<10} {f'{passed}/{total}':>13} {res['points']:>7.1f} / {PARTS[name]['points']:<3} "
              f"{res['seconds']:>7.1f}s  {res['error'] or ''}", flush=True)
    got, possible = sum(r["points"] for r in results.values()), sum(PARTS[p]["points"] for p in parts)
    print(f"{'total':<10} {'':>13} {got:>7.1f} / {possible:<3}")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python scripts/assignments.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build", help="write the student edition to OUT")
    b.add_argument("out")
    b.add_argument("--parts", nargs="*", choices=list(PARTS), default=None,
                   help="parts to remove (default: all; --parts with no name builds the reference edition)")
    g = commands.add_parser("grade", help="run the graded tests in OUT and print the score table")
    g.add_argument("out")
    g.add_argument("--parts", nargs="+", choices=list(PARTS), default=None,
                   help="parts to grade (default: the parts OUT was built with)")
    g.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per part")
    args = parser.parse_args(argv)
    if args.command == "build":
        regions = build(args.out, args.parts)
        for r in regions:
            print(f"removed {r['part']:<9} {r['path']}:{r['line']} {r['function']} ({len(r['lines'])} lines)")
        edition = "student edition" if regions else "reference edition (no part removed)"
        print(f"wrote the {edition} to {args.out}; handouts in {os.path.join(args.out, 'assignments')}")
        return 0
    results = grade(args.out, args.parts, args.timeout)
    return 0 if all(r["passed"] == r["total"] > 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
