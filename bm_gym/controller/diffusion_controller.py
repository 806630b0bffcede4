"""Closed-loop diffusion control: keep the history, plan a trajectory, execute its first action(s), replan."""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from bm_gym.diffusion.policy import DiffusionPolicy
from bm_gym.guidance.costs import TaskCost
from bm_gym.guidance.guide import GuidanceCfg
from bm_gym.guidance.tasks import Task, with_arrival, with_velocity_ramp
from bm_gym.robot import g1
from bm_gym.sim.backend import RobotState


@dataclass(frozen=True)
class ControllerCfg:
    actions_per_plan: int = 1  # execute this many planned actions before replanning (1 = replan every step)
    seed: int = 0
    guidance: GuidanceCfg | None = None  # None: the checkpoint's (``DiffusionPolicy.guidance``)
    onnxruntime: bool = True  # gradient-free denoiser passes in ONNX Runtime (2x faster on the CPU than torch)
    fused: bool = True  # whole plans in one ONNX Runtime call when the task allows (bm_gym.guidance.fused)
    # Warm start: begin each plan from the previous one (advanced, re-framed, noised) at this denoising step,
    # skipping the ones before it; 0 samples from pure noise (see docs/benchmarks.md for what it changes).
    warm_start_step: int = 0
    # Rolling warm start (split-token models, Diffuse-CLoC): the previous plan's actions start at this later,
    # less noisy step than its states (warm_start_step); None: at the same step as the states.
    warm_start_action_step: int | None = None


#: Plan latencies kept in ``DiffusionController.plan_ms`` (200 s of replanning at 50 Hz).
PLAN_MS_WINDOW = 10_000


@dataclass
class _Robot:
    """What the controller keeps per robot: its history, noise generator, task and current plan."""

    states: deque
    actions: deque
    generator: torch.Generator
    task: Task | None = None
    steered: Task | None = None  # ``task`` as planned: with the model's stopping distance (GuidanceCfg)
    guidance: GuidanceCfg | None = None  # this robot's settings, None: the controller's
    plan: np.ndarray | None = None  # [H, S+A] physical units, frame of the robot when planned
    plan_origin: np.ndarray | None = None  # encoded (world-frame) state the plan started from
    cost: TaskCost | None = None  # the cost that guided ``plan``
    velocity: np.ndarray | None = None  # world-frame horizontal root velocity at the last step, m/s
    time: float = 0.0  # simulation time of that step, s
    recover_until: float = -np.inf  # guidance is eased until this time (GuidanceCfg.recovery_guided_steps)
    touching: bool = False  # touched an obstacle at the last step: guidance is never eased then


