"""experiments/: common.py's runs start in dependency order, finished runs are reused, other settings are refused;
and every experiment script runs end to end at a tiny size (its run list, train.py subprocesses, its report), so
that a changed signature fails here instead of in a rerun.

The tests share one folder of tiny runs (`runs_dir`), as the scripts share runs: a run another test finished is
reused (and checked against its settings), so each test starts only the runs that are its own.
"""

import dataclasses
import importlib
import json
import math
import os
import pathlib
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))

import common  # noqa: E402

TINY = dict(sft_batch=4, prompts=2, minibatches=2, group_size=4, eval_problems=4, max_new_tokens=16)
# the built-in task's experiments: TINY under each run's own settings (group_size.py's sizes, faithful.py's K = 1),
# the SFT runs from the nano preset
BUILTIN_TINY = {k: v for k, v in TINY.items() if k != "group_size"}


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


def script_args(exp, runs, out, *more):
    """exp's command line options for one seed (0), runs in `runs`, the report in `out`."""
    return exp.PARSER.parse_args([f"--runs={runs}", f"--out={out}", "--seeds", "0", *more])


def tiny_builtin(runs):
    """Built-in task runs at a tiny size: 2 prompts a step, 4 held-out problems, 16 tokens; SFT 4 steps of nano."""
    return [{**BUILTIN_TINY, **r, **({"init": "nano", "sft_steps": 4} if r["rl_steps"] == 0 else {})} for r in runs]


def read_report(out, name):
    """<out>/<name>.json, after checking that <name>.png was written beside it."""
    assert (out / f"{name}.png").stat().st_size > 0
    return json.loads((out / f"{name}.json").read_text())


def in_unit(values):
    return all(0 <= v <= 1 for v in values)


@pytest.mark.slow
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


@pytest.mark.slow
def test_writers_runs_pairs_and_reports(runs_dir, tmp_path):
    """experiments/writers.py end to end on a tiny setting (one seed, every method, 2 RL steps)."""
    import writers

    args = writers.PARSER.parse_args([f"--runs={runs_dir}", f"--out={tmp_path / 'docs'}", "--seeds", "0",
                                      "--pass_problems=3"])
    runs = writers.runs(args, steps=2, eval_every=1)
    assert {r["run_name"] for r in runs} == {f"writers-{m}-s0" for m in ("sft", *common.WRITERS_METHODS)}
    assert all(r["mistakes"] == common.WRITERS_TASK["mistakes"] for r in runs)  # SFT and RL runs share the task
    common.run_all(tiny_runs(runs), args)
    writers.pass_16(args)
    writers.report(args)
    out = json.loads((tmp_path / "docs" / "writers.json").read_text())
    assert (tmp_path / "docs" / "writers.png").exists()
    gift, grpo = (out["results"][m]["per_seed"]["0"] for m in ("gift", "grpo"))
    assert out["paired"]["gift-grpo"]["per_seed"] == [gift["final_accuracy"] - grpo["final_accuracy"]]
    assert gift["sft_accuracy"] == grpo["sft_accuracy"]  # paired: one SFT checkpoint
    assert len(gift["reward"]) == 2 and gift["steps"] == [0, 1, 2]
    assert gift["reward_seconds"] == sorted(gift["reward_seconds"])
    assert set(gift["mistakes"]) == {"gets", "gives", "boxes", "doubles", "triples"} and len(gift["mistakes"]["gets"]) == 3
    # diversity: eval.py's pass@1 / pass@16 of every final model and of the shared SFT model, paired like accuracy
    for m in ("gift", "grpo"):
        saved = json.loads((runs_dir / f"writers-{m}-s0" / "pass16.json").read_text())
        assert saved["n"] == 16 and saved["problems"] == 3 and saved["knobs"]["mistakes"] == common.WRITERS_TASK["mistakes"]
        assert out["results"][m]["per_seed"]["0"]["pass16"] == saved["pass@16"]
    assert gift["sft_pass16"] == grpo["sft_pass16"] is not None and 0 <= gift["pass1"] <= gift["pass16"] <= 1
    assert out["paired"]["gift-grpo_pass@16"]["per_seed"] == [gift["pass16"] - grpo["pass16"]]


def test_check_same_accepts_runs_made_before_a_field_existed(tmp_path):
    """A run saved without a field (any field: there is no list of them) was made before train.py had it, and did
    what the field's default does: it is reused when the experiment asks for the default, refused otherwise."""
    config = dict(vars(common.Config()), run_name="old", threads=4, out_dir="elsewhere")
    del config["mistakes"], config["max_events"]  # both added after the run was made
    (tmp_path / "summary.json").write_text(json.dumps(dict(config=config)))
    common.check_same(str(tmp_path), dict(run_name="old", max_events=1))  # threads, out_dir: RESUMABLE or the folder
    with pytest.raises(SystemExit, match="mistakes=0.0 \\(it predates --mistakes: the default\\).*mistakes=0.5"):
        common.check_same(str(tmp_path), dict(run_name="old", mistakes=0.5))
    with pytest.raises(SystemExit, match="max_events=1 .*max_events=2"):
        common.check_same(str(tmp_path), dict(run_name="old", max_events=2))
    with pytest.raises(SystemExit, match="rl_steps=50, this experiment asks for rl_steps=3"):  # a saved key counts
        common.check_same(str(tmp_path), dict(run_name="old", rl_steps=3))


def test_write_json_records_the_command_line_and_the_commit(tmp_path, monkeypatch):
    """Every report JSON says how it was made: `python experiments/<name>.py ...` as typed from the repository root,
    and git's HEAD with -dirty when a tracked file has changed (None outside a repository)."""
    import re
    import subprocess
    import types

    script = os.path.join(ROOT, "experiments", "writers_lr.py")
    monkeypatch.setattr(sys, "argv", [script, "--seeds", "0", "1", "--out", str(tmp_path / "a b")])
    result = {"x": 1}
    common.write_json(types.SimpleNamespace(out=str(tmp_path / "a b")), "demo", result)
    written = json.loads((tmp_path / "a b" / "demo.json").read_text())
    assert written == result and written["x"] == 1
    assert written["command"] == f"python experiments/writers_lr.py --seeds 0 1 --out '{tmp_path / 'a b'}'"
    assert written["commit"] is None or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", written["commit"])
    assert common.commit(str(tmp_path)) is None  # not a repository

    git = lambda *cmd: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *cmd], cwd=tmp_path,
                                      check=True, capture_output=True)
    git("init", "-q")
    git("commit", "-q", "--allow-empty", "-m", "start")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert common.commit(str(tmp_path)) == head  # "a b"/demo.json is untracked: the report itself does not count
    git("add", "-A")
    git("commit", "-q", "-m", "the report")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert common.commit(str(tmp_path)) == head  # a clean tree
    (tmp_path / "a b" / "demo.json").write_text("{}")  # a tracked file changed
    assert common.commit(str(tmp_path)) == head + "-dirty"
    monkeypatch.setattr(common.subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(FileNotFoundError("git")))
    assert common.commit(str(tmp_path)) is None  # no git on this machine


def test_t_interval_and_steps_to():
    m, half = common.t_interval([0.1, 0.3, 0.2])  # sd 0.1, n 3: t(2) = 4.303
    assert abs(m - 0.2) < 1e-12 and abs(half - 4.303 * 0.1 / 3 ** 0.5) < 1e-12
    assert common.t_interval([0.5]) == (0.5, None)
    assert common.steps_to([0, 10, 20], [0.1, 0.5, 0.6], 0.45) == 10 and common.steps_to([0], [0.1], 0.2) is None
    assert common.paired_difference([0.1, 0.3, 0.2])["ci95"] == [m - half, m + half]
    assert common.paired_difference([0.5]) == dict(per_seed=[0.5], mean=0.5, ci95=None)


def tiny_runs(runs):
    return [dict(r, **TINY, **({"sft_steps": 4} if r["run_name"].startswith("writers-sft") else {})) for r in runs]


@pytest.mark.slow
def test_writers_overfit_runs_a_pool_and_pairs_the_gaps(runs_dir, tmp_path):
    """experiments/writers_overfit.py end to end on a tiny setting: both methods on the same pool, train and
    held-out curves, gaps and their paired differences."""
    import writers_overfit as exp

    args = exp.PARSER.parse_args([f"--runs={runs_dir}", f"--out={tmp_path / 'docs'}", "--seeds", "0", "1"])
    runs = exp.runs(args, steps=2, eval_every=1)
    rl_runs = [r for r in runs if not r["run_name"].startswith("writers-sft")]
    assert len(rl_runs) == 4 and all(r["rl_pool"] == exp.POOL and r["mistakes"] == 0.5 for r in rl_runs)
    assert {r["rl_lr"] for r in rl_runs if "gift" in r["run_name"]} == {common.WRITERS_METHODS["gift"]["rl_lr"]}
    common.run_all(tiny_runs(runs), args)
    exp.report(args)
    out = json.loads((tmp_path / "docs" / "writers_overfit.json").read_text())
    assert (tmp_path / "docs" / "writers_overfit.png").exists()
    r = out["results"]["gift-s1"]
    assert r["steps"] == [0, 1, 2] and len(r["train_accuracy"]) == len(r["heldout_accuracy"]) == 3
    assert r["gap"] == [a - b for a, b in zip(r["train_accuracy"], r["heldout_accuracy"])]
    gaps = [out["results"][f"gift-s{s}"]["final_gap"] - out["results"][f"grpo-s{s}"]["final_gap"] for s in (0, 1)]
    assert out["paired"]["final_gap"]["per_seed"] == gaps and out["paired"]["final_gap"]["ci95"] is not None


