"""The paper's velocity-control protocols and a push sweep, for the diffusion controller and for a Stage 1 expert
under one harness (``../shared/reference/beyondmimic_stage2_facts.md``).

- Walk+Perturb: walk at 0.5 m/s (or stand) for 15 s; once every second the root gets an instantaneous
  horizontal velocity kick of U(0, 0.5) m/s in a random direction. Failure: a fall.
- Joystick: forward 0.5 m/s, backward 0.4 m/s, turn left 1 rad/s, turn right 1 rad/s, 3 s each. Failure: a
  fall, or not following. "Following" (fixed before running): over the last 2 s of a segment, the mean
  heading-frame velocity (or yaw rate) along the commanded axis has the command's sign and at least half
  its magnitude.
- Push: walk at 0.5 m/s; at 2 s one horizontal kick of a given magnitude in a random direction; 4 s more.
  Failure: a fall. The sweep reports the largest kick survived in >= 90 % of the runs.
- Omnidirectional: backward at 0.4 m/s, sideways at 0.5 m/s and forward at 1.0 m/s, 10 s each from standing:
  mean speed along the command over the last 8 s, distance covered, sideways drift.
- Waypoint tour: a new goal pose every 5 s, as an operator gives them (steps forward, sidesteps, backing up,
  turns in place; :func:`tour_goals`), each relative to the previous goal; one follower
  (:func:`tour_command`, an operator's proportional stick in the robot frame) turns goals into velocity
  commands for either driver. Measured: position and heading error at each goal's deadline. Failure: a fall.
- Joystick profile (:data:`JOYSTICK_PROFILE`, 30 s of steps, ramps, walking turns and
  turns in place): mean speed and yaw-rate errors against the commands, both averaged over 1 s (gait sway).
  Failure: a fall. Run by the expert too, it says how close a controller can come under domain randomization.

The tools run every protocol through :class:`HoldDriver` unless told not to (``--no-heading-hold``,
``--no-speed-hold``).

A diagnostic beside them, :func:`run_handover`: the expert walks on a command, then the student goes on from
the expert's history (tools/probe_handover.py). Does the student keep a gait it is handed?
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from bm_gym.controller import DiffusionController
from bm_gym.eval.scenarios import EpisodeResult
from bm_gym.guidance.guide import GuidanceCfg
from bm_gym.guidance.tasks import CommandHolds, VelocityTask
from bm_gym.sim import RobotState, SimBackend, has_fallen
from bm_gym.stage1.policy import Stage1Policy

#: (vx m/s, wz rad/s) of the Joystick protocol's segments, 3 s each.
JOYSTICK_SEGMENTS = (("forward", 0.5, 0.0), ("backward", -0.4, 0.0), ("turn left", 0.0, 1.0), ("turn right", 0.0, -1.0))
SEGMENT_S = 3.0
FOLLOW_WINDOW_S = 2.0  # the end of each segment that is judged
FOLLOW_FRACTION = 0.5


class VelocityDriver(Protocol):
    """Something that walks the robot on velocity commands: the diffusion controller or a Stage 1 expert."""

    def start(self, backend: SimBackend, seed: int) -> RobotState:
        """Reset the simulation (and the driver) for a new run."""

    def act(self, state: RobotState, command: tuple[float, float, float]) -> np.ndarray:
        """Joint targets for this control step under the command (vx, vy, wz)."""


@dataclass
class DiffusionDriver:
    """The guided diffusion controller with a joystick task."""

    controller: DiffusionController
    guidance: GuidanceCfg

    def start(self, backend: SimBackend, seed: int) -> RobotState:
        state = backend.reset(seed=seed)
        self.controller.reset(state, seed=seed)
        return state

    def act(self, state: RobotState, command: tuple[float, float, float]) -> np.ndarray:
        self.controller.set_task(VelocityTask(*command), self.guidance)
        return self.controller.act(state)


@dataclass
class ExpertDriver:
    """A Stage 1 velocity policy, with the PD gains it was trained with."""

    policy: Stage1Policy

    def start(self, backend: SimBackend, seed: int) -> RobotState:
        self.policy.apply_gains(backend)
        state = backend.reset(seed=seed)
        self.policy.reset()
        return state

    def act(self, state: RobotState, command: tuple[float, float, float]) -> np.ndarray:
        return self.policy.act(state, command)


@dataclass
class HoldDriver:
    """Either driver, given its commands as an operator's joystick interface gives them (:class:`CommandHolds`:
    a straight walk or a stand holds its heading, a walk its speed). The protocols' commands reach both drivers
    through the same holds."""

    driver: VelocityDriver
    holds: CommandHolds = field(default_factory=CommandHolds)

    def start(self, backend: SimBackend, seed: int) -> RobotState:
        self.holds.reset()
        return self.driver.start(backend, seed)

    def act(self, state: RobotState, command: tuple[float, float, float]) -> np.ndarray:
        return self.driver.act(state, self.holds(state, command))


def _kick(backend: SimBackend, rng: np.random.Generator, magnitude: float) -> None:
    """An instantaneous horizontal root-velocity change of ``magnitude`` m/s in a random direction."""
    angle = rng.uniform(-math.pi, math.pi)
    backend.push(np.array([magnitude * math.cos(angle), magnitude * math.sin(angle), 0.0]), np.zeros(3))


def run_walk_perturb(backend: SimBackend, driver: VelocityDriver, seed: int, speed: float = 0.5,
                     duration_s: float = 15.0, max_kick: float = 0.5,
                     period_s: float = 1.0) -> EpisodeResult:  # fmt: skip
    """Walk+Perturb (``speed`` 0: stand+perturb); success = no fall."""
    rng = np.random.default_rng(4000 + seed)
    state = driver.start(backend, seed)
    dt, kicks = backend.control_dt, []
    every = round(period_s / dt)
    for step in range(round(duration_s / dt)):
        if step and step % every == 0:
            kicks.append(float(rng.uniform(0.0, max_kick)))
            _kick(backend, rng, kicks[-1])
        state = backend.step(driver.act(state, (speed, 0.0, 0.0)))
        if has_fallen(state):
            return EpisodeResult(seed, False, True, 0, (step + 1) * dt, {"kicks": kicks})
    return EpisodeResult(seed, True, False, 0, duration_s, {"kicks": kicks})


def run_joystick_protocol(backend: SimBackend, driver: VelocityDriver, seed: int) -> EpisodeResult:
    """The Joystick protocol; success = no fall and every segment followed (see the module docstring)."""
    state = driver.start(backend, seed)
    dt = backend.control_dt
    per_segment = round(SEGMENT_S / dt)
    window = round(FOLLOW_WINDOW_S / dt)
    achieved, followed = {}, {}
    for name, vx, wz in JOYSTICK_SEGMENTS:
        measured = []
        for _ in range(per_segment):
            previous_yaw = state.yaw
            state = backend.step(driver.act(state, (vx, 0.0, wz)))
            if has_fallen(state):
                return EpisodeResult(seed, False, True, 0, state.time, {"achieved": achieved, "followed": followed})
            forward = float(state.heading_lin_vel[0])
            yaw_rate = math.remainder(state.yaw - previous_yaw, 2 * math.pi) / dt
            measured.append(forward if wz == 0.0 else yaw_rate)
        target = vx if wz == 0.0 else wz
        mean = float(np.mean(measured[-window:]))
        achieved[name] = mean
        followed[name] = bool(math.copysign(1.0, mean) == math.copysign(1.0, target)
                              and abs(mean) >= FOLLOW_FRACTION * abs(target))  # fmt: skip
    return EpisodeResult(seed, all(followed.values()), False, 0, state.time, {"achieved": achieved,
                                                                             "followed": followed})  # fmt: skip


#: (start s, vx, wz, ramp) keyframes of the joystick profile: ramps interpolate, steps jump.
JOYSTICK_PROFILE = [
    (0.0, 0.0, 0.0, False), (2.0, 0.0, 0.0, True), (4.0, 0.6, 0.0, False), (9.0, 0.3, 0.5, False),
    (14.0, 0.0, -0.6, False), (19.0, 0.0, 0.0, True), (21.0, 0.8, 0.0, False), (26.0, 0.0, 0.0, False),
    (30.0, 0.0, 0.0, False),
]  # fmt: skip


def joystick_command(t: float) -> tuple[float, float]:
    """The profile's (vx, wz) at time ``t`` (s)."""
    for (t0, vx0, wz0, ramp), (t1, vx1, wz1, _) in zip(JOYSTICK_PROFILE, JOYSTICK_PROFILE[1:], strict=False):
        if t0 <= t < t1:
            if not ramp:
                return vx0, wz0
            a = (t - t0) / (t1 - t0)
            return vx0 + a * (vx1 - vx0), wz0 + a * (wz1 - wz0)
    return JOYSTICK_PROFILE[-1][1], JOYSTICK_PROFILE[-1][2]


