"""World-frame task descriptions, turned into robot-frame costs at every plan (plans are canonicalized)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from bm_gym.guidance.costs import JoystickCost, ObstacleCost, TaskCost, WaypointCost, WeightedSum
from bm_gym.guidance.routing import Route, RouteCfg
from bm_gym.guidance.sdf import ObstacleField, OccupancyGrid
from bm_gym.obstacles import Obstacle
from bm_gym.sim.backend import RobotState


class Task(Protocol):
    def cost(self, state: RobotState) -> TaskCost:
        """The cost to guide the next plan with, in the frame of the robot at ``state``."""


def _finite(name: str, *values: float) -> None:
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be finite, got {values}")


@dataclass(frozen=True)
class VelocityTask:
    """Joystick: planar velocity (m/s, heading frame) and yaw rate (rad/s)."""

    vx: float = 0.0
    vy: float = 0.0
    wz: float = 0.0

    def __post_init__(self) -> None:
        _finite("velocity command", self.vx, self.vy, self.wz)

    def cost(self, state: RobotState) -> TaskCost:
        return JoystickCost(self.vx, self.vy, self.wz)


@dataclass(frozen=True)
class WaypointTask:
    """Walk to a world-frame point and stop there."""

    x: float
    y: float

    def __post_init__(self) -> None:
        _finite("waypoint", self.x, self.y)

    def cost(self, state: RobotState) -> TaskCost:
        dx, dy = self.x - state.root_pos[0], self.y - state.root_pos[1]
        c, s = math.cos(state.yaw), math.sin(state.yaw)
        return WaypointCost(c * dx + s * dy, -s * dx + c * dy)

    def distance(self, state: RobotState) -> float:
        return math.hypot(self.x - state.root_pos[0], self.y - state.root_pos[1])


@dataclass(frozen=True)
class AvoidObstaclesTask:
    """Keep key bodies clear of world-frame obstacles (shapes and/or occupancy grids)."""

    obstacles: tuple[Obstacle, ...] = ()
    grids: tuple[OccupancyGrid, ...] = ()
    margin: float = 0.2
    _field: ObstacleField = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_field", ObstacleField(list(self.obstacles), list(self.grids)))

    def cost(self, state: RobotState) -> TaskCost:
        frame = self._field.to_robot_frame(float(state.root_pos[0]), float(state.root_pos[1]), state.yaw)
        return ObstacleCost(frame, margin=self.margin)


@dataclass(frozen=True)
class RoutedWaypointTask:
    """Walk to a world-frame point around obstacles: the waypoint cost steers to the point ``route.lookahead``
    m along the shortest free route (:mod:`bm_gym.guidance.routing`), the barrier keeps the bodies clear.
    """

    x: float
    y: float
    obstacles: tuple[Obstacle, ...] = ()
    obstacle_weight: float = 1.0
    route: RouteCfg = field(default_factory=RouteCfg)
    _avoid: AvoidObstaclesTask = field(init=False, repr=False, compare=False)
    _routes: list = field(init=False, repr=False, compare=False)  # the current Route, built on first use

    def __post_init__(self) -> None:
        _finite("waypoint", self.x, self.y)
        object.__setattr__(self, "_avoid", AvoidObstaclesTask(tuple(self.obstacles)))
        object.__setattr__(self, "_routes", [])

    def target(self, state: RobotState) -> tuple[float, float]:
        xy = state.root_pos[:2]
        if not self._routes or not self._routes[0].contains(xy):  # (re)build around the robot's position
            self._routes[:] = [Route((self.x, self.y), self._avoid._field, tuple(xy), self.route)]
        tx, ty = self._routes[0].target(xy)
        return float(tx), float(ty)

    def cost(self, state: RobotState) -> TaskCost:
        waypoint = WaypointTask(*self.target(state)).cost(state)
        return WeightedSum([(1.0, waypoint), (self.obstacle_weight, self._avoid.cost(state))])

    def distance(self, state: RobotState) -> float:
        return math.hypot(self.x - state.root_pos[0], self.y - state.root_pos[1])


@dataclass(frozen=True)
class CombinedTask:
    """Weighted sum of tasks, e.g. waypoint + obstacle avoidance."""

    terms: tuple[tuple[float, Task], ...]

    def cost(self, state: RobotState) -> TaskCost:
        return WeightedSum([(w, task.cost(state)) for w, task in self.terms])