@pytest.mark.slow
def test_writers_ablations_change_one_option_each_and_pair_with_the_default(runs_dir, tmp_path):
    import writers
    import writers_ablations as exp

    args = exp.PARSER.parse_args([f"--runs={runs_dir}", f"--out={tmp_path / 'docs'}", "--seeds", "0"])
    runs = exp.runs(args, steps=2, eval_every=1)
    by_name = {r["run_name"]: r for r in runs}
    default = by_name["writers-gift-s0"]
    assert default == [r for r in writers.runs(args, steps=2, eval_every=1) if r["run_name"] == "writers-gift-s0"][0]
    for name, changed in exp.VARIANTS.items():  # exactly the named option differs from the default run
        run = by_name[f"writers-{name}-s0"]
        assert {k for k in run if run[k] != default.get(k)} - {"run_name"} == set(changed)
    common.run_all(tiny_runs(runs), args)
    exp.report(args)
    out = json.loads((tmp_path / "docs" / "writers_ablations.json").read_text())
    assert (tmp_path / "docs" / "writers_ablations.png").exists()
    frozen, base = out["results"]["ref-frozen"], out["results"]["gift"]
    assert frozen["minus_default"]["per_seed"] == [frozen["per_seed"]["0"]["final_accuracy"]
                                                   - base["per_seed"]["0"]["final_accuracy"]]
    assert "minus_default" not in base and frozen["settings"] == {"ref": "frozen"}


@pytest.mark.slow
def test_writers_lr_sweeps_each_method_reuses_writers_runs_and_pairs_the_best_rates(runs_dir, tmp_path):
    """experiments/writers_lr.py end to end on a tiny setting: every method at every rate, the runs at writers.py's
    rates are writers.py's runs (same names, same settings), and the best rates are paired by seed."""
    import writers
    import writers_lr as exp

    args = exp.PARSER.parse_args([f"--runs={runs_dir}", f"--out={tmp_path / 'docs'}", "--seeds", "0", "1"])
    runs = exp.runs(args, steps=2, eval_every=1)
    rl_runs = {r["run_name"]: r for r in runs if not r["run_name"].startswith("writers-sft")}
    assert len(rl_runs) == 2 * sum(len(r) for r in exp.RATES.values())
    assert rl_runs["writers-gift-lr4e-5-s0"]["rl_lr"] == 4e-5 and rl_runs["writers-gift-lr4e-5-s0"]["method"] == "gift"
    shared = [r for r in writers.runs(args, steps=2, eval_every=1) if r["run_name"] in rl_runs]
    assert {r["run_name"] for r in shared} == {f"{n}-s{s}" for n in exp.SAME_AS_WRITERS.values() for s in (0, 1)}
    assert all(rl_runs[r["run_name"]] == r for r in shared)  # one run, whichever experiment starts it
    common.run_all(tiny_runs(runs), args)
    exp.report(args)
    out = json.loads((tmp_path / "docs" / "writers_lr.json").read_text())
    assert (tmp_path / "docs" / "writers_lr.png").exists()
    gift = out["results"]["gift"]
    assert set(gift) == {"2e-5", "4e-5", "8e-5"} and gift["4e-5"]["per_seed"]["1"]["steps"] == [0, 1, 2]
    best = out["best_gift_minus_best_grpo"]
    means = {m: {k: a["final_mean"] for k, a in arms.items()} for m, arms in out["results"].items()}
    assert best["gift_lr"] == out["results"]["gift"][max(means["gift"], key=means["gift"].get)]["lr"]
    g, r = (out["results"][m][exp.rate(best[f"{m}_lr"])]["per_seed"] for m in ("gift", "grpo"))
    assert best["per_seed"] == [g[s]["final_accuracy"] - r[s]["final_accuracy"] for s in ("0", "1")]


def test_the_readme_headline_is_the_committed_comparison_report():
    """docs/experiments/writers_baselines.json is the report the README's headline shows: at least 5 reporting seeds,
    tuning seeds disjoint from them, each of the paper's methods with its rate, and the README's table (and the
    experiment's page's) is the one writers_baselines.markdown makes from that JSON (so a rerun that changes a number
    must update both)."""
    import writers_baselines as exp

    out = read_report(pathlib.Path(ROOT, "docs", "experiments"), "writers_baselines")  # and its figure is there
    assert len(out["seeds"]) >= 5 and not set(out["seeds"]) & set(out["tuning_seeds"])
    assert {"gift", "grpo", "dapo", "gspo"} <= set(out["arms"]) and all(a["lr"] > 0 for a in out["arms"].values())
    assert all(set(map(int, r["per_seed"])) == set(out["seeds"]) for r in out["results"].values())
    rows = exp.markdown(out["results"], out["paired"])
    assert len(rows) == 2 + len(out["arms"])
    for arm, r in out["results"].items():  # the sample budget of every arm and seed, priced at equal responses
        for seed, x in r["per_seed"].items():
            assert x["responses"] == x["responses_at"][-1] and x["draws"] >= out["steps"] and x["filled"] >= 0
            assert x["equal_responses"] <= min(a["per_seed"][seed]["responses"] for a in out["results"].values())
        assert (x["budget_from"] == "settings") != exp.dynamic(out["arms"][arm]["settings"])
    assert all("accuracy_at_equal_responses" in p for p in out["paired"].values())
    for page in ("README.md", "docs/experiments/writers_baselines.md"):  # the headline and the experiment's page
        with open(os.path.join(ROOT, page)) as f:
            lines = f.read().splitlines()
        assert all(row in lines for row in rows), page


def test_the_plateau_section_is_the_committed_plateau_report():
    """docs/experiments/writers_plateau.json holds every plateau arm on at least 3 seeds, each paired with base, and
    the second rate's check (writers_plateau_lr8e-5/) base and the cosine decay; both have the cosine with the
    undefined rollouts (a zero first gradient) left out and counted, not recorded as 0; and the experiment's page
    (docs/experiments/writers_plateau.md) shows the tables writers_plateau.markdown makes from them (a rerun that
    changes a number must update the page)."""
    import writers_plateau as exp

    docs = pathlib.Path(ROOT, "docs", "experiments")
    with open(docs / "writers_plateau.md") as f:
        results = f.read().splitlines()
    for folder, wanted in ((docs, set(exp.ARMS)), (docs / "writers_plateau_lr8e-5", {"base", "cosine"})):
        out = read_report(folder, "writers_plateau")  # and its figure is there
        assert len(out["seeds"]) >= 3 and len(out["results"]) == 1
        for arms in out["results"].values():
            assert set(arms) == wanted
            assert all(set(map(int, a["per_seed"])) == set(out["seeds"]) for a in arms.values())
            assert all(len(a["minus_base"]["per_seed"]) == len(out["seeds"]) for k, a in arms.items() if k != "base")
            assert all(0 <= x["cos_undefined_steps"] <= exp.LAST and None not in x["cos_mb1_mb"]
                       for a in arms.values() for x in a["per_seed"].values())
            rows = exp.markdown(arms)
            assert len(rows) == 2 + len(arms) and all(row in results for row in rows)


def test_the_equal_batch_page_is_the_committed_equal_batch_report():
    """docs/experiments/writers_batch.json compares GIFT and GRPO at three batch sizes or more, each paired on at least
    3 seeds, and holds the long runs at 16 prompts with their paired difference; the page shows the tables
    writers_batch.markdown and long_markdown make from it (a rerun that changes a number must update the page)."""
    import writers_batch as exp

    docs = pathlib.Path(ROOT, "docs", "experiments")
    out = read_report(docs, "writers_batch")
    assert len(out["prompts_per_step"]) >= 3 and len(out["seeds"]) >= 3
    assert [int(p) for p in out["results"]] == out["prompts_per_step"]
    assert all(len(e["paired_seeds"]) >= 3 for e in out["results"].values())
    assert {"gift-p16", "grpo-p16", "gift_minus_grpo_p16"} <= set(out["long"])
    assert len(out["long"]["gift_minus_grpo_p16"]["paired_seeds"]) >= 3
    page = (docs / "writers_batch.md").read_text().splitlines()
    rows = exp.tuning_markdown(out["tuning"]) + exp.markdown(out["results"]) + exp.long_markdown(out["long"])
    assert all(row in page for row in rows if row)
    for p, entry in out["tuning"].items():  # a re-tuned size is compared at the rates its finished tuning chose
        assert all(out["results"][p][m]["lr"] == (t["chosen"] if t["complete"] else exp.RATES[m])
                   for m, t in entry.items())


