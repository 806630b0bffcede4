import json
import math

import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from bm_gym.envs.navigation import make_navigation_env, straight_line_command, to_unit_action
from bm_gym.envs.wrappers import sample_course
from bm_gym.obstacles import Box, Cylinder

FAST = {"control_steps": 2}


def test_navigation_env_passes_sb3_check_env():
    env = make_navigation_env(**FAST)
    sb3_check_env(env)
    env.close()


@pytest.mark.parametrize("residual", [False, True])
def test_navigation_env_passes_gymnasium_check_env(residual):
    from gymnasium.utils.env_checker import check_env

    env = make_navigation_env(residual=residual, **FAST)
    check_env(env)  # with the whole wrapper stack: every wrapper records its constructor arguments
    env.close()


def test_courses_are_seeded_and_keep_start_and_goal_clear():
    for seed in range(30):
        goal, obstacles = sample_course(np.random.default_rng(seed))
        again, same = sample_course(np.random.default_rng(seed))
        assert goal == again and obstacles == same
        assert 4.0 <= math.hypot(*goal) <= 6.0
        assert 2 <= len(obstacles) <= 5
        for o in obstacles:
            reach = o.radius if isinstance(o, Cylinder) else o.bounding_radius
            assert isinstance(o, (Cylinder, Box))
            assert math.hypot(o.x, o.y) > reach + 0.3
            assert math.hypot(o.x - goal[0], o.y - goal[1]) > reach + 0.3


def test_course_wrapper_seeds_reset_and_reward_counts_progress():
    env = make_navigation_env(flatten=False, **FAST)
    obs, info = env.reset(seed=4)
    goal = env.unwrapped.goal
    assert goal == sample_course(np.random.default_rng(4))[0]
    total, expected, steps = 0.0, 0.0, 0
    for _ in range(40):
        command = straight_line_command(obs["goal"][:2])
        obs, reward, terminated, truncated, info = env.step(to_unit_action(command))
        total, steps = total + reward, steps + 1
        expected -= 0.01 + 0.5 * (info["collisions"] > 0) + 10.0 * info["fell"] - 10.0 * info["success"]
        if terminated:
            break
    start = math.hypot(*goal)
    now = math.hypot(goal[0] - info["root_xy"][0], goal[1] - info["root_xy"][1])
    assert now < start - 0.5, "the baseline makes progress towards the goal"
    assert total == pytest.approx(expected + start - now, abs=1e-6), "progress telescopes to the distance gained"


def test_arrival_terminates_with_success():
    env = make_navigation_env(flatten=False, **FAST)
    env.reset(seed=0, options={"goal": (0.1, 0.0), "obstacles": []})
    _, reward, terminated, _, info = env.step(to_unit_action(np.zeros(3)))
    assert terminated and info["success"] and reward > 5


def test_straight_line_baseline_turns_towards_the_goal_and_walks_when_aligned():
    ahead = straight_line_command(np.array([3.0, 0.0]))
    assert ahead[0] == pytest.approx(0.8) and ahead[2] == pytest.approx(0.0)
    left = straight_line_command(np.array([0.0, 3.0]))
    assert left[0] == pytest.approx(0.0, abs=1e-6) and left[2] > 0.9
    np.testing.assert_allclose(to_unit_action(np.array([1.0, 0.5, 1.0])), [1, 1, 1])


def test_navigate_mode_sends_the_course_goal_as_a_routed_world_waypoint():
    from bm_gym.envs.navigation import make_waypoint_navigation_env
    from bm_gym.guidance.tasks import NavigateTask

    env = make_waypoint_navigation_env(control_steps=2)
    obs, _ = env.reset(seed=10_000)
    goal = env.unwrapped.goal
    assert math.hypot(*goal) > 4.0  # courses put goals 4-6 m away; the waypoint box is +-8 m, so none clip
    env.step(np.asarray(goal, dtype=np.float32))
    task = env.unwrapped.controller.task
    assert isinstance(task, NavigateTask) and (task.x, task.y) == pytest.approx(goal, abs=1e-5)
    env.close()


@pytest.mark.parametrize("residual", [False, True])
def test_vector_navigation_matches_single_navigation_envs_with_the_same_seeds(residual):
    from bm_gym.envs.navigation import make_navigation_vector_env

    vec = make_navigation_vector_env(2, residual=residual, **FAST)
    singles = [make_navigation_env(flatten=False, residual=residual, **FAST) for _ in range(2)]
    obs, _ = vec.reset(seed=7)
    alone = [env.reset(seed=7 + i)[0] for i, env in enumerate(singles)]
    np.testing.assert_allclose(obs["goal"], np.stack([o["goal"] for o in alone]), atol=1e-6)
    assert [logic.goal for logic in vec.unwrapped.logics] == [env.unwrapped.goal for env in singles]
    assert [logic.obstacles for logic in vec.unwrapped.logics] == [env.unwrapped.obstacles for env in singles]
    actions = np.array([[0.3, 0.0, -0.2], [-0.5, 0.2, 0.4]], np.float32)
    for _ in range(3):
        obs, rewards, terminated, _, infos = vec.step(actions)
        for i, env in enumerate(singles):
            single_obs, reward, *_ = env.step(actions[i])
            np.testing.assert_allclose(obs["robot"][i], single_obs["robot"], atol=1e-4)
            assert rewards[i] == pytest.approx(reward, abs=1e-4)
    assert vec.single_action_space == singles[0].action_space
    vec.close()
    for env in singles:
        env.close()


