import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import bm_gym  # noqa: F401 - registers the env
from bm_gym.envs import ENV_ID
from bm_gym.envs.guided_env import VELOCITY_HIGH
from bm_gym.guidance.tasks import CombinedTask, NavigateTask, VelocityTask
from bm_gym.obstacles import Box, Cylinder

FAST = {"control_steps": 2}  # 25 Hz env steps keep the checks quick; the code path is the same


@pytest.fixture
def env():
    e = gym.make(ENV_ID, **FAST)
    yield e
    e.close()


def test_registered_at_import_and_passes_gymnasium_check_env():
    env = gym.make(ENV_ID, render_mode="rgb_array", **FAST)
    check_env(env.unwrapped)
    env.reset(seed=0)
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.std() > 0
    env.close()


def test_velocity_command_walks_the_robot_forward(env):
    obs, _ = env.reset(seed=0)
    for _ in range(50):  # 4 s
        obs, reward, terminated, truncated, info = env.step(np.array([0.8, 0.0, 0.0], dtype=np.float32))
        assert not terminated
    assert obs["robot"][7] > 1.0, "world x after 4 s walking forward"
    assert obs["robot"][4] > 0.3, "heading-frame forward velocity"
    assert env.observation_space.contains(obs)


def test_seeding_makes_episodes_reproducible():
    runs = []
    for _ in range(2):
        e = gym.make(ENV_ID, **FAST)
        obs, _ = e.reset(seed=5)
        for _ in range(5):
            obs, *_ = e.step(np.array([0.5, 0.0, 0.3], dtype=np.float32))
        runs.append(obs)
        e.close()
    for key in runs[0]:
        np.testing.assert_array_equal(runs[0][key], runs[1][key])


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (np.array([np.nan, 0.0, 0.0]), "NaN"),
        (np.array([0.1, 0.2]), "shape"),
        (np.zeros((1, 3)), "shape"),
        (np.array([0.0, np.inf, 0.0]), "NaN or inf"),
    ],
)
def test_bad_actions_raise_clear_errors(env, action, message):
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)


def test_out_of_range_commands_are_clipped_to_the_action_space(env):
    env.reset(seed=0)
    env.step(np.array([5.0, -3.0, 9.0]))
    task = env.unwrapped.controller.task
    assert task == VelocityTask(*map(float, [VELOCITY_HIGH[0], -0.5, VELOCITY_HIGH[2]]))


def test_obstacles_from_reset_options_are_placed_avoided_and_seen(env):
    obstacles = [Cylinder(1.5, 0.0, 0.3), Box(0.0, -2.0, 0.3, 0.5)]
    obs, _ = env.reset(seed=0, options={"obstacles": obstacles, "goal": (3.0, 0.0)})
    assert sorted(map(repr, env.unwrapped.backend.obstacles().values())) == sorted(map(repr, obstacles))
    rays = obs["obstacles"]
    assert rays[0] == pytest.approx(1.2, abs=0.06)  # straight ahead: 1.5 m minus the 0.3 m radius
    assert rays[12] == pytest.approx(1.5, abs=0.06)  # 270 degrees (right): box face at y = -1.5
    assert rays[4] == env.unwrapped.cfg.ray_range  # left: free
    np.testing.assert_allclose(obs["goal"], [3.0, 0.0, 1.0], atol=0.05)
    env.step(np.zeros(3, dtype=np.float32))
    assert isinstance(env.unwrapped.controller.task, CombinedTask)

    env.unwrapped.set_obstacles([])  # per-step obstacle maps: cleared while running, robot not reset
    obs, *_ = env.step(np.zeros(3, dtype=np.float32))
    assert env.unwrapped.backend.obstacles() == {}
    assert np.all(obs["obstacles"] == env.unwrapped.cfg.ray_range)
    assert isinstance(env.unwrapped.controller.task, VelocityTask)


def test_bad_reset_options_and_config_fields_are_named(env):
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"goals": (1, 2)})
    with pytest.raises(ValueError, match="finite"):
        env.reset(options={"goal": (float("nan"), 0.0)})
    with pytest.raises(TypeError, match="Cylinder or Box"):
        env.reset(options={"obstacles": [(1.0, 2.0, 0.3)]})
    with pytest.raises(TypeError, match="unknown GuidedEnvCfg fields"):
        gym.make(ENV_ID, control_step=3)


def test_the_joystick_holds_are_opt_in_and_see_pushes_between_commands():
    """With speed_hold a walk slower than its command is asked for more (as in the app); a push anywhere in the
    env step restarts the hold's settling; reset starts afresh; off by default, the command passes as it is."""
    from bm_gym.guidance.tasks import HeadingHoldCfg, SpeedHoldCfg

    raw = gym.make(ENV_ID, **FAST)
    raw.reset(seed=0)
    raw.step(np.array([0.0, 0.5, 0.0], np.float32))
    assert raw.unwrapped.logic.current_task == VelocityTask(0.0, 0.5, 0.0)
    raw.close()

    env = gym.make(ENV_ID, speed_hold=SpeedHoldCfg(settle_s=0.0), heading_hold=HeadingHoldCfg(), **FAST)
    env.reset(seed=0)
    for _ in range(10):
        env.step(np.array([0.0, 0.5, 0.0], np.float32))
    hold = env.unwrapped.logic.holds.speed.walk
    assert env.unwrapped.logic.current_task.vy > 0.5 and hold.boost[1] > 0.0, "the shipped default does not sidestep"
    settled_at = hold._settled_at
    env.unwrapped.backend.push(np.array([0.3, 0.0, 0.0]), np.zeros(3))  # flags the first control step's state only
    env.step(np.array([0.0, 0.5, 0.0], np.float32))
    command_time = env.unwrapped.backend.state().time
    env.step(np.array([0.0, 0.5, 0.0], np.float32))  # the hold sees that push at this command
    assert settled_at < command_time and hold._settled_at == pytest.approx(command_time)
    env.reset(seed=1)
    assert hold.setpoint is None and env.unwrapped.logic.holds.heading.heading is None
    env.close()
    with pytest.raises(ValueError, match="speed_hold must be None with command='waypoint'"):
        gym.make(ENV_ID, command="waypoint", speed_hold=SpeedHoldCfg())
    with pytest.raises(ValueError, match="heading_hold must be a HeadingHoldCfg or None"):
        gym.make(ENV_ID, heading_hold=True)


