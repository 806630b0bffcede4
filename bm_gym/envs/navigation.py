"""The navigation task higher-level agents learn on: reach a goal through a random obstacle field by choosing
velocity commands; plus the straight-line command baseline they are compared with, and the same task driven
by routed waypoint commands. :func:`make_navigation_env` builds it on one env, :func:`make_navigation_vector_env`
on the batched vector env (the same courses, reward and actions; what ``tools.train_nav`` trains on).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorActionWrapper, VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space
from gymnasium.wrappers import FlattenObservation, RescaleAction
from gymnasium.wrappers import vector as vector_wrappers

from bm_gym.envs import ENV_ID
from bm_gym.envs.guided_env import VELOCITY_HIGH, VELOCITY_LOW
from bm_gym.envs.vector_env import GuidedG1VectorEnv, env_info
from bm_gym.envs.wrappers import (
    NavigationReward,
    NavigationRewardCfg,
    RandomObstacleCourse,
    goal_distance,
    sample_course,
)
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
        return residual_command(self._goal, action)


def residual_command(goal_xy_robot: np.ndarray, action) -> np.ndarray:
    """The velocity command of a residual action: the straight-line command plus ``action * RESIDUAL_RANGE``."""
    a = np.asarray(action, dtype=np.float32)
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise ValueError(f"residual action must be 3 finite values, got {action!r}")
    command = straight_line_command(goal_xy_robot) + np.clip(a, -1, 1) * ResidualOnBaseline.RESIDUAL_RANGE
    return np.clip(command, VELOCITY_LOW, VELOCITY_HIGH).astype(np.float32)


#: The baseline as pure pursuit of the goal itself: turn towards it, walk at up to 0.8 m/s scaled by the
#: cosine of the bearing, slow down within 1 m; no route, so obstacles on the way stop it.
BASELINE_PURSUIT = PursuitCfg(cruise=0.8, turn_gain=1.5, max_yaw_rate=float(VELOCITY_HIGH[2]), slow_radius=1.0,
                              min_speed=0.0, stop_radius=0.0, alignment_power=1)  # fmt: skip


def straight_line_command(goal_xy_robot: np.ndarray) -> np.ndarray:
    """Baseline command (vx m/s, vy m/s, wz rad/s) towards a goal given in the robot frame."""
    distance = math.hypot(float(goal_xy_robot[0]), float(goal_xy_robot[1]))
    speed, yaw_rate = pursuit_command(goal_xy_robot, distance, BASELINE_PURSUIT)
    return np.array([speed, 0.0, yaw_rate])


def to_unit_action(command: np.ndarray) -> np.ndarray:
    """A physical velocity command expressed in the [-1, 1] action space of :func:`make_navigation_env`."""
    return (2 * (command - VELOCITY_LOW) / (VELOCITY_HIGH - VELOCITY_LOW) - 1).astype(np.float32)


def make_navigation_vector_env(num_envs: int, residual: bool = False, **env_cfg: Any) -> VectorEnv:
    """:func:`make_navigation_env` for N envs planned as one batch, in ``same_step`` autoreset mode (for
    :class:`bm_gym.envs.sb3.SB3VecEnv`); env i seeded ``seed + i`` runs the single env seeded ``seed + i``."""
    env = GuidedG1VectorEnv(num_envs, command="velocity", autoreset_mode=AutoresetMode.DISABLED, **env_cfg)
    env = VectorNavigation(env)
    return VectorResidualOnBaseline(env) if residual else vector_wrappers.RescaleAction(env, -1.0, 1.0)


class VectorNavigation(VectorWrapper):
    """:class:`RandomObstacleCourse` and :class:`NavigationReward` for a :class:`GuidedG1VectorEnv`.

    One wrapper, not two, because each new episode needs a new course: the wrapped env runs with autoreset
    disabled, and this wrapper resets ended envs itself with a course drawn from that env's generator,
    presenting ``same_step`` autoreset (``infos["final_obs"]``, ``infos["final_info"]``) to its user.
    """

    def __init__(self, env: GuidedG1VectorEnv, course: dict[str, Any] | None = None,
                 reward: NavigationRewardCfg | None = None) -> None:  # fmt: skip
        super().__init__(env)
        if env.metadata.get("autoreset_mode") != AutoresetMode.DISABLED:
            raise ValueError("VectorNavigation resets ended envs itself: build the vector env with "
                             "autoreset_mode='disabled'")  # fmt: skip
        self.course = {"distance": (4.0, 6.0), "max_heading": math.pi, "count": (2, 5), "clearance": 0.8,
                       **(course or {})}  # fmt: skip
        self.reward_cfg = reward or NavigationRewardCfg()
        self.metadata = {**env.metadata, "autoreset_mode": AutoresetMode.SAME_STEP}
        self._rngs: list[np.random.Generator | None] = [None] * env.num_envs
        self._distance = np.full(env.num_envs, math.inf)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        n = self.num_envs
        options = dict(options or {})
        mask = np.asarray(options.pop("reset_mask", np.ones(n, bool)), dtype=bool)
        seeds = self.env.seeds_for(seed)
        goals, obstacles = [None] * n, [[] for _ in range(n)]
        for i in np.flatnonzero(mask):
            if seeds[i] is not None or self._rngs[i] is None:
                self._rngs[i] = np.random.default_rng(seeds[i])
            goals[i], obstacles[i] = sample_course(self._rngs[i], **self.course)
        given = {key: options.pop(key) for key in ("goal", "obstacles") if key in options}  # explicit ones win
        per_env = {"goal": goals, "obstacles": obstacles}
        for key, value in given.items():
            per_env[key] = [self.env.env_options({key: value}, i)[key] for i in range(n)]
        obs, infos = self.env.reset(seed=seeds, options={**options, **per_env, "reset_mask": mask})
        for i in np.flatnonzero(mask):
            self._distance[i] = goal_distance(self.env.logics[i].goal, env_info(infos, i))
        infos = {**infos, "success": np.zeros(n, bool), "_success": mask.copy()}
        return obs, infos

    def step(self, actions):
        obs, _, terminated, truncated, infos = self.env.step(actions)
        rewards, success = np.zeros(self.num_envs), np.zeros(self.num_envs, bool)
        for i in range(self.num_envs):
            info = env_info(infos, i)
            distance = goal_distance(self.env.logics[i].goal, info)
            rewards[i], success[i] = self.reward_cfg(self._distance[i], distance, info["collisions"], info["fell"])
            self._distance[i] = distance
        terminated = terminated | success
        infos = {**infos, "success": success, "_success": np.ones(self.num_envs, bool)}
        done = terminated | truncated
        if done.any():
            final_obs = {k: v.copy() for k, v in obs.items()}
            final_info: dict[str, Any] = {}
            for i in np.flatnonzero(done):
                final_info = self._add_info(final_info, env_info(infos, i), i)
            obs, reset_infos = self.reset(options={"reset_mask": done})
            kept = {}
            for i in range(self.num_envs):
                kept = self._add_info(kept, env_info(reset_infos if done[i] else infos, i), i)
            infos = {**kept, "final_obs": final_obs, "final_info": final_info, "_final_obs": done.copy(),
                     "_final_info": done.copy()}  # fmt: skip
        return obs, rewards, terminated, truncated, infos


class VectorResidualOnBaseline(VectorActionWrapper):
    """:class:`ResidualOnBaseline` for vector envs: per env, the action corrects the straight-line command."""

    def __init__(self, env: VectorEnv) -> None:
        super().__init__(env)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
        self.action_space = batch_space(self.single_action_space, env.num_envs)
        self._goals = np.zeros((env.num_envs, 2))

    def reset(self, **kwargs):
        obs, infos = self.env.reset(**kwargs)
        self._goals = obs["goal"][:, :2].copy()
        return obs, infos

    def step(self, actions):
        obs, rewards, terminated, truncated, infos = super().step(actions)
        self._goals = obs["goal"][:, :2].copy()
        return obs, rewards, terminated, truncated, infos

    def actions(self, actions: np.ndarray) -> np.ndarray:
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs, 3):
            raise ValueError(f"expected residual actions of shape ({self.num_envs}, 3), got {actions.shape}")
        return np.stack([residual_command(goal, a) for goal, a in zip(self._goals, actions, strict=True)])