def test_the_rlhf_page_is_the_committed_rlhf_report():
    """docs/experiments/rlhf.json holds both tuning protocols on at least 5 reporting seeds with no chosen rate at its
    grid's edge, and a verdict per claim; the RLHF page shows the tables rlhf.markdown makes from it under each
    protocol (a rerun that changes a number must update the page)."""
    import rlhf as exp

    out = read_report(pathlib.Path(ROOT, "docs", "experiments"), "rlhf")
    assert len(out["seeds"]) >= 5 and not set(out["seeds"]) & set(out["tuning_seeds"])
    assert set(out["protocols"]) == set(exp.PROTOCOLS) and set(out["verdicts"]) == set(exp.CLAIMS)
    page = (pathlib.Path(ROOT, "docs", "experiments") / "rlhf.md").read_text().splitlines()
    for protocol, rep in out["protocols"].items():
        assert not any(a["at_grid_edge"] for a in rep["arms"].values()), protocol
        assert all(set(map(int, r["per_seed"])) == set(out["seeds"]) for r in rep["results"].values())
        assert all(row in page for row in exp.markdown(out, protocol) if row), protocol


@pytest.mark.slow
def test_writers_baselines_tunes_on_some_seeds_and_compares_on_others(runs_dir, tmp_path, monkeypatch, capsys):
    """experiments/writers_baselines.py end to end on a tiny setting (three arms, one of them taking another's rate):
    the rate is chosen on the tuning seed by runs that evaluate only at the end, the comparison runs on a fresh seed
    at that rate, pairs by seed and flags a best rate at the grid's edge; a seed in both lists and a bad --share_rate
    are refused."""
    import writers_baselines as exp

    monkeypatch.setattr(exp, "GRID", {"gift": (4e-5,), "dapo": (2e-5, 4e-5), "grpo-kl": (2e-5,)})
    args = exp.PARSER.parse_args([f"--runs={runs_dir}", f"--out={tmp_path / 'docs'}", "--tuning_seeds", "0",
                                  "--seeds", "1", "--pass_problems=2", "--share_rate", "grpo-kl=dapo"])
    tiny = lambda runs: [dict(r, **TINY, **({"sft_steps": 4} if "sft" in r["run_name"] else
                                            dict(rl_steps=2, eval_every=min(r.get("eval_every", 1), 1)))) for r in runs]
    tuning = exp.tuning_runs(args)
    assert {r["run_name"] for r in tuning} == {"writers-sft-s0", "writers-tune-gift-lr4e-5-s0",
                                               "writers-tune-dapo-lr2e-5-s0", "writers-tune-dapo-lr4e-5-s0"}
    assert all(r["eval_every"] == 0 for r in tuning if "tune" in r["run_name"])  # one evaluation, at the end
    common.run_all(tiny(tuning), args)
    chosen = exp.choose_rates(args)
    for arm in ("gift", "dapo"):
        means = chosen[arm]["final_mean"]
        assert common.lr_name(chosen[arm]["lr"]) == max(means, key=means.get) and chosen[arm]["at_grid_edge"]
    assert chosen["grpo-kl"] == dict(lr=chosen["dapo"]["lr"], rate_from="dapo")
    comparison = exp.comparison_runs(args, chosen)
    assert {r["seed"] for r in comparison} == {1}
    assert {r["run_name"]: r["rl_lr"] for r in comparison if r["rl_steps"]} == {
        f"{exp.name(arm, c['lr'])}-s1": c["lr"] for arm, c in chosen.items()}
    common.run_all(tiny(comparison), args)
    common.pass_at_16(args, exp.pass_models(args, chosen), args.pass_problems)
    capsys.readouterr()
    exp.report(args, chosen)
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    out = read_report(tmp_path / "docs", "writers_baselines")
    gift_minus_dapo = out["paired"]["gift-dapo"]["final_accuracy"]["mean"]
    assert [line.split(" | ")[0] for line in table] == ["| arm", "| gift", "| dapo", "| grpo-kl"]
    assert table[2].split(" | ")[3] == f"{100 * gift_minus_dapo:+.1f}"  # one seed: no interval
    assert out["seeds"] == [1] and out["tuning_seeds"] == [0] and set(out["arms"]) == {"gift", "dapo", "grpo-kl"}
    assert out["arms"]["dapo"]["lr"] == chosen["dapo"]["lr"] and "core" in out["machine"]
    assert out["arms"]["grpo-kl"]["rate_from"] == "dapo" and "grpo-kl" not in out["tuning"]
    g, d = (out["results"][a]["per_seed"]["1"] for a in ("gift", "dapo"))
    assert out["paired"]["gift-dapo"]["final_accuracy"]["per_seed"] == [g["final_accuracy"] - d["final_accuracy"]]
    assert out["paired"]["gift-dapo"]["pass16"]["per_seed"] == [g["pass16"] - d["pass16"]]
    assert set(out["paired"]) == {"gift-dapo", "gift-grpo-kl"}
    assert in_unit([g["auc"], d["auc"], g["pass1"], g["pass16"]]) and g["steps"] == [0, 1, 2]
    # the sample budget: GIFT draws one round a step; DAPO at least one (dynamic sampling may draw more)
    assert (g["draws"], g["filled"], g["responses"]) == (2, 0, 2 * TINY["prompts"] * TINY["group_size"])
    assert d["draws"] >= 2 and d["responses"] == d["draws"] * TINY["prompts"] * TINY["group_size"]
    per_round = TINY["prompts"] * TINY["group_size"]  # and the responses by each evaluation (accuracy against them)
    assert g["responses_at"] == [0, per_round, 2 * per_round] and d["responses_at"][-1] == d["responses"]
    # accuracy at equal samples: GIFT's is its final; DAPO's is read where it had sampled no more than GIFT
    assert g["accuracy_at_equal_responses"] == g["accuracy"][-1] and d["equal_responses"] <= g["responses"]
    assert d["accuracy_at_equal_responses"] == d["accuracy"][d["steps"].index(d["equal_responses_step"])]
    assert out["paired"]["gift-dapo"]["accuracy_at_equal_responses"]["per_seed"] == [
        g["accuracy_at_equal_responses"] - d["accuracy_at_equal_responses"]]
    assert [row.split(" | ")[-1] for row in table[1:]] == [f"{out['results'][a]['responses_mean']:,.0f} |"
                                                           for a in ("gift", "dapo", "grpo-kl")]
    # --budget adds the same budget to a report made before it was recorded: DAPO rerun without its evaluations
    # (a tuning run on the report's seed) must end where the report's run ended; the others follow from the settings
    path = tmp_path / "docs" / "writers_baselines.json"
    old = dict(json.loads(json.dumps(out)), steps=2)  # a deep copy; the tiny runs' steps
    for r in old["results"].values():
        del r["responses_mean"]
        for x in r["per_seed"].values():
            for key in ("draws", "filled", "responses", "responses_at", "budget_from", "accuracy_at_equal_responses",
                        "equal_responses_step", "equal_responses"):
                del x[key]
    for p in old["paired"].values():
        del p["accuracy_at_equal_responses"]
    path.write_text(json.dumps(old))
    monkeypatch.setattr(exp, "run_all", lambda runs, a: common.run_all(tiny(runs), a))
    exp.main(exp.PARSER.parse_args([f"--runs={runs_dir}", f"--out={tmp_path / 'docs'}", "--budget"]))
    added = json.loads(path.read_text())
    assert set(added["budget_added"]) == {"command", "commit"} and "budget_added" not in out
    assert added["paired"] == out["paired"]
    for arm in ("gift", "dapo", "grpo-kl"):
        for key in ("draws", "filled", "responses", "responses_at", "accuracy_at_equal_responses"):
            assert added["results"][arm]["per_seed"]["1"][key] == out["results"][arm]["per_seed"]["1"][key], (arm, key)
    dapo_run = f"{exp.tune_name('dapo', chosen['dapo']['lr'])}-s1"
    assert added["results"]["dapo"]["per_seed"]["1"]["budget_from"] == dapo_run
    assert added["results"]["gift"]["per_seed"]["1"]["budget_from"] == "settings"
    old["results"]["dapo"]["per_seed"]["1"]["final_accuracy"] += 0.001  # a report that training no longer makes
    path.write_text(json.dumps(old))
    with pytest.raises(SystemExit, match="^error: .*training has changed since the report"):
        exp.main(exp.PARSER.parse_args([f"--runs={runs_dir}", f"--out={tmp_path / 'docs'}", "--budget"]))
    with pytest.raises(SystemExit, match="^error: --budget completes"):
        exp.main(exp.PARSER.parse_args([f"--runs={runs_dir}", f"--out={tmp_path / 'none'}", "--budget"]))
    with pytest.raises(SystemExit, match="must not share a seed"):
        exp.main(exp.PARSER.parse_args([f"--runs={runs_dir}", "--tuning_seeds", "0", "1", "--seeds", "1", "2"]))
    for bad in ("grpo-kl=nope", "gift", "dapo=grpo-kl"):  # unknown arm, no '=', OTHER not tuned itself
        with pytest.raises(SystemExit, match="error: --share_rate"):
            exp.main(exp.PARSER.parse_args([f"--runs={runs_dir}", "--share_rate", "grpo-kl=dapo", bad]))


