"""maj@k (gift/evaluation.py): majority vote over the verifier's final answers of the first k samples, ties to the
answer that reached the top count first, unanswered samples not voting; reported by `evaluate` and eval.py when
n > 1."""

import json
import types

import pytest
import torch

import eval as evaluation_cli
from gift import data, evaluation
from gift.evaluation import evaluate, majority_answer, majority_correct
from gift.model import GPT, preset
from gift.tokenizer import builtin_tokenizer
from gift.verifier import is_correct


def test_the_majority_answer_skips_unanswered_samples():
    assert majority_answer(["3", "4", "3", None]) == "3"
    assert majority_correct(["#### 3", "#### 4", "#### 3", "no answer here"], "3")  # maj@4 right


def test_a_tie_goes_to_the_answer_that_reached_the_top_count_first():
    assert majority_answer(["4", "4", "3", "3"]) == "4"
    assert majority_answer(["3", "4", "4", "3"]) == "4"  # "4" has two votes at the third sample, "3" only at the fourth
    assert majority_answer(["5", "3", "4"]) == "5"  # one vote each: the first
    assert not majority_correct(["#### 4", "#### 4", "#### 3", "#### 3"], "3")


def test_no_answer_at_all_counts_as_wrong():
    assert majority_answer([None, None]) is None and majority_answer([]) is None
    assert not majority_correct(["nothing", "still nothing"], "3")


def test_votes_are_the_verifiers_canonical_numbers():
    # "1,234", "1234.0" and "\boxed{1234}" are one answer; the reference may be a full solution or a bare number
    assert majority_correct(["#### 1,234", "#### 99", "#### 1234.0", "#### 99", "\\boxed{1234}"], "1234")
    assert majority_correct(["#### -3", "#### -3", "#### 3"], "x = 5 - 8\n#### -3")
    # flexible reading: the last number of a response without a marker votes too
    assert not majority_correct(["The answer is 7.", "The answer is 7.", "#### 2"], "7")
    assert majority_correct(["The answer is 7.", "The answer is 7.", "#### 2"], "7", mode="flexible")


def fake_generate(answers_per_problem):
    """A stand-in for gift.sampler.generate that returns these responses, n per problem, in order."""
    def generate(model, prompts, num_samples, tokenizer, **kwargs):
        texts = [t for i in range(len(prompts)) for t in answers_per_problem[i][:num_samples]]
        return types.SimpleNamespace(sequences=[tokenizer.encode_ordinary(t) for t in texts])
    return generate


def test_evaluate_votes_over_the_first_k_samples_of_each_problem(monkeypatch):
    enc = builtin_tokenizer()
    examples = [data.Example("q1", "#### 3", "3"), data.Example("q2", "#### 5", "5"), data.Example("q3", "#### 1", "1")]
    responses = [["#### 3", "#### 4", "#### 4", "#### 3"],  # maj@1 right, maj@4: tie 4/3, "4" first: wrong
                 ["#### 6", "#### 5", "no", "#### 5"],      # maj@1 wrong, maj@4 right
                 ["no", "no", "no", "no"]]                  # nothing to vote for: wrong
    monkeypatch.setattr(evaluation, "generate", fake_generate(responses))
    res = evaluate(torch.nn.Identity(), enc, examples, n=4, ks=(1, 4), temperature=1.0)
    assert res["maj@1"] == pytest.approx(1 / 3) and res["maj@4"] == pytest.approx(1 / 3)
    assert res["pass@1"] == pytest.approx((1 / 2 + 2 / 4 + 0) / 3)  # pass@k counts all n samples, unbiasedly
    assert res["maj@4_ci"] > 0 and "maj@2" not in res
    one = evaluate(torch.nn.Identity(), enc, examples, n=1, ks=(1,), temperature=0.0)
    assert not any(key.startswith("maj") for key in one)  # n = 1: pass@1 only, as before


def test_evaluate_reports_maj_at_k_on_a_tiny_random_model():
    torch.manual_seed(0)
    enc = builtin_tokenizer()
    model = GPT(preset("nano", vocab_size=enc.n_vocab))
    examples = [data.builtin_example("test", i) for i in range(3)]
    res = evaluate(model, enc, examples, n=4, ks=(1, 4), temperature=1.0, max_new_tokens=8, seed=1)
    first = [float(is_correct(text, ex.answer)) for text, ex in zip(res["completions"], examples)]
    assert res["maj@1"] == sum(first) / len(first)  # maj@1 is pass@1 of the first sample
    assert 0 <= res["maj@4"] <= 1 and res["maj@1_ci"] >= 0 and res["maj@4_ci"] >= 0


def test_eval_cli_prints_and_saves_maj_at_k_when_n_is_above_one(tmp_path, monkeypatch, capsys):
    enc = builtin_tokenizer()
    monkeypatch.setattr(evaluation_cli, "load_model",
                        lambda init, task: (GPT(preset("nano", vocab_size=enc.n_vocab)), enc))
    common = ["nano", "--task=builtin", "--problems=2", "--max_new_tokens=4", "--device=cpu"]
    out = evaluation_cli.main([*common, "--n=2", "--k=1,2", f"--out={tmp_path / 'n2.json'}"])
    table = capsys.readouterr().out
    saved = json.loads(open(out).read())
    for key in ("pass@1", "pass@2", "maj@1", "maj@2"):
        assert f"| {key} " in table and 0 <= saved[key] <= 1 and key + "_ci" in saved
    out = evaluation_cli.main([*common, f"--out={tmp_path / 'n1.json'}"])
    assert "maj@" not in capsys.readouterr().out and not any(k.startswith("maj") for k in json.load(open(out)))
