"""Exports to LeRobotDataset v3 and Minari: loaded back the way each library loads, same episodes, steps and values."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from bm_gym.data.export import ExportError, export_lerobot, export_minari, state_names
from bm_gym.data.hdf5 import load_episodes
from bm_gym.data.state import StateLayout


def lerobot_features(info: dict):
    """``lerobot.datasets.utils.get_hf_features_from_features`` for the feature kinds our export uses."""
    import datasets

    out = {}
    for key, spec in info["features"].items():
        value = datasets.Value(dtype=spec["dtype"])
        out[key] = value if spec["shape"] == [1] else datasets.Sequence(length=spec["shape"][0], feature=value)
    return datasets.Features(out)


def test_lerobot_export_loads_as_lerobot_loads_it_with_the_same_episodes_steps_and_values(small_dataset, tmp_path):
    import datasets
    import pandas as pd

    episodes, attrs, _ = load_episodes(small_dataset, include_fallen=True)
    out = export_lerobot(small_dataset, tmp_path / "lerobot")
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 50 and info["robot_type"] == "unitree_g1"
    assert info["total_episodes"] == len(episodes) and info["total_frames"] == sum(map(len, episodes))
    assert info["features"]["observation.state"]["names"] == state_names(StateLayout.from_json(attrs["state_layout"]))
    # LeRobot's loader: Dataset.from_parquet over data/*/*.parquet with the features of info.json.
    frames = datasets.Dataset.from_parquet(sorted(str(p) for p in (out / "data").glob("*/*.parquet")),
                                           features=lerobot_features(info))  # fmt: skip
    meta = datasets.Dataset.from_parquet(str(out / "meta/episodes/chunk-000/file-000.parquet"))
    tasks = pd.read_parquet(out / "meta/tasks.parquet")
    assert len(frames) == info["total_frames"] and len(meta) == len(episodes)
    rng = np.random.default_rng(0)
    for k in rng.choice(len(episodes), size=3):
        e, row = episodes[k], meta[int(k)]
        assert row["length"] == len(e) and row["dataset_to_index"] - row["dataset_from_index"] == len(e)
        t = int(rng.integers(len(e)))
        frame = frames[row["dataset_from_index"] + t]
        assert frame["episode_index"] == k and frame["frame_index"] == t and frame["timestamp"] == pytest.approx(t / 50)
        assert np.array_equal(np.float32(frame["observation.state"]), e.states[t])
        assert np.array_equal(np.float32(frame["action"]), e.applied_actions[t])
        assert np.array_equal(np.float32(frame["action.expert"]), e.actions[t])
        assert np.array_equal(np.float32(frame["observation.command"]), e.commands[t])
        assert tasks.index[frame["task_index"]] == row["tasks"][0]
    stats = json.loads((out / "meta/stats.json").read_text())
    all_states = np.concatenate([e.states for e in episodes])
    assert np.allclose(stats["observation.state"]["mean"], all_states.mean(0), atol=1e-5)


def test_lerobot_export_loads_in_lerobot_itself(small_dataset, tmp_path):
    """Runs where LeRobot imports (it pins torch < 2.11 and a CUDA torchvision, so not on the CPU CI machine;
    docs/benchmarks.md gives the run on the GPU machine)."""
    lerobot_dataset = pytest.importorskip("lerobot.datasets.lerobot_dataset", exc_type=ImportError)
    episodes, _, _ = load_episodes(small_dataset, include_fallen=True)
    out = export_lerobot(small_dataset, tmp_path / "lerobot")
    dataset = lerobot_dataset.LeRobotDataset("bm_gym/velocity", root=out)
    assert dataset.num_episodes == len(episodes) and dataset.num_frames == sum(map(len, episodes))
    start = len(episodes[0])
    item = dataset[start + 7]  # episode 1, step 7
    assert np.array_equal(item["observation.state"].numpy(), episodes[1].states[7])
    assert np.array_equal(item["action.expert"].numpy(), episodes[1].actions[7])
    windowed = lerobot_dataset.LeRobotDataset("bm_gym/velocity", root=out, delta_timestamps={"action": [0, 0.02]})
    assert tuple(windowed[start + 7]["action"].shape) == (2, 29)


def test_minari_export_loads_in_minari_with_the_same_episodes_steps_and_values(small_dataset, tmp_path, monkeypatch):
    import minari

    episodes, _, _ = load_episodes(small_dataset, include_fallen=True)
    dataset_id = export_minari(small_dataset, tmp_path / "minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    dataset = minari.load_dataset(dataset_id)
    assert dataset.total_episodes == len(episodes)
    assert dataset.total_steps == sum(len(e) - 1 for e in episodes), "T recorded steps are T - 1 transitions"
    for k, loaded in enumerate(dataset.iterate_episodes()):
        e, t = episodes[k], len(episodes[k]) // 2
        assert np.array_equal(loaded.observations["state"][t], e.states[t])
        assert np.array_equal(loaded.observations["state"][-1], e.states[-1])
        assert np.array_equal(loaded.actions[t], e.applied_actions[t])
        assert np.array_equal(loaded.infos["expert_action"][t], e.actions[t])
        assert bool(loaded.terminations[-1]) == e.fell and bool(loaded.truncations[-1]) != e.fell


def test_app_recordings_export_too_and_existing_outputs_are_kept(tmp_path):
    from app.recorder import SessionRecorder
    from bm_gym.robot import g1
    from bm_gym.sim import MujocoBackend

    backend, layout = MujocoBackend(), StateLayout()
    state = backend.reset(seed=0)
    recorder = SessionRecorder(tmp_path / "session.h5", layout, backend.control_dt)
    stand = np.asarray(g1.DEFAULT_JOINT_POS, dtype=np.float32)
    for _ in range(30):
        recorder.add(state, stand, (0.0, 0.0, 0.0))
        state = backend.step(stand)
    recorder.close()
    out = export_lerobot(tmp_path / "session.h5", tmp_path / "session_lerobot")
    assert json.loads((out / "meta/info.json").read_text())["total_frames"] == 30
    with pytest.raises(ExportError, match="exists"):
        export_lerobot(tmp_path / "session.h5", out)
    assert (out / "meta/info.json").exists(), "a refused export leaves the earlier one as it was"
    assert not any(Path(tmp_path).glob("*.partial"))


def test_export_cli_reports_bad_input_and_missing_files(tmp_path, capsys):
    from tools.data import main

    assert main(["export", "--format", "lerobot", str(tmp_path / "missing.h5"), str(tmp_path / "out")]) == 1
    assert "missing.h5" in capsys.readouterr().err
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    assert main(["export", "--format", "minari", str(tmp_path / "junk.h5"), str(tmp_path / "out")]) == 1
    assert "junk.h5" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert "MINARI_DATASETS_PATH" not in os.environ or os.environ["MINARI_DATASETS_PATH"] != str(tmp_path / "out")
