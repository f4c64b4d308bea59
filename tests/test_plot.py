"""gift/plot.py: RL-step x axis, held-out evaluations as points, the KL note, the PNG (synthetic metrics, no run)."""

import json

import pytest

from gift import plot


def fake_run(path, sft_steps, rl_steps, config=None):
    """metrics.jsonl as train.py writes it (SFT records, the SFT evaluation, RL records with an evaluation after the
    second update, the final evaluation) and, when config is given, a summary.json holding it."""
    path.mkdir()
    records = [dict(step=s, stage="sft", loss=1.0) for s in range(sft_steps)]
    records.append(dict(step=sft_steps, stage="sft_eval", heldout_accuracy=0.1))
    for k in range(rl_steps):
        r = dict(step=sft_steps + k, stage="rl", loss=0.5, reward=0.1 * k, kl=0.0, entropy=1.0)
        if k == 1:
            r["heldout_accuracy"] = 0.5  # measured after k + 1 = 2 updates
        records.append(r)
    records.append(dict(step=sft_steps + rl_steps, stage="final", heldout_accuracy=0.9))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if config is not None:
        (path / "summary.json").write_text(json.dumps(dict(config=config)))
    return records


def test_x_axis_is_the_rl_step_whatever_the_sft_length(tmp_path):
    for sft_steps in (0, 4, 1200):
        records = fake_run(tmp_path / f"s{sft_steps}", sft_steps, 3)
        start = plot.rl_start(records)
        assert start == sft_steps
        assert plot.rl_curve(records, "reward", start) == ([1, 2, 3], [0.0, 0.1, 0.2])
        assert plot.rl_curve(records, "heldout_accuracy", start) == ([0, 2, 3], [0.1, 0.5, 0.9])
    assert plot.rl_start([dict(step=s, stage="sft", loss=1.0) for s in range(3)]) is None


def test_kl_note_says_when_kl_is_zero_by_construction():
    gift_old = dict(method="gift", ref="old", inner_steps=1, kl_coef=0.0)
    assert "by construction" in plot.kl_note(gift_old)
    assert "by construction" in plot.kl_note(dict(gift_old, minibatches=1))
    for measured in (dict(gift_old, ref="frozen"), dict(gift_old, ref="refresh"), dict(gift_old, inner_steps=2),
                     dict(gift_old, minibatches=4), dict(gift_old, method="grpo", kl_coef=0.04), None, {}):
        assert plot.kl_note(measured) is None, measured
    assert "not computed" in plot.kl_note(dict(gift_old, method="grpo"))


def test_plot_writes_a_png_and_refuses_a_run_without_rl(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    fake_run(tmp_path / "a", 4, 3, config=dict(method="gift", ref="old", inner_steps=1))
    fake_run(tmp_path / "b", 0, 5)  # unfinished: no summary.json, so no note for it
    assert plot.run_config(tmp_path / "a")["ref"] == "old" and plot.run_config(tmp_path / "b") is None
    plot.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c.png")])
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "wrote" in capsys.readouterr().out
    fake_run(tmp_path / "sft", 4, 0)
    (tmp_path / "sft" / "metrics.jsonl").write_text('{"step": 0, "stage": "sft", "loss": 1.0}\n')
    with pytest.raises(SystemExit, match="no RL steps"):
        plot.main([str(tmp_path / "sft")])