def run_joystick_profile(backend: SimBackend, driver: VelocityDriver, seed: int,
                         smooth_s: float = 1.0) -> EpisodeResult:  # fmt: skip
    """The joystick profile; errors compare its commands with the heading-frame forward speed and the yaw rate,
    all averaged over ``smooth_s``; success = no fall."""
    state = driver.start(backend, seed)
    dt = backend.control_dt
    steps = round(JOYSTICK_PROFILE[-1][0] / dt)
    commands, forward, yaw_rate = np.zeros((steps, 2)), np.zeros(steps), np.zeros(steps)
    for step in range(steps):
        vx, wz = joystick_command(step * dt)
        commands[step] = vx, wz
        previous_yaw = state.yaw
        state = backend.step(driver.act(state, (vx, 0.0, wz)))
        forward[step] = state.heading_lin_vel[0]
        yaw_rate[step] = math.remainder(state.yaw - previous_yaw, 2 * math.pi) / dt
        if has_fallen(state):
            return EpisodeResult(seed, False, True, 0, (step + 1) * dt)
    kernel = np.ones(max(1, round(smooth_s / dt)))
    kernel /= kernel.size
    smooth = lambda x: np.convolve(x, kernel, mode="valid")  # noqa: E731 - trailing average
    speed_error = float(np.mean(np.abs(smooth(forward) - smooth(commands[:, 0]))))
    yaw_error = float(np.mean(np.abs(smooth(yaw_rate) - smooth(commands[:, 1]))))
    return EpisodeResult(seed, True, False, 0, steps * dt, {"speed_error": speed_error, "yaw_rate_error": yaw_error})


