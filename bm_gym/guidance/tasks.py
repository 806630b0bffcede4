"""World-frame task descriptions, turned into robot-frame costs at every plan (plans are canonicalized)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from bm_gym.guidance.costs import JoystickCost, ObstacleCost, TaskCost, WaypointCost, WeightedSum
from bm_gym.guidance.routing import PursuitCfg, RouteCfg, cached_route, pursuit_command
from bm_gym.guidance.sdf import ObstacleField, OccupancyGrid
from bm_gym.obstacles import Obstacle
from bm_gym.sim.backend import RobotState


class Task(Protocol):
    def cost(self, state: RobotState) -> TaskCost:
        """The cost to guide the next plan with, in the frame of the robot at ``state``."""


def _finite(name: str, *values: float) -> None:
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be finite, got {values}")


def _to_robot_frame(state: RobotState, x: float, y: float) -> tuple[float, float]:
    dx, dy = x - state.root_pos[0], y - state.root_pos[1]
    c, s = math.cos(state.yaw), math.sin(state.yaw)
    return c * dx + s * dy, -s * dx + c * dy


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
        return WaypointCost(*_to_robot_frame(state, self.x, self.y))

    def distance(self, state: RobotState) -> float:
        return math.hypot(self.x - state.root_pos[0], self.y - state.root_pos[1])


@dataclass(frozen=True)
class AvoidObstaclesTask:
    """Keep key bodies clear of world-frame obstacles (shapes and/or occupancy grids)."""

    obstacles: tuple[Obstacle, ...] = ()
    grids: tuple[OccupancyGrid, ...] = ()
    margin: float = 0.2
    world_field: ObstacleField = field(init=False, repr=False, compare=False)  # the obstacles' world-frame SDF

    def __post_init__(self) -> None:
        object.__setattr__(self, "world_field", ObstacleField(list(self.obstacles), list(self.grids)))

    def cost(self, state: RobotState) -> TaskCost:
        frame = self.world_field.to_robot_frame(float(state.root_pos[0]), float(state.root_pos[1]), state.yaw)
        return ObstacleCost(frame, margin=self.margin)


def _grid_key(grid: OccupancyGrid) -> tuple:
    return hash(grid.occupied.tobytes()), grid.occupied.shape, grid.resolution, grid.origin


@dataclass(frozen=True)
class _RoutedGoal:
    """A world-frame goal among obstacles: the point ``route.lookahead`` m along the shortest free route."""

    x: float
    y: float
    obstacles: tuple[Obstacle, ...] = ()
    grids: tuple[OccupancyGrid, ...] = ()
    obstacle_weight: float = 1.0
    route: RouteCfg = field(default_factory=RouteCfg)
    _avoid: AvoidObstaclesTask = field(init=False, repr=False, compare=False)
    _obstacles_key: tuple = field(init=False, repr=False, compare=False)  # identifies the map in the route cache

    def __post_init__(self) -> None:
        _finite("goal", self.x, self.y)
        object.__setattr__(self, "_avoid", AvoidObstaclesTask(tuple(self.obstacles), tuple(self.grids)))
        object.__setattr__(self, "_obstacles_key", (self.obstacles, tuple(map(_grid_key, self.grids))))

    def target(self, state: RobotState) -> tuple[float, float]:
        """The point to steer to now (world frame)."""
        xy = state.root_pos[:2]
        route = cached_route((self.x, self.y), self._obstacles_key, self._avoid.world_field, xy, self.route)
        tx, ty = route.target(xy)
        return float(tx), float(ty)

    def distance(self, state: RobotState) -> float:
        return math.hypot(self.x - state.root_pos[0], self.y - state.root_pos[1])


@dataclass(frozen=True)
class NavigateTask(_RoutedGoal):
    """Walk to a world-frame goal around obstacles, the navigator the env and the app use.

    Grid route -> pure pursuit of the point ``route.lookahead`` m along it (:mod:`bm_gym.guidance.routing`)
    -> joystick cost on that velocity command + the obstacle barrier. Steering the velocity rather than
    the planned position (``RoutedWaypointTask``) keeps the robot walking along the route: 10/10 seeded
    obstacle courses against 8/10 (docs/benchmarks.md).
    """

    pursuit: PursuitCfg = field(default_factory=PursuitCfg)

    def command(self, state: RobotState) -> tuple[float, float]:
        """(forward m/s, yaw rate rad/s) the joystick cost tracks at this state."""
        target = _to_robot_frame(state, *self.target(state))
        return pursuit_command(np.array(target), self.distance(state), self.pursuit)

    def cost(self, state: RobotState) -> TaskCost:
        vx, wz = self.command(state)
        return WeightedSum([(1.0, JoystickCost(vx, 0.0, wz)), (self.obstacle_weight, self._avoid.cost(state))])


@dataclass(frozen=True)
class RoutedWaypointTask(_RoutedGoal):
    """Walk to a world-frame point around obstacles with the waypoint cost (Eq. 8) on the route's lookahead
    point plus the barrier; kept as the paper-style alternative to :class:`NavigateTask`.
    """

    def cost(self, state: RobotState) -> TaskCost:
        waypoint = WaypointTask(*self.target(state)).cost(state)
        return WeightedSum([(1.0, waypoint), (self.obstacle_weight, self._avoid.cost(state))])


@dataclass(frozen=True)
class CombinedTask:
    """Weighted sum of tasks, e.g. waypoint + obstacle avoidance."""

    terms: tuple[tuple[float, Task], ...]

    def cost(self, state: RobotState) -> TaskCost:
        return WeightedSum([(w, task.cost(state)) for w, task in self.terms])