def test_lr_name_spells_every_rate_apart_and_reads_back():
    """Run names carry the rate: 1.6e-4 is not 2e-4 (two grids' rates once shared a name)."""
    rates = [5e-6, 2e-5, 2.5e-5, 4e-5, 8e-5, 1e-4, 1.6e-4, 2e-4, 3e-4, 1e-3]
    names = [common.lr_name(lr) for lr in rates]
    assert names[:2] == ["5e-6", "2e-5"] and names[6] == "1.6e-4" and len(set(names)) == len(rates)
    assert [float(n) for n in names] == rates


def test_area_under_is_the_mean_accuracy_over_the_steps():
    assert common.area_under([0, 10, 20], [0.0, 1.0, 1.0]) == pytest.approx(0.75)
    assert common.area_under([0, 5, 20], [0.5, 0.5, 0.5]) == pytest.approx(0.5)


def test_writers_plateau_reward_blocks_average_the_rl_steps_only():
    import writers_plateau as exp

    records = [dict(stage="sft", loss=1.0), *(dict(stage="rl", reward=r) for r in (0.0, 0.5, 1.0, 1.0, 0.25))]
    assert exp.reward_blocks(records, 2) == [0.25, 1.0, 0.25]  # the last block is the one step left over
    assert exp.reward_blocks(records, 5) == [0.55] and exp.reward_blocks(records[:1], 5) == []


@pytest.mark.slow
def test_writers_plateau_changes_one_thing_per_arm_and_logs_the_gradient(runs_dir, tmp_path):
    import writers_plateau as exp

    with pytest.raises(SystemExit):  # every arm is reported against base, so a subset without it is refused
        exp.parse_args(["--arms", "noclip"])
    args = exp.parse_args([f"--runs={runs_dir}", f"--out={tmp_path / 'docs'}", "--seeds", "0", "--rates", "4e-5",
                           "--arms", "base", "noclip"])
    runs = exp.runs(args)
    rl_runs = {r["run_name"]: r for r in runs if r["rl_steps"]}
    assert len(rl_runs) == 2
    base = rl_runs["writers-plateau-base-lr4e-5-s0"]
    for arm, change in ((a, exp.ARMS[a]) for a in args.arms):
        run = rl_runs[f"writers-plateau-{arm}-lr4e-5-s0"]
        assert {k for k in run if run[k] != base.get(k)} == set(change) | ({"run_name"} if change else set())
        assert run["grad_stats"] and run["method"] == "gift" and run["rl_lr"] == 4e-5 and run["eval_every"] == 0
    common.run_all([{**r, **TINY, **({"sft_steps": 4} if "sft" in r["run_name"] else dict(rl_steps=3, eval_every=1)),
                     **{k: v for k, v in r.items() if k == "grad_clip"}} for r in runs], args)
    exp.report(args)
    out = read_report(tmp_path / "docs", "writers_plateau")["results"]["4e-5"]
    noclip, base = out["noclip"], out["base"]
    assert len(base["per_seed"]["0"]["grad_norm_mb"]) == 2
    assert base["per_seed"]["0"]["cos_mb1_mb"][0] == pytest.approx(1.0, abs=1e-5) or \
        base["per_seed"]["0"]["grad_norm_mb"][0] == 0
    assert noclip["per_seed"]["0"]["clipped_frac"] == 0.0 and 0 <= base["per_seed"]["0"]["clipped_frac"] <= 1
    assert noclip["minus_base"]["per_seed"] == [noclip["per_seed"]["0"]["final_accuracy"]
                                                - base["per_seed"]["0"]["final_accuracy"]]
    assert 0 <= base["per_seed"]["0"]["reward"] <= 1
    # three RL steps: one block of the curve and one window of the table, both the mean of the three steps' rewards
    assert base["per_seed"]["0"]["reward_curve"] == base["per_seed"]["0"]["reward_windows"] == \
        pytest.approx([base["per_seed"]["0"]["reward"]])
    rows = exp.markdown(out)
    assert len(rows) == 4 and rows[2].startswith("| base |") and rows[3].startswith("| noclip |")
    assert noclip["reward_minus_base"]["per_seed"] == [noclip["per_seed"]["0"]["reward"]
                                                       - base["per_seed"]["0"]["reward"]]


# a reward model at a tiny size: 8 labelled pairs, 6 held out, 2 Bradley-Terry steps of 4 pairs (experiments/rlhf.py)
RM_TINY = ["--train_pairs=8", "--heldout_pairs=6", "--steps=2", "--batch=4"]


def test_rlhf_widens_a_grid_past_its_edge_under_both_protocols_and_verdicts_need_both(tmp_path, monkeypatch):
    """experiments/rlhf.py's tuning rule on made-up tuning results: each protocol picks its own measure's best, a best
    at a grid's edge adds the next rate past it (1-3-10) up to EXTRA, a best still there says why; the comparison
    runs each chosen (arm, rate) once; a claim is "supported" only under both protocols with no arm at an edge."""
    import rlhf as exp

    monkeypatch.setattr(exp, "GRID", {"gift": (1e-5, 3e-5, 1e-4), "grpo": (1e-5, 3e-5, 1e-4)})
    monkeypatch.setattr(exp, "EXTRA", 2)
    peak = {"gift": 3e-5, "grpo": 3e-6}  # u peaks inside gift's grid and below grpo's

    def record(args, run):  # the tuning runs' finals: u peaks at `peak`; gift's proxy rises with the rate
        arm, lr = run.split("-lr")[0][len("rlhf-"):], float(run.split("-lr")[1].split("-s")[0])
        u = -abs(math.log10(lr / peak[arm]))
        return dict(true_reward=dict(final=u), proxy_reward=dict(final=math.log10(lr) if arm == "gift" else u))

    started = []
    monkeypatch.setattr(exp, "run_record", record)
    monkeypatch.setattr(exp, "run_all", lambda runs, args: started.extend(r["run_name"] for r in runs))
    args = exp.PARSER.parse_args([f"--runs={tmp_path}", "--tuning_seeds", "0", "--seeds", "1"])
    chosen = exp.tune(args)
    assert exp.beyond(1e-5, "low") == 3e-6 and exp.beyond(3e-6, "low") == 1e-6 and exp.beyond(3e-4, "high") == 1e-3
    gift, grpo = chosen["true"]["gift"], chosen["true"]["grpo"]
    assert gift["lr"] == 3e-5 and not gift["at_grid_edge"] and gift["edge_not_passed"] is None
    assert gift["grid"] == [1e-5, 3e-5, 1e-4, 3e-4, 1e-3]  # the proxy's best went up twice: the limit
    proxy = chosen["proxy"]["gift"]
    assert proxy["lr"] == 1e-3 and proxy["at_grid_edge"] and "limit of 2 extra rate(s) above 1e-4" in \
        proxy["edge_not_passed"]
    assert proxy["final_proxy_mean"]["1e-3"] == pytest.approx(-3.0) and gift["final_true_mean"]["3e-5"] == 0.0
    assert grpo["lr"] == chosen["proxy"]["grpo"]["lr"] == 3e-6 and not grpo["at_grid_edge"]
    assert grpo["grid"] == [1e-6, 3e-6, 1e-5, 3e-5, 1e-4]  # one rate past 3e-6 shows it is a peak: no more
    assert "rlhf-grpo-lr1e-6-s0" in started and "rlhf-grpo-lr3e-7-s0" not in started
    assert [r["run_name"] for r in exp.comparison_runs(args, chosen)] == [
        "rlhf-gift-lr3e-5-s1", "rlhf-gift-lr1e-3-s1", "rlhf-grpo-lr3e-6-s1"]  # grpo's protocols agree: one run

    def protocol(ci, edge=False):  # a report of one protocol: GIFT minus grpo, every difference with interval ci
        d = dict(mean=0.1, ci95=ci, per_seed=[0.1])
        return dict(arms={"gift": dict(at_grid_edge=False), "grpo": dict(at_grid_edge=edge)},
                    paired={"gift-grpo": dict(true_reward_final=d)},
                    win_rates={"grpo": {m: dict(length_controlled_minus_half=d) for m in ("greedy", "t1")}})

    above, across = [0.05, 0.15], [-0.05, 0.25]
    for v in exp.verdicts(dict(true=protocol(above), proxy=protocol(above))).values():
        assert v == "supported"
    assert set(exp.verdicts(dict(true=protocol(above), proxy=protocol(across))).values()) == {
        "holds by u only; by the proxy, not against grpo"}
    assert set(exp.verdicts(dict(true=protocol(above), proxy=protocol(above, edge=True))).values()) == {
        "holds by u and the proxy; undetermined: grpo at its grid edge (by the proxy)"}
    assert set(exp.verdicts(dict(true=protocol(None), proxy=protocol(None))).values()) == {
        "holds under no protocol; by u, not against grpo; by the proxy, not against grpo"}  # one seed: no interval


