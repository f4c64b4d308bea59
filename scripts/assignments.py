"""Course assignments generated from the code itself: a student edition with the key parts removed, handouts, and a
grader that a student's copy of the tests cannot change.

The reference code marks each solution region with comment lines, and nothing else changes in it:

    BEGIN SOLUTION <part>     (as a comment line, "# BEGIN SOLUTION loss", at the region's indentation)
    HINT: <one line>          (optional, as a comment line right after BEGIN)
    ... the reference lines ...
    END SOLUTION              (as a comment line)

    python scripts/assignments.py build OUT [--parts loss verifier ...]   # default: every part
    python scripts/assignments.py grade OUT [OUT ...] [--parts ...] [--csv FILE]   # default: OUT's own parts

`build` copies the repository (git-tracked files and untracked ones git does not ignore; never .git, out/, data/ or
runs/) to OUT; from a source archive without git (a downloaded zip) it walks the tree instead. Untracked files also
pass the builder's own rules, so a checkout whose .gitignore misses something still builds clean: never a virtual
environment (a folder holding pyvenv.cfg or conda-meta, or named .venv, venv, env or ENV, or anything under
site-packages), caches, compiled files, .env files, eval.py's ./eval*.json, nor an earlier edition built inside the
checkout. OUT must be new or an empty folder (a build never deletes what it did not write: to rebuild, remove OUT
or choose another); a build that fails removes what it wrote. In every Python file a region of a chosen part becomes

    # BEGIN YOUR CODE <part>
    raise NotImplementedError("<part>: <hint>")
    # END YOUR CODE <part>

at the region's indentation, so the function's signature and docstring (shapes, equations) stay; regions of the
other parts keep their code and lose only the marker lines. Lines between the comment lines "# BEGIN INSTRUCTOR
ONLY" and "# END INSTRUCTOR ONLY" are dropped: the builder's own tests, and the graded tests whose oracle would give
an answer away (a formula written out again). Each part gets a handout, OUT/assignments/<part>/ASSIGNMENT.md, and
OUT/assignments/parts.json records the parts removed. The report part is not code: its handout comes with a
template, OUT/assignments/report/REPORT.md, and scripts/course_report.py runs its experiment and checks its numbers.

`grade` scores a code part from the student's code between its BEGIN/END YOUR CODE lines and nothing else. From the
reference checkout (this file's repository, where the regions are marked) it writes a grading copy of the reference
with that part's regions replaced by the student's blocks, every other part's regions keeping the reference code,
and runs the part's graded tests there: the reference's own tests, never the student's copy (which may have been
edited, and lacks the instructor-only tests), so each part scores alone and a test rewritten to `return` scores
nothing. Run inside a student edition, where no region is marked, `grade` is a self-check: the folder's own tests in
place. The tests run in pytest in a subprocess (cwd = the grading copy, TRITON_INTERPRET=1 so the Triton kernel runs
on a CPU); the score is points x tests passed / tests graded, and the failing tests are listed with the first line
of each failure. A part is graded only by tests that fail in the student edition and pass with its solution alone
filled in: tests/test_assignments.py checks both for every part of the full edition. The selections below are files
plus a pytest -k expression; -k also matches the test file's name, so the expressions avoid words such as "loss" or
"train" that occur in file names.
"""
import argparse
import contextlib
import csv
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
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
MAX_FAILURES = 20  # failing tests listed per part by `grade` (--failures changes it; 0: all)
REPORT = "report"  # the part that is an experiment and a written report, not code (scripts/course_report.py)