def test_vector_navigation_resets_an_arrived_env_with_a_new_course_in_the_same_step():
    from bm_gym.envs.navigation import make_navigation_vector_env

    vec = make_navigation_vector_env(2, **FAST)
    assert vec.metadata["autoreset_mode"].name == "SAME_STEP"
    vec.reset(seed=0, options={"goal": [(0.1, 0.0), (5.0, 0.0)]})
    obs, rewards, terminated, truncated, infos = vec.step(to_unit_action(np.zeros((2, 3))))
    assert list(terminated) == [True, False] and list(infos["_final_obs"]) == [True, False]
    assert infos["final_info"]["success"][0] and rewards[0] > 5 and not infos["success"][1]
    new_goal = vec.unwrapped.logics[0].goal
    assert 4.0 <= math.hypot(*new_goal) <= 6.0, "a new random course"
    assert obs["goal"][0, 2] == 1.0 and infos["time"][0] == 0.0 and infos["time"][1] > 0
    vec.close()


def test_sb3_trains_on_the_vector_navigation_env():
    from stable_baselines3 import PPO

    from bm_gym.envs.navigation import make_navigation_vector_env
    from bm_gym.envs.sb3 import SB3VecEnv

    env = SB3VecEnv(make_navigation_vector_env(2, residual=True, max_episode_s=0.2, **FAST))
    assert env.observation_space.shape == (30,) and env.action_space.shape == (3,)
    model = PPO("MlpPolicy", env, n_steps=8, batch_size=8, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=16)
    with pytest.raises(ValueError, match="same_step"):
        SB3VecEnv(make_navigation_vector_env(2, **FAST).unwrapped)
    env.close()


def test_sb3_adapter_reports_the_ended_episode_info_and_its_success():
    from bm_gym.envs.navigation import make_navigation_vector_env
    from bm_gym.envs.sb3 import SB3VecEnv

    env = SB3VecEnv(make_navigation_vector_env(2, max_episode_s=0.08, **FAST))  # 2 env steps per episode
    env.reset()
    for _ in range(2):
        env.step_async(np.zeros((2, 3), np.float32))
        _, _, dones, infos = env.step_wait()
    assert dones.all()
    for info, reset_info in zip(infos, env.reset_infos, strict=True):
        assert info["time"] == pytest.approx(0.08) and reset_info["time"] == 0.0, "the ended episode's info"
        assert info["is_success"] is False and info["TimeLimit.truncated"]
    env.close()


def test_validation_keeps_the_best_agent_and_its_score_across_a_resume(tmp_path):
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    from bm_gym.envs.navigation import make_navigation_vector_env
    from bm_gym.envs.sb3 import SB3VecEnv
    from tools.train_nav import Validation

    make = lambda: VecMonitor(SB3VecEnv(make_navigation_vector_env(2, residual=True, max_episode_s=0.08, **FAST)))  # noqa: E731
    train, held_out = make(), make()
    model = PPO("MlpPolicy", train, n_steps=4, batch_size=8, n_epochs=1, seed=0, device="cpu")
    validation = Validation(held_out, tmp_path, seed=7, every_calls=2)
    model.learn(8, callback=validation)
    best = json.loads((tmp_path / "best.json").read_text())
    assert (tmp_path / "best.zip").exists() and best["episodes"] == 2 and best["seed"] == 7
    assert best["mean_reward"] == validation.best_mean_reward
    with np.load(tmp_path / "validation" / "evaluations.npz") as log:
        evaluations = len(log["timesteps"])
        assert evaluations == 2 and log["results"].shape == (2, 2) and log["successes"].shape == (2, 2)
        # Both fall in PPO's first rollout (4 steps of 2 envs), before any update: the same agent on the
        # same reseeded layouts scores the same.
        assert np.array_equal(log["results"][0], log["results"][1])
    resumed = Validation(held_out, tmp_path, seed=7, every_calls=2)
    assert resumed.best_mean_reward == best["mean_reward"], "a resumed run keeps the best score"
    assert len(resumed.evaluations_timesteps) == evaluations, "and the history"
    train.close()
    held_out.close()