class DiffusionController:
    """Turns simulator states into joint targets with a :class:`DiffusionPolicy`; usable without Gymnasium.

    One controller drives ``num_robots`` robots with one batched plan per replanning step (each robot with its
    own history, task and noise generator); the single robot is ``num_robots=1`` and :meth:`act`.
    """

    def __init__(self, policy: DiffusionPolicy, cfg: ControllerCfg | None = None, num_robots: int = 1) -> None:
        self.policy = policy
        self.cfg = cfg or ControllerCfg()
        if self.cfg.guidance is None:
            self.cfg = dataclasses.replace(self.cfg, guidance=policy.guidance)
        if not 1 <= self.cfg.actions_per_plan <= policy.horizon:
            raise ValueError(f"actions_per_plan must be in 1..{policy.horizon}, got {self.cfg.actions_per_plan}")
        steps = len(policy.diffusion.sample_scheduler.timesteps)
        if not 0 <= self.cfg.warm_start_step < steps:
            raise ValueError(f"warm_start_step must be in 0..{steps - 1}, got {self.cfg.warm_start_step}")
        action_step = self.cfg.warm_start_action_step
        if action_step is not None and action_step != self.cfg.warm_start_step:
            if not self.cfg.warm_start_step:
                raise ValueError(f"warm_start_action_step ({action_step}) needs a warm start: set warm_start_step > 0")
            try:  # the sampler's own checks, at configuration time rather than at the second plan
                policy.diffusion.token_start_steps(policy.cfg.denoiser, self.cfg.warm_start_step, action_step)
            except ValueError as err:
                raise ValueError(f"warm_start_action_step: {err}") from None
        if num_robots < 1:
            raise ValueError(f"num_robots must be at least 1, got {num_robots}")
        self.layout = policy.layout
        if self.cfg.fused and policy.fused is None:
            policy.use_fused()
        if self.cfg.onnxruntime and policy.fast_forward is None:
            policy.use_onnxruntime()
        self.robots = [
            _Robot(deque(maxlen=policy.history), deque(maxlen=policy.history),
                   torch.Generator().manual_seed(self.cfg.seed + i))
            for i in range(num_robots)
        ]  # fmt: skip
        self._plan_step = 0
        # Latest plan latencies (a bounded window: a teleop session runs for hours) and the total count.
        self.plan_ms: deque[float] = deque(maxlen=PLAN_MS_WINDOW)
        self.plans = 0
        self.kicks_seen = 0  # recoveries started, all robots (GuidanceCfg.disturbance_accel)

    @property
    def num_robots(self) -> int:
        return len(self.robots)

    # The single robot's view (robot 0).
    @property
    def task(self) -> Task | None:
        """What guidance steers robot 0 towards; None samples the unguided prior."""
        return self.robots[0].task

    @property
    def last_plan(self) -> np.ndarray | None:
        """Robot 0's current plan [H, S+A] (physical units, frame of the robot when planned)."""
        return self.robots[0].plan

    @property
    def last_cost(self) -> TaskCost | None:
        """The cost that guided robot 0's current plan (same frame)."""
        return self.robots[0].cost

    def set_task(self, task: Task | None, guidance: GuidanceCfg | None = None, robot: int | None = None) -> None:
        """Change the task (and optionally the guidance settings) between any two control steps.

        ``robot`` None: the controller's setting for every robot (the single-robot case); else one robot's.
        """
        if robot is None:
            if guidance is not None:
                self.cfg = dataclasses.replace(self.cfg, guidance=guidance)
            chosen = self.robots
        else:
            chosen = [self.robots[robot]]
            if guidance is not None:
                chosen[0].guidance = guidance
        for r in chosen:
            cfg = r.guidance or self.cfg.guidance
            r.task = task
            r.steered = (
                None if task is None else with_arrival(task, cfg.stop_delay, cfg.stop_deceleration, cfg.recentre_radius)
            )

    def reset(self, state: RobotState, seed: int | None = None, robot: int = 0) -> None:
        """Start a new episode for ``robot``: its history is the current state held with standing targets."""
        r = self.robots[robot]
        if seed is not None:
            r.generator.manual_seed(seed)
        s = self.layout.encode(state)
        r.states.clear()
        r.actions.clear()
        for _ in range(self.policy.history):
            r.states.append(s)
            r.actions.append(np.array(g1.DEFAULT_JOINT_POS, dtype=np.float32))
        r.plan = r.cost = r.velocity = None
        r.recover_until = -np.inf
        r.touching = False
        if self.num_robots == 1:
            self.plan_ms.clear()

    def reset_from(self, states: list[RobotState], actions: list[np.ndarray], seed: int | None = None,
                   robot: int = 0) -> None:  # fmt: skip
        """Start ``robot`` inside a recorded motion: its history is the last N (state, applied targets) pairs of
        someone else's control, e.g. the Stage 1 expert's, instead of a standing pose."""
        n = self.policy.history
        if len(states) < n or len(actions) < n:
            raise ValueError(f"a history needs the last {n} states and actions, got {len(states)} and {len(actions)}")
        self.reset(states[-1], seed, robot)
        r = self.robots[robot]
        r.states.clear()
        r.actions.clear()
        for state, action in zip(states[-n:], actions[-n:], strict=True):
            r.states.append(self.layout.encode(state))
            r.actions.append(np.asarray(action, dtype=np.float32))

    def history_window(self, state: RobotState, robot: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The model input [N+1, S+A] (canonicalized, physical units) and the encoded present state."""
        r = self.robots[robot]
        s = self.layout.encode(state)
        states = self.layout.canonicalize(np.stack([*r.states, s]), present=self.policy.history)
        actions = np.concatenate([np.stack(r.actions), np.zeros((1, self.layout.action_dim), np.float32)])
        return np.concatenate([states, actions], axis=1), s

    def _warm_start(self, s_now: np.ndarray, robot: int = 0) -> np.ndarray | None:
        """The previous plan advanced by the steps executed since, in the frame of the robot now."""
        r = self.robots[robot]
        if not self.cfg.warm_start_step or r.plan is None:
            return None
        d, executed = self.layout.dim, self._plan_step
        plan = np.concatenate([r.plan[executed:], np.repeat(r.plan[-1:], executed, axis=0)])
        now_in_plan_frame = self.layout.canonicalize(np.stack([r.plan_origin, s_now]), present=0)[1]
        states = self.layout.canonicalize(np.concatenate([plan[:, :d], now_in_plan_frame[None]]), present=len(plan))
        return np.concatenate([states[:-1], plan[:, d:]], axis=1)

    def recovering(self, robot: int = 0) -> bool:
        """Whether ``robot`` is recovering from a kick, so its guidance is eased (GuidanceCfg.recovery_s).

        Never while it touches an obstacle: guidance, its barrier with it, is what takes it off the obstacle.
        """
        r = self.robots[robot]
        return r.velocity is not None and r.time < r.recover_until and not r.touching

    def _watch_for_kicks(self, r: _Robot, state: RobotState) -> None:
        """Start a recovery when the root's horizontal velocity changed faster than walking changes it.

        A change while touching an obstacle is the obstacle's force, not a kick: bumping into a cylinder jolts
        the root as hard as a kick does, and easing the barrier then pressed the robot into it for longer.
        """
        cfg = r.guidance or self.cfg.guidance
        velocity = np.asarray(state.root_lin_vel_w[:2], dtype=float)
        r.touching = bool(state.obstacle_contact)
        if r.velocity is not None and state.time > r.time and not r.touching:
            if np.hypot(*(velocity - r.velocity)) / (state.time - r.time) > cfg.disturbance_accel:
                self.kicks_seen += state.time >= r.recover_until  # a new recovery, not one kick seen twice
                r.recover_until = state.time + cfg.recovery_s
        r.velocity, r.time = velocity, state.time

    def act(self, state: RobotState) -> np.ndarray:
        """Joint position targets (simulator joint order) for this control step of the single robot."""
        if self.num_robots != 1:
            raise ValueError(f"this controller drives {self.num_robots} robots: use act_batch")
        return self.act_batch([state])[0]

    def act_batch(self, states: list[RobotState], active: np.ndarray | None = None) -> np.ndarray:
        """Joint position targets [B, J] for every robot, planning all of them in one batch when it is time.

        ``active`` (bool [B]) marks the robots whose targets will be applied; the others (an env being reset,
        a robot that fell) are planned along, for a fixed batch shape, but keep their history and noise
        generator untouched, so each robot's run is the same in any batch.
        """
        if len(states) != self.num_robots:
            raise ValueError(f"expected {self.num_robots} states, got {len(states)}")
        active = np.ones(self.num_robots, bool) if active is None else np.asarray(active, bool)
        windows, encoded = zip(*(self.history_window(s, i) for i, s in enumerate(states)), strict=True)
        for r, state, on in zip(self.robots, states, active, strict=True):
            if on:
                self._watch_for_kicks(r, state)
        replan = self._plan_step >= self.cfg.actions_per_plan or any(r.plan is None for r in self.robots)
        if replan:
            start = time.perf_counter()
            guides, warm = [], []
            all_planned = all(r.plan is not None for r in self.robots)
            for i, (r, state, s) in enumerate(zip(self.robots, states, encoded, strict=True)):
                cfg = r.guidance or self.cfg.guidance
                task = r.steered
                if task is not None and cfg.velocity_ramp is not None:
                    task = with_velocity_ramp(task, cfg.velocity_ramp)
                r.cost = None if task is None else task.cost(state)
                cfg = cfg.recovering() if self.recovering(i) else cfg
                guides.append(None if r.cost is None else self.policy.guide(r.cost, cfg))
                warm.append(self._warm_start(s, i) if all_planned else None)
            init = np.stack(warm) if all(w is not None for w in warm) else None
            generators = [r.generator if on else torch.Generator().manual_seed(0)
                          for r, on in zip(self.robots, active, strict=True)]  # fmt: skip
            warm_steps = (self.cfg.warm_start_step, self.cfg.warm_start_action_step) if init is not None else (0, None)
            plans = self.policy.plan(np.stack(windows), generators, guides, init=init, start_step=warm_steps[0],
                                     action_start_step=warm_steps[1])  # fmt: skip
            for r, plan, s in zip(self.robots, plans, encoded, strict=True):
                r.plan, r.plan_origin = plan, s
            self.plan_ms.append((time.perf_counter() - start) * 1000)
            self.plans += 1
            self._plan_step = 0
        actions = np.stack([r.plan[self._plan_step, self.layout.dim :] for r in self.robots]).astype(np.float64)
        self._plan_step += 1
        if not np.all(np.isfinite(actions[active])):
            raise FloatingPointError("the diffusion policy produced non-finite joint targets")
        for r, s, a, on in zip(self.robots, encoded, actions, active, strict=True):
            if on:
                r.states.append(s)
                r.actions.append(a.astype(np.float32))
        return actions
