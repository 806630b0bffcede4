"""Wrappers for ``BeyondMimicGuided-G1-v0``, one job each. Flatten Dict observations for SB3 with Gymnasium's own
``gymnasium.wrappers.FlattenObservation``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from bm_gym.obstacles import Box, Cylinder, Obstacle


class RandomObstacleCourse(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Each reset draws a goal ``distance`` m away and obstacles around the straight path to it, from the
    env's seeded generator; passes them through ``reset(options=...)`` (explicit options win).

    Obstacles keep ``clearance`` m from the start and the goal, so every course is solvable.
    """

    def __init__(self, env: gym.Env, distance: tuple[float, float] = (4.0, 6.0), max_heading: float = math.pi,
                 obstacles: tuple[int, int] = (2, 5), clearance: float = 0.8) -> None:  # fmt: skip
        # Recorded so that gymnasium can rebuild the wrapper stack (env specs, check_env).
        gym.utils.RecordConstructorArgs.__init__(self, distance=distance, max_heading=max_heading, obstacles=obstacles,
                                                 clearance=clearance)  # fmt: skip
        gym.Wrapper.__init__(self, env)
        self.distance, self.max_heading, self.obstacles, self.clearance = distance, max_heading, obstacles, clearance
        self._rng: np.random.Generator | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        goal, obstacles = sample_course(self._rng, self.distance, self.max_heading, self.obstacles, self.clearance)
        return self.env.reset(seed=seed, options={"goal": goal, "obstacles": obstacles, **(options or {})})


def sample_course(rng: np.random.Generator, distance=(4.0, 6.0), max_heading=math.pi, count=(2, 5),
                  clearance=0.8) -> tuple[tuple[float, float], list[Obstacle]]:  # fmt: skip
    """A goal and obstacles scattered along (and mostly on) the straight line from the origin to it."""
    d, heading = rng.uniform(*distance), rng.uniform(-max_heading, max_heading)
    goal = (d * math.cos(heading), d * math.sin(heading))
    along_dir = np.array([math.cos(heading), math.sin(heading)])
    side_dir = np.array([-along_dir[1], along_dir[0]])
    obstacles: list[Obstacle] = []
    for i in range(int(rng.integers(count[0], count[1] + 1))):
        size = rng.uniform(0.2, 0.45)
        lateral = rng.uniform(-0.2, 0.2) if i == 0 else rng.uniform(-1.2, 1.2)  # the first one blocks the path
        along = rng.uniform(clearance + size, d - clearance - size)
        x, y = along * along_dir + lateral * side_dir
        if rng.random() < 0.5:
            obstacles.append(Cylinder(float(x), float(y), radius=float(size), height=1.0))
        else:
            obstacles.append(Box(float(x), float(y), float(size), float(rng.uniform(0.15, 0.6)),
                                 yaw=float(rng.uniform(0, math.pi))))  # fmt: skip
    return goal, obstacles


@dataclass(frozen=True)
class NavigationRewardCfg:
    """Reward for getting closer to the goal, a bonus for arriving, penalties for collisions, falls and time."""

    goal_radius: float = 0.3
    progress: float = 1.0
    arrival_bonus: float = 10.0
    collision_penalty: float = 0.5
    fall_penalty: float = 10.0
    time_penalty: float = 0.01

    def __call__(self, previous_distance: float, distance: float, collisions: int, fell: bool) -> tuple[float, bool]:
        """(reward, success) of one env step that took the robot from ``previous_distance`` to ``distance``."""
        reward = self.progress * (previous_distance - distance) - self.time_penalty
        reward -= self.collision_penalty * (collisions > 0)
        success = distance < self.goal_radius and not fell
        reward += self.arrival_bonus * success - self.fall_penalty * fell
        return float(reward), bool(success)


def goal_distance(goal: tuple[float, float] | None, info: dict) -> float:
    """Distance (m) from the robot (``info["root_xy"]``) to ``goal``."""
    if goal is None:
        raise RuntimeError("the navigation reward needs a goal: reset(options={'goal': (x, y)}) or a random course")
    return float(np.hypot(goal[0] - info["root_xy"][0], goal[1] - info["root_xy"][1]))


class NavigationReward(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """:class:`NavigationRewardCfg`'s reward; terminates on arrival within ``goal_radius``.

    Requires a goal (``reset(options={"goal": ...})`` or :class:`RandomObstacleCourse`);
    ``info["success"]`` says whether the episode reached the goal.
    """

    def __init__(
        self,
        env: gym.Env,
        goal_radius: float = 0.3,
        progress: float = 1.0,
        arrival_bonus: float = 10.0,
        collision_penalty: float = 0.5,
        fall_penalty: float = 10.0,
        time_penalty: float = 0.01,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, goal_radius=goal_radius, progress=progress, arrival_bonus=arrival_bonus,
            collision_penalty=collision_penalty, fall_penalty=fall_penalty, time_penalty=time_penalty,
        )  # fmt: skip
        gym.Wrapper.__init__(self, env)
        self.reward_cfg = NavigationRewardCfg(goal_radius, progress, arrival_bonus, collision_penalty, fall_penalty,
                                              time_penalty)  # fmt: skip
        self._distance = math.inf

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._distance = goal_distance(self.env.unwrapped.goal, info)
        info["success"] = False
        return obs, info

    def step(self, action):
        obs, _, terminated, truncated, info = self.env.step(action)
        distance = goal_distance(self.env.unwrapped.goal, info)
        reward, info["success"] = self.reward_cfg(self._distance, distance, info["collisions"], info["fell"])
        self._distance = distance
        return obs, reward, terminated or info["success"], truncated, info
