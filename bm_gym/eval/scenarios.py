"""Seeded evaluation scenarios for guided control: waypoints, staying at a goal, a scripted joystick walk past
obstacles, obstacle courses, narrow passages."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from bm_gym.controller import DiffusionController
from bm_gym.course import Course, Goal, start_pose
from bm_gym.guidance.guide import GuidanceCfg
from bm_gym.guidance.routing import PursuitCfg, RouteCfg
from bm_gym.guidance.tasks import (
    ArrivalCfg,
    AvoidObstaclesTask,
    CombinedTask,
    NavigateTask,
    ObstacleSteerCfg,
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


def _wall(x0: float, y0: float, x1: float, y1: float, thickness: float = 0.1) -> Box:
    """A straight wall from (x0, y0) to (x1, y1)."""
    length = math.hypot(x1 - x0, y1 - y0)
    return Box((x0 + x1) / 2, (y0 + y1) / 2, length / 2, thickness / 2, yaw=math.atan2(y1 - y0, x1 - x0), height=1.0)


def passage_course(seed: int) -> tuple[tuple[float, float], list[Obstacle]]:
    """A wall across the way, 10 m long, whose only opening is narrow: even seeds a gap of 0.8-1.2 m, odd seeds
    a corridor of 1.0-1.3 m by 1.2-2.0 m behind the opening. The goal lies 2 m beyond."""
    rng = np.random.default_rng(3000 + seed)
    corridor = seed % 2 == 1
    width = rng.uniform(1.0, 1.3) if corridor else rng.uniform(0.8, 1.2)
    centre, wall_x = rng.uniform(-0.8, 0.8), rng.uniform(1.8, 2.4)
    low, high = centre - width / 2, centre + width / 2  # the opening, wall face to wall face
    obstacles: list[Obstacle] = [_wall(wall_x, -5.0, wall_x, low), _wall(wall_x, high, wall_x, 5.0)]
    end = wall_x
    if corridor:  # side walls 0.1 m thick, their inner faces at the opening's edges
        end = wall_x + rng.uniform(1.2, 2.0)
        obstacles += [_wall(wall_x, low - 0.05, end, low - 0.05), _wall(wall_x, high + 0.05, end, high + 0.05)]
    return (end + 2.0, float(rng.uniform(-0.8, 0.8))), obstacles


def walled_in_course(goal: tuple[float, float] = (3.0, 0.0), half: float = 0.8) -> list[Obstacle]:
    """Four walls round ``goal``: no route leads to it."""
    x, y = goal
    corners = [(x - half, y - half), (x + half, y - half), (x + half, y + half), (x - half, y + half)]
    return [_wall(*a, *b) for a, b in zip(corners, corners[1:] + corners[:1], strict=True)]


#: A scripted joystick walk past obstacles, as the demo (tools.demo) drives it: (start s, vx, vy, wz). Straight at a
#: cylinder just off the path (the guidance steers round it), a curve past a box, a turn in place, a walk, a stop.
JOYSTICK_OBSTACLE_SCRIPT = ((0.0, 0.0, 0.0, 0.0), (1.0, 0.6, 0.0, 0.0), (8.0, 0.5, 0.0, -0.4), (13.0, 0.0, 0.0, -0.8),
                            (16.0, 0.6, 0.0, 0.0), (26.0, 0.0, 0.0, 0.0))  # fmt: skip
JOYSTICK_OBSTACLES = (Cylinder(x=2.5, y=0.35, radius=0.25, height=1.2),
                      Box(x=5.0, y=-0.6, half_x=0.3, half_y=0.2, yaw=0.4))  # fmt: skip


STEER = ObstacleSteerCfg()  # how the app steers a joystick walk round obstacles ahead


def scripted_command(t: float) -> tuple[float, float, float]:
    """The command (vx, vy, wz) of :data:`JOYSTICK_OBSTACLE_SCRIPT` at time ``t``."""
    return next((vx, vy, wz) for start, vx, vy, wz in reversed(JOYSTICK_OBSTACLE_SCRIPT) if t >= start)


def _start(backend: MujocoBackend, controller: DiffusionController, seed: int, obstacles=(),
           start: tuple[float, float, float] = (0.0, 0.0, 0.0)):  # fmt: skip
    backend.clear_obstacles()
    for obstacle in obstacles:
        backend.add_obstacle(obstacle)
    state = backend.reset(start_pose(start), seed=seed)
    controller.reset(state, seed=seed)
    return state


#: How a goal among obstacles becomes a task: ``navigate`` = grid route + pure pursuit + joystick cost +
#: barrier (:class:`NavigateTask`); ``waypoint`` = Eq. 8 waypoint cost + barrier; ``routed-waypoint`` = Eq. 8
#: on a point along the grid route + barrier.
NAVIGATORS = ("navigate", "waypoint", "routed-waypoint")


@dataclass(frozen=True)
class NavigationCfg:
    """How goal tasks navigate (defaults: the library's); the evaluation's ablation knobs."""

    arrival: ArrivalCfg = field(default_factory=ArrivalCfg)
    route: RouteCfg = field(default_factory=RouteCfg)
    pursuit: PursuitCfg = field(default_factory=PursuitCfg)
    margin: float | None = None  # the barrier's margin for every body; None: each body's own


def goal_task(goal: tuple[float, float], obstacles=(), navigator: str = "navigate", obstacle_weight: float = 1.0,
              yaw: float | None = None, navigation: NavigationCfg | None = None):  # fmt: skip
    """The task that walks to ``goal`` around ``obstacles`` with one of :data:`NAVIGATORS`, and holds it (turned
    to ``yaw`` if given) there."""
    obstacles, nav = tuple(obstacles), navigation or NavigationCfg()
    routed = {"obstacles": obstacles, "obstacle_weight": obstacle_weight, "yaw": yaw, "arrival": nav.arrival,
              "route": nav.route, "margin": nav.margin}  # fmt: skip
    if navigator == "navigate":
        return NavigateTask(*goal, pursuit=nav.pursuit, **routed)
    if navigator == "routed-waypoint":
        return RoutedWaypointTask(*goal, **routed)
    if navigator != "waypoint":
        raise ValueError(f"unknown navigator {navigator!r}; expected one of {NAVIGATORS}")
    waypoint = WaypointTask(*goal, yaw=yaw, arrival=nav.arrival)
    if not obstacles:
        return waypoint
    return CombinedTask(((1.0, waypoint), (obstacle_weight, AvoidObstaclesTask(obstacles, margin=nav.margin))))


def run_waypoint(backend, controller, seed: int, guidance: GuidanceCfg, obstacles=(), timeout_s: float = 25.0,
                 goal: tuple[float, float] | None = None, obstacle_weight: float = 1.0,
                 navigator: str = "waypoint", navigation: NavigationCfg | None = None) -> EpisodeResult:  # fmt: skip
    """Walk to a goal (default: seeded, 2-5 m away) around ``obstacles``, steered by ``navigator``."""
    course = Course(tuple(obstacles), (Goal(*(goal or waypoint_goal(seed))),), seed=seed)
    return run_course(backend, controller, course, guidance, timeout_s, obstacle_weight, navigator, navigation)


def run_course(backend, controller, course: Course, guidance: GuidanceCfg, timeout_s: float = 25.0,
               obstacle_weight: float = 1.0, navigator: str = "navigate",
               navigation: NavigationCfg | None = None) -> EpisodeResult:  # fmt: skip
    """Walk a course's goals in order (``timeout_s`` for each) round its obstacles, from its start pose.

    Success: every goal reached within :data:`GOAL_RADIUS` without a collision or a fall.
    """
    if not course.goals:
        raise ValueError(f"course {course.name or '(unnamed)'} has no goals to walk to")
    seed = course.seed or 0
    state = _start(backend, controller, seed, course.obstacles, course.start)
    collisions, elapsed, reached, min_distance = 0, 0.0, 0, math.inf
    for goal in course.goals:
        waypoint = WaypointTask(goal.x, goal.y)
        controller.set_task(goal_task((goal.x, goal.y), course.obstacles, navigator, obstacle_weight, goal.yaw,
                                      navigation), guidance)  # fmt: skip
        min_distance = math.inf
        for _ in range(round(timeout_s / backend.control_dt)):
            state = backend.step(controller.act(state))
            elapsed += backend.control_dt
            collisions += state.obstacle_contact
            if has_fallen(state):
                return EpisodeResult(seed, False, True, collisions, elapsed, _course_extra(course, reached,
                                                                                           min_distance))  # fmt: skip
            min_distance = min(min_distance, waypoint.distance(state))
            if min_distance < GOAL_RADIUS:
                break
        else:
            return EpisodeResult(seed, False, False, collisions, elapsed, _course_extra(course, reached, min_distance))
        reached += 1
    return EpisodeResult(seed, collisions == 0, False, collisions, elapsed, _course_extra(course, reached,
                                                                                          min_distance))  # fmt: skip


def _course_extra(course: Course, reached: int, min_distance: float) -> dict:
    """What an episode reports: the goal (one) or the goals reached (several), and how close it came."""
    if len(course.goals) == 1:
        return {"goal": (course.goals[0].x, course.goals[0].y), "min_distance": min_distance}
    return {"course": course.name, "goals_reached": reached, "goals": len(course.goals), "min_distance": min_distance}


def scenario_course(scenario: str, seed: int) -> Course:
    """The course of a seeded evaluation scenario, in the shared course format (``Course.save`` writes it)."""
    if scenario == "obstacles":
        goal, obstacles = obstacle_course(seed)
    elif scenario == "passages":
        goal, obstacles = passage_course(seed)
    elif scenario in ("waypoint", "stay"):
        goal, obstacles = waypoint_goal(seed), []
    else:
        raise ValueError(f"scenario {scenario!r} has no course; courses: obstacles, passages, waypoint, stay")
    yaw = goal_heading(seed) if scenario == "stay" else None
    return Course(tuple(obstacles), (Goal(*goal, yaw),), seed=seed, name=f"{scenario}-{seed}")


def goal_heading(seed: int) -> float:
    """A seeded goal heading (rad, world frame) for the stay scenario with headings."""
    return float(np.random.default_rng(2000 + seed).uniform(-math.pi, math.pi))


def run_stay(backend, controller, seed: int, guidance: GuidanceCfg, navigator: str = "waypoint",
             heading: bool = False, hold_s: float = 10.0, timeout_s: float = 25.0,
             heading_tolerance: float = 0.15, navigation: NavigationCfg | None = None) -> EpisodeResult:  # fmt: skip
    """Walk to a seeded goal (as :func:`run_waypoint`) and keep the task ``hold_s`` s after arriving: success if
    the robot stays within the goal radius all that time (and, with ``heading``, ends within
    ``heading_tolerance`` rad of the seeded goal heading)."""
    goal = waypoint_goal(seed)
    yaw = goal_heading(seed) if heading else None
    state = _start(backend, controller, seed)
    controller.set_task(goal_task(goal, navigator=navigator, yaw=yaw, navigation=navigation), guidance)
    dt = backend.control_dt
    arrived_at, drift = None, 0.0
    for step in range(round((timeout_s + hold_s) / dt)):
        state = backend.step(controller.act(state))
        t = (step + 1) * dt
        distance = math.hypot(goal[0] - state.root_pos[0], goal[1] - state.root_pos[1])
        if has_fallen(state):
            return EpisodeResult(seed, False, True, 0, t, {"goal": goal, "arrived_s": arrived_at})
        if arrived_at is None:
            if distance < GOAL_RADIUS:
                arrived_at = t
            elif t >= timeout_s:
                break
        else:
            drift = max(drift, distance)
            if t >= arrived_at + hold_s:
                break
    extra = {"goal": goal, "arrived_s": arrived_at, "max_distance_after_arrival": drift}
    stayed = arrived_at is not None and drift < GOAL_RADIUS
    if yaw is not None:
        extra["goal_yaw"], extra["heading_error"] = yaw, abs(float(wrap_angle(state.yaw - yaw)))
        stayed = stayed and extra["heading_error"] <= heading_tolerance
    return EpisodeResult(seed, stayed, False, 0, (step + 1) * dt, extra)


def run_joystick_obstacles(backend, controller, seed: int, guidance: GuidanceCfg, seconds: float = 14.0,
                           steer: ObstacleSteerCfg | None = STEER) -> EpisodeResult:  # fmt: skip
    """The demo's joystick walk past its obstacles (:data:`JOYSTICK_OBSTACLE_SCRIPT`, 14 s: the cylinder and the
    box), each command steered round obstacles ahead as the app steers it (``steer`` None: raw); success = no
    fall and no contact. Counts the control steps touching an obstacle."""
    state = _start(backend, controller, seed, JOYSTICK_OBSTACLES)
    avoid = AvoidObstaclesTask(JOYSTICK_OBSTACLES)
    contacts = 0
    for step in range(round(seconds / backend.control_dt)):
        command = scripted_command(state.time)
        if steer is not None:
            command = avoid.steer(state, command, steer)
        controller.set_task(CombinedTask(((1.0, VelocityTask(*command)), (1.0, avoid))), guidance)
        state = backend.step(controller.act(state))
        contacts += int(state.obstacle_contact)
        if has_fallen(state):
            return EpisodeResult(seed, False, True, contacts, (step + 1) * backend.control_dt)
    return EpisodeResult(seed, contacts == 0, False, contacts, seconds)
