"""The documented default run: the band CI checks (scripts/check_default_run.py), and that docs/ and the README
describe a band measured with train.py's current defaults."""

import json
import os
import re
from dataclasses import asdict

import train
from scripts import check_default_run as check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def summary(sft=0.05, rl=0.95, **config):
    return dict(sft_accuracy=sft, rl_accuracy=rl, wall_time_s=100.0, threads=2, seed=0, torch="2.13.0+cpu",
                heldout_problems=1000, config={**asdict(train.parse_args([])), **config})


def documented(sft=(0.03, 0.06), rl=(0.93, 0.97)):
    runs = [dict(seed=s, threads=t, sft_accuracy=sft[s % 2], rl_accuracy=rl[s % 2], wall_time_s=150.0 + s)
            for s in range(5) for t in (1, 2)]
    return dict(band=check.band_of(runs), runs=runs, torch="2.13.0+cpu", heldout_problems=1000,
                config=asdict(train.parse_args([])))


def test_compare_checks_the_band_the_gain_and_the_settings():
    doc = documented()
    assert doc["band"] == {"sft_accuracy": [0.03, 0.06], "rl_accuracy": [0.93, 0.97]}
    assert check.compare(doc, summary()) == []
    assert check.compare(doc, summary(sft=0.03 - 0.019, rl=0.93 - 0.019)) == []  # within the tolerance
    assert check.compare(doc, summary(rl=1.0)) == []  # above the band is fine for RL
    [problem] = check.compare(doc, summary(rl=0.93 - 0.021))
    assert problem.startswith("rl_accuracy 0.909 is below the documented band's low end 0.930")
    [problem] = check.compare(doc, summary(sft=0.2, rl=0.95))
    assert problem.startswith("sft_accuracy 0.200 is outside the documented band 0.030-0.060")
    problems = check.compare(documented(sft=(0.5, 0.9)), summary(sft=0.9, rl=0.95))
    assert problems == ["RL gained +0.050, less than 0.10"]
    # bookkeeping and the seed may differ (the band spans seeds); a setting that changes results may not
    assert check.compare(doc, summary(out_dir="/tmp/x", threads=1, log_every=5, seed=3, run_name="r")) == []
    [problem] = check.compare(doc, summary(rl_lr=3e-4))
    assert "rl_lr: documented 0.0001, now 0.0003" in problem and "refresh_default_run.py" in problem


def test_cli_exit_codes(tmp_path, capsys):
    with open(check.DOCS) as f:
        doc = json.load(f)
    inside = summary(sft=doc["band"]["sft_accuracy"][0], rl=doc["band"]["rl_accuracy"][0])
    (tmp_path / "same.json").write_text(json.dumps(inside))
    assert check.main([str(tmp_path / "same.json")]) == 0
    (tmp_path / "off.json").write_text(json.dumps(dict(inside, rl_accuracy=doc["band"]["rl_accuracy"][0] - 0.05)))
    assert "meets the documented guarantees" in capsys.readouterr().out
    (tmp_path / "high.json").write_text(json.dumps(dict(inside, rl_accuracy=1.0)))  # above the band: no upper edge
    assert check.main([str(tmp_path / "high.json")]) == 0 and "(no upper edge)" in capsys.readouterr().out
    assert check.main([str(tmp_path / "off.json")]) == 1
    out = capsys.readouterr().out
    assert "error: rl_accuracy" in out and "default run: fails" in out
    (tmp_path / "bad.json").write_text("{not json")
    try:
        check.main([str(tmp_path / "bad.json")])
    except SystemExit as e:
        assert str(e).startswith("error: ") and "not a summary.json" in str(e)
    else:
        raise AssertionError("a malformed summary.json was accepted")


def test_docs_describe_a_band_of_the_current_defaults():
    with open(check.DOCS) as f:
        doc = json.load(f)
    differences = check.config_differences(doc["config"], asdict(train.parse_args([])))
    assert not differences, f"docs/default_run.json is stale (scripts/refresh_default_run.py remakes it): {differences}"
    assert {(r["seed"], r["threads"]) for r in doc["runs"]} == {(s, t) for s in range(5) for t in (1, 2)}
    assert doc["band"] == check.band_of(doc["runs"]) and doc["heldout_problems"] == 1000
    assert all(r["rl_accuracy"] - r["sft_accuracy"] >= check.MIN_GAIN for r in doc["runs"])
    with open(os.path.join(ROOT, "docs", "default_run.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    for name in check.SENTENCE_FILES:  # the README and the docs quote it, as refresh_default_run.py writes it
        with open(os.path.join(ROOT, name), encoding="utf-8") as f:
            stated = re.findall(check.SENTENCE_RE, f.read())
        assert stated and set(stated) == {check.readme_sentence(doc)}, (name, stated)


def test_refresh_documents_the_band_of_finished_runs(tmp_path, monkeypatch):
    """scripts/refresh_default_run.py on finished runs: the JSON, the plot and the sentence in each SENTENCE_FILE."""
    from scripts import refresh_default_run as refresh

    runs = tmp_path / "runs"
    for seed in refresh.SEEDS:
        for threads in refresh.THREADS:
            run = runs / refresh.run_name(seed, threads)
            run.mkdir(parents=True)
            s = summary(sft=0.04 + 0.001 * seed, rl=0.95 + 0.002 * seed * threads, seed=seed, threads=threads)
            s.update(seed=seed, threads=threads, sft_eval={"tool_frac": 0.0}, rl_eval={"tool_accuracy": 0.95},
                     wall_time_s=120.0 + 10 * seed)
            (run / "summary.json").write_text(json.dumps(s))
    root = tmp_path / "root"
    for name in check.SENTENCE_FILES:  # copies of the README and docs, so the repository's stay as they are
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(open(os.path.join(ROOT, name), encoding="utf-8").read(), encoding="utf-8")
    plots = []
    monkeypatch.setattr(refresh, "ROOT", str(root))
    monkeypatch.setattr(refresh, "DOCS", str(root / "docs" / "default_run.json"))
    monkeypatch.setattr(refresh.plot, "plot", lambda runs, out: plots.append((runs, out)))
    refresh.main([f"--runs={runs}"])  # every run is finished: nothing is run
    doc = json.loads((root / "docs" / "default_run.json").read_text())
    assert doc["band"] == {"sft_accuracy": [0.04, 0.044], "rl_accuracy": [0.95, 0.966]}
    assert len(doc["runs"]) == 10 and plots == [([str(runs / "default-s0-t2")], str(root / "docs" / "default_run.png"))]
    for name in check.SENTENCE_FILES:
        stated = re.findall(check.SENTENCE_RE, (root / name).read_text(encoding="utf-8"))
        assert stated and set(stated) == {check.readme_sentence(doc)}, (name, stated)
        assert "0.040-0.044 after SFT\n-> 0.950-0.966 after GIFT" in stated[0] and "120-160 s a run" in stated[0]


def test_a_setting_added_since_the_band_counts_as_its_default():
    doc = documented()
    del doc["config"]["std_floor"]  # as if --std_floor came after the band was measured
    assert check.compare(doc, summary()) == []  # the run uses the new setting's default: what the band measured
    [problem] = check.compare(doc, summary(std_floor=0.5))
    assert "std_floor: documented '(absent)', now 0.5" in problem
