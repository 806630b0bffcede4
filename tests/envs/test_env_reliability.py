"""Bad env settings and obstacle maps: refused where they are set, and nothing changes half-way."""

import math

import gymnasium as gym
import numpy as np
import pytest

import bm_gym  # noqa: F401 - registers the env
from bm_gym.envs import ENV_ID
from bm_gym.envs.guided_env import GuidedEnvCfg
from bm_gym.guidance.guide import GuidanceCfg
from bm_gym.obstacles import Box, Cylinder
from bm_gym.sim import ObstaclePoolFull


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("control_steps", -3, "GuidedEnvCfg.control_steps must be an integer >= 1, got -3"),
        ("control_steps", 0, "GuidedEnvCfg.control_steps must be an integer >= 1, got 0"),
        ("max_episode_s", math.nan, "GuidedEnvCfg.max_episode_s must be a finite number > 0, got nan"),
        ("torch_threads", -1, "GuidedEnvCfg.torch_threads must be an integer >= 1, got -1"),
        ("waypoint_range", math.inf, "GuidedEnvCfg.waypoint_range must be a finite number > 0, got inf"),
        ("waypoint_range", 0, "GuidedEnvCfg.waypoint_range must be a finite number > 0, got 0"),
        ("obstacle_weight", math.nan, "GuidedEnvCfg.obstacle_weight must be a finite number >= 0, got nan"),
        ("rays", 0, "GuidedEnvCfg.rays must be an integer >= 1"),
        ("command", "fly", "GuidedEnvCfg.command must be 'velocity' or 'waypoint', got 'fly'"),
    ],
)
def test_env_settings_are_refused_when_made(field, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        GuidedEnvCfg(**{field: value})
    with pytest.raises(ValueError, match=field):
        gym.make(ENV_ID, **{field: value})  # the same check through gym.make's keyword overrides


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scale": math.inf}, "GuidanceCfg.scale must be a finite number >= 0, got inf"),
        ({"scale": math.nan}, "GuidanceCfg.scale must be a finite number >= 0, got nan"),
        ({"scale": -1.0}, "GuidanceCfg.scale must be a finite number >= 0, got -1.0"),
        ({"guided_steps": -2}, "GuidanceCfg.guided_steps must be an integer >= 0, got -2"),
        ({"max_grad_norm": 0.0}, "GuidanceCfg.max_grad_norm must be a finite number > 0, got 0.0"),
    ],
)
def test_guidance_settings_are_refused_when_made(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GuidanceCfg(**kwargs)


def test_too_many_obstacles_change_nothing():
    env = gym.make(ENV_ID, control_steps=2)
    env.reset(seed=0, options={"obstacles": [Cylinder(2.0, 0.0, 0.3)]})
    before_sim, before_map = dict(env.unwrapped.backend.obstacles()), env.unwrapped.obstacles
    too_many = [Cylinder(3.0 + i, 1.0, 0.2) for i in range(25)]
    with pytest.raises(ObstaclePoolFull, match="25 cylinder obstacles requested .* at most 24 .* nothing was changed"):
        env.unwrapped.set_obstacles(too_many)
    with pytest.raises(ObstaclePoolFull):
        env.reset(seed=1, options={"obstacles": too_many})
    assert env.unwrapped.backend.obstacles() == before_sim and env.unwrapped.obstacles == before_map
    # 24 of each shape fit; a bigger pool is a setting.
    env.unwrapped.set_obstacles(too_many[:24] + [Box(-3.0 - i, 0.0, 0.2, 0.2) for i in range(24)])
    assert len(env.unwrapped.backend.obstacles()) == 48
    env.close()
    bigger = gym.make(ENV_ID, control_steps=2, obstacle_pool=30)
    bigger.reset(seed=0, options={"obstacles": too_many})
    assert len(bigger.unwrapped.backend.obstacles()) == 25
    obs, *_ = bigger.step(np.zeros(3, dtype=np.float32))
    assert np.isfinite(obs["obstacles"]).all()
    bigger.close()
