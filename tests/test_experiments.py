"""experiments/common.py: runs start in dependency order, finished runs are reused, other settings are refused."""

import dataclasses
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))

import common  # noqa: E402

TINY = dict(sft_batch=4, prompts=2, minibatches=2, group_size=4, eval_problems=4, max_new_tokens=16)


def test_run_all_orders_reuses_and_refuses(tmp_path, monkeypatch):
    args = common.parser("").parse_args([f"--runs={tmp_path}", "--jobs=2"])
    sft = dict(common.sft(0), init="nano", sft_steps=4, **TINY)
    rl = common.rl(str(tmp_path), "gift", 0, rl_steps=2, eval_every=1, **TINY)
    assert rl["init"] == os.path.join(str(tmp_path), "sft-s0", "sft.pt") and rl["sft_steps"] == 0

    common.run_all([rl, sft], args)  # the RL run is listed first: it must wait for the SFT run's sft.pt
    steps, secs, acc = common.curve(common.metrics(args, "gift-s0"))
    assert steps == [0, 1, 2] and secs[0] == 0 and secs == sorted(secs) and all(0 <= a <= 1 for a in acc)
    assert common.summary(args, "gift-s0")["config"]["init"] == rl["init"]

    before = os.path.getmtime(tmp_path / "gift-s0" / "summary.json")
    common.run_all([sft, rl], args)  # finished: nothing runs again
    assert os.path.getmtime(tmp_path / "gift-s0" / "summary.json") == before

    with pytest.raises(SystemExit, match="rl_steps=2.*rl_steps=3"):
        common.run_all([dict(rl, rl_steps=3)], args)
    changed = dataclasses.replace(common.Config(), std_floor=0.5)
    monkeypatch.setattr(common, "Config", lambda: changed)  # a changed default of train.py counts too
    with pytest.raises(SystemExit, match="std_floor=0.001.*std_floor=0.5"):
        common.run_all([rl], args)
    monkeypatch.undo()
    with pytest.raises(SystemExit, match="two experiments name different runs gift-s0"):
        common.run_all([dict(rl, rl_steps=3, run_name="x"), rl, dict(rl, rl_steps=3)], args)
    with pytest.raises(SystemExit, match="nothing is making.*sft-s7"):
        common.run_all([common.rl(str(tmp_path), "gift", 7, **TINY)], args)
    with pytest.raises(SystemExit, match="bad-s0 failed.*bad-s0.log"):
        common.run_all([common.rl(str(tmp_path), "bad", 0, method="nope", **TINY)], args)
    report_only = common.parser("").parse_args([f"--runs={tmp_path}", "--report_only"])
    with pytest.raises(SystemExit, match="report_only.*new-s0"):
        common.run_all([common.rl(str(tmp_path), "new", 0, **TINY)], report_only)