def run_push(backend: SimBackend, driver: VelocityDriver, seed: int, kick: float, speed: float = 0.5,
             at_s: float = 2.0, after_s: float = 4.0) -> EpisodeResult:  # fmt: skip
    """One kick of ``kick`` m/s in a random horizontal direction while walking; success = no fall."""
    rng = np.random.default_rng(5000 + seed)
    state = driver.start(backend, seed)
    dt = backend.control_dt
    kick_step = round(at_s / dt)
    for step in range(round((at_s + after_s) / dt)):
        if step == kick_step:
            _kick(backend, rng, kick)
        state = backend.step(driver.act(state, (speed, 0.0, 0.0)))
        if has_fallen(state):
            return EpisodeResult(seed, False, True, 0, (step + 1) * dt, {"kick": kick})
    return EpisodeResult(seed, True, False, 0, at_s + after_s, {"kick": kick})


#: Commands (vx, vy) of the omnidirectional check, 10 s each.
OMNI_COMMANDS = (("backward 0.4", -0.4, 0.0), ("sideways 0.5", 0.0, 0.5), ("forward 1.0", 1.0, 0.0))


def run_omnidirectional(backend: SimBackend, driver: VelocityDriver, seed: int, duration_s: float = 10.0,
                        settle_s: float = 2.0) -> EpisodeResult:  # fmt: skip
    """Each of :data:`OMNI_COMMANDS` from a fresh start; per command: speed along it (mean after ``settle_s``),
    its error, the distance covered along it and the largest drift across it (m, start frame)."""
    dt, per_command = backend.control_dt, {}
    for name, vx, vy in OMNI_COMMANDS:
        state = driver.start(backend, seed)
        start, yaw0 = state.root_pos[:2].copy(), state.yaw
        axis = np.array([vx, vy]) / math.hypot(vx, vy)
        c, s = math.cos(yaw0), math.sin(yaw0)
        along_w = np.array([c * axis[0] - s * axis[1], s * axis[0] + c * axis[1]])  # command axis, world frame
        speeds, drift = [], 0.0
        for step in range(round(duration_s / dt)):
            state = backend.step(driver.act(state, (vx, vy, 0.0)))
            if has_fallen(state):
                return EpisodeResult(seed, False, True, 0, state.time, {"commands": per_command, "fell_in": name})
            if (step + 1) * dt > settle_s:
                speeds.append(float(state.heading_lin_vel @ axis))
            offset = state.root_pos[:2] - start
            drift = max(drift, abs(float(offset @ np.array([-along_w[1], along_w[0]]))))
        speed = float(np.mean(speeds))
        per_command[name] = {"speed": speed, "speed_error": abs(speed - math.hypot(vx, vy)),
                             "distance": float((state.root_pos[:2] - start) @ along_w), "drift": drift}  # fmt: skip
    return EpisodeResult(seed, True, False, 0, len(OMNI_COMMANDS) * duration_s, {"commands": per_command})


