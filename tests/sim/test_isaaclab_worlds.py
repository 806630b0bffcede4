"""Several robots in one Isaac Lab backend, one Newton world each (MuJoCo-Warp kernels; a GPU's path, here on
Warp's CPU device). Runs in a spawned process: Isaac Lab's simulation is one per process, and the contract
suite may hold one in this one."""

from __future__ import annotations

import importlib.util
import multiprocessing

import numpy as np
import pytest

from bm_gym.sim.isaaclab_backend import IsaacLabBackendCfg

ISAACLAB = importlib.util.find_spec("isaaclab") is not None


def test_several_worlds_need_the_mujoco_warp_solver():
    with pytest.raises(ValueError, match="needs solver='mujoco_warp'"):
        IsaacLabBackendCfg(num_envs=2)
    with pytest.raises(ValueError, match="num_envs must be a positive integer"):
        IsaacLabBackendCfg(num_envs=0, solver="mujoco_warp")


def _two_worlds(results) -> None:
    from bm_gym.obstacles import Box
    from bm_gym.robot import g1
    from bm_gym.sim import RootPose
    from bm_gym.sim.isaaclab_backend import IsaacLabBackend

    stand = np.array(g1.DEFAULT_JOINT_POS)
    sim = IsaacLabBackend(IsaacLabBackendCfg(num_envs=2, solver="mujoco_warp", obstacle_pool=2))
    seen = {}
    seen["reset"] = [sim.reset(RootPose(pos=(0.0, 0.0, 0.76)), env=0).root_pos.tolist(),
                     sim.reset(RootPose(pos=(1.0, 2.0, 0.76)), env=1).root_pos.tolist()]  # fmt: skip
    try:
        sim.step(stand)
    except RuntimeError as err:
        seen["step_error"] = str(err)
    try:
        sim.step_all(stand[None])
    except ValueError as err:
        seen["shape_error"] = str(err)
    sim.push(np.array([1.0, 0.0, 0.0]), np.zeros(3), env=0)  # robot 0 only
    states = sim.step_all(np.stack([stand, stand]))
    seen["vx"] = [float(s.root_lin_vel_w[0]) for s in states]
    sim.reset(env=0)
    sim.add_obstacle(Box(x=1.0, y=2.0, half_x=0.3, half_y=0.3), env=1)  # onto robot 1 only
    states = sim.step_all(np.stack([stand, stand]))
    seen["contact"] = [s.obstacle_contact for s in states]
    seen["obstacles"] = [len(sim.obstacles(env=0)), len(sim.obstacles(env=1))]
    sim.clear_obstacles(env=1)
    sim.reset(env=1)
    for _ in range(10):
        states = sim.step_all(np.stack([stand, stand]))
    seen["heights"] = [float(s.root_pos[2]) for s in states]
    seen["time"] = [s.time for s in states]
    seen["feet"] = [s.foot_contact.tolist() for s in states]
    sim.close()
    results.put(seen)


@pytest.mark.skipif(not ISAACLAB, reason="Isaac Lab 3 not importable here (bash scripts/setup.sh --isaaclab)")
def test_robots_in_separate_worlds_step_together_and_keep_their_own_obstacles_and_pushes():
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_two_worlds, args=(results,))
    child.start()
    seen = results.get(timeout=600)
    child.join(timeout=60)
    assert child.exitcode == 0
    np.testing.assert_allclose(seen["reset"][0], [0.0, 0.0, 0.76], atol=1e-4)  # each in its own world's frame
    np.testing.assert_allclose(seen["reset"][1], [1.0, 2.0, 0.76], atol=1e-4)
    assert "step_all" in seen["step_error"] and "(2, 29)" in seen["shape_error"]
    assert seen["contact"] == [False, True], "the obstacle stands in world 1 only"
    assert seen["vx"][0] > 0.5 and abs(seen["vx"][1]) < 0.3, "the push reached robot 0 only"
    assert seen["obstacles"] == [0, 1]
    assert all(0.7 < h < 0.85 for h in seen["heights"]), seen["heights"]
    assert seen["time"][0] == pytest.approx(0.22) and seen["time"][1] == pytest.approx(0.2)  # each since its reset
    assert all(all(feet) for feet in seen["feet"])


def test_batched_collection_needs_the_isaaclab_backend(tmp_path, velocity_dir):
    from bm_gym.data import CollectCfg

    with pytest.raises(ValueError, match="envs_per_worker"):
        CollectCfg(policy=str(velocity_dir), out=str(tmp_path / "d.h5"), envs_per_worker=2)


@pytest.mark.skipif(not ISAACLAB, reason="Isaac Lab 3 not importable here (bash scripts/setup.sh --isaaclab)")
def test_a_worker_collects_episodes_in_several_worlds_at_once(tmp_path, velocity_dir):
    from bm_gym.data import CollectCfg, Collector
    from bm_gym.data.hdf5 import load_episodes

    out = tmp_path / "batched.h5"
    cfg = CollectCfg(policy=str(velocity_dir), out=str(out), episodes=3, episode_s=1.0, workers=1, seed=3,
                     backend="isaaclab", envs_per_worker=2, stats_history=2, stats_horizon=4)  # fmt: skip
    assert Collector(cfg).run(progress=False) == 3  # a batch of two worlds, then one with a world left idle
    episodes, _, _ = load_episodes(out, include_fallen=True)
    assert sorted(e.index for e in episodes) == [0, 1, 2]
    assert all(len(e) == 50 and not e.fell for e in episodes)
    assert len({e.seed for e in episodes}) == 3
    assert not np.allclose(episodes[0].states, episodes[1].states)  # separate worlds, separate schedules
