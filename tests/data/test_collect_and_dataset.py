import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from bm_gym.data import CollectCfg, Collector, DatasetError, ExpertWindowDataset, StateLayout, validate
from bm_gym.data.dataset import cut_window, cut_windows
from bm_gym.data.hdf5 import load_episodes

REPO = Path(__file__).resolve().parents[2]


def test_collected_file_validates_and_stores_names_and_metadata(small_dataset):
    summary = validate(small_dataset)
    assert summary.episodes == 4 and summary.steps == 4 * 200 and summary.fallen == 0
    with h5py.File(small_dataset) as f:
        layout = StateLayout.from_json(f.attrs["state_layout"])
        assert layout.joint_names[0] == "left_hip_pitch_joint" and "torso_link" in layout.body_names
        assert '"joint_names"' in f.attrs["policy_conventions"]
        assert "foot_friction" in f.attrs["collect_cfg"]
        episode = f["episodes/000000"]
        # Exploration noise: what was applied differs from what the expert commanded in noisy episodes.
        assert episode["actions"].shape == episode["applied_actions"].shape == (200, 29)


def test_collection_is_reproducible_per_episode(small_dataset, velocity_dir, tmp_path):
    cfg = CollectCfg(
        policy=str(velocity_dir), out=str(tmp_path / "again.h5"), episodes=2, episode_s=4.0, workers=1, seed=7
    )
    Collector(cfg).run(progress=False)
    first, _, _ = load_episodes(small_dataset)
    again, _, _ = load_episodes(tmp_path / "again.h5")
    np.testing.assert_array_equal(first[1].states, again[1].states)


def test_windows_have_documented_shapes_and_are_canonical(small_dataset):
    ds = ExpertWindowDataset(small_dataset, history=4, horizon=16, normalize=False, keep_push_futures=True)
    assert len(ds) == 4 * (200 - 4 - 16)
    history, future = ds[10]
    s, a = ds.layout.dim, ds.layout.action_dim
    assert history.shape == (5, s + a) and future.shape == (16, s + a)
    xy = ds.layout.fields["root_pos_xy"]
    np.testing.assert_allclose(history[4, xy].numpy(), 0.0, atol=1e-6)  # present frame is the origin
    np.testing.assert_array_equal(history[4, s:].numpy(), 0.0)  # present action not yet chosen
    episode, t = ds.index[10]
    row = ds.episodes[episode].start + t
    np.testing.assert_allclose(future[0, s:].numpy(), ds.actions[row], atol=1e-6)  # a_t
    normalized = ExpertWindowDataset(small_dataset)
    h, fut = normalized[10]
    assert abs(float(fut.mean())) < 2.0 and np.isfinite(h.numpy()).all()


def test_pushes_are_recorded_and_no_window_asks_the_model_to_foresee_one(small_dataset):
    """Random pushes (every 1-3 s) are marked per step; windows whose future holds one are left out, the windows
    that start after it (the kick in their present state) are kept."""
    from bm_gym.data.dataset import window_starts

    episodes, _, _ = load_episodes(small_dataset)
    for e in episodes:
        assert e.pushed is not None and 1 <= e.pushed.sum() <= 4
        starts = window_starts(e, 4, 16)
        assert not any(e.pushed[t : t + 16].any() for t in starts)
        first = int(np.argmax(e.pushed))
        assert first + 1 in starts or first + 1 >= len(e) - 16, "the step after a push starts a window again"
        np.testing.assert_array_equal(window_starts(e, 4, 16, keep_push_futures=True), np.arange(4, len(e) - 16))
    kept = ExpertWindowDataset(small_dataset, normalize=False)
    assert len(kept) == sum(len(window_starts(e, 4, 16)) for e in episodes) < 4 * (200 - 4 - 16)


def test_a_batch_is_its_items_stacked(small_dataset):
    """The vectorized batch cut gives exactly the windows one at a time would, mirrored ones included."""
    ds = ExpertWindowDataset(small_dataset, mirror=True)
    items = np.array([0, 5, len(ds) // 2 + 3, len(ds) - 1, 7])
    history, future = ds.batch(items)
    for k, item in enumerate(items):
        one_history, one_future = ds[int(item)]
        np.testing.assert_array_equal(history[k].numpy(), one_history.numpy())
        np.testing.assert_array_equal(future[k].numpy(), one_future.numpy())
    episode, t = ds.index[3]
    single = cut_window(load_episodes(small_dataset)[0][episode], int(t), ds.history, ds.horizon, ds.layout)
    flat = cut_windows(ds.states, ds.actions, np.array([ds.episodes[episode].start + t]), ds.history, ds.horizon,
                       ds.layout)  # fmt: skip
    np.testing.assert_array_equal(single[0], flat[0][0])
    with pytest.raises(IndexError, match="out of range"):
        ds.batch(np.array([len(ds)]))


def test_train_and_val_splits_are_disjoint(small_dataset):
    train = ExpertWindowDataset(small_dataset, split="train", val_fraction=0.5)
    val = ExpertWindowDataset(small_dataset, split="val", val_fraction=0.5)
    assert {e.index for e in train.episodes}.isdisjoint({e.index for e in val.episodes})
    assert len(train) + len(val) == len(ExpertWindowDataset(small_dataset))


def test_validate_names_the_problem(small_dataset, tmp_path):
    with pytest.raises(DatasetError, match="no dataset"):
        validate(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_bytes(b"\x00" * 1000)
    with pytest.raises(DatasetError, match="not a readable HDF5"):
        validate(tmp_path / "junk.h5")
    broken = tmp_path / "nan.h5"
    broken.write_bytes(small_dataset.read_bytes())
    with h5py.File(broken, "a") as f:
        f["episodes/000001/states"][3, 5] = np.nan
    with pytest.raises(DatasetError, match="episode 000001 states contains NaN"):
        validate(broken)


def test_resume_refuses_other_settings(small_dataset, velocity_dir):
    cfg = CollectCfg(policy=str(velocity_dir), out=str(small_dataset), episodes=4, episode_s=8.0, seed=7)
    with pytest.raises(ValueError, match="episode_s"):
        Collector(cfg).run(progress=False)


def test_kill_9_during_collection_then_rerun_loses_no_finished_episode(tmp_path, velocity_dir):
    out = tmp_path / "killed.h5"
    cmd = [sys.executable, "-m", "tools.data", "collect", "--policy", str(velocity_dir), "--out", str(out),
           "--episodes", "12", "--episode-s", "3", "--workers", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    shards = Path(str(out) + ".shards")
    deadline = time.monotonic() + 120
    while len(list(shards.glob("episode_*.h5"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: main process and workers
    proc.wait()
    finished = sorted(p.name for p in shards.glob("episode_*.h5"))
    assert 3 <= len(finished) < 12, "kill should land mid-collection"
    for shard in finished:  # every shard that exists is complete and readable
        with h5py.File(shards / shard) as f:
            assert f["episode"].attrs["length"] == len(f["episode/states"])
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    summary = validate(out)
    assert summary.episodes == 12
    episodes, _, _ = load_episodes(out, include_fallen=True)
    assert {f"episode_{e.index:06d}.h5" for e in episodes} >= set(finished)