def test_testbed_runs_pairs_and_reports(tmp_path):
    """experiments/testbed.py end to end on a tiny setting (one seed, every method, 2 RL steps)."""
    import json

    import testbed

    args = testbed.PARSER.parse_args([f"--runs={tmp_path}", f"--out={tmp_path / 'docs'}", "--seeds", "0",
                                      "--pass_problems=3"])
    runs = testbed.runs(args, steps=2, eval_every=1)
    assert {r["run_name"] for r in runs} == {f"writers-{m}-s0" for m in ("sft", *testbed.METHODS)}
    assert all(r["mistakes"] == testbed.TASK["mistakes"] for r in runs)  # SFT and RL runs share the task
    runs = [dict(r, **TINY, **({"sft_steps": 4} if r["run_name"] == "writers-sft-s0" else {})) for r in runs]
    common.run_all(runs, args)
    testbed.pass_at_16(args)
    testbed.report(args)
    out = json.loads((tmp_path / "docs" / "testbed.json").read_text())
    assert (tmp_path / "docs" / "testbed.png").exists()
    gift, grpo = (out["results"][m]["per_seed"]["0"] for m in ("gift", "grpo"))
    assert out["paired"]["gift-grpo"]["per_seed"] == [gift["final_accuracy"] - grpo["final_accuracy"]]
    assert gift["sft_accuracy"] == grpo["sft_accuracy"]  # paired: one SFT checkpoint
    assert len(gift["reward"]) == 2 and gift["steps"] == [0, 1, 2]
    assert gift["reward_seconds"] == sorted(gift["reward_seconds"])
    assert set(gift["mistakes"]) == {"gets", "gives", "boxes", "doubles", "triples"} and len(gift["mistakes"]["gets"]) == 3
    # diversity: eval.py's pass@1 / pass@16 of every final model and of the shared SFT model, paired like accuracy
    for m in ("gift", "grpo"):
        saved = json.loads((tmp_path / f"writers-{m}-s0" / "pass16.json").read_text())
        assert saved["n"] == 16 and saved["problems"] == 3 and saved["knobs"]["mistakes"] == testbed.TASK["mistakes"]
        assert out["results"][m]["per_seed"]["0"]["pass16"] == saved["pass@16"]
    assert gift["sft_pass16"] == grpo["sft_pass16"] is not None and 0 <= gift["pass1"] <= gift["pass16"] <= 1
    assert out["paired"]["gift-grpo_pass@16"]["per_seed"] == [gift["pass16"] - grpo["pass16"]]


def test_check_same_accepts_runs_made_before_a_neutral_field(tmp_path):
    import json

    config = dict(vars(common.Config()), run_name="old")
    del config["mistakes"]  # a run finished before --mistakes existed did what mistakes=0 does
    (tmp_path / "summary.json").write_text(json.dumps(dict(config=config)))
    common.check_same(str(tmp_path), dict(run_name="old"))
    with pytest.raises(SystemExit, match="mistakes=0.0.*mistakes=0.5"):
        common.check_same(str(tmp_path), dict(run_name="old", mistakes=0.5))


def test_t_interval_and_steps_to():
    import testbed

    m, half = testbed.t_interval([0.1, 0.3, 0.2])  # sd 0.1, n 3: t(2) = 4.303
    assert abs(m - 0.2) < 1e-12 and abs(half - 4.303 * 0.1 / 3 ** 0.5) < 1e-12
    assert testbed.t_interval([0.5]) == (0.5, None)
    assert testbed.steps_to([0, 10, 20], [0.1, 0.5, 0.6], 0.45) == 10 and testbed.steps_to([0], [0.1], 0.2) is None


def tiny_runs(runs):
    return [dict(r, **TINY, **({"sft_steps": 4} if r["run_name"].startswith("writers-sft") else {})) for r in runs]


def test_testbed_overfit_runs_a_pool_and_pairs_the_gaps(tmp_path):
    """experiments/testbed_overfit.py end to end on a tiny setting: both methods on the same pool, train and
    held-out curves, gaps and their paired differences."""
    import json

    import testbed_overfit as exp

    args = exp.PARSER.parse_args([f"--runs={tmp_path}", f"--out={tmp_path / 'docs'}", "--seeds", "0", "1"])
    runs = exp.runs(args, steps=2, eval_every=1)
    rl_runs = [r for r in runs if not r["run_name"].startswith("writers-sft")]
    assert len(rl_runs) == 4 and all(r["rl_pool"] == exp.POOL and r["mistakes"] == 0.5 for r in rl_runs)
    assert {r["rl_lr"] for r in rl_runs if "gift" in r["run_name"]} == {exp.METHODS["gift"]["rl_lr"]}
    common.run_all(tiny_runs(runs), args)
    exp.report(args)
    out = json.loads((tmp_path / "docs" / "testbed_overfit.json").read_text())
    assert (tmp_path / "docs" / "testbed_overfit.png").exists()
    r = out["results"]["gift-s1"]
    assert r["steps"] == [0, 1, 2] and len(r["train_accuracy"]) == len(r["heldout_accuracy"]) == 3
    assert r["gap"] == [a - b for a, b in zip(r["train_accuracy"], r["heldout_accuracy"])]
    gaps = [out["results"][f"gift-s{s}"]["final_gap"] - out["results"][f"grpo-s{s}"]["final_gap"] for s in (0, 1)]
    assert out["paired"]["final_gap"]["per_seed"] == gaps and out["paired"]["final_gap"]["ci95"] is not None