#: Kinds of tour legs, relative to the previous goal pose: (name, forward m range, left m range, turn rad range).
TOUR_LEGS = (
    ("forward", (0.6, 1.2), (0.0, 0.0), (0.0, 0.0)),
    ("sidestep", (0.0, 0.0), (0.3, 0.6), (0.0, 0.0)),  # left or right, drawn with a sign
    ("back up", (-0.6, -0.3), (0.0, 0.0), (0.0, 0.0)),
    ("turn", (0.0, 0.0), (0.0, 0.0), (math.pi / 4, math.pi / 2)),  # left or right in place
)
TOUR_PERIOD_S = 5.0


def tour_goals(seed: int, count: int = 8) -> list[tuple[str, float, float, float]]:
    """``count`` goal poses (leg kind, x, y, yaw; world frame from the origin facing +x), each a small move from
    the previous goal; the first leg is a step forward."""
    rng = np.random.default_rng(9000 + seed)
    x, y, yaw, goals = 0.0, 0.0, 0.0, []
    for k in range(count):
        name, forward, left, turn = TOUR_LEGS[0] if k == 0 else TOUR_LEGS[rng.integers(len(TOUR_LEGS))]
        sign = rng.choice((-1.0, 1.0))
        dx, dy = rng.uniform(*forward), sign * rng.uniform(*left)
        x, y = x + math.cos(yaw) * dx - math.sin(yaw) * dy, y + math.sin(yaw) * dx + math.cos(yaw) * dy
        yaw = math.remainder(yaw + sign * rng.uniform(*turn), 2 * math.pi)
        goals.append((name, x, y, yaw))
    return goals


@dataclass(frozen=True)
class TourFollowerCfg:
    """A proportional stick in the robot frame, saturated at the speeds an operator uses for small moves."""

    gain: float = 1.2  # (m/s) per m of position error
    max_forward: float = 0.8
    max_backward: float = 0.4
    max_side: float = 0.5
    yaw_gain: float = 1.5  # (rad/s) per rad of heading error
    max_yaw_rate: float = 1.0
    deadband: float = 0.05  # m: inside it only the heading is corrected


