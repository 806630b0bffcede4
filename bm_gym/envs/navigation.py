"""The navigation task higher-level agents learn on: reach a goal through a random obstacle field by choosing
velocity commands; plus the straight-line command baseline they are compared with, and the same task driven
by routed waypoint commands.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import FlattenObservation, RescaleAction

from bm_gym.envs import ENV_ID
from bm_gym.envs.guided_env import VELOCITY_HIGH, VELOCITY_LOW
from bm_gym.envs.wrappers import NavigationReward, RandomObstacleCourse
from bm_gym.guidance.routing import PursuitCfg, pursuit_command


def make_waypoint_navigation_env(**env_cfg: Any) -> gym.Env:
    """The same courses and reward as :func:`make_navigation_env`, driven by world-frame waypoint commands
    (the routed ``NavigateTask`` inside the env); sending ``env.unwrapped.goal`` needs no agent at all.
    """
    waypoints = {"command": "waypoint", "waypoint_frame": "world", "waypoint_range": 8.0}  # goals lie 4-6 m away
    return NavigationReward(RandomObstacleCourse(gym.make(ENV_ID, **env_cfg, **waypoints)))


def make_navigation_env(flatten: bool = True, residual: bool = False, **env_cfg: Any) -> gym.Env:
    """Velocity-command env with random courses and navigation reward; actions in [-1, 1] for SB3.

    ``residual``: the action corrects the straight-line baseline command instead of replacing it.
    """
    env = gym.make(ENV_ID, command="velocity", **env_cfg)
    env = NavigationReward(RandomObstacleCourse(env))
    env = ResidualOnBaseline(env) if residual else RescaleAction(env, np.float32(-1.0), np.float32(1.0))
    return FlattenObservation(env) if flatten else env


class ResidualOnBaseline(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """Action in [-1, 1]^3 scaled by ``RESIDUAL_RANGE`` and added to the straight-line baseline command.

    An untrained agent (mean action 0) is the baseline; learning only has to find the detours.
    """

    RESIDUAL_RANGE = np.array([0.6, 0.5, 1.0], dtype=np.float32)

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ActionWrapper.__init__(self, env)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
        self._goal = np.zeros(2)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._goal = obs["goal"][:2]
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        self._goal = obs["goal"][:2]
        return obs, reward, terminated, truncated, info

    def action(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, dtype=np.float32)
        if a.shape != (3,) or not np.all(np.isfinite(a)):
            raise ValueError(f"residual action must be 3 finite values, got {action!r}")
        command = straight_line_command(self._goal) + np.clip(a, -1, 1) * self.RESIDUAL_RANGE
        return np.clip(command, VELOCITY_LOW, VELOCITY_HIGH).astype(np.float32)


#: The baseline as pure pursuit of the goal itself: turn towards it, walk at up to 0.8 m/s scaled by the
#: cosine of the bearing, slow down within 1 m; no route, so obstacles on the way stop it.
BASELINE_PURSUIT = PursuitCfg(cruise=0.8, turn_gain=1.5, max_yaw_rate=float(VELOCITY_HIGH[2]), slow_radius=1.0,
                              stop_radius=0.0, alignment_power=1)  # fmt: skip


def straight_line_command(goal_xy_robot: np.ndarray) -> np.ndarray:
    """Baseline command (vx m/s, vy m/s, wz rad/s) towards a goal given in the robot frame."""
    distance = math.hypot(float(goal_xy_robot[0]), float(goal_xy_robot[1]))
    speed, yaw_rate = pursuit_command(goal_xy_robot, distance, BASELINE_PURSUIT)
    return np.array([speed, 0.0, yaw_rate])


def to_unit_action(command: np.ndarray) -> np.ndarray:
    """A physical velocity command expressed in the [-1, 1] action space of :func:`make_navigation_env`."""
    return (2 * (command - VELOCITY_LOW) / (VELOCITY_HIGH - VELOCITY_LOW) - 1).astype(np.float32)
