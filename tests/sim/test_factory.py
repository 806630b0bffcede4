"""Backends by name, and a clear word where one cannot run here."""

from __future__ import annotations

import importlib.util

import pytest

from bm_gym.data import CollectCfg, Collector
from bm_gym.sim import MujocoBackend, backend_problem, make_backend

ISAACLAB = importlib.util.find_spec("isaaclab") is not None


def test_backends_are_made_by_name_and_unknown_names_are_refused():
    sim = make_backend("mujoco", obstacle_pool=3)
    assert isinstance(sim, MujocoBackend) and sim.obstacle_capacity == {"box": 3, "cylinder": 3}
    sim.close()
    with pytest.raises(ValueError, match="unknown backend 'bullet'"):
        make_backend("bullet")
    with pytest.raises(ValueError, match="isaaclab backend only"):
        make_backend("mujoco", solver="mujoco_warp")
    assert backend_problem("mujoco") is None and "unknown backend" in backend_problem("bullet")


@pytest.mark.skipif(ISAACLAB, reason="Isaac Lab is installed here")
def test_isaaclab_without_isaac_lab_is_refused_before_any_rollout(tmp_path, velocity_dir):
    assert "setup.sh --isaaclab" in backend_problem("isaaclab")
    cfg = CollectCfg(policy=str(velocity_dir), out=str(tmp_path / "d.h5"), episodes=1, episode_s=1.0,
                     backend="isaaclab", stats_history=2, stats_horizon=4)  # fmt: skip
    with pytest.raises(ValueError, match="needs Isaac Lab 3"):
        Collector(cfg).run(progress=False)
    assert not (tmp_path / "d.h5").exists() and not (tmp_path / "d.h5.shards").exists()