@pytest.mark.slow
def test_rlhf_builds_reward_models_tunes_compares_and_checks_the_scale(runs_dir, tmp_path, monkeypatch, capsys):
    """experiments/rlhf.py end to end on a tiny setting: an SFT run and a reward model per seed, the rate chosen on
    the tuning seed by the true reward and by the proxy, the comparison on a fresh seed with proxy, true reward and KL
    curves under both protocols, win rates, the verdicts and the gradient-scale check."""
    import rlhf as exp

    monkeypatch.setattr(exp, "GRID", {"gift": (1e-4,), "grpo-kl": (3e-4,)})
    monkeypatch.setattr(exp, "EXTRA", 0)  # no rate past the one-rate grids: every choice stays at its edge
    monkeypatch.setattr(exp, "STEPS", 2)
    monkeypatch.setattr(exp, "EVAL_EVERY", 1)
    monkeypatch.setattr(exp, "WIN_PROBLEMS", 3)
    monkeypatch.setattr(exp, "SCALE_ARGS", ["--prompts=2", "--group_size=4", "--max_new_tokens=16"])
    args = exp.PARSER.parse_args([f"--runs={runs_dir}", f"--out={tmp_path / 'docs'}", "--tuning_seeds", "0",
                                  "--seeds", "1"])
    assert {r["run_name"] for r in exp.sft_runs(args)} == {"sft-s0", "sft-s1"}
    common.run_all(tiny_builtin(exp.sft_runs(args)), args)
    exp.build_reward_models(args, [0, 1], RM_TINY)
    tuning = exp.tuning_runs(args)
    assert all(r["task"] == "rlhf" and r["kl_sft"] and r["reward_model"] == exp.rm_path(args, 0) for r in tuning)
    common.run_all(tiny_builtin(tuning), args)
    chosen = exp.choose_rates(args)
    for protocol, key in (("true", "final_true_mean"), ("proxy", "final_proxy_mean")):
        c = chosen[protocol]["grpo-kl"]
        assert exp.rate(c["lr"]) == max(c[key], key=c[key].get)
        assert c["at_grid_edge"] and "limit of 0 extra rate(s) below 3e-4 and above 3e-4" in c["edge_not_passed"]
    record = exp.run_record(args, "rlhf-gift-lr1e-4-s0")
    assert chosen["proxy"]["gift"]["final_proxy_mean"]["1e-4"] == record["proxy_reward"]["final"]
    assert chosen["proxy"]["gift"]["final_true_mean"]["1e-4"] == record["true_reward"]["final"]
    common.run_all(tiny_builtin(exp.comparison_runs(args, chosen)), args)
    capsys.readouterr()
    exp.report(args, chosen)
    printed = capsys.readouterr().out.splitlines()
    out = read_report(tmp_path / "docs", "rlhf")
    for protocol in ("true", "proxy"):  # the page's tables, printed from the JSON: one row per arm, pair, opponent
        rows = exp.markdown(out, protocol)
        assert all(row in printed for row in rows) and len([r for r in rows if r.startswith("| GRPO + KL")]) == 3
        gift_row = next(r for r in rows if r.startswith("| GIFT | "))
        gift = out["protocols"][protocol]["results"]["gift"]
        assert gift_row.split(" | ")[2] == f"{gift['true_reward_final_mean']:.3f}"
    assert out["seeds"] == [1] and out["tuning_seeds"] == [0] and set(out["reward_models"]) == {"0", "1"}
    record = out["results"]["gift"]["per_seed"]["1"]
    for key in ("proxy_reward", "true_reward", "kl"):
        assert record[key]["steps"] == [0, 1, 2] and len(record[key]["curve"]) == 3 and "final" in record[key]
    assert record["kl"]["curve"][0] == pytest.approx(0.0, abs=1e-6)
    g, k = (out["results"][a]["per_seed"]["1"]["true_reward"]["final"] for a in ("gift", "grpo-kl"))
    assert out["paired"]["gift-grpo-kl"]["true_reward_final"]["per_seed"] == [g - k]
    assert -0.5 <= out["win_rates"]["grpo-kl"]["greedy"]["win_rate_minus_half"]["mean"] <= 0.5
    assert set(out["protocols"]) == {"true", "proxy"}
    assert out["protocols"]["true"]["paired"] == out["paired"] and out["arms"]["grpo-kl"]["lr_at_grid_edge"]
    for rep in out["protocols"].values():
        assert rep["arms"]["gift"]["lr"] == 1e-4 and rep["arms"]["grpo-kl"]["at_grid_edge"]
        g, k = (rep["results"][a]["per_seed"]["1"]["true_reward"]["final"] for a in ("gift", "grpo-kl"))
        assert rep["paired"]["gift-grpo-kl"]["true_reward_final"]["per_seed"] == [g - k]
        assert -0.5 <= rep["win_rates"]["grpo-kl"]["t1"]["length_controlled_minus_half"]["mean"] <= 0.5
    assert set(out["verdicts"]) == set(exp.CLAIMS)
    for v in out["verdicts"].values():  # one seed gives no interval, and both arms sit at their grids' edges
        assert v.startswith("holds under no protocol"), v
        assert "undetermined: gift at its grid edge (by u and the proxy)" in v, v
    scale = out["scale"]["gradients"]
    for a_b, v in scale["gift"].items():
        assert v["cosine"] == pytest.approx(1.0, abs=1e-4) and v["norm_ratio"] == pytest.approx(1.0, rel=1e-3), a_b
    assert scale["dr_grpo"]["a=10,b=5"]["norm_ratio"] == pytest.approx(10.0, rel=1e-4)


@pytest.mark.slow
def test_rlhf_tuning_only_widens_the_grid_and_stops_before_the_reporting_seeds(runs_dir, tmp_path, monkeypatch):
    """`rlhf.py --tuning_only`: the tuning seed's runs, a one-rate grid widened by one rate past each edge (EXTRA =
    1), both protocols' choices in rlhf_tuning.json, and nothing of the reporting seed (no SFT, reward model or run)."""
    import rlhf as exp

    monkeypatch.setattr(exp, "GRID", {"gift": (1e-4,)})
    monkeypatch.setattr(exp, "EXTRA", 1)
    monkeypatch.setattr(exp, "STEPS", 2)
    monkeypatch.setattr(exp, "EVAL_EVERY", 1)
    monkeypatch.setattr(exp, "run_all", lambda runs, args: common.run_all(tiny_builtin(runs), args))
    args = exp.PARSER.parse_args([f"--runs={runs_dir}", f"--out={tmp_path / 'docs'}", "--tuning_seeds", "0",
                                  "--seeds", "2", "--tuning_only"])
    exp.run_all(exp.sft_runs(args, [0]), args)
    exp.build_reward_models(args, [0], RM_TINY)  # main() then finds it (its own settings would take minutes)
    exp.main(args)
    out = json.loads((tmp_path / "docs" / "rlhf_tuning.json").read_text())
    assert out["tuning_seeds"] == [0] and out["extra"] == 1 and set(out["reward_models"]) == {"0"} and out["commit"]
    assert out["arms"]["gift"]["first_grid"] == [1e-4] and out["arms"]["gift"]["grid"] == [3e-5, 1e-4, 3e-4]
    for protocol, key in (("true", "tuning_final_true_mean"), ("proxy", "tuning_final_proxy_mean")):
        c = out["protocols"][protocol]["arms"]["gift"]
        assert set(c[key]) == {"3e-5", "1e-4", "3e-4"} and exp.rate(c["lr"]) == max(c[key], key=c[key].get)
        assert c["at_grid_edge"] == (c["lr"] != 1e-4) == (c["edge_not_passed"] is not None)
    assert out["to_compare"]["gift"] == sorted({out["protocols"][p]["arms"]["gift"]["lr"] for p in ("true", "proxy")})
    assert not (tmp_path / "docs" / "rlhf.json").exists()
    assert not [p.name for p in runs_dir.iterdir() if p.name.endswith("-s2") or p.name.startswith("rm-s2")]


# ----------------------------------------------------------------------------------------------------------------
# the built-in task's experiments, end to end at a tiny size (one seed, 2 RL steps, an evaluation after each)


@pytest.mark.slow
def test_compare_runs_every_method_from_one_sft_and_reports(runs_dir, tmp_path):
    import compare

    args = script_args(compare, runs_dir, tmp_path)
    runs = compare.runs(args, steps=2, eval_every=1)
    assert [r["run_name"] for r in runs] == ["sft-s0", "gift-s0", "grpo-s0", "grpo-kl-s0"]
    assert all(r["init"] == os.path.join(str(runs_dir), "sft-s0", "sft.pt") for r in runs[1:])
    common.run_all(tiny_builtin(runs), args)
    compare.report(args)
    out = read_report(tmp_path, "compare")
    assert out["seeds"] == [0] and out["methods"] == common.BUILTIN_METHODS and set(out["results"]) == set(
        common.BUILTIN_METHODS)
    sft = common.summary(args, "sft-s0")["rl_accuracy"]  # the SFT run's final model is every RL run's start
    for entry in out["results"].values():
        v = entry["per_seed"]["0"]
        assert v["steps"] == [0, 1, 2] and len(v["train_seconds"]) == 3 and len(v["reward"]) == 2
        assert v["sft_accuracy"] == v["accuracy"][0] == sft and v["final_accuracy"] == v["accuracy"][-1]
        assert in_unit(v["accuracy"] + v["reward"]) and entry["final_mean"] == v["final_accuracy"]
        assert entry["final_sd"] == 0.0 and in_unit([entry["reward_first10_mean"], entry["reward_last10_mean"]])