PARTS = {
    "loss": dict(
        title="The GIFT loss and group z-scoring",
        points=20,
        tests=["tests/test_loss.py"],
        k="not rejects_bad_input and not kl_k3 and not aggregate and not test_grpo and not dpo and not una_loss "
          "and not dapo and not gspo and not dr_grpo and not every_method and not gift_objective",
        needs=["grpo"],
        graded="The tests of group_zscore and gift_loss in tests/test_loss.py (identities, invariances, the first "
               "step, degenerate groups kept and masked, the dtype, statistics, and the author's formula written "
               "out group by group, which only the course's copy of the tests holds)",
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
    L(x)   = 1/G sum_i ( z(r)_i - beta z(l)_i )^2   (= 2 (1 - rho(x)) at beta = 1; rho: Pearson correlation in x)
    L      = 1/B sum_x L(x)                            B = all groups, informative or not

Three details, explained in the module docstring of gift/loss.py:

- The first step: with pi_ref = pi_theta every l_i is 0 and its std is 0. Divide by max(std, std_floor) instead,
  and floor the *variance* before the square root (sqrt has an infinite derivative at 0: autograd would give NaN
  even where the floor is active).
- Degenerate groups (all rewards equal) have no z(r): set z(r) = 0 there, choosing with torch.where (never
  NaN * 0; a tiny floor such as 1e-12 keeps 0/0 out of the branch torch.where discards). By default
  (`mask_degenerate=False`, as the paper's author runs it) these groups are KEPT: their loss is 1/G sum_i z(l)_i^2,
  which pulls their log-ratios together (with the std detached). Only with `mask_degenerate=True` is their
  per-group loss selected away with torch.where: zero loss and exactly zero gradient. Either way they count in the
  1/B.
- The dtype: rewards arrive as floats, ints or bools and carry no gradient (detach them). Compute in the
  log-ratio's dtype, at least float32: `torch.promote_types(logratio.dtype, torch.float32)` (float64 stays float64).
  The tests run in float64 (the course's copy compares at 1e-10): rewards cast to float32 fail nine of them.

## What to write

- `group_zscore(x, group_size, std_floor, eps, detach_std)`: (B*G,) -> (B, G), the formula in its docstring.
- `gift_loss`: the lines that compute `r` (B, G) (the rewards, as above), `informative` (B,) (rewards not all
  equal), `z_r`, `z_l`, `per_group` (B,) and `loss`. `per_group` is the mean over the group of
  (z(r) - beta z(l))^2 (beta = 1 by default: the author's coefficient). The statistics after them use these names;
  the input checks before them are given.
""",
    ),
    "grpo": dict(
        title="The GRPO family: group advantages, the length normalisation and the clipped surrogate",
        points=20,
        tests=["tests/test_loss.py"],
        k="aggregate or test_grpo or dr_grpo or dapo",
        needs=["loss"],
        graded="The GRPO, Dr. GRPO and DAPO tests and the aggregation test of tests/test_loss.py (advantages with "
               "and without the std, the three normalisers with inf and NaN in the padding, the on-policy gradient, "
               "clipping on both sides, the k3 penalty, clip-higher; and the surrogates written out token by token, "
               "which only the course's copy of the tests holds)",
        body="""\
## Goal

GRPO (DeepSeekMath, arXiv 2402.03300) and its variants are the baselines GIFT is compared with: they maximise the
reward with a clipped policy gradient on group-normalised advantages. You write the three pieces every member of the
family shares: the group advantages, the reduction of per-token losses to one number (where the length
normalisation question lives), and the clipped surrogate; then DAPO's clip-higher surrogate.

## The equations

    A_i      = (r_i - mean_j r_j) / (std_j r_j + eps)      GRPO (scale_by_std=True; population std, eps = 1e-4)
    A_i      =  r_i - mean_j r_j                           Dr. GRPO (scale_by_std=False)
    ratio_it = exp( log pi_theta(y_it) - log pi_old(y_it) )            pi_old carries no gradient
    l_it     = -min( ratio_it A_i, clip(ratio_it, 1 - eps_clip, 1 + eps_clip) A_i )     (the KL term is given)

    token-mean  sum_it m_it l_it / sum_it m_it                     (DAPO: long responses weigh by their length)
    seq-mean    1/N sum_i ( sum_t m_it l_it / sum_t m_it )         (original GRPO: each response weighs the same)
    constant    sum_it m_it l_it / (N max_len)                     (Dr. GRPO; max_len defaults to T)

m_it is the (N, T) 0/1 mask of response tokens. DAPO clips at [1 - clip_eps, 1 + clip_high] (clip-higher), so a
token with a positive advantage can grow further than GRPO lets it.

Details the tests check: advantages are floats (ints and bools from the verifier become float32; float64 stays),
carry no gradient, and are 0, never NaN, in a group of equal rewards (group_zscore with eps does that; the loss part
writes group_zscore, and the grader fills it in from the reference). `aggregate` selects the masked positions away
with torch.where (padding may hold inf or NaN: never multiply it by 0), never divides by zero (a row without
tokens: clamp the counts at 1), and raises ValueError("unknown aggregation mode ...") for any other mode.

## What to write

- `group_advantages`: after the input check, both forms.
- `aggregate`: after the shape check, the three modes and the error.
- `grpo_loss`: `ratio` (N, T) and `per_token` (N, T), minus the clipped surrogate; the KL term and the statistics
  after your lines use both names.
- `dapo_objective`: its `ratio` and `per_token`, with the clip-higher range `cfg.clip_eps`, `cfg.clip_high`.
""",
    ),
    "verifier": dict(
        title="The GSM8K verifier and the safe calculator",
        points=20,
        tests=["tests/test_verifier.py"],
        k="not rejects_unknown_mode and not format_number and not silent_on_malformed",  # the last: console hygiene
        needs=[],
        graded="The tests of extract_answer, is_correct and calculate in tests/test_verifier.py (the number formats, "
               "\\boxed answers, exact comparison, refused expressions, megabyte inputs in under a second)",
        body="""\
## Goal

The explicit reward of RL on GSM8K is r(x, y) = 1 if the final answer of the response y equals the reference answer,
else 0. The reward is only as good as this judge: a lenient one teaches the model to cheat, a strict one hides real
gains. During sampling the model also calls a calculator for GSM8K's `<<48/2=24>>` annotations: it must never run
the model's text as code.

## The rules

They are written out in the module docstring of gift/verifier.py; in short:

    answer(y) = the number right after the last "####", or the number in the last \\boxed{...} when that box
                comes after the last "####" (strict); else the last number in y (flexible mode only)
    r(x, y)   = 1  if  Decimal(answer(y)) == Decimal(answer(reference))  else 0        (exact, never a float tolerance)

- `\\boxed{N}`: instruct and math models are asked for a box instead of `####` (gift/data.py). The box's content,
  braces matched, must be one number, optionally with `$` or `\\$` before it, one unit after it (`%`, `\\%`, a word,
  `\\text{...}`) and a final `.`; the whole content may be wrapped in `{}`, `\\text{}`, `\\textbf{}`, `\\mathbf{}`
  or `\\mathrm{}`; `{,}` and `\\,` between digit groups are thousands commas. `\\boxed{\\$1{,}234}` reads 1234;
  `\\boxed{\\frac{3}{4}}`, `\\boxed{x = 18}`, an unclosed box or one longer than 200 characters give None. The
  helper `_boxed(text, start)` that reads one box is given; you decide which marker wins. About a sixth of the
  graded tests are about boxes.
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
        needs=[],
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
        needs=[],
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
        tests=["tests/test_train.py", "tests/test_loss.py", "tests/test_assignments.py"],
        k="default_pipeline or (resume_is_bit_identical and frozen) or gift_objective or test_rl_step",
        needs=["loss", "sampler", "verifier", "update"],
        graded="The end-to-end run and the bit-identical resume of GIFT in tests/test_train.py, the properties of "
               "gift_objective in tests/test_loss.py, and two tests that only the course's copy holds: "
               "gift_objective against gift_loss on the summed log-ratio, and a run of train.rl_step whose "
               "log-ratios, recomputed with a plain log_softmax, are the ones gift_loss receives",
        body="""\
## Goal

Connect the pieces: in `gift_objective` (gift/loss.py, the function `train.py --method=gift` finds in `LOSSES`), turn
the per-token log-probabilities of the policy and of the reference into each response's log-ratio (its implicit
reward divided by beta) and compute the GIFT loss. `train.update_policy` calls it once per micro-batch of whole
groups. UNA (`una_objective`) regresses on the same log-ratio: write it there too.

## The equations

    l_i = sum_t mask_it [ log pi_theta(y_it | x, y_i<t) - log pi_ref(y_it | x, y_i<t) ]      (paper eq. 6)
    L   = gift_loss(l, r, G, std_floor, detach_std, mask_degenerate, beta)

mask_it is 1 for the response tokens the model chose, 0 for the prompt, the padding and the calculator's tokens;
`train.response_logprobs` returns 0 at masked positions, for the policy (`batch.logp`) and the reference
(`batch.ref_logp`), but do not rely on it: apply the mask. The policy term must carry the gradient; the reference
term must not (it has none: it was computed under torch.no_grad).

## What to write

In `gift_objective(batch, cfg)`: `logratio` (N,) from the batch (an `RLBatch`), then return `gift_loss(...)` with the
batch's rewards and group size and the config's `std_floor`, `detach_std`, `mask_degenerate` and `beta`. In
`una_objective`: the same `logratio`.
""",
    ),
    "update": dict(
        title="The policy update: mini-batches, micro-batches and gradient accumulation (train.py, update_policy)",
        points=20,
        tests=["tests/test_train.py", "tests/test_assignments.py"],
        k="test_resume_is_bit_identical or update_policy",
        needs=["loss", "grpo", "sampler", "verifier", "rl_step"],
        graded="The bit-identical resume of GIFT and of GRPO in tests/test_train.py, and two tests that only the "
               "course's copy holds: each optimiser step's gradient equals the gradient of its whole mini-batch "
               "computed in one pass (within 1e-6; micro-batches of unequal size; GIFT and Dr. GRPO), "
               "and the step counts, the returned loss and a non-finite loss that skips the update",
        body="""\
## Goal

One RL step of train.py is a rollout (`rollout`, given: sample G responses to each of the B prompts, score them,
take their log-probs under pi_old and pi_ref) followed by the update you write. The step's B prompts come in K
mini-batches of whole groups (`r.batches`, made by `rollout`: a list of K mini-batches, each a list of row slices
`rs`, its micro-batches of --micro_batch groups, small enough for memory). Each mini-batch is one optimiser step,
whose gradient must be the gradient of the whole mini-batch's loss, accumulated over its micro-batches. With
--inner_steps > 1 the K steps are repeated over the same samples.

## The equations

A mini-batch of n rows, micro-batch j of n_j rows (whole groups), its loss L_j = run.loss_fn(batch_j, cfg):

    L_mb      = sum_j (n_j / n) L_j               (exact for losses that are means over groups or rows)
    grad L_mb = sum_j (n_j / n) grad L_j          (backward() adds into .grad: once per micro-batch)

n = len(r.rewards) // cfg.minibatches. The micro-batches of a mini-batch may differ in size (B/K groups in slices of
--micro_batch): weigh each by its share of the rows, not 1 / (number of micro-batches).

## What to write (in `update_policy`, after the learning-rate schedule)

Make `log = UpdateLog(run, cfg, r)` first. For each of the `cfg.inner_steps` passes, for each mini-batch of
`r.batches`:

1. for each micro-batch `rs`: `logp, entropy = response_logprobs(run.model, r.idx[rs], r.mask[rs], cfg,
   cfg.temperature)` (N_j, L-1); an `RLBatch` of the rows (the rollout's `old_logp`, `ref_logp` (None for
   methods without a reference), `rewards`, `mask` and `truncated` of the same rows, `cfg.group_size`,
   `cfg.max_new_tokens` as max_len); `loss, stats = run.loss_fn(batch, cfg)`; backward of the weighted loss; add the
   weighted `loss.item()` to the mini-batch's total; then `log.micro_batch(rs, batch, weight, stats, entropy)`.
2. one `ok, grad_norm = optimizer_step(run, cfg, total)` (given: clips, steps unless the loss or the gradient is
   not finite, zeroes the gradients). If not ok, return `float("nan"), dict(skipped=True)` at once; else keep the
   total and call `log.optimizer_step(grad_norm)`.

Return the mean of the mini-batches' totals and `log.summary()`.
""",
    ),
    "gspo": dict(
        title="A new objective through the loss seam: GSPO's sequence-level ratio (gift/loss.py, gspo_objective)",
        points=20,
        tests=["tests/test_loss.py", "tests/test_rollout.py"],
        k="gspo",
        needs=["grpo", "loss", "sampler", "verifier", "update"],
        graded="A short train.py --method=gspo run in tests/test_rollout.py (finite losses, nothing clipped on each "
               "rollout's first mini-batch, the weights move), the properties of GSPO's ratio in tests/test_loss.py "
               "(the loss and gradient at ratio 1, one ratio per response whatever its length, clipping on both "
               "sides), and one test only the course's copy holds: the loss and its gradient, response by response, "
               "against the formula written out with plain floats, at the paper's clip range and a wide one",
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

This needs a working sampler, verifier, update and GRPO family too (in an edition built with `--parts gspo` alone,
the rest is the reference's code):

    python train.py --method=gspo --run_name=gspo           # the built-in task: SFT, then 50 GSPO steps
    python train.py --method=grpo --run_name=grpo           # the same prompts and samples' seeds, GRPO's loss

Compare the held-out accuracy after RL with the SFT model's (both runs print it) and the `clip_frac` in
out/gspo/metrics.jsonl: on each rollout's first mini-batch the policy is pi_old, so nothing is clipped there.
""",
    ),
    REPORT: dict(
        title="Experiment and report: GIFT, GRPO and Dr. GRPO on the built-in task, three seeds, on a laptop CPU",
        points=20,
        kind="report",
        needs=["loss", "grpo", "sampler", "verifier", "rl_step", "update"],
        graded="scripts/course_report.py's checks of assignments/report/REPORT.md against the runs in "
               "out/course/: the twelve runs are there, finished, with the assignment's settings; the results "
               "table is complete; each of the three questions is answered with at least one cited number; and "
               "every number the report quotes matches the run it cites (one that does not rejects the report: 0 "
               "points). The written answers themselves are read by the course staff",
        body="""\
## Goal

Run the three methods the course built on the task every run of this project starts with, and write down what the
numbers say: which method learns the task fastest here, whether its lead is larger than the seed-to-seed noise,
what the length normalisation does, and what GIFT's regression looks like while it trains. The twelve runs take
about 520 s of CPU time (measured): about 5 minutes on a laptop with two free cores, 9 on one.

## The runs

    python scripts/course_report.py run            # 3 SFT runs (one per seed), then GIFT, GRPO, Dr. GRPO from each
    python scripts/course_report.py check          # every number in assignments/report/REPORT.md against the runs

The runs go to out/course/ (`sft-s0`, `gift-s0`, `grpo-s0`, `dr_grpo-s0`, ..., seeds 0, 1, 2): each holds the
summary.json and metrics.jsonl that train.py writes. A killed `run` continues where it stopped. The settings
(scripts/course_report.py, COURSE) are fixed: the check refuses runs made with others.

## The report

Fill in assignments/report/REPORT.md: the results table and the answers to its three questions. Every number you
quote is a citation of a run's own numbers, written `` `RUN/KEY = VALUE` ``:

- RUN is a run's folder name (`gift-s1`), or `gift-s*` for the mean over the three seeds;
- KEY is a number in the run's summary.json (`sft_accuracy`, `rl_accuracy`, `wall_time_s`, ...), or
  `rl_first.FIELD`, `rl_last.FIELD`, `rl_mean.FIELD` for the first, the last or the mean over the RL steps of a
  field of metrics.jsonl (`reward`, `response_tokens`, `corr`, `logratio_std`, `entropy`, `clip_frac`, ...);
- VALUE is written with as many decimals as you like (or as a percentage, `62.5%`): the check rounds the run's
  value to them.

A number with a decimal point or a % that is not in a citation is refused (the check names its line): say where
every result comes from. Counts (3 seeds, 20 steps) need no citation. `python scripts/course_report.py check`
prints what it refuses and why; the course grades with its own copy of the check.
""",
    ),
}


# ----------------------------------------------------------------------------------------------------------------
# the student text of one file

_MARKER_RE = re.compile(r"^(\s*)# (BEGIN SOLUTION|END SOLUTION|HINT:|BEGIN INSTRUCTOR ONLY|END INSTRUCTOR ONLY)(.*)$")
_YOURS_RE = re.compile(r"^\s*# (BEGIN|END) YOUR CODE (\S+)\s*$")  # the student edition's markers around a block


def regions_of(text, path="<text>"):
    """Split a reference file at its markers: a list whose items are a plain line (str) or a region (dict with part,
    path, indent, hint, lines: the reference lines, start: the BEGIN line's number) or ("instructor", lines), the
    lines of an INSTRUCTOR ONLY block. Marker lines are not kept. Bad markers: ValueError("path:line: what")."""
    items, region, instructor = [], None, None
    for n, line in enumerate(text.split("\n"), start=1):
        marker = _MARKER_RE.match(line)
        kind = marker.group(2) if marker else None
        where = f"{path}:{n}"
        if kind == "BEGIN SOLUTION":
            part = marker.group(3).strip()
            if region is not None:
                raise ValueError(f"{where}: BEGIN SOLUTION inside the region opened at line {region['start']}")
            if instructor is not None:
                raise ValueError(f"{where}: BEGIN SOLUTION inside an INSTRUCTOR ONLY block")
            if part not in PARTS or PARTS[part].get("kind") == "report":
                raise ValueError(f"{where}: unknown part {part!r}; the parts are {', '.join(code_parts())}")
            region = dict(part=part, path=path, indent=marker.group(1), hint="", lines=[], start=n)
        elif kind == "HINT:":
            if region is None or region["lines"] or region["hint"]:
                raise ValueError(f"{where}: a HINT line must come right after BEGIN SOLUTION")
            region["hint"] = marker.group(3).strip()
        elif kind == "END SOLUTION":
            if region is None:
                raise ValueError(f"{where}: END SOLUTION without BEGIN SOLUTION")
            if not any(x.strip() for x in region["lines"]):
                raise ValueError(f"{where}: the region of part {region['part']!r} is empty")
            items.append(region)
            region = None
        elif kind == "BEGIN INSTRUCTOR ONLY":
            instructor = []
        elif kind == "END INSTRUCTOR ONLY":
            items.append(("instructor", instructor or []))
            instructor = None
        elif region is not None:
            region["lines"].append(line)
        elif instructor is not None:
            instructor.append(line)
        else:
            items.append(line)
    if region is not None:
        raise ValueError(f"{path}:{region['start']}: BEGIN SOLUTION {region['part']} is never closed")
    if instructor is not None:
        raise ValueError(f"{path}: BEGIN INSTRUCTOR ONLY is never closed")
    return items


def code_parts():
    return [p for p in PARTS if PARTS[p].get("kind") != REPORT]


def student_text(text, remove, path="<text>"):
    """The student version of one Python file and the regions removed from it.

    remove: names of the parts whose regions become a `raise NotImplementedError(...)` between BEGIN/END YOUR CODE
    lines; the other regions keep their code. Solution and instructor markers never survive, nor instructor-only
    lines. Returns (text, regions), each region a dict as in `regions_of` plus message and line (1-based line
    number of the raise in the new text).
    """
    out, removed = [], []
    for item in regions_of(text, path):
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and item["part"] in remove:
            item["message"] = f"{item['part']}: {item['hint'] or 'write this part'}"
            item["line"] = len(out) + 2
            out += [f"{item['indent']}# BEGIN YOUR CODE {item['part']}",
                    f"{item['indent']}raise NotImplementedError({json.dumps(item['message'])})",
                    f"{item['indent']}# END YOUR CODE {item['part']}"]
            removed.append(item)
        elif isinstance(item, dict):
            out.extend(item["lines"])
    return "\n".join(out), removed


def student_blocks(text, part, path):
    """The student's blocks of `part` in a file of their edition: the lines between each `# BEGIN YOUR CODE part`
    and its `# END YOUR CODE part`, in order. Markers out of order: ValueError naming the line."""
    blocks, current, opened = [], None, 0
    for n, line in enumerate(text.split("\n"), start=1):
        marker = _YOURS_RE.match(line)
        if not marker or marker.group(2) != part:
            if current is not None:
                current.append(line)
            continue
        if marker.group(1) == "BEGIN":
            if current is not None:
                raise ValueError(f"{path}:{n}: BEGIN YOUR CODE {part} inside the block opened at line {opened}")
            current, opened = [], n
        else:
            if current is None:
                raise ValueError(f"{path}:{n}: END YOUR CODE {part} without BEGIN YOUR CODE {part}")
            blocks.append(current)
            current = None
    if current is not None:
        raise ValueError(f"{path}:{opened}: BEGIN YOUR CODE {part} is never closed")
    return blocks


def splice(reference, part, student, path):
    """The reference file with each region of `part` replaced by the student's block of the same rank and every
    other region keeping the reference code (markers dropped, instructor-only lines kept: this is the grading copy,
    never shipped). ValueError when the student's file does not hold one block per region, or does not compile."""
    blocks = student_blocks(student, part, path)
    items = regions_of(reference, path)
    mine = [x for x in items if isinstance(x, dict) and x["part"] == part]
    if len(blocks) != len(mine):
        raise ValueError(f"{path} has {len(blocks)} block(s) between '# BEGIN YOUR CODE {part}' and "
                         f"'# END YOUR CODE {part}', the assignment {len(mine)}: keep those lines around your code")
    out, blocks = [], iter(blocks)
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            out.extend(next(blocks) if item["part"] == part else item["lines"])
        else:
            out.extend(item[1])
    text = "\n".join(out)
    try:
        compile(text, path, "exec")
    except SyntaxError as exc:
        raise ValueError(f"{path}: your code for part {part} does not compile: line {exc.lineno}: {exc.msg}") from None
    return text


def enclosing_function(text, line):
    """Name of the def that contains 1-based `line` of text (the nearest def above it, indented less)."""
    lines = text.split("\n")
    indent = len(lines[line - 1]) - len(lines[line - 1].lstrip())
    for above in reversed(lines[: line - 1]):
        match = re.match(r"(\s*)(?:async\s+)?def (\w+)", above)
        if match and len(match.group(1)) < indent:
            return match.group(2)
    return "(module level)"


def reference_regions(root=ROOT):
    """{part: {path: number of regions}} of the marked reference under root; {} in a student edition."""
    found = {}
    for rel in list_files(root):
        if not rel.endswith(".py") or rel == THIS_FILE:
            continue
        try:
            with open(os.path.join(root, rel), encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue
        if "# BEGIN SOLUTION" not in text:
            continue
        for item in regions_of(text, rel):
            if isinstance(item, dict):
                found.setdefault(item["part"], {}).setdefault(rel, 0)
                found[item["part"]][rel] += 1
    return found


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


def selection_command(name):
    part = PARTS[name]
    return " ".join(["python -m pytest -q", *part["tests"], "-k", f'"{part["k"]}"'])


def needs_line(name):
    """The handout's paragraph on the other parts a student's own check of this part runs (PARTS[name]["needs"])."""
    needs = PARTS[name]["needs"]
    if not needs:
        return "Nothing else: the tests of this part call only your code and code that is given."
    what = "The runs train with" if PARTS[name].get("kind") == REPORT else "Your own run of the tests also calls"
    return textwrap.fill(f"{what} the code of part(s) {', '.join(needs)}: in an edition where those are removed "
                         f"too, write them first (or build an edition with `--parts {name}` alone, where they are the "
                         f"reference's code). The course grades each part alone: its grader fills every other part "
                         f"in from the reference.", 116)


def handout(name, regions):
    """The ASSIGNMENT.md text of one part."""
    part = PARTS[name]
    if part.get("kind") == REPORT:
        return f"""# Assignment: {part['title']} ({part['points']} points)

{part['body']}
## Needs

{needs_line(name)}

## What is graded

{textwrap.fill(part['graded'] + '.', 116)}
"""
    where = "\n".join(f"- `{r['path']}`, `{r['function']}` (line {r['line']})" for r in regions)
    return f"""# Assignment: {part['title']} ({part['points']} points)

{part['body']}
## Where

Each `raise NotImplementedError` below stands between a `# BEGIN YOUR CODE {name}` and a `# END YOUR CODE {name}`
line. Replace it with your code and keep the two marker lines: only the lines between them are graded (the rest of
the file is the course's). Put any helper or import you need inside the block.

{where}

## Needs

{needs_line(name)}

## What is graded

{textwrap.fill(part['graded'] + '.', 116)}

Score: {part['points']} points x tests passed / tests graded. The course grades with its own copy of the tests
(yours may differ: some tests are not shipped, because their oracle would give the answer away). Check your work
from the repository root:

    python scripts/assignments.py grade . --parts {name}

or run the tests themselves (-x stops at the first failure, -v lists them):

    TRITON_INTERPRET=1 {selection_command(name)}
"""


def course_report(root=ROOT):
    """scripts/course_report.py of `root` (the report part's runner and checker), loaded by path: it is the same
    module whether this file runs as a script or is imported as scripts.assignments."""
    path = os.path.join(root, "scripts", "course_report.py")
    spec = importlib.util.spec_from_file_location(f"course_report_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
        if not mine and PARTS[name].get("kind") != REPORT:
            raise SystemExit(f"error: part {name!r} has no '# BEGIN SOLUTION {name}' region in {root}")
        os.makedirs(os.path.join(out, "assignments", name), exist_ok=True)
        with open(os.path.join(out, "assignments", name, "ASSIGNMENT.md"), "w", encoding="utf-8") as f:
            f.write(handout(name, mine))
        if PARTS[name].get("kind") == REPORT:
            with open(os.path.join(out, "assignments", name, "REPORT.md"), "w", encoding="utf-8") as f:
                f.write(course_report(root).TEMPLATE)
    os.makedirs(os.path.join(out, "assignments"), exist_ok=True)
    with open(os.path.join(out, "assignments", "parts.json"), "w", encoding="utf-8") as f:
        json.dump(dict(parts=parts), f, indent=2)
    return regions


# ----------------------------------------------------------------------------------------------------------------
# grade


def run_pytest(cwd, tests, k, timeout):
    """pytest on `tests` -k `k` in cwd. Returns dict(tests=[(test id, passed, failure text)], seconds, error)."""
    # the graded tests need no pytest plugins; skipping the installed ones (e.g. hypothesis) saves seconds per part
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("PYTEST_ADDOPTS", None)  # nothing from the caller's environment changes what is selected
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.xml")
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                   "-m", "slow or not slow", *tests, "-k", k]
        start = time.time()
        try:
            proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return dict(tests=[], seconds=time.time() - start, error=f"timed out after {timeout:g} s")
        seconds = time.time() - start
        if not os.path.exists(report):
            return dict(tests=[], seconds=seconds, error=f"pytest exit code {proc.returncode}: {proc.stderr[-500:]}")
        tests = []
        for case in ET.parse(report).iter("testcase"):
            problems = [c for c in case if c.tag in ("failure", "error", "skipped")]
            text = "\n".join((c.get("message") or "") + "\n" + (c.text or "") for c in problems)
            tests.append((test_id(cwd, case.get("classname") or "", case.get("name")), not problems, text))
    error = None if tests else f"no test selected (pytest exit code {proc.returncode})"
    return dict(tests=tests, seconds=seconds, error=error)


def test_id(cwd, classname, name):
    """pytest's node id (tests/test_loss.py::test_x[a]) of a JUnit test case (classname tests.test_loss)."""
    parts = classname.split(".")
    for i in range(len(parts), 0, -1):
        path = "/".join(parts[:i]) + ".py"
        if os.path.isfile(os.path.join(cwd, path)):
            return "::".join([path, *parts[i:], name])
    return f"{classname}::{name}"


def grading_copy(out, name, marked, root, dest):
    """Write to dest the reference `root` (its own tests, the instructor-only ones too) with part `name`'s regions
    replaced by the student's blocks from the edition `out`; every other region keeps the reference code. `marked`:
    {path: regions of the part}. Returns the problems found (a student file missing, markers changed, code that does
    not compile): such a file gets the part's regions as raise lines naming the problem, so its tests fail and say
    why."""
    problems = []
    for rel in list_files(root):
        src, dst = os.path.join(root, rel), os.path.join(dest, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if rel not in marked:
            shutil.copyfile(src, dst)
            continue
        with open(src, encoding="utf-8") as f:
            reference = f.read()
        try:
            with open(os.path.join(out, rel), encoding="utf-8") as f:
                mine = f.read()
            text = splice(reference, name, mine, rel)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            problem = f"{rel}: not found in {out}" if isinstance(exc, FileNotFoundError) else str(exc)
            problems.append(problem)
            blank = "\n".join(f"# BEGIN YOUR CODE {name}\n{r['indent']}raise NotImplementedError({json.dumps(problem)})"
                              f"\n# END YOUR CODE {name}" for r in regions_of(reference, rel)
                              if isinstance(r, dict) and r["part"] == name)
            text = splice(reference, name, blank, rel)
        with open(dst, "w", encoding="utf-8") as f:
            f.write(text)
    return problems


def run_part(out, name, timeout=TIMEOUT_S, root=ROOT, marked=None, profile="course"):
    """Grade one part of the edition `out`. Returns dict(tests=[(test id, passed, first lines of the failure)],
    seconds, error, mode: "graded" (the reference's tests, the other parts from the reference) or "self-check" (the
    tests in `out`, where no reference is marked))."""
    part = PARTS[name]
    if part.get("kind") == REPORT:
        start = time.time()
        checks = course_report(root).check(os.path.join(out, "assignments", REPORT, "REPORT.md"),
                                           os.path.join(out, "out", "course"), profile)
        return dict(tests=checks, seconds=time.time() - start, error=None, mode="graded")
    marked = reference_regions(root).get(name) if marked is None else marked
    if not marked:
        return dict(run_pytest(out, part["tests"], part["k"], timeout), mode="self-check")
    with tempfile.TemporaryDirectory() as tmp:
        problems = grading_copy(out, name, marked, root, tmp)
        res = run_pytest(tmp, part["tests"], part["k"], timeout)
    if problems and not res["error"]:
        res["error"] = "; ".join(problems)
    return dict(res, mode="graded")


def first_line(failure):
    """The first non-empty line of a failure's text (its message: 'AssertionError: ...', 'NotImplementedError: ...')."""
    return next((line.strip() for line in failure.split("\n") if line.strip()), "failed")[:160]


def edition_parts(out, parts):
    if parts is not None:
        return list(parts)
    manifest = os.path.join(out, "assignments", "parts.json")
    if not os.path.exists(manifest):
        raise SystemExit(f"error: {manifest} not found: build OUT first, or name the parts with --parts")
    with open(manifest, encoding="utf-8") as f:
        return json.load(f)["parts"]


def grade(out, parts=None, timeout=TIMEOUT_S, root=ROOT, profile="course", failures=MAX_FAILURES, quiet=False):
    """Grade the parts (default: those recorded in out/assignments/parts.json) and print the score table with the
    failing tests (at most `failures` per part; 0: all) and the first line of each failure.

    Returns {part: run_part result plus passed, total, points}.
    """
    if not os.path.isdir(out):
        raise SystemExit(f"error: {out} is not a folder")
    parts = edition_parts(out, parts)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"error: unknown part(s) {', '.join(unknown)}; the parts are {', '.join(PARTS)}")
    say = (lambda *a, **k: None) if quiet else print
    marked = reference_regions(root)
    if any(p not in marked and PARTS[p].get("kind") != REPORT for p in parts):
        say(f"self-check of {out}: its own tests, run in place (the course grades the code between the YOUR CODE "
            f"lines with its own copy of the tests)")
    results = {}
    say(f"{'part':<10} {'tests passed':>13} {'points':>13} {'time':>8}  notes")
    for name in parts:
        res = run_part(out, name, timeout, root, marked.get(name, {}), profile)
        passed, total = sum(ok for _, ok, _ in res["tests"]), len(res["tests"])
        res.update(passed=passed, total=total, points=PARTS[name]["points"] * passed / max(total, 1))
        results[name] = res
        say(f"{name:<10} {f'{passed}/{total}':>13} {res['points']:>7.1f} / {PARTS[name]['points']:<3} "
            f"{res['seconds']:>7.1f}s  {res['error'] or ''}", flush=True)
        failed = [(test, failure) for test, ok, failure in res["tests"] if not ok]
        for test, failure in failed[: failures or None]:
            say(f"    FAILED {test}: {first_line(failure)}")
        if failures and len(failed) > failures:
            say(f"    ... and {len(failed) - failures} more (--failures 0 lists them all)")
    got, possible = sum(r["points"] for r in results.values()), sum(PARTS[p]["points"] for p in parts)
    say(f"{'total':<10} {'':>13} {got:>7.1f} / {possible:<3}")
    return results


def grade_class(outs, parts=None, timeout=TIMEOUT_S, root=ROOT, profile="course", csv_path=None):
    """Grade one folder per student (the folder's name is the student's) and print one table: a row per student, a
    column of points per part, the total. csv_path: also write the table there. Returns {folder: grade(...)}."""
    names = [os.path.basename(os.path.normpath(o)) for o in outs]
    if len(set(names)) != len(names):
        raise SystemExit("error: two submission folders have the same name; the table names students by folder")
    every = parts or []
    results, rows = {}, []
    for out, student in zip(outs, names):
        try:
            res = grade(out, parts, timeout, root, profile, quiet=True)
        except SystemExit as exc:  # a folder that is not an edition: its row says so, the class goes on
            res, note = {}, str(exc).removeprefix("error: ")
        else:
            note = "; ".join(f"{p}: {r['error']}" for p, r in res.items() if r["error"])
        results[out] = res
        every += [p for p in res if p not in every]
        rows.append((student, res, note))
        print(f"graded {student}: {sum(r['points'] for r in res.values()):.1f} points", flush=True)
    header = ["student", *every, "total", "notes"]
    table = [[student, *(f"{res[p]['points']:.1f}" if p in res else "" for p in every),
              f"{sum(r['points'] for r in res.values()):.1f}", note] for student, res, note in rows]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *table)]
    for row in [header, *table]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row[:-1], widths)) + "  " + row[-1])
    if csv_path:
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([header, *table])
        print(f"wrote {csv_path}")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python scripts/assignments.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build", help="write the student edition to OUT")
    b.add_argument("out")
    b.add_argument("--parts", nargs="*", choices=list(PARTS), default=None,
                   help="parts to remove (default: all; --parts with no name builds the reference edition)")
    g = commands.add_parser("grade", help="grade OUT (a student's edition; several: one table for the class)")
    g.add_argument("out", nargs="+")
    g.add_argument("--parts", nargs="+", choices=list(PARTS), default=None,
                   help="parts to grade (default: the parts each OUT was built with)")
    g.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per part")
    g.add_argument("--failures", type=int, default=MAX_FAILURES, help="failing tests listed per part (0: all)")
    g.add_argument("--csv", default=None, help="with several OUT: also write the class table to this CSV file")
    args = parser.parse_args(argv)
    if args.command == "build":
        regions = build(args.out, args.parts)
        for r in regions:
            print(f"removed {r['part']:<9} {r['path']}:{r['line']} {r['function']} ({len(r['lines'])} lines)")
        edition = "student edition" if regions else "reference edition (no part removed)"
        print(f"wrote the {edition} to {args.out}; handouts in {os.path.join(args.out, 'assignments')}")
        return 0
    if len(args.out) > 1 or args.csv:
        results = grade_class(args.out, args.parts, args.timeout, csv_path=args.csv)
        return 0 if all(r and all(x["passed"] == x["total"] > 0 for x in r.values()) for r in results.values()) else 1
    results = grade(args.out[0], args.parts, args.timeout, failures=args.failures)
    return 0 if all(r["passed"] == r["total"] > 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
