"""The vector env: N simulations in worker processes, one batched plan, Gymnasium 1.x semantics, SB3 adapter."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import bm_gym  # noqa: F401 - registers the env
from bm_gym.envs import ENV_ID
from bm_gym.envs.vector_env import GuidedG1VectorEnv
from bm_gym.obstacles import Box, Cylinder
from bm_gym.sim import ObstaclePoolFull

FAST = {"control_steps": 2}
OBSTACLES = [[Cylinder(2.0, 0.4, 0.3)], [Box(2.5, -0.5, 0.3, 0.4), Cylinder(3.0, 1.0, 0.2)]]
GOALS = [(5.0, 0.0), None]
ACTIONS = np.array([[0.6, 0.0, 0.1], [0.3, 0.0, -0.3]], np.float32)


def test_make_vec_returns_the_same_observations_as_single_envs_with_the_same_seeds():
    vec = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", **FAST)
    assert isinstance(vec, GuidedG1VectorEnv) and vec.num_envs == 2
    singles = [gym.make(ENV_ID, **FAST) for _ in range(2)]
    obs, _ = vec.reset(seed=3, options={"obstacles": OBSTACLES, "goal": GOALS})
    alone = [env.reset(seed=3 + i, options={"obstacles": OBSTACLES[i], "goal": GOALS[i]})[0]
             for i, env in enumerate(singles)]  # fmt: skip
    assert vec.observation_space.contains(obs)
    for _ in range(6):
        for i in range(2):
            for key in obs:  # plans of batch 2 and batch 1 differ only by float round-off
                np.testing.assert_allclose(obs[key][i], alone[i][key], atol=1e-4, err_msg=key)
        obs, rewards, terminated, truncated, infos = vec.step(ACTIONS)
        alone = [env.step(ACTIONS[i])[0] for i, env in enumerate(singles)]
        assert not terminated.any() and infos["_collisions"].all()
    assert np.abs(obs["robot"][:, 7:9]).max() > 0.005, "the robots set off"
    vec.close()
    for env in singles:
        env.close()


def test_next_step_autoreset_and_partial_reset():
    vec = GuidedG1VectorEnv(num_envs=2, max_episode_s=0.12, **FAST)  # three env steps of 0.04 s
    assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    vec.reset(seed=0)
    for _ in range(2):
        _, _, terminated, truncated, _ = vec.step(ACTIONS)
        assert not truncated.any()
    _, _, _, truncated, infos = vec.step(ACTIONS)
    assert truncated.all() and np.allclose(infos["time"], 0.12)
    obs, rewards, terminated, truncated, infos = vec.step(ACTIONS)  # resets, ignoring the actions
    assert not truncated.any() and np.allclose(infos["time"], 0.0) and np.all(rewards == 0)
    obs, _, _, _, infos = vec.step(ACTIONS)
    assert np.allclose(infos["time"], 0.04)
    obs, infos = vec.reset(options={"reset_mask": np.array([False, True])})
    assert list(infos["_time"]) == [False, True] and infos["time"][1] == 0.0
    vec.close()


def test_each_env_holds_its_own_speed_and_a_partial_reset_restarts_only_its_own():
    from bm_gym.guidance.tasks import SpeedHoldCfg

    vec = GuidedG1VectorEnv(num_envs=2, speed_hold=SpeedHoldCfg(settle_s=0.0), **FAST)
    vec.reset(seed=0)
    for _ in range(3):
        vec.step(np.array([[0.0, 0.5, 0.0], [0.6, 0.0, 0.0]], np.float32))
    speed = [logic.holds.speed.walk for logic in vec.logics]
    np.testing.assert_allclose([speed[0].setpoint, speed[1].setpoint], [[0.0, 0.5], [0.6, 0.0]], atol=1e-6)
    assert vec.logics[0].current_task.vy > 0.5, "asked for more than the walk it falls short of"
    vec.reset(options={"reset_mask": np.array([True, False])})
    assert speed[0].setpoint is None and speed[1].setpoint is not None
    vec.close()


def test_same_step_autoreset_keeps_the_final_observation():
    vec = GuidedG1VectorEnv(num_envs=2, max_episode_s=0.04, autoreset_mode="same_step", **FAST)
    vec.reset(seed=0)
    obs, _, _, truncated, infos = vec.step(ACTIONS)
    assert truncated.all() and infos["_final_obs"].all()
    assert np.allclose(infos["final_info"]["time"], 0.04) and np.allclose(infos["time"], 0.0)
    assert not np.allclose(infos["final_obs"]["robot"], obs["robot"])
    vec.close()


def test_disabled_autoreset_leaves_ended_envs_to_the_caller():
    vec = GuidedG1VectorEnv(num_envs=2, max_episode_s=0.04, autoreset_mode="disabled", **FAST)
    vec.reset(seed=0)
    _, _, _, truncated, infos = vec.step(ACTIONS)
    assert truncated.all() and "final_obs" not in infos
    with pytest.raises(RuntimeError, match=r"envs \[0, 1\] ended and autoreset is disabled"):
        vec.step(ACTIONS)
    _, infos = vec.reset(options={"reset_mask": np.array([True, True])})
    _, _, _, truncated, infos = vec.step(ACTIONS)
    assert truncated.all() and np.allclose(infos["time"], 0.04)
    vec.close()


def test_bad_per_env_options_change_nothing():
    vec = GuidedG1VectorEnv(num_envs=2, **FAST)
    vec.reset(seed=0, options={"obstacles": OBSTACLES})
    too_many = [[Cylinder(3.0 + i, 0.0, 0.2) for i in range(25)], []]
    with pytest.raises(ObstaclePoolFull):
        vec.reset(seed=1, options={"obstacles": too_many})
    assert vec.logics[0].obstacles == tuple(OBSTACLES[0]) and vec.logics[1].obstacles == tuple(OBSTACLES[1])
    with pytest.raises(ValueError, match="lists 3 entries for 2 envs"):
        vec.reset(options={"obstacles": [[], [], []]})
    with pytest.raises(ValueError, match="expected actions for 2 envs"):
        vec.step(ACTIONS[:1])
    vec.close()


def test_sb3_vec_env_adapter_trains_ppo_for_a_few_steps():
    from stable_baselines3 import PPO

    from bm_gym.envs.sb3 import SB3VecEnv

    env = SB3VecEnv(num_envs=2, max_episode_s=0.2, **FAST)
    obs = env.reset()
    assert obs.shape == (2, env.observation_space.shape[0])
    model = PPO("MlpPolicy", env, n_steps=8, batch_size=8, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=16)
    env.step_async(np.zeros((2, 3), np.float32))
    _, rewards, dones, infos = env.step_wait()
    assert rewards.shape == (2,) and len(infos) == 2
    env.close()


def test_per_env_courses_set_start_poses_that_autoresets_keep(tmp_path):
    from bm_gym.course import Course

    courses = [Course(start=(1.0, 0.0, 0.0)), Course(start=(0.0, -2.0, 1.0))]
    vec = GuidedG1VectorEnv(num_envs=2, max_episode_s=0.04, autoreset_mode="same_step", **FAST)
    _, infos = vec.reset(seed=0, options={"course": courses})
    np.testing.assert_allclose(infos["root_xy"], [[1.0, 0.0], [0.0, -2.0]], atol=1e-6)
    _, _, _, truncated, infos = vec.step(ACTIONS)  # every episode ends here and starts again at its course start
    assert truncated.all()
    np.testing.assert_allclose(infos["root_xy"], [[1.0, 0.0], [0.0, -2.0]], atol=1e-6)
    vec.close()