@pytest.mark.slow
def test_faithful_shares_compare_runs_and_reports_the_k_choice(runs_dir, tmp_path):
    import compare
    import faithful

    args = script_args(faithful, runs_dir, tmp_path)
    runs = faithful.runs(args, steps=2, eval_every=1)
    by_name = {r["run_name"]: r for r in runs}
    assert set(by_name) == {"sft-s0", "gift-s0", "gift-prev-s0", "grpo-s0", "gift-k2-s0", "grpo-k2-s0"}
    for r in compare.runs(args, steps=2, eval_every=1):  # compare.py's run where the names agree
        assert by_name.get(r["run_name"], r) == r
    assert by_name["gift-prev-s0"]["minibatches"] == 1 and by_name["gift-k2-s0"]["minibatches"] == 2
    common.run_all(tiny_builtin(runs), args)
    assert common.summary(args, "gift-prev-s0")["config"]["std_floor"] == 1.0
    faithful.report(args)
    out = read_report(tmp_path, "faithful")
    assert set(out["results"]) == set(faithful.METHODS) and set(out["k_choice"]) == {"gift", "grpo", *faithful.K_CHOICE}
    assert out["k_choice"]["gift"] == out["results"]["gift"]  # one seed: the same runs
    for entry in [*out["results"].values(), *out["k_choice"].values()]:
        v = entry["per_seed"]["0"]
        assert v["steps"] == [0, 1, 2] and len(v["reward"]) == 2 and in_unit(v["accuracy"])


@pytest.mark.slow
def test_group_size_runs_each_size_and_shares_the_default_size(runs_dir, tmp_path):
    import compare
    import group_size

    args = script_args(group_size, runs_dir, tmp_path)
    runs = group_size.runs(args, steps=2, eval_every=1)
    by_name = {r["run_name"]: r for r in runs}
    assert set(by_name) == {"sft-s0"} | {f"{m}{g}-s0" for m in ("gift", "grpo") for g in ("", "-g4", "-g16")}
    shared = [r for r in compare.runs(args, steps=2, eval_every=1) if r["run_name"] in ("gift-s0", "grpo-s0")]
    assert all(by_name[r["run_name"]] == r for r in shared)  # group size 8 is compare.py's run
    common.run_all(tiny_builtin(runs), args)
    group_size.report(args)
    out = read_report(tmp_path, "group_size")
    assert set(out["results"]) == {f"{m}-g{g}-s0" for m in ("gift", "grpo") for g in group_size.SIZES}
    for key, r in out["results"].items():
        run = group_size.name(r["method"], r["group_size"]) + "-s0"
        assert common.summary(args, run)["config"]["group_size"] == r["group_size"]
        assert r["steps"] == [0, 1, 2] and in_unit(r["accuracy"]) and r["final_accuracy"] == r["accuracy"][-1]
        assert r["train_seconds_total"] == r["train_seconds"][-1] >= 0


@pytest.mark.slow
def test_overfit_trains_on_a_pool_and_reports_the_gap(runs_dir, tmp_path):
    import overfit

    args = script_args(overfit, runs_dir, tmp_path)
    runs = overfit.runs(args, steps=2, eval_every=1)
    rl_runs = [r for r in runs if r["rl_steps"]]
    assert [r["run_name"] for r in rl_runs] == [f"pool{overfit.POOL}-{m}-s0" for m in overfit.METHODS]
    assert all(r["rl_pool"] == overfit.POOL for r in rl_runs)
    common.run_all(tiny_builtin(runs), args)
    overfit.report(args)
    out = read_report(tmp_path, "overfit")
    assert out["pool"] == overfit.POOL and set(out["results"]) == {f"{m}-s0" for m in overfit.METHODS}
    for r in out["results"].values():
        assert r["steps"] == [0, 1, 2] and in_unit(r["train_accuracy"] + r["heldout_accuracy"])
        assert r["gap"] == [a - b for a, b in zip(r["train_accuracy"], r["heldout_accuracy"])]
        assert r["final_gap"] == r["gap"][-1] and r["max_heldout"] == max(r["heldout_accuracy"])


@pytest.mark.filterwarnings("ignore:Data has no positive values")  # a tiny run's logratio std is 0: no log scale
@pytest.mark.slow
def test_reference_reports_beta_and_the_logratio_per_step(runs_dir, tmp_path):
    import reference

    args = script_args(reference, runs_dir, tmp_path)
    runs = reference.runs(args, steps=2, eval_every=1)
    assert {r["run_name"]: r.get("ref") for r in runs if r["rl_steps"]} == {
        "ref-frozen-s0": "frozen", "ref-refresh-10-s0": "refresh", "ref-old-s0": "old"}
    common.run_all(tiny_builtin(runs), args)
    reference.report(args)
    out = read_report(tmp_path, "reference")
    assert set(out["results"]) == {f"{name}-s0" for name in reference.REFS}
    for r in out["results"].values():
        assert r["eval_steps"] == [0, 1, 2] and r["steps"] == [0, 1] and in_unit(r["accuracy"] + r["reward"])
        assert len(r["beta"]) == len(r["corr"]) == len(r["logratio_std"]) == len(r["kl"]) == 2
        assert all(b is None or b >= 0 for b in r["beta"]) and all(s >= 0 for s in r["logratio_std"])
        h = r["second_half"]
        assert h["kl_mean"] >= 0 and 0 <= h["reward_mean"] <= 1 and h["logratio_std_median"] >= 0


@pytest.mark.slow
def test_beta_sweeps_the_kl_coefficient_and_checks_the_scale_with_a_loss_fn(runs_dir, tmp_path):
    """The sweep through train.py runs; the check in this process through train.main(argv, loss_fn=...). A tiny SFT
    model gets no reward, so the check runs add weight decay: the weights move, the logratio leaves 0, and the
    scaled losses have something to agree on."""
    import beta
    import compare

    args = script_args(beta, runs_dir, tmp_path)
    runs = beta.runs(args, steps=2, eval_every=1)
    by_name = {r["run_name"]: r for r in runs}
    assert set(by_name) == {"sft-s0", "gift-s0", *(f"{beta.kl_name(c)}-s0" for c in beta.KL_COEFS)}
    for r in compare.runs(args, steps=2, eval_every=1):  # kl_coef 0 and 0.04, and GIFT: compare.py's runs
        assert by_name[r["run_name"]] == r
    common.run_all(tiny_builtin(runs), args)
    check = {c: dict(r, **BUILTIN_TINY, weight_decay=0.1) for c, r in beta.check_runs(args, 0, steps=2).items()}
    assert set(check) == set(beta.SCALES) and all(r["ref"] == "frozen" for r in check.values())
    beta.report(args, check=check)
    out = read_report(tmp_path, "beta")
    assert out["check_steps"] == 2 and out["update_norm"] > 0
    assert set(out["invariance"]) == {"0.01", "1", "100"}
    for c, r in out["invariance"].items():
        assert len(r["losses"]) == 2 and 0 <= r["heldout_accuracy_200"] <= 1
        assert r["max_loss_diff"] < 1e-4 and r["update_rel_diff"] < 1e-2  # z(c * logratio) = z(logratio): one update
    assert out["invariance"]["1"]["max_loss_diff"] == out["invariance"]["1"]["update_rel_diff"] == 0
    assert set(out["kl_sweep"]) == {*map(str, beta.KL_COEFS), "gift"}
    for r in out["kl_sweep"].values():
        assert r["steps"] == [0, 1, 2] and len(r["kl"]) == 2 and r["kl_second_half"] >= 0 and in_unit(r["accuracy"])
    assert common.summary(args, "beta-check-c100-s0")["config"]["ref"] == "frozen"
    beta.report(args, check=check)  # finished: the check runs are reused, not run again
    assert read_report(tmp_path, "beta") == out


@pytest.mark.slow
def test_summarize_tables_finished_runs(runs_dir, tmp_path, capsys):
    import compare
    import summarize

    args = script_args(compare, runs_dir, tmp_path)
    common.run_all(tiny_builtin(compare.runs(args, steps=2, eval_every=1)), args)  # compare's test may have run them
    dirs = [str(runs_dir / name) for name in ("sft-s0", "gift-s0", "grpo-s0", "grpo-kl-s0")]
    rows = summarize.main(dirs + ["--json", str(tmp_path / "table.json")])
    assert json.loads((tmp_path / "table.json").read_text()) == rows
    assert [(r["run"], r["method"]) for r in rows] == [("sft-s0", "gift"), ("gift-s0", "gift"), ("grpo-s0", "grpo"),
                                                      ("grpo-kl-s0", "grpo")]
    for r in rows:
        assert abs(r["gain"] - (r["rl"] - r["sft"])) < 1e-12 and in_unit([r["sft"], r["rl"]]) and r["problems"] == 4
    table = capsys.readouterr().out
    assert "| gift-s0 | gift | old | 0 |" in table and "| grpo (ref old) | 2 |" in table
    with pytest.raises(SystemExit, match="summary.json not found"):
        summarize.main([str(tmp_path)])


