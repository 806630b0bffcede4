"""The app's simulation thread: MuJoCo + the guided diffusion controller at 50 Hz, off the UI thread.

The UI sends intents (command, mode, obstacle edits, guidance settings, reset/pause/record) through
thread-safe setters and reads the latest :class:`Snapshot`; neither side ever waits for the other.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from app.recorder import SessionRecorder
from bm_gym.controller import ControllerCfg, DiffusionController
from bm_gym.course import start_pose
from bm_gym.diffusion import SHIPPED_CHECKPOINT, DiffusionPolicy
from bm_gym.guidance import GuidanceCfg
from bm_gym.guidance.tasks import (
    AvoidObstaclesTask,
    CombinedTask,
    CommandHolds,
    HeadingHoldCfg,
    NavigateTask,
    ObstacleSteerCfg,
    SpeedHoldCfg,
    Task,
    VelocityTask,
)
from bm_gym.obstacles import Obstacle
from bm_gym.robot import g1
from bm_gym.sim import has_fallen, make_backend

MODES = ("joystick", "waypoint", "draw")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulationCfg:
    checkpoint: Path = SHIPPED_CHECKPOINT
    guidance: GuidanceCfg | None = None  # None: the checkpoint's settings (DiffusionPolicy.guidance)
    obstacle_weight: float = 1.0
    control_hz: float = 50.0
    # Replan every control step: with the fused plan (about 10 ms here, beside software rendering on the same
    # 2 cores) the loop holds 50 Hz; on the reference path (25-30 ms) it held only ~31 Hz, and 2 was the default.
    actions_per_plan: int = 1
    max_lag_steps: int = 2  # how far behind real time the loop may fall and still catch up
    threads: int = 1  # torch threads for planning; the other core renders and runs the UI
    backend: str = "mujoco"  # simulator (bm_gym.sim.BACKENDS); "isaaclab" runs in the Isaac Lab venv
    # Joystick mode: a straight walk, or a stand, keeps its heading while the turn stick is centred (None: raw).
    heading_hold: HeadingHoldCfg | None = HeadingHoldCfg()
    # Joystick mode: a walk reaches the speed the stick asks for, a turn its rate (integral action; None: raw).
    speed_hold: SpeedHoldCfg | None = SpeedHoldCfg()
    # Joystick mode: a walk at an obstacle is turned towards the nearest clear line (AvoidObstaclesTask.steer;
    # None: only the barrier, which stops the robot in front of it).
    steer: ObstacleSteerCfg | None = ObstacleSteerCfg()


@dataclass
class Snapshot:
    """What the UI draws; replaced (never mutated) after every control step."""

    time: float
    qpos: np.ndarray  # for the offscreen view
    mocap_pos: np.ndarray
    mocap_quat: np.ndarray
    root_xy: np.ndarray
    yaw: float
    command: tuple[float, float, float]  # the velocity command in force (zeros outside joystick mode)
    velocity: tuple[float, float, float]  # measured vx, vy (heading frame) and yaw rate
    plan_xy: np.ndarray  # [H, 2] planned root path, world frame
    waypoint: tuple[float, float] | None
    obstacles: dict[int, Obstacle]  # by UI id, as placed in the simulation
    plan_ms: float
    cost: float
    control_hz: float  # achieved over the last second
    fell: bool
    paused: bool
    recording: bool
    mode: str
    error: str | None = None  # the last user action or control step that failed, shown until the next reset
    no_route: bool = False  # the waypoint is walled off from the robot: it stands still and says so


class Simulation(threading.Thread):
    """Runs the robot in real time until :meth:`stop`; all public methods are safe to call from any thread."""

    def __init__(self, cfg: SimulationCfg | None = None) -> None:
        super().__init__(name="simulation", daemon=True)
        self.cfg = cfg or SimulationCfg()
        torch.set_num_threads(self.cfg.threads)
        self.backend = make_backend(self.cfg.backend)
        # Fused plans, their graphs exported in the background: the loop never waits seconds for one.
        self.policy = DiffusionPolicy.load(self.cfg.checkpoint, robot_joints=g1.JOINT_NAMES).use_fused(background=True)
        self.controller = DiffusionController(
            self.policy, ControllerCfg(actions_per_plan=self.cfg.actions_per_plan, guidance=self.cfg.guidance)
        )
        self._lock = threading.Lock()
        self._edits: queue.SimpleQueue = queue.SimpleQueue()
        self._halt = threading.Event()
        self._command = (0.0, 0.0, 0.0)
        self._holds = CommandHolds(self.cfg.heading_hold, self.cfg.speed_hold)
        self._mode = "joystick"
        self._waypoint: tuple[float, float] | None = None
        self._guidance, self._obstacle_weight = self.controller.cfg.guidance, self.cfg.obstacle_weight
        self._paused = False
        self._handles: dict[int, int] = {}  # UI id -> backend handle
        self._recorder: SessionRecorder | None = None
        self._step_times: deque[float] = deque(maxlen=int(self.cfg.control_hz))
        self._state = self.backend.reset(seed=0)
        self.controller.reset(self._state, seed=0)
        self._fell = False
        self._error: str | None = None
        self._snapshot = self._make_snapshot(cost=0.0)

    # -- UI-facing setters ------------------------------------------------------------------------------

    def set_command(self, vx: float, vy: float, wz: float) -> None:
        values = (float(vx), float(vy), float(wz))
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"velocity command must be finite, got {values}")
        with self._lock:
            self._command = values

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        with self._lock:
            self._mode = mode

    def set_waypoint(self, xy: tuple[float, float] | None) -> None:
        waypoint = None if xy is None else (float(xy[0]), float(xy[1]))
        if waypoint is not None and not all(map(math.isfinite, waypoint)):
            raise ValueError(f"waypoint must be finite, got {waypoint}")
        with self._lock:
            self._waypoint = waypoint

    def set_guidance(self, scale: float, obstacle_weight: float) -> None:
        with self._lock:
            self._guidance = dataclasses.replace(self._guidance, scale=float(scale))
            self._obstacle_weight = float(obstacle_weight)

    def put_obstacle(self, uid: int, obstacle: Obstacle) -> None:
        """Add obstacle ``uid`` or move/resize it; applied before the next control step."""
        self._edits.put(("put", uid, obstacle))

    def remove_obstacle(self, uid: int) -> None:
        self._edits.put(("remove", uid, None))

    def reset(self, start: tuple[float, float, float] | None = None) -> None:
        """Stand the robot up again, at the origin or at ``start`` (x, y, yaw: a course's start pose)."""
        self._edits.put(("reset", None, start))

    @property
    def waypoint(self) -> tuple[float, float] | None:
        """The waypoint last set (in any drive mode)."""
        with self._lock:
            return self._waypoint

    def pause(self, paused: bool) -> None:
        with self._lock:
            self._paused = paused

    def start_recording(self, path: str | Path) -> None:
        self._edits.put(("record", None, Path(path)))

    def stop_recording(self) -> None:
        self._edits.put(("stop_record", None, None))

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot

    def stop(self) -> None:
        self._halt.set()

    def close(self) -> None:
        """Release the simulator (its renderer; Isaac Lab's one simulation a process may hold) after the loop."""
        if self.is_alive():
            raise RuntimeError("stop the simulation and join its thread before closing it")
        self.backend.close()

    # -- the loop -------------------------------------------------------------------------------------------

    def run(self) -> None:
        period = 1.0 / self.cfg.control_hz
        next_tick = time.perf_counter()
        while not self._halt.is_set():
            self._apply_edits()
            with self._lock:
                paused = self._paused
            if paused:
                time.sleep(0.02)
                next_tick = time.perf_counter()
                self._publish(cost=self._snapshot.cost)
                continue
            try:
                self._control_step()
            except Exception as err:  # noqa: BLE001 - the loop must outlive any failure; the UI shows it
                log.exception("control step failed; pausing")
                self._error = f"control step failed: {err} (paused; Reset to continue)"
                with self._lock:
                    self._paused = True
                continue
            next_tick += period
            now = time.perf_counter()
            if next_tick > now:
                time.sleep(next_tick - now)
            # Late: catch up on at most ``max_lag_steps`` steps (a slow planning step followed by a fast one
            # still averages 50 Hz); beyond that, slow down rather than run a burst.
            next_tick = max(next_tick, now - self.cfg.max_lag_steps * period)
        if self._recorder is not None:
            self._recorder.close()

    def _control_step(self) -> None:
        self.controller.set_task(self._task(), self._guidance)
        previous_plan = self.controller.last_plan
        action = self.controller.act(self._state)
        cost = self._snapshot.cost
        if self.controller.last_plan is not previous_plan:  # a new plan: its cost, in the frame it was planned in
            guided_by = self.controller.last_cost
            with torch.no_grad():
                plan = self.policy.normalize(torch.as_tensor(self.controller.last_plan[None]))
                cost = 0.0 if guided_by is None else float(self.policy.guide(guided_by).evaluate(plan)[0])
        previous = self._state
        self._state = self.backend.step(action)
        if self._recorder is not None:
            self._recorder.add(previous, action, self._command_for_record())
        self._fell = self._fell or bool(has_fallen(self._state))
        self._step_times.append(time.perf_counter())
        self._publish(cost)

    def _task(self) -> Task | None:
        with self._lock:
            mode, command, waypoint, weight = self._mode, self._command, self._waypoint, self._obstacle_weight
        base: Task | None = None
        obstacles = tuple(self.backend.obstacles().values())
        avoid = AvoidObstaclesTask(obstacles) if obstacles else None
        if mode == "joystick" and avoid is not None and self.cfg.steer is not None:
            command = avoid.steer(self._state, command, self.cfg.steer)  # a turn: the heading hold lets go
        if mode == "joystick":
            base = VelocityTask(*self._holds(self._state, command))
        else:
            self._holds.reset()  # back in joystick mode, a walk starts a new hold
            if waypoint is not None:  # route round obstacles (their edits rebuild the route); Eq. 8 alone
                # (WaypointTask) reached 3 / 20 goals when replanning every 2nd step, NavigateTask 20 / 20
                return NavigateTask(*waypoint, obstacles=obstacles, obstacle_weight=weight)
            base = VelocityTask()  # waypoint mode without a waypoint (and drawing mode): stand still
        if avoid is not None:
            return CombinedTask(((1.0, base), (weight, avoid)))
        return base

    def _command_for_record(self) -> tuple[float, float, float]:
        with self._lock:
            return self._command if self._mode == "joystick" else (0.0, 0.0, 0.0)

    def _apply_edits(self) -> None:
        while True:
            try:
                kind, uid, payload = self._edits.get_nowait()
            except queue.Empty:
                return
            try:
                self._apply_edit(kind, uid, payload)
            except Exception as err:  # noqa: BLE001 - a failed user action is reported, never fatal
                log.warning("%s failed: %s", kind, err)
                self._error = f"{kind} failed: {err}"

    def _apply_edit(self, kind: str, uid: int | None, payload) -> None:
        if kind == "put":
            if uid in self._handles:
                self.backend.move_obstacle(self._handles[uid], payload)
            else:
                self._handles[uid] = self.backend.add_obstacle(payload)
        elif kind == "remove" and uid in self._handles:
            self.backend.remove_obstacle(self._handles.pop(uid))
        elif kind == "reset":
            self._state = self.backend.reset(start_pose(payload))
            self.controller.reset(self._state)
            self._holds.reset()
            self._fell = False
            self._error = None
            with self._lock:
                self._paused = False
            if self._recorder is not None:
                self._recorder.end_episode(fell=False)
        elif kind == "record":
            self._recorder = SessionRecorder(payload, self.policy.layout, self.backend.control_dt)
        elif kind == "stop_record" and self._recorder is not None:
            self._recorder.close()
            self._recorder = None

    def _publish(self, cost: float) -> None:
        snapshot = self._make_snapshot(cost)
        with self._lock:
            self._snapshot = snapshot

    def _make_snapshot(self, cost: float) -> Snapshot:
        s = self._state
        c, sn = math.cos(s.yaw), math.sin(s.yaw)
        vx, vy = s.root_lin_vel_w[:2]
        plan = self.controller.last_plan
        plan_xy = np.zeros((0, 2))
        if plan is not None:  # plans live in the robot frame at plan time
            rel = plan[:, self.policy.layout.fields["root_pos_xy"]]
            plan_xy = s.root_pos[:2] + rel @ np.array([[c, sn], [-sn, c]])
        ids = {handle: uid for uid, handle in self._handles.items()}
        times = self._step_times
        hz = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        with self._lock:
            mode, command, waypoint, paused = self._mode, self._command, self._waypoint, self._paused
        qpos, mocap_pos, mocap_quat = self.backend.scene_pose()
        return Snapshot(
            time=s.time, qpos=qpos, mocap_pos=mocap_pos, mocap_quat=mocap_quat, root_xy=s.root_pos[:2].copy(),
            yaw=s.yaw, command=command if mode == "joystick" else (0.0, 0.0, 0.0),
            velocity=(c * vx + sn * vy, -sn * vx + c * vy, float(s.root_ang_vel_b[2])), plan_xy=plan_xy,
            waypoint=waypoint if mode != "joystick" else None,
            obstacles={ids[h]: o for h, o in self.backend.obstacles().items() if h in ids},
            plan_ms=self.controller.plan_ms[-1] if self.controller.plan_ms else 0.0, cost=cost, control_hz=hz,
            fell=self._fell, paused=paused, recording=self._recorder is not None, mode=mode, error=self._error,
            no_route=isinstance(self.controller.task, NavigateTask) and not self.controller.task.route_exists(s),
        )  # fmt: skip