def tour_command(state: RobotState, goal: tuple[float, float, float],
                 cfg: TourFollowerCfg = TourFollowerCfg()) -> tuple[float, float, float]:  # fmt: skip
    """(vx, vy, wz) in the robot's heading frame towards ``goal`` = (x, y, yaw)."""
    dx, dy = goal[0] - state.root_pos[0], goal[1] - state.root_pos[1]
    c, s = math.cos(state.yaw), math.sin(state.yaw)
    ex, ey = c * dx + s * dy, -s * dx + c * dy
    if math.hypot(ex, ey) < cfg.deadband:
        ex = ey = 0.0
    vx = float(np.clip(cfg.gain * ex, -cfg.max_backward, cfg.max_forward))
    vy = float(np.clip(cfg.gain * ey, -cfg.max_side, cfg.max_side))
    wz = float(np.clip(cfg.yaw_gain * math.remainder(goal[2] - state.yaw, 2 * math.pi), -cfg.max_yaw_rate,
                       cfg.max_yaw_rate))  # fmt: skip
    return vx, vy, wz


def run_tour(backend: SimBackend, driver: VelocityDriver, seed: int, count: int = 8,
             period_s: float = TOUR_PERIOD_S) -> EpisodeResult:  # fmt: skip
    """The waypoint tour; per goal: its kind, the position and heading error at its deadline."""
    state = driver.start(backend, seed)
    legs = []
    for name, x, y, yaw in tour_goals(seed, count):
        for _ in range(round(period_s / backend.control_dt)):
            state = backend.step(driver.act(state, tour_command(state, (x, y, yaw))))
            if has_fallen(state):
                return EpisodeResult(seed, False, True, 0, state.time, {"legs": legs})
        legs.append({"kind": name, "error": float(math.hypot(state.root_pos[0] - x, state.root_pos[1] - y)),
                     "heading_error": abs(math.remainder(state.yaw - yaw, 2 * math.pi))})  # fmt: skip
    return EpisodeResult(seed, True, False, 0, state.time, {"legs": legs})


def run_handover(backend: SimBackend, expert: Stage1Policy, controller: DiffusionController | None, seed: int,
                 command: tuple[float, float, float], guidance: GuidanceCfg | None = None, lead_s: float = 3.0,
                 after_s: float = 5.0) -> EpisodeResult:  # fmt: skip
    """The expert walks ``lead_s`` on ``command``; its last steps become the student's history and the student
    drives ``after_s`` more, guided on the same command (``guidance``), or unguided (None). With ``controller``
    None the expert goes on instead: the reference. Measured: the mean heading-frame velocity (forward, left)
    and yaw rate over each second after the hand-over. Failure: a fall."""
    state = ExpertDriver(expert).start(backend, seed)
    dt, states, actions = backend.control_dt, [], []
    for _ in range(round(lead_s / dt)):
        states.append(state)
        actions.append(expert.act(state, command))
        state = backend.step(actions[-1])
    if controller is not None:
        controller.reset_from(states, actions, seed=seed)
        controller.set_task(VelocityTask(*command) if guidance is not None else None, guidance)
    velocities = []
    for _ in range(round(after_s / dt)):
        previous_yaw = state.yaw
        state = backend.step(expert.act(state, command) if controller is None else controller.act(state))
        velocities.append([*state.heading_lin_vel, math.remainder(state.yaw - previous_yaw, 2 * math.pi) / dt])
        if has_fallen(state):
            break
    per_second = round(1.0 / dt)
    seconds = [np.mean(velocities[k : k + per_second], axis=0).tolist() for k in range(0, len(velocities), per_second)]
    fell = has_fallen(state)
    return EpisodeResult(seed, not fell, fell, 0, lead_s + len(velocities) * dt,
                         {"command": list(command), "per_second": seconds})  # fmt: skip
