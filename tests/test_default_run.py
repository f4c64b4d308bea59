"""The documented default run: the comparison CI makes (scripts/check_default_run.py), and that docs/ and the README
describe a run of train.py's current defaults."""

import json
import os
import re
from dataclasses import asdict

import train
from scripts import check_default_run as check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def summary(sft=0.1, rl=0.9, **config):
    return dict(sft_accuracy=sft, rl_accuracy=rl, wall_time_s=100.0, threads=2, seed=0, torch="2.13.0+cpu",
                heldout_problems=1000, config={**asdict(train.parse_args([])), **config})


def test_compare_fails_past_three_points_and_on_other_settings():
    doc = summary()
    assert check.compare(doc, summary()) == []
    assert check.compare(doc, summary(sft=0.1 + 0.029, rl=0.9 - 0.029)) == []  # within 3 points
    [problem] = check.compare(doc, summary(rl=0.9 - 0.031))
    assert problem.startswith("rl_accuracy 0.869, documented 0.900: -3.1 points")
    [problem] = check.compare(doc, summary(sft=0.2))
    assert problem.startswith("sft_accuracy 0.200, documented 0.100: +10.0 points")
    # bookkeeping may differ (CI writes to a temporary folder); a setting that changes results may not
    assert check.compare(doc, summary(out_dir="/tmp/x", threads=1, log_every=5)) == []
    [problem] = check.compare(doc, summary(rl_lr=3e-4))
    assert "rl_lr: documented 0.0001, now 0.0003" in problem and "refresh_default_run.py" in problem
    new_key = summary()
    new_key["config"]["new_knob"] = 4  # a key the documented run did not have
    assert "new_knob: documented '(absent)', now 4" in check.compare(doc, new_key)[0]


def test_cli_exit_codes(tmp_path, capsys):
    with open(check.DOCS) as f:
        doc = json.load(f)
    (tmp_path / "same.json").write_text(json.dumps(doc))
    assert check.main([str(tmp_path / "same.json")]) == 0
    (tmp_path / "off.json").write_text(json.dumps(dict(doc, rl_accuracy=doc["rl_accuracy"] - 0.05)))
    assert check.main([str(tmp_path / "off.json")]) == 1
    assert "error: rl_accuracy" in capsys.readouterr().out


def test_docs_describe_a_run_of_the_current_defaults():
    with open(check.DOCS) as f:
        doc = json.load(f)
    differences = check.config_differences(doc["config"], asdict(train.parse_args([])))
    assert not differences, f"docs/default_run.json is stale (scripts/refresh_default_run.py remakes it): {differences}"
    assert 0 <= doc["sft_accuracy"] <= 1 and 0 <= doc["rl_accuracy"] <= 1 and doc["heldout_problems"] == 1000
    with open(os.path.join(ROOT, "docs", "default_run.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    for name in check.SENTENCE_FILES:  # the README and the docs quote it, as refresh_default_run.py writes it
        with open(os.path.join(ROOT, name), encoding="utf-8") as f:
            stated = re.findall(check.SENTENCE_RE, f.read())
        assert stated and set(stated) == {check.readme_sentence(doc)}, (name, stated)


def test_refresh_rewrites_the_sentence_in_every_file(tmp_path, monkeypatch):
    """scripts/refresh_default_run.py on a finished run: the JSON, the plot and the sentence in each SENTENCE_FILE."""
    from scripts import refresh_default_run as refresh

    with open(check.DOCS) as f:
        doc = json.load(f)
    run = tmp_path / "run"
    run.mkdir()
    new = dict(doc, rl_accuracy=0.5, wall_time_s=99.0)
    (run / "summary.json").write_text(json.dumps(new))
    root = tmp_path / "root"
    for name in check.SENTENCE_FILES:  # copies of the README and docs, so the repository's stay as they are
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(open(os.path.join(ROOT, name), encoding="utf-8").read(), encoding="utf-8")
    plots = []
    monkeypatch.setattr(refresh, "ROOT", str(root))
    monkeypatch.setattr(refresh, "DOCS", str(root / "docs" / "default_run.json"))
    monkeypatch.setattr(refresh, "default_threads", lambda: doc["threads"])
    monkeypatch.setattr(refresh.plot, "plot", lambda runs, out: plots.append(out))
    refresh.main([str(run)])
    assert json.loads((root / "docs" / "default_run.json").read_text()) == new
    assert plots == [str(root / "docs" / "default_run.png")]
    for name in check.SENTENCE_FILES:
        stated = re.findall(check.SENTENCE_RE, (root / name).read_text(encoding="utf-8"))
        assert stated and set(stated) == {check.readme_sentence(new)}, (name, stated)
        assert "0.500 after GIFT" in stated[0] and "99 s" in stated[0]
