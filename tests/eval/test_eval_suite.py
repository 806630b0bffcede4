"""tools.eval_suite: every scenario through eval_guidance's parser, results kept per scenario, resumed, compared."""

import json

import pytest

from tools import eval_suite


def test_a_suite_run_is_written_per_scenario_resumed_and_compared(tmp_path, monkeypatch, capsys):
    out = tmp_path / "eval.json"
    eval_suite.main(["--out", str(out), "--only", "joystick", "--max-episodes", "1", "--workers", "1"])
    record = json.loads(out.read_text())
    metrics = record["scenarios"]["joystick"]["metrics"]
    assert record["max_episodes"] == 1 and metrics["episodes"] == 1 and len(record["scenarios"]) == 1
    assert record["guidance"]["scale"] == 40.0  # the shipped checkpoint's settings, recorded with its results
    assert record["heading_hold"] is True and record["speed_hold"] is True  # the protocols' defaults
    assert record["sample_steps"] == 10  # and its DDIM steps
    assert 0 <= metrics["speed_error"] < 0.5 and 0 <= metrics["yaw_rate_error"] < 0.5, metrics

    def no_rerun(*_):
        raise AssertionError("a scenario already in the file was run again")

    monkeypatch.setattr(eval_suite, "run_jobs", no_rerun)
    eval_suite.main(["--out", str(out), "--only", "joystick", "--max-episodes", "1", "--workers", "1"])
    assert "joystick: in" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="use another --out"):  # other settings never mix into one file
        eval_suite.main(["--out", str(out), "--only", "joystick", "--max-episodes", "1", "--", "--scale", "80"])
    with pytest.raises(SystemExit, match="use another --out"):
        eval_suite.main(["--out", str(out), "--only", "joystick", "--max-episodes", "1", "--", "--no-heading-hold"])
    eval_suite.main(["--compare", str(out), str(out)])
    table = capsys.readouterr().out
    assert f"| joystick | {eval_suite.headline('joystick', metrics)} |" in table and "at most 1 episodes" in table


def test_bad_arguments_stop_before_any_episode(tmp_path, monkeypatch):
    monkeypatch.setattr(eval_suite, "run_jobs", lambda *_: pytest.fail("an episode ran"))
    out = tmp_path / "eval.json"
    with pytest.raises(SystemExit):
        eval_suite.main(["--out", str(out), "--", "--navigator", "teleport"])
    with pytest.raises(SystemExit):
        eval_suite.main(["--out", str(out), "--max-episodes", "0"])
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(SystemExit, match="broken.json: not an eval_suite result file"):
        eval_suite.main(["--compare", str(tmp_path / "broken.json")])
    with pytest.raises(SystemExit):
        eval_suite.main(["--out", str(out), "--checkpoint", str(tmp_path / "nowhere")])
    assert not out.exists()


def test_every_suite_entry_is_a_valid_eval_guidance_command():
    parser = eval_suite.build_parser()
    for name, command in eval_suite.SUITE.items():
        parsed = parser.parse_args(list(command))
        assert parsed.scenario == eval_suite._scenario_of(command), name
