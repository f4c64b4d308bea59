"""Scoring a model on problems: greedy pass@1, and pass@k and maj@k from n samples, with 95% intervals (eval.py is the
command line; train.py scores its held-out problems with `evaluate`).

pass@k uses the unbiased estimator of Chen et al. (2021): with n samples of which c are correct,
pass@k = 1 - C(n-c, k) / C(n, k), averaged over problems. The interval is mean +- 1.96 standard errors over problems.

maj@k (majority voting, "self-consistency"): a problem counts as solved when the most common final answer among its
k samples is right. The answers are the verifier's (`gift.verifier.extract_answer`, canonical numbers, so "1,234"
and "1234.0" are one vote); a sample without an answer does not vote, and a problem none of whose k samples has an
answer counts as wrong. A tie goes to the answer that reached the top count first, reading the samples in order
(["4", "4", "3", "3"] votes "4"). The k samples are the first k of the problem's n: a simple, deterministic estimator
(it does not average over all k-subsets of the n samples, as pass@k's does), so maj@k with k < n uses fewer samples
than it could. Reported, with the same interval, for each k when n > 1.
"""
import math
import time

import torch

from gift import data
from gift.sampler import generate
from gift.tokenizer import response_text, stop_ids
from gift.verifier import calculate, extract_answer, is_correct


def pass_at_k(n, c, k):
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def majority_answer(answers):
    """The most common answer among `answers` (None: no answer, which does not vote), or None when none has one.
    A tie goes to the answer that reached the top count first, in order: ["4", "4", "3", "3"] -> "4"."""
    counts, best, top = {}, None, 0
    for answer in answers:
        if answer is None:
            continue
        counts[answer] = counts.get(answer, 0) + 1
        if counts[answer] > top:  # strictly more: a later answer that only draws level does not take over
            best, top = answer, counts[answer]
    return best


def majority_correct(texts, reference, mode="strict"):
    """True if the majority answer of the completions `texts` (read in `mode`) equals the reference's."""
    answer = majority_answer([extract_answer(t, mode) for t in texts])
    # the verifier's own exact comparison, of the voted answer (a canonical number) written as a final `#### N` line
    return answer is not None and is_correct(f"#### {answer}", reference, mode="strict")


class Progress:
    """A line per call, "problems 250/1000 (25%), 22 s, about 66 s left", for long work done in batches (eval.py's
    evaluation, python -m gift.rlhf's sampling); log: where the line goes (print, flushed)."""

    def __init__(self, what, log=None):
        self.what, self.start = what, time.time()
        self.log = log or (lambda line: print(line, flush=True))

    def __call__(self, done, total):
        elapsed = time.time() - self.start
        left = f", about {elapsed * (total - done) / done:.0f} s left" if 0 < done < total else ""
        self.log(f"{self.what} {done}/{total} ({100 * done / total:.0f}%), {elapsed:.0f} s{left}")


def mean_ci(values):
    """Mean and half-width of its 95% normal interval."""
    m = sum(values) / len(values)
    var = sum((v - m) ** 2 for v in values) / max(1, len(values) - 1)
    return m, 1.96 * math.sqrt(var / len(values))


@torch.no_grad()
def evaluate(model, enc, examples, n=1, ks=(1,), temperature=0.0, batch_size=250, max_new_tokens=256, seed=0,
             modes=("strict",), progress=None):
    """Score a model on examples. n=1 with temperature 0 is greedy pass@1. progress: None (silent, as train.py's
    evaluations are), or called after each batch of problems with (problems done, problems in all).

    Returns {"pass@k" (strict): float, "pass@k_ci": half-width, "<mode>/pass@k": ..., "per_problem": correct counts
    (strict), "completions": the first sample's text for each problem}; when n > 1 also "maj@k", "maj@k_ci" and
    "<mode>/maj@k" for each k in ks (majority vote over the first k samples of each problem: module docstring).
    """
    model.eval()
    correct, completions = {mode: [] for mode in modes}, []
    majority = {(mode, k): [] for mode in modes for k in ks if 1 < n and k <= n}  # 1.0 / 0.0 per problem
    for b in range(0, len(examples), batch_size):
        batch = examples[b : b + batch_size]
        prompts = [data.encode_prompt(enc, ex.question) for ex in batch]  # the chat format for chat tokenizers
        out = generate(model, prompts, num_samples=n, max_new_tokens=max_new_tokens, temperature=temperature,
                       stop_tokens=stop_ids(enc), calculator=calculate, tokenizer=enc, seed=seed + b)
        texts = [response_text(enc, seq) for seq in out.sequences]
        completions += texts[::n]
        for mode in modes:
            for i, ex in enumerate(batch):
                correct[mode].append(sum(is_correct(t, ex.answer, mode=mode) for t in texts[i * n : (i + 1) * n]))
        for (mode, k), solved in majority.items():
            for i, ex in enumerate(batch):
                solved.append(float(majority_correct(texts[i * n : i * n + k], ex.answer, mode)))
        if progress is not None:
            progress(b + len(batch), len(examples))
    results = {}
    for mode in modes:
        prefix = "" if mode == "strict" else f"{mode}/"
        for k in ks:
            m, ci = mean_ci([pass_at_k(n, c, k) for c in correct[mode]])
            results[f"{prefix}pass@{k}"], results[f"{prefix}pass@{k}_ci"] = m, ci
        for k in ks:
            if (mode, k) in majority:
                results[f"{prefix}maj@{k}"], results[f"{prefix}maj@{k}_ci"] = mean_ci(majority[(mode, k)])
    results["per_problem"], results["completions"] = correct[modes[0]], completions
    return results


def evaluate_heldout(run, cfg, problems=None):
    """A train.py run's evaluation: greedy pass@1 on the (first `problems`) held-out problems, the task's own
    metrics, and with --rl_pool the pool's accuracy. The time it takes is booked apart (run.books.eval_time), so that
    accuracy can be plotted against training time alone."""
    t0, heldout = time.time(), run.task.heldout[:problems]
    res = evaluate(run.policy, run.enc, heldout, batch_size=cfg.eval_batch, max_new_tokens=cfg.max_new_tokens)
    out = dict(accuracy=res["pass@1"], ci95=res["pass@1_ci"], **run.task.metrics(heldout, res["completions"],
                                                                                 res["per_problem"]))
    if run.pool and problems is None:  # the same greedy score on the problems RL trains on
        out["train_accuracy"] = evaluate(run.policy, run.enc, run.pool, batch_size=cfg.eval_batch,
                                         max_new_tokens=cfg.max_new_tokens)["pass@1"]
    run.books.eval_time += time.time() - t0
    return out