@pytest.mark.slow
def test_all_runs_each_experiment_script_in_order_as_a_subprocess(tmp_path):
    """experiments/all.py imports no sibling: it starts `python experiments/<name>.py` with its own options, and
    each script accepts them."""
    all_py = importlib.import_module("all")
    calls = []
    all_py.main([f"--runs={tmp_path}", "--out=o", "--jobs=3", "--threads=2", "--report_only"],
                call=lambda cmd: calls.append(cmd) or 0)
    assert [os.path.basename(c[1]) for c in calls] == [f"{n}.py" for n in ("compare", "reference", "overfit",
                                                                          "group_size", "beta")]
    for cmd in calls:
        assert cmd[0] == sys.executable and os.path.isfile(cmd[1])
        assert cmd[2:] == [f"--runs={tmp_path}", "--out=o", "--jobs=3", "--threads=2", "--report_only"]
        script = importlib.import_module(os.path.basename(cmd[1])[:-3])
        a = script.PARSER.parse_args(cmd[2:])
        assert (a.runs, a.out, a.jobs, a.threads, a.report_only) == (str(tmp_path), "o", 3, 2, True)
    calls.clear()
    with pytest.raises(SystemExit, match="reference.py failed \\(exit 2\\)"):
        all_py.main([], call=lambda cmd: calls.append(cmd) or (2 if cmd[1].endswith("reference.py") else 0))
    assert len(calls) == 2 and "--report_only" not in calls[0]  # stops at the first failure
    with pytest.raises(SystemExit, match="default seeds"):
        all_py.main(["--seeds", "0"], call=lambda cmd: 0)


def test_all_knows_every_experiment_and_runs_one_by_name(tmp_path, capsys):
    """Every experiment script is in all.py's numbered list (only the shared module, all.py itself and the run
    summarizer are not experiments); a name runs that experiment's commands, each of which its script parses."""
    all_py = importlib.import_module("all")
    scripts = {n[:-3] for n in os.listdir(os.path.join(ROOT, "experiments")) if n.endswith(".py")}
    assert set(all_py.COMMANDS) == scripts - {"common", "all", "summarize"}
    assert set(all_py.BUILTIN) <= set(all_py.COMMANDS)
    calls = []
    all_py.main(["writers_plateau", "faithful", f"--runs={tmp_path}", "--out=o"], call=lambda c: calls.append(c) or 0)
    assert [os.path.basename(c[1]) for c in calls] == ["faithful.py", "writers_plateau.py", "writers_plateau.py"]
    plateau = importlib.import_module("writers_plateau")
    first, second = (plateau.PARSER.parse_args(c[2:]) for c in calls[1:])
    assert (first.rates, first.out, second.rates, second.arms) == ([4e-5], "o", [8e-5], ["base", "cosine"])
    assert second.out == os.path.join("o", "writers_plateau_lr8e-5") and second.runs == str(tmp_path)
    calls.clear()
    all_py.main(["bandit", "noise_floor", "--out=docs/experiments"], call=lambda c: calls.append(c) or 0)
    assert calls[0][2:] == ["--plot", "--out=docs"]  # bandit.png lives in docs/
    noise = importlib.import_module("noise_floor").PARSER.parse_args(calls[1][2:])
    assert noise.cpu == os.path.join("docs/experiments", "writers.json") and noise.out == "docs/experiments"
    capsys.readouterr()
    all_py.main(["--list"], call=lambda c: pytest.fail("--list runs nothing"))
    listed = capsys.readouterr().out.splitlines()
    assert [l.split()[1] for l in listed if not l.startswith("     ")] == list(all_py.COMMANDS)
    with pytest.raises(SystemExit, match="error: no experiment named nope"):
        all_py.main(["nope"], call=lambda c: 0)


def test_no_experiment_script_imports_a_sibling():
    """Each script imports only common (and train, gift, the standard library, torch): no script's code is another's."""
    import ast

    folder = os.path.join(ROOT, "experiments")
    scripts = {name[:-3] for name in os.listdir(folder) if name.endswith(".py")}
    for name in scripts:
        with open(os.path.join(folder, name + ".py")) as f:
            tree = ast.parse(f.read())
        imported = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert imported & scripts <= {"common"}, (name, imported & scripts)


def test_noise_floor_pairs_the_machines_by_seed(tmp_path):
    """experiments/noise_floor.py on two small reports: GPU minus CPU per shared seed for each configuration, the
    GIFT - GRPO difference on each machine, and one error line for a missing file, a report of another kind and too
    few shared seeds."""
    import noise_floor as exp

    cpu = {"results": {"gift": {"per_seed": {"0": {"accuracy": [0.3, 0.90]}, "1": {"accuracy": [0.3, 0.80]},
                                             "3": {"accuracy": [0.3, 0.50]}}},
                       "grpo-lr2e-5": {"per_seed": {"0": {"accuracy": [0.3, 0.95]}, "1": {"accuracy": [0.3, 0.85]},
                                                    "3": {"accuracy": [0.3, 0.5]}}}}}
    gpu = {"results": {"gift": {"2e-5": {"per_seed": {"0": {"final_accuracy": 0.92}, "1": {"final_accuracy": 0.83},
                                                      "2": {"final_accuracy": 0.1}}}},
                       "grpo": {"2e-5": {"per_seed": {"0": {"final_accuracy": 0.95}, "1": {"final_accuracy": 0.84}}}}}}
    paths = {}
    for name, report in (("cpu", cpu), ("gpu", gpu)):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(report))
    argv = [f"--cpu={paths['cpu']}", f"--gpu={paths['gpu']}", f"--out={tmp_path / 'docs'}"]
    out = exp.main(exp.PARSER.parse_args(argv))
    assert out["seeds"] == [0, 1] and out == json.loads((tmp_path / "docs" / "noise_floor.json").read_text())
    assert out["gpu_minus_cpu"]["gift"]["per_seed"] == pytest.approx([0.02, 0.03])
    assert out["gpu_minus_cpu"]["grpo"]["per_seed"] == pytest.approx([0.0, -0.01])
    assert out["gift_minus_grpo"]["cpu"]["per_seed"] == pytest.approx([-0.05, -0.05])
    assert out["gift_minus_grpo"]["gpu"]["per_seed"] == pytest.approx([-0.03, -0.01])
    with pytest.raises(SystemExit, match="error: cannot read the report"):
        exp.main(exp.PARSER.parse_args([f"--cpu={tmp_path / 'nope.json'}", f"--gpu={paths['gpu']}"]))
    with pytest.raises(SystemExit, match="error: a report lacks gift"):
        exp.main(exp.PARSER.parse_args([f"--cpu={paths['gpu']}", f"--gpu={paths['gpu']}"]))
    del gpu["results"]["grpo"]["2e-5"]["per_seed"]["1"]
    paths["gpu"].write_text(json.dumps(gpu))
    with pytest.raises(SystemExit, match="share 1 seed"):
        exp.main(exp.PARSER.parse_args(argv))