def test_waypoint_command_in_the_robot_frame_becomes_a_world_goal():
    env = gym.make(ENV_ID, command="waypoint", **FAST)
    env.reset(seed=0)
    for _ in range(10):
        env.step(np.array([0.0, 1.0], dtype=np.float32))  # 1 m to the robot's left, re-issued every step
    state = env.unwrapped.backend.state()
    task = env.unwrapped.controller.task
    assert isinstance(task, NavigateTask) and task.obstacles == ()
    assert math.hypot(task.x - state.root_pos[0], task.y - state.root_pos[1]) == pytest.approx(1.0, abs=0.1)
    env.unwrapped.set_obstacles([Cylinder(0.0, 2.0, 0.3)])  # the route now goes round the obstacle
    env.step(np.array([3.0, 0.0], dtype=np.float32))
    task = env.unwrapped.controller.task
    assert isinstance(task, NavigateTask) and task.obstacles == (Cylinder(0.0, 2.0, 0.3),)
    env.close()


def test_falling_terminates_the_episode(env):
    env.reset(seed=0)
    env.unwrapped.backend.push(np.array([6.0, 0.0, 0.0]), np.zeros(3))  # a shove no walker survives
    terminated = False
    for _ in range(50):
        *_, terminated, truncated, info = env.step(np.zeros(3, dtype=np.float32))
        if terminated:
            break
    assert terminated and info["fell"]


def test_sync_vector_env_steps_a_batch():
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(ENV_ID, **FAST) for _ in range(2)])
    obs, _ = envs.reset(seed=[1, 2])
    assert obs["robot"].shape == (2, 11)
    obs, reward, terminated, truncated, _ = envs.step(np.zeros((2, 3), dtype=np.float32))
    assert reward.shape == (2,) and obs["obstacles"].shape == (2, 16)
    envs.close()


def test_a_walled_in_waypoint_is_reported_and_the_robot_stands():
    from bm_gym.eval.scenarios import walled_in_course

    env = gym.make(ENV_ID, command="waypoint", waypoint_frame="world", control_steps=10)
    _, info = env.reset(seed=0, options={"obstacles": walled_in_course((3.0, 0.0))})
    assert info["no_route"] is False  # nothing commanded yet
    for _ in range(5):  # 1 s
        _, _, terminated, _, info = env.step(np.array([3.0, 0.0], np.float32))
    assert info["no_route"] and not terminated and np.hypot(*info["root_xy"]) < 0.15
    _, _, _, _, info = env.step(np.array([-2.0, 1.0], np.float32))  # a reachable waypoint
    assert not info["no_route"]
    env.close()


def test_a_course_file_sets_start_pose_obstacles_and_goal(tmp_path):
    from bm_gym.course import Course, Goal

    course = Course((Cylinder(2.0, 3.0, 0.3),), (Goal(1.0, 4.0),), start=(1.0, 2.0, math.pi / 2))
    path = course.save(tmp_path / "c.yaml")
    env = gym.make(ENV_ID, **FAST)
    obs, info = env.reset(seed=0, options={"course": str(path)})
    assert np.allclose(info["root_xy"], [1.0, 2.0], atol=1e-6) and np.allclose(obs["robot"][-2:], [0, 1], atol=1e-6)
    assert env.unwrapped.goal == (1.0, 4.0) and env.unwrapped.obstacles == (Cylinder(2.0, 3.0, 0.3),)
    np.testing.assert_allclose(obs["goal"], [2.0, 0.0, 1.0], atol=1e-5)  # 2 m straight ahead
    _, info = env.reset(seed=0, options={"course": str(path), "goal": (0.0, 0.0)})  # explicit options win
    assert env.unwrapped.goal == (0.0, 0.0)
    with pytest.raises(ValueError, match="goals\\[0\\]"):
        env.reset(options={"course": {"format": "bm_gym.course", "version": 1, "goals": [{"x": 1.0}]}})
    env.close()


def test_the_env_command_probe_reports_each_omni_command_per_setting(capsys):
    """tools.eval_env_commands: one JSON line per (setting, command, seed) and a summary row for each."""
    import json

    from tools.eval_env_commands import main

    assert main(["--seeds", "0", "--settings", "holds", "--duration-s", "0.6", "--settle-s", "0.2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    runs = [json.loads(line) for line in lines if line.startswith("{")]
    assert [r["command"] for r in runs] == ["backward 0.4", "sideways 0.5", "forward 1.0"]
    assert all(r["setting"] == "holds" and not r["fell"] and math.isfinite(r["speed"]) for r in runs)
    assert sum(line.startswith("holds ") for line in lines) == 3
    with pytest.raises(SystemExit):  # nothing measured after the settling time: refused, not a NaN
        main(["--duration-s", "1.0", "--settle-s", "2.0"])
    assert "--settle-s (2.0) must be" in capsys.readouterr().err