def test_testbed_ablations_change_one_option_each_and_pair_with_the_default(tmp_path):
    import json

    import testbed_ablations as exp

    args = exp.PARSER.parse_args([f"--runs={tmp_path}", f"--out={tmp_path / 'docs'}", "--seeds", "0"])
    runs = exp.runs(args, steps=2, eval_every=1)
    by_name = {r["run_name"]: r for r in runs}
    default = by_name["writers-gift-s0"]
    import testbed

    assert default == [r for r in testbed.runs(args, steps=2, eval_every=1) if r["run_name"] == "writers-gift-s0"][0]
    for name, changed in exp.VARIANTS.items():  # exactly the named option differs from the default run
        run = by_name[f"writers-{name}-s0"]
        assert {k for k in run if run[k] != default.get(k)} - {"run_name"} == set(changed)
    common.run_all(tiny_runs(runs), args)
    exp.report(args)
    out = json.loads((tmp_path / "docs" / "testbed_ablations.json").read_text())
    assert (tmp_path / "docs" / "testbed_ablations.png").exists()
    frozen, base = out["results"]["ref-frozen"], out["results"]["gift"]
    assert frozen["minus_default"]["per_seed"] == [frozen["per_seed"]["0"]["final_accuracy"]
                                                   - base["per_seed"]["0"]["final_accuracy"]]
    assert "minus_default" not in base and frozen["settings"] == {"ref": "frozen"}


def test_testbed_lr_sweeps_each_method_reuses_experiment_7_and_pairs_the_best_rates(tmp_path):
    """experiments/testbed_lr.py end to end on a tiny setting: every method at every rate, the runs at experiment 7's
    rates are experiment 7's runs (same names, same settings), and the best rates are paired by seed."""
    import json

    import testbed
    import testbed_lr as exp

    args = exp.PARSER.parse_args([f"--runs={tmp_path}", f"--out={tmp_path / 'docs'}", "--seeds", "0", "1"])
    runs = exp.runs(args, steps=2, eval_every=1)
    rl_runs = {r["run_name"]: r for r in runs if not r["run_name"].startswith("writers-sft")}
    assert len(rl_runs) == 2 * sum(len(r) for r in exp.RATES.values())
    assert rl_runs["writers-gift-lr4e-5-s0"]["rl_lr"] == 4e-5 and rl_runs["writers-gift-lr4e-5-s0"]["method"] == "gift"
    shared = [r for r in testbed.runs(args, steps=2, eval_every=1) if r["run_name"] in rl_runs]
    assert {r["run_name"] for r in shared} == {f"{n}-s{s}" for n in exp.SAME_AS_TESTBED.values() for s in (0, 1)}
    assert all(rl_runs[r["run_name"]] == r for r in shared)  # one run, whichever experiment starts it
    common.run_all(tiny_runs(runs), args)
    exp.report(args)
    out = json.loads((tmp_path / "docs" / "testbed_lr.json").read_text())
    assert (tmp_path / "docs" / "testbed_lr.png").exists()
    gift = out["results"]["gift"]
    assert set(gift) == {"2e-5", "4e-5", "8e-5"} and gift["4e-5"]["per_seed"]["1"]["steps"] == [0, 1, 2]
    best = out["best_gift_minus_best_grpo"]
    means = {m: {k: a["final_mean"] for k, a in arms.items()} for m, arms in out["results"].items()}
    assert best["gift_lr"] == out["results"]["gift"][max(means["gift"], key=means["gift"].get)]["lr"]
    g, r = (out["results"][m][exp.rate(best[f"{m}_lr"])]["per_seed"] for m in ("gift", "grpo"))
    assert best["per_seed"] == [g[s]["final_accuracy"] - r[s]["final_accuracy"] for s in ("0", "1")]
