"""``BeyondMimicGuided-G1-v0``: a high-level command in, the guided diffusion controller runs the G1 at 50 Hz.

Action (``command="velocity"``): Box [vx, vy, wz] in m/s, m/s, rad/s (heading frame), bounds
``VELOCITY_LOW``/``VELOCITY_HIGH`` (the range the expert data covers); values outside are clipped.
Action (``command="waypoint"``): Box [x, y] in m, in the robot frame at the time of the command
(``waypoint_frame="robot"``) or in the world frame, within +-``waypoint_range``; values outside are clipped.
NaN/inf or a wrong shape raises ``ValueError`` before anything reaches the sampler. With
``heading_hold``/``speed_hold`` set, velocity commands pass through the app's joystick holds first (a straight
walk or a stand keeps its heading; a walk reaches its commanded speed and a turn its rate): students whose
actions fall short of their plans (``g1_velocity_omni`` sideways) walk at the commanded speed. Both are off by
default.

Obstacles the controller avoids (the obstacle map) come per episode through
``reset(options={"obstacles": [...]})`` or at any step through ``env.unwrapped.set_obstacles([...])``
(at most ``GuidedEnvCfg.obstacle_pool``, default 24, cylinders and as many boxes; more raise, changing nothing);
they are placed in the simulation and added to the guidance cost. A waypoint command walks a grid route round
them (:class:`bm_gym.guidance.tasks.NavigateTask`). A goal for the observation and for
wrappers comes through ``reset(options={"goal": (x, y)})`` (world frame).

Observation (Dict):
  ``robot``     [11]: pelvis height (m), projected gravity (3), heading-frame planar velocity (2, m/s),
                      yaw rate (rad/s), world position x, y (m), cos yaw, sin yaw
  ``goal``      [3]:  goal in the robot frame x, y (m, clipped to +-20), 1 if a goal is set else 0 (then x, y = 0)
  ``obstacles`` [R]:  lidar-like free range (m, up to ``ray_range``) along R rays evenly spaced from the robot's
                      heading, counter-clockwise; computed from the obstacles' signed distance field

Reward is 0: tasks define it in wrappers (e.g. :class:`bm_gym.envs.wrappers.NavigationReward`).
Episodes terminate on a fall and truncate after ``max_episode_s``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from bm_gym.controller import ControllerCfg, DiffusionController
from bm_gym.course import as_course, start_pose
from bm_gym.diffusion.policy import SHIPPED_CHECKPOINT, DiffusionPolicy
from bm_gym.guidance.guide import GuidanceCfg
from bm_gym.guidance.sdf import ObstacleField
from bm_gym.guidance.tasks import (
    AvoidObstaclesTask,
    CombinedTask,
    CommandHolds,
    HeadingHoldCfg,
    NavigateTask,
    SpeedHoldCfg,
    Task,
    VelocityTask,
)
from bm_gym.obstacles import Box, Cylinder, Obstacle
from bm_gym.robot import g1
from bm_gym.sim import BACKENDS, DomainRandomizationCfg, RobotState, has_fallen, make_backend
from bm_gym.utils.checks import positive_finite, positive_int, require

VELOCITY_LOW = np.array([-0.5, -0.5, -1.0], dtype=np.float32)
VELOCITY_HIGH = np.array([1.0, 0.5, 1.0], dtype=np.float32)
GOAL_CLIP = 20.0


@dataclass(frozen=True)
class GuidedEnvCfg:
    checkpoint: str | Path = SHIPPED_CHECKPOINT
    command: Literal["velocity", "waypoint"] = "velocity"
    waypoint_frame: Literal["robot", "world"] = "robot"
    waypoint_range: float = 5.0
    control_steps: int = 10  # 50 Hz control steps per env step (0.2 s)
    max_episode_s: float = 30.0
    rays: int = 16
    ray_range: float = 4.0
    obstacle_weight: float = 1.0  # weight of the obstacle cost next to the command's cost
    guidance: GuidanceCfg | None = None  # None: the checkpoint's settings (DiffusionPolicy.guidance)
    actions_per_plan: int = 1  # planned actions executed before replanning (1: replan at 50 Hz)
    randomize: bool = False  # domain randomization of the simulated robot
    torch_threads: int | None = 1  # one thread per env suits vectorized use; None keeps torch's default
    obstacle_pool: int = 24  # obstacles of each shape (cylinders, boxes) the scene holds at once
    backend: str = "mujoco"  # simulator (bm_gym.sim.BACKENDS); "isaaclab" runs in the Isaac Lab venv
    # Velocity commands as the app's joystick gives them (bm_gym.guidance.tasks.CommandHolds): a straight walk or
    # a stand holds its heading, a walk (turn) reaches its commanded speed (rate). None: the command as it comes.
    # Off by default: the holds carry state the observation does not show, which an agent on top may not want.
    heading_hold: HeadingHoldCfg | None = None
    speed_hold: SpeedHoldCfg | None = None

    def __post_init__(self) -> None:
        name = "GuidedEnvCfg"
        require(self.command in ("velocity", "waypoint"), name, "command", self.command, "'velocity' or 'waypoint'")
        require(self.waypoint_frame in ("robot", "world"), name, "waypoint_frame", self.waypoint_frame,
                "'robot' or 'world'")  # fmt: skip
        positive_finite(name, "waypoint_range", self.waypoint_range)
        positive_int(name, "control_steps", self.control_steps)
        positive_finite(name, "max_episode_s", self.max_episode_s)
        positive_int(name, "rays", self.rays)
        positive_finite(name, "ray_range", self.ray_range)
        positive_finite(name, "obstacle_weight", self.obstacle_weight, allow_zero=True)
        require(self.guidance is None or isinstance(self.guidance, GuidanceCfg), name, "guidance", self.guidance,
                "a GuidanceCfg or None (the checkpoint's)")  # fmt: skip
        positive_int(name, "actions_per_plan", self.actions_per_plan)
        if self.torch_threads is not None:
            positive_int(name, "torch_threads", self.torch_threads)
        positive_int(name, "obstacle_pool", self.obstacle_pool)
        require(self.backend in BACKENDS, name, "backend", self.backend, f"one of {', '.join(BACKENDS)}")
        for attr, cfg_type in (("heading_hold", HeadingHoldCfg), ("speed_hold", SpeedHoldCfg)):
            value = getattr(self, attr)
            require(value is None or isinstance(value, cfg_type), name, attr, value, f"a {cfg_type.__name__} or None")
            require(value is None or self.command == "velocity", name, attr, value,
                    "None with command='waypoint' (the holds act on velocity commands)")  # fmt: skip


class EnvLogic:
    """One env's spaces, obstacle map, goal, commands, observation and info: what :class:`GuidedG1Env` and the
    vector env (:mod:`bm_gym.envs.vector_env`) share. It owns no simulator and no controller."""

    def __init__(self, cfg: GuidedEnvCfg) -> None:
        self.cfg = cfg
        if cfg.command == "velocity":
            self.action_space = spaces.Box(VELOCITY_LOW, VELOCITY_HIGH, dtype=np.float32)
        else:
            r = cfg.waypoint_range
            self.action_space = spaces.Box(-r, r, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                "robot": spaces.Box(-np.inf, np.inf, shape=(11,), dtype=np.float32),
                "goal": spaces.Box(
                    np.array([-GOAL_CLIP, -GOAL_CLIP, 0], np.float32), np.array([GOAL_CLIP, GOAL_CLIP, 1], np.float32)
                ),
                "obstacles": spaces.Box(0.0, cfg.ray_range, shape=(cfg.rays,), dtype=np.float32),
            }
        )
        angles = np.arange(cfg.rays) * 2 * math.pi / cfg.rays
        self._ray_dirs = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        self._ray_steps = np.linspace(0.0, cfg.ray_range, round(cfg.ray_range / 0.05) + 1)[1:]
        self.goal: tuple[float, float] | None = None
        self.field = ObstacleField()
        self.obstacles: tuple[Obstacle, ...] = ()
        self.state: RobotState | None = None
        self.current_task: Task | None = None  # what the latest command asked for
        self.episode_collisions = 0
        self.holds = CommandHolds(cfg.heading_hold, cfg.speed_hold)
        self._pushed = False  # a push since the latest command (the holds must see pushes between commands)

    def start_episode(self, state: RobotState) -> None:
        self.state, self.episode_collisions, self._pushed = state, 0, False
        self.holds.reset()

    def advance(self, state: RobotState) -> None:
        """The state after a control step."""
        self.state = state
        self._pushed |= state.pushed

    @staticmethod
    def checked_obstacles(obstacles) -> tuple[Obstacle, ...]:
        obstacles = tuple(obstacles)
        for o in obstacles:
            if not isinstance(o, (Cylinder, Box)):
                raise TypeError(f"obstacles must be bm_gym.obstacles.Cylinder or Box, got {type(o).__name__}")
        return obstacles

    def set_obstacle_map(self, obstacles: tuple[Obstacle, ...]) -> None:
        self.obstacles = obstacles
        self.field = ObstacleField(list(obstacles))

    def set_goal(self, goal: tuple[float, float] | None) -> None:
        if goal is not None:
            goal = (float(goal[0]), float(goal[1]))
            if not all(math.isfinite(v) for v in goal):
                raise ValueError(f"goal must be finite, got {goal}")
        self.goal = goal

    def check_options(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """Reset options with a ``course`` (a :class:`bm_gym.course.Course`, a course file or its mapping)
        expanded: its obstacles, its first goal and its start pose (``"start"``: x, y, yaw), unless
        ``obstacles`` or ``goal`` are given as well (they win)."""
        options = dict(options or {})
        unknown = set(options) - {"obstacles", "goal", "course"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; expected 'obstacles', 'goal' and/or 'course'")
        if "course" in options:
            course = as_course(options.pop("course"))
            options.setdefault("obstacles", course.obstacles)
            if course.goals:
                options.setdefault("goal", (course.goals[0].x, course.goals[0].y))
            options["start"] = course.start
        return options

    def check_action(self, action) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.action_space.shape:
            raise ValueError(
                f"{self.cfg.command} command must have shape {self.action_space.shape}, got {a.shape}: {action!r}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{self.cfg.command} command contains NaN or inf: {action!r}")
        return np.clip(a, self.action_space.low, self.action_space.high)  # documented: out-of-range values clip

    def task(self, command: np.ndarray) -> Task:
        state = self.state
        if self.cfg.command == "velocity":
            held_state = dataclasses.replace(state, pushed=self._pushed) if self._pushed else state
            self._pushed = False
            task: Task = VelocityTask(*self.holds(held_state, tuple(map(float, command))))
            if self.obstacles:
                task = CombinedTask(((1.0, task), (self.cfg.obstacle_weight, AvoidObstaclesTask(self.obstacles))))
        else:
            x, y = map(float, command)
            if self.cfg.waypoint_frame == "robot":
                c, s = math.cos(state.yaw), math.sin(state.yaw)
                x, y = state.root_pos[0] + c * x - s * y, state.root_pos[1] + s * x + c * y
            # Routed round the obstacles (Eq. 8 alone stalls in front of them, and with actions_per_plan=2
            # reached 3 / 20 open-ground goals against NavigateTask's 20 / 20).
            task = NavigateTask(x, y, obstacles=self.obstacles, obstacle_weight=self.cfg.obstacle_weight)
        self.current_task = task
        return task

    def observation(self) -> dict[str, np.ndarray]:
        s = self.state
        c, sn = math.cos(s.yaw), math.sin(s.yaw)
        vx, vy = s.root_lin_vel_w[0], s.root_lin_vel_w[1]
        yaw_rate = s.root_ang_vel_b[2]  # close to the world yaw rate while upright
        robot = np.array(
            [s.root_pos[2], *s.projected_gravity, c * vx + sn * vy, -sn * vx + c * vy, yaw_rate,
             s.root_pos[0], s.root_pos[1], c, sn],
            dtype=np.float32,
        )  # fmt: skip
        goal = np.zeros(3, dtype=np.float32)
        if self.goal is not None:
            dx, dy = self.goal[0] - s.root_pos[0], self.goal[1] - s.root_pos[1]
            goal[:2] = np.clip([c * dx + sn * dy, -sn * dx + c * dy], -GOAL_CLIP, GOAL_CLIP)
            goal[2] = 1.0
        return {"robot": robot, "goal": goal, "obstacles": self._ray_ranges()}

    def _ray_ranges(self) -> np.ndarray:
        """Free range along each ray: the first sample point inside an obstacle (SDF <= 0), else ``ray_range``."""
        ranges = np.full(self.cfg.rays, self.cfg.ray_range, dtype=np.float32)
        if self.field.empty:
            return ranges
        s = self.state
        c, sn = math.cos(s.yaw), math.sin(s.yaw)
        dirs = self._ray_dirs @ np.array([[c, sn], [-sn, c]])  # robot frame -> world frame
        points = s.root_pos[:2] + dirs[:, None, :] * self._ray_steps[None, :, None]  # [R, P, 2]
        with torch.no_grad():
            inside = (self.field.distance(torch.as_tensor(points, dtype=torch.float32)) <= 0).numpy()
        hit = inside.any(axis=1)
        ranges[hit] = self._ray_steps[inside[hit].argmax(axis=1)]
        return ranges

    def info(self, fell: bool, collisions: int) -> dict[str, Any]:
        """Deterministic per step (plan latencies are in ``controller.plan_ms``, not here)."""
        s = self.state
        routed = isinstance(self.current_task, NavigateTask)
        return {
            "time": s.time,
            "root_xy": s.root_pos[:2].copy(),
            "fell": fell,
            "collisions": collisions,  # control steps with robot-obstacle contact during this env step
            "episode_collisions": self.episode_collisions,
            # waypoint commands: the goal is walled off from here (the robot stands still instead of pressing on)
            "no_route": bool(routed and not self.current_task.route_exists(s)),
        }

    def truncated(self, fell: bool) -> bool:
        return not fell and self.state.time >= self.cfg.max_episode_s - 1e-9


class GuidedG1Env(gym.Env):
    """The G1 in MuJoCo driven by the guided diffusion controller; see the module docstring for spaces."""

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 10}

    def __init__(self, cfg: GuidedEnvCfg | None = None, render_mode: str | None = None, **overrides: Any) -> None:
        cfg = cfg or GuidedEnvCfg()
        if overrides:  # gym.make("BeyondMimicGuided-G1-v0", command="waypoint", ...) sets config fields
            cfg = _replace(cfg, overrides)
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        self.cfg, self.render_mode = cfg, render_mode
        self.policy = DiffusionPolicy.load(cfg.checkpoint, robot_joints=g1.JOINT_NAMES)
        randomization = DomainRandomizationCfg() if cfg.randomize else None
        self.backend = make_backend(cfg.backend, randomization=randomization, obstacle_pool=cfg.obstacle_pool)
        self.controller = DiffusionController(
            self.policy, ControllerCfg(actions_per_plan=cfg.actions_per_plan, guidance=cfg.guidance)
        )
        self.metadata = {**self.metadata, "render_fps": round(1.0 / (cfg.control_steps * self.backend.control_dt))}
        self.logic = EnvLogic(cfg)
        self.action_space, self.observation_space = self.logic.action_space, self.logic.observation_space
        self._window = None

    # -- obstacles and goal ---------------------------------------------------------------------------

    def set_obstacles(self, obstacles: list[Obstacle] | tuple[Obstacle, ...]) -> None:
        """Replace the obstacle map: placed in the simulation and avoided by the controller from the next step.

        All or nothing: a bad obstacle, or more of one shape than ``GuidedEnvCfg.obstacle_pool``, raises before
        the simulation or the map changes.
        """
        obstacles = self.logic.checked_obstacles(obstacles)
        self.backend.set_obstacles(obstacles)
        self.logic.set_obstacle_map(obstacles)

    @property
    def obstacles(self) -> tuple[Obstacle, ...]:
        return self.logic.obstacles

    @property
    def goal(self) -> tuple[float, float] | None:
        return self.logic.goal

    def set_goal(self, goal: tuple[float, float] | None) -> None:
        """World-frame goal reported in the observation (wrappers reward progress to it); None clears it."""
        self.logic.set_goal(goal)

    # -- gymnasium API ----------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = self.logic.check_options(options)
        self.set_obstacles(options.get("obstacles", ()))
        self.set_goal(options.get("goal"))
        episode_seed = int(self.np_random.integers(2**31))
        state = self.backend.reset(start_pose(options.get("start")), seed=episode_seed)
        self.controller.reset(state, seed=episode_seed)
        self.controller.set_task(None)
        self.logic.start_episode(state)
        return self.logic.observation(), self.logic.info(fell=False, collisions=0)

    def step(self, action):
        logic = self.logic
        if logic.state is None:
            raise RuntimeError("call reset() before step()")
        command = logic.check_action(action)
        self.controller.set_task(logic.task(command))
        collisions, fell = 0, False
        for _ in range(self.cfg.control_steps):
            logic.advance(self.backend.step(self.controller.act(logic.state)))
            collisions += int(logic.state.obstacle_contact)
            if has_fallen(logic.state):
                fell = True
                break
        logic.episode_collisions += collisions
        info = logic.info(fell, collisions)
        if self.render_mode == "human":
            self.render()
        return logic.observation(), 0.0, fell, logic.truncated(fell), info

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() without a render_mode; pass render_mode='rgb_array' or 'human' to make()")
            return None
        frame = self.backend.render(480, 360)
        if self.render_mode == "rgb_array":
            return frame
        self._show(frame)
        return None

    def close(self) -> None:
        self.backend.close()
        if self._window is not None:
            import pygame

            pygame.display.quit()
            self._window = None

    def _show(self, frame: np.ndarray) -> None:
        import pygame  # only for render_mode="human"

        if self._window is None:
            screen = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
            if sys.platform.startswith("linux") and not screen:
                # No screen: SDL would fall back to EGL-based video drivers, and closing those terminates the EGL
                # display MuJoCo renders on (every later frame fails). The dummy driver shows nothing, safely.
                gym.logger.warn("render_mode='human' without a display (no DISPLAY or WAYLAND_DISPLAY): no window")
                os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
            pygame.display.init()
            self._window = pygame.display.set_mode(frame.shape[1::-1])
            pygame.display.set_caption("BeyondMimicGuided-G1-v0")
        pygame.event.pump()
        self._window.blit(pygame.surfarray.make_surface(frame.swapaxes(0, 1)), (0, 0))
        pygame.display.flip()


def _replace(cfg: GuidedEnvCfg, overrides: dict[str, Any]) -> GuidedEnvCfg:
    names = {f.name for f in dataclasses.fields(GuidedEnvCfg)}
    unknown = set(overrides) - names
    if unknown:
        raise TypeError(f"unknown GuidedEnvCfg fields {sorted(unknown)}; known: {sorted(names)}")
    return dataclasses.replace(cfg, **overrides)