@pytest.mark.slow
def test_writers_batch_pairs_gift_and_grpo_at_each_batch_size(runs_dir, tmp_path):
    import writers_batch as exp

    args = exp.PARSER.parse_args([f"--runs={runs_dir}", f"--out={tmp_path / 'docs'}", "--seeds", "0",
                                  "--prompts", "16", "32", "--long_steps", "5", "--tune_prompts", "16", "32",
                                  "--tuning_seeds", "0"])
    runs = exp.runs(args)
    rl_runs = {r["run_name"]: r for r in runs if r["rl_steps"]}
    # the 16-prompt runs are writers_baselines.py's tuning runs (shared); the others name their batch
    assert rl_runs["writers-tune-gift-lr4e-5-s0"]["rl_lr"] == 4e-5 and "prompts" not in rl_runs[
        "writers-tune-gift-lr4e-5-s0"]
    assert rl_runs["writers-batch-gift-p64-lr4e-5-5-s0"]["rl_steps"] == 5  # a long arm
    # 32 prompts is re-tuned (16 is not: writers_baselines tuned it): each method at half, once and twice its
    # 16-prompt rate, doubled first; the comparison at 32 waits for the tuning's choice
    tune = [(r["method"], r["rl_lr"]) for r in runs if r.get("prompts") == 32]
    assert tune == [("gift", 8e-5), ("grpo", 1.6e-4), ("gift", 2e-5), ("grpo", 4e-5), ("gift", 4e-5), ("grpo", 8e-5)]
    assert rl_runs["writers-batch-grpo-p32-lr8e-5-s0"]["method"] == "grpo"
    assert not any("writers-tune" in r["run_name"] and r["rl_lr"] not in exp.RATES.values() for r in runs)
    tiny = {16: 2, 32: 4, 64: 4}  # each size scaled down, keeping the order of the sizes
    for _ in range(2 + exp.WIDEN):  # the tuning, its widening, then the comparison at the chosen rates (main's loop)
        common.run_all([{**r, **TINY, **({"sft_steps": 4} if "sft" in r["run_name"] else dict(
            rl_steps=min(r["rl_steps"], 2), prompts=tiny[r.get("prompts", 16)]))} for r in exp.runs(args)], args)
    assert all(exp.finished(args, r["run_name"]) for r in exp.runs(args))
    exp.report(args)
    out = read_report(tmp_path / "docs", "writers_batch")
    assert out["prompts_per_step"] == [16, 32] and out["seeds"] == [0]
    assert set(out["tuning"]) == {"32"}
    for method, t in out["tuning"]["32"].items():
        assert t["complete"] and t["chosen"] in t["grid"] and t["chosen"] == out["results"]["32"][method]["lr"]
        best = max(t["mean"].values(), key=lambda v: (round(v["final_accuracy"], 9), v["reward"]))
        assert t["mean"][common.lr_name(t["chosen"])] == best
        assert t["grid"] == exp.tune(args, method, 32)["grid"] and set(exp.GRID[method]) <= set(t["grid"])
        assert t["at_grid_edge"] == (t["chosen"] in (t["grid"][0], t["grid"][-1]))
    assert out["results"]["16"]["gift"]["lr"] == exp.RATES["gift"]
    assert len(exp.tuning_markdown(out["tuning"])) == 2 + sum(len(t["grid"]) for t in out["tuning"]["32"].values())
    # --report_only starts nothing: a size whose grid has no finished run is left out of the tuning
    before = sorted(os.listdir(runs_dir))
    exp.main(exp.PARSER.parse_args([f"--runs={runs_dir}", f"--out={tmp_path / 'docs'}", "--seeds", "0", "--prompts",
                                    "16", "32", "--tune_prompts", "32", "64", "--tuning_seeds", "0", "--report_only"]))
    assert sorted(os.listdir(runs_dir)) == before
    assert set(read_report(tmp_path / "docs", "writers_batch")["tuning"]) == {"32"}
    for size in ("16", "32"):
        e = out["results"][size]
        assert e["gift_minus_grpo"]["per_seed"] == [e["gift"]["per_seed"]["0"]["final_accuracy"]
                                                    - e["grpo"]["per_seed"]["0"]["final_accuracy"]]
        assert 0 <= e["gift"]["per_seed"]["0"]["reward"] <= 1
    # responses sampled = RL steps x prompts x group size (no dynamic sampling here)
    assert out["results"]["32"]["grpo"]["per_seed"]["0"]["responses"] == 2 * 4 * TINY["group_size"]
    assert set(out["long"]) == {"gift-p16", "grpo-p16", "gift-p64", "gift_minus_grpo_p16"}
    d = out["long"]["gift_minus_grpo_p16"]
    assert d["final_accuracy"]["per_seed"] == [out["long"]["gift-p16"]["per_seed"]["0"]["final_accuracy"]
                                               - out["long"]["grpo-p16"]["per_seed"]["0"]["final_accuracy"]]
    # a size whose tuning moved a rate also shows the comparison at the 16-prompt rates (the tuning's middle runs)
    moved = any(out["results"]["32"][m]["lr"] != exp.RATES[m] for m in exp.RATES)
    assert ("at_16_prompt_rates" in out["results"]["32"]) == moved
    if moved:
        assert {m: out["results"]["32"]["at_16_prompt_rates"][m]["lr"] for m in exp.RATES} == exp.RATES
    assert len(exp.markdown(out["results"])) == 4 + moved
    assert len(exp.long_markdown(out["long"])) == 2 + 3 + 2  # header, a row per long arm, the paired line


def test_writers_batch_widens_a_grid_whose_best_rate_is_at_an_end(tmp_path):
    """A rate that beats its neighbour at an end of the grid adds the rate past it (to the tuning runs too), at most
    WIDEN times; a lone finished rate widens nothing; a best that no finished rate brackets is flagged at the edge,
    and a grid with a rate not run is incomplete."""
    import writers_batch as exp

    args = exp.PARSER.parse_args([f"--runs={tmp_path}", "--seeds", "0", "1", "2", "--prompts", "16", "64",
                                  "--tune_prompts", "64", "--tuning_seeds", "0", "1"])

    def fake(method, lr, accuracy, reward):
        for seed in args.tuning_seeds:
            run = tmp_path / f"{exp.name(method, 64, lr=lr)}-s{seed}"
            run.mkdir()
            (run / "summary.json").write_text(json.dumps(dict(rl_accuracy=accuracy,
                                                              config=dict(prompts=64, group_size=4))))
            (run / "metrics.jsonl").write_text("".join(json.dumps(dict(stage="rl", step=i, reward=reward)) + "\n"
                                                       for i in range(exp.STEPS)))

    def tuning_runs(method):
        return sorted({r["rl_lr"] for r in exp.runs(args) if r.get("method") == method and r.get("prompts") == 64
                       and r["run_name"].endswith(tuple(f"-s{s}" for s in args.tuning_seeds))})

    base = list(exp.GRID["gift"])  # 2e-5, 4e-5, 8e-5
    fake("gift", base[2], 1.0, 0.9)
    assert exp.tune(args, "gift", 64)["grid"] == base  # 8e-5 alone has beaten nothing
    t = exp.tuning(args)["64"]["gift"]
    assert t["chosen"] == base[2] and t["at_grid_edge"] and not t["complete"]
    fake("gift", base[1], 1.0, 0.8)  # 8e-5 beats 4e-5 on the tie-break: 1.6e-4 joins the grid and the runs
    assert exp.tune(args, "gift", 64)["grid"] == base + [2 * base[2]]
    assert tuning_runs("gift") == base + [2 * base[2]]
    t = exp.tuning(args)["64"]["gift"]
    assert not t["complete"] and t["at_grid_edge"]  # 2e-5 and 1.6e-4 not run: 8e-5 is not bracketed
    fake("gift", 2 * base[2], 0.5, 0.95)  # 1.6e-4 loses on accuracy: 8e-5 is bracketed above, the grid stays
    assert exp.tune(args, "gift", 64)["grid"] == base + [2 * base[2]]
    assert exp.tuning(args)["64"]["gift"]["chosen"] == base[2]
    fake("gift", base[0], 0.9, 0.9)
    t = exp.tuning(args)["64"]["gift"]
    assert t["complete"] and not t["at_grid_edge"] and t["chosen"] == base[2]
    # a best at the bottom that beats its neighbour widens downward, at most WIDEN times
    low = list(exp.GRID["grpo"])  # 4e-5, 8e-5, 1.6e-4
    for lr in low + [low[0] / 2, low[0] / 4, low[0] / 8]:
        fake("grpo", lr, 1.0, 0.5 - 0.01 * math.log2(lr / low[0]))  # the lower the rate, the higher the reward
    assert exp.tune(args, "grpo", 64)["grid"] == sorted(low + [low[0] / 2, low[0] / 4][:exp.WIDEN])
    t = exp.tuning(args)["64"]["grpo"]
    assert t["complete"] and t["at_grid_edge"] and t["chosen"] == low[0] / 2 ** exp.WIDEN
    assert tuning_runs("grpo") == t["grid"]
    # the comparison takes a method's chosen rate once its grid has finished, the 16-prompt rate before
    assert {m: e["lr"] for m, e in exp.collect(args)[0]["64"].items() if m in exp.RATES} == dict(
        gift=base[2], grpo=t["chosen"])
    os.remove(tmp_path / f"{exp.name('gift', 64, lr=base[0])}-s1" / "summary.json")
    assert exp.collect(args)[0]["64"]["gift"]["lr"] == exp.RATES["gift"]


def test_writers_batch_long_runs_continue_the_finished_150_step_runs(tmp_path):
    """A long run starts as its finished 150-step run's folder, less the summary and the lock (run_all then resumes
    it with more --rl_steps); a 150-step run that has not finished gives nothing; a long run that exists is kept."""
    import writers_batch as exp

    args = exp.PARSER.parse_args([f"--runs={tmp_path}", "--seeds", "0", "--prompts", "16", "--long_steps", "450"])
    short = tmp_path / "writers-tune-gift-lr4e-5-s0"
    short.mkdir()
    for f in ("ckpt.pt", "metrics.jsonl", "summary.json", ".lock"):
        (short / f).write_text(f)
    (tmp_path / "writers-tune-grpo-lr8e-5-s0").mkdir()  # unfinished: no summary
    exp.continue_short_runs(args)
    long = tmp_path / "writers-batch-gift-p16-lr4e-5-450-s0"
    assert sorted(os.listdir(long)) == ["ckpt.pt", "metrics.jsonl"]
    assert not (tmp_path / "writers-batch-grpo-p16-lr8e-5-450-s0").exists()
    assert {r["run_name"]: r["rl_steps"] for r in exp.runs(args)}["writers-batch-gift-p16-lr4e-5-450-s0"] == 450
    (long / "ckpt.pt").write_text("resumed")
    exp.continue_short_runs(args)
    assert (long / "ckpt.pt").read_text() == "resumed"
