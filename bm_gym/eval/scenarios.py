"""Seeded evaluation scenarios for guided control: waypoints, a joystick profile, obstacle courses."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from bm_gym.controller import DiffusionController
from bm_gym.guidance.guide import GuidanceCfg
from bm_gym.guidance.tasks import (
    AvoidObstaclesTask,
    CombinedTask,
    NavigateTask,
    RoutedWaypointTask,
    VelocityTask,
    WaypointTask,
)  # fmt: skip
from bm_gym.obstacles import Box, Cylinder, Obstacle
from bm_gym.sim import MujocoBackend, has_fallen
from bm_gym.utils.math import wrap_angle

GOAL_RADIUS = 0.3


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    fell: bool
    collisions: int  # control steps with a robot-obstacle contact
    seconds: float
    extra: dict = field(default_factory=dict)


def waypoint_goal(seed: int) -> tuple[float, float]:
    """A goal 2-5 m away in any direction from the origin."""
    rng = np.random.default_rng(seed)
    distance, angle = rng.uniform(2.0, 5.0), rng.uniform(-math.pi, math.pi)
    return distance * math.cos(angle), distance * math.sin(angle)


def obstacle_course(seed: int) -> tuple[tuple[float, float], list[Obstacle]]:
    """A goal 4-5 m ahead with 1-3 obstacles on or near the straight path to it."""
    rng = np.random.default_rng(1000 + seed)
    goal = (rng.uniform(4.0, 5.0), rng.uniform(-0.5, 0.5))
    obstacles: list[Obstacle] = []
    for i in range(rng.integers(1, 4)):
        along = rng.uniform(1.5, 3.5) if i == 0 else rng.uniform(1.2, 3.8)
        x, y = along, goal[1] * along / goal[0] + (rng.uniform(-0.15, 0.15) if i == 0 else rng.uniform(-1.0, 1.0))
        if rng.random() < 0.5:
            obstacles.append(Cylinder(x, y, radius=rng.uniform(0.2, 0.4), height=1.0))
        else:
            obstacles.append(Box(x, y, rng.uniform(0.15, 0.3), rng.uniform(0.2, 0.5), yaw=rng.uniform(0, math.pi)))
    return goal, obstacles


#: (start s, vx, wz, ramp) keyframes of the joystick profile: ramps interpolate, steps jump.
JOYSTICK_PROFILE = [
    (0.0, 0.0, 0.0, False), (2.0, 0.0, 0.0, True), (4.0, 0.6, 0.0, False), (9.0, 0.3, 0.5, False),
    (14.0, 0.0, -0.6, False), (19.0, 0.0, 0.0, True), (21.0, 0.8, 0.0, False), (26.0, 0.0, 0.0, False),
    (30.0, 0.0, 0.0, False),
]  # fmt: skip


def joystick_command(t: float) -> tuple[float, float]:
    for (t0, vx0, wz0, ramp), (t1, vx1, wz1, _) in zip(JOYSTICK_PROFILE, JOYSTICK_PROFILE[1:], strict=False):
        if t0 <= t < t1:
            if not ramp:
                return vx0, wz0
            a = (t - t0) / (t1 - t0)
            return vx0 + a * (vx1 - vx0), wz0 + a * (wz1 - wz0)
    return JOYSTICK_PROFILE[-1][1], JOYSTICK_PROFILE[-1][2]


def _start(backend: MujocoBackend, controller: DiffusionController, seed: int, obstacles=()):
    backend.clear_obstacles()
    for obstacle in obstacles:
        backend.add_obstacle(obstacle)
    state = backend.reset(seed=seed)
    controller.reset(state, seed=seed)
    return state


#: How a goal among obstacles becomes a task: ``navigate`` = grid route + pure pursuit + joystick cost +
#: barrier (:class:`NavigateTask`); ``waypoint`` = Eq. 8 waypoint cost + barrier; ``routed-waypoint`` = Eq. 8
#: on a point along the grid route + barrier.
NAVIGATORS = ("navigate", "waypoint", "routed-waypoint")


def goal_task(goal: tuple[float, float], obstacles=(), navigator: str = "navigate", obstacle_weight: float = 1.0):
    """The task that walks to ``goal`` around ``obstacles`` with one of :data:`NAVIGATORS`."""
    obstacles = tuple(obstacles)
    if navigator == "navigate":
        return NavigateTask(*goal, obstacles=obstacles, obstacle_weight=obstacle_weight)
    if navigator == "routed-waypoint":
        return RoutedWaypointTask(*goal, obstacles=obstacles, obstacle_weight=obstacle_weight)
    if navigator != "waypoint":
        raise ValueError(f"unknown navigator {navigator!r}; expected one of {NAVIGATORS}")
    if not obstacles:
        return WaypointTask(*goal)
    return CombinedTask(((1.0, WaypointTask(*goal)), (obstacle_weight, AvoidObstaclesTask(obstacles))))


def run_waypoint(backend, controller, seed: int, guidance: GuidanceCfg, obstacles=(), timeout_s: float = 25.0,
                 goal: tuple[float, float] | None = None, obstacle_weight: float = 1.0,
                 navigator: str = "waypoint") -> EpisodeResult:  # fmt: skip
    """Walk to a goal (default: seeded, 2-5 m away) around ``obstacles``, steered by ``navigator``."""
    goal = goal or waypoint_goal(seed)
    state = _start(backend, controller, seed, obstacles)
    waypoint = WaypointTask(*goal)
    task = goal_task(goal, obstacles, navigator, obstacle_weight)
    controller.set_task(task, guidance)
    collisions, min_distance = 0, math.inf
    for step in range(round(timeout_s / backend.control_dt)):
        state = backend.step(controller.act(state))
        collisions += state.obstacle_contact
        if has_fallen(state):
            return EpisodeResult(seed, False, True, collisions, (step + 1) * backend.control_dt,
                                 {"goal": goal, "min_distance": min_distance})  # fmt: skip
        min_distance = min(min_distance, waypoint.distance(state))
        if min_distance < GOAL_RADIUS:
            return EpisodeResult(seed, collisions == 0, False, collisions, (step + 1) * backend.control_dt,
                                 {"goal": goal, "min_distance": min_distance})  # fmt: skip
    return EpisodeResult(seed, False, False, collisions, timeout_s, {"goal": goal, "min_distance": min_distance})


def run_joystick(backend, controller, seed: int, guidance: GuidanceCfg, smooth_s: float = 1.0) -> EpisodeResult:
    """Follow the profile; errors compare commands with velocities averaged over ``smooth_s`` (gait sway)."""
    state = _start(backend, controller, seed)
    dt = backend.control_dt
    steps = round(JOYSTICK_PROFILE[-1][0] / dt)
    commands, forward, yaw_rate = np.zeros((steps, 2)), np.zeros(steps), np.zeros(steps)
    for step in range(steps):
        vx, wz = joystick_command(step * dt)
        commands[step] = vx, wz
        controller.set_task(VelocityTask(vx, 0.0, wz), guidance)
        previous_yaw = state.yaw
        state = backend.step(controller.act(state))
        c, s = math.cos(state.yaw), math.sin(state.yaw)
        forward[step] = c * state.root_lin_vel_w[0] + s * state.root_lin_vel_w[1]
        yaw_rate[step] = float(wrap_angle(state.yaw - previous_yaw)) / dt
        if has_fallen(state):
            return EpisodeResult(seed, False, True, 0, (step + 1) * dt)
    window = max(1, round(smooth_s / dt))
    kernel = np.ones(window) / window
    smooth = lambda x: np.convolve(x, kernel, mode="valid")  # noqa: E731 - trailing average
    measured_v, measured_w = smooth(forward), smooth(yaw_rate)
    target_v, target_w = smooth(commands[:, 0]), smooth(commands[:, 1])
    speed_error = float(np.mean(np.abs(measured_v - target_v)))
    yaw_error = float(np.mean(np.abs(measured_w - target_w)))
    return EpisodeResult(seed, True, False, 0, steps * dt, {"speed_error": speed_error, "yaw_rate_error": yaw_error})
