"""Closed-loop diffusion control: keep the history, plan a trajectory, execute its first action(s), replan."""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from bm_gym.diffusion.policy import DiffusionPolicy
from bm_gym.guidance.costs import TaskCost
from bm_gym.guidance.guide import GuidanceCfg
from bm_gym.guidance.tasks import Task
from bm_gym.robot import g1
from bm_gym.sim.backend import RobotState


@dataclass(frozen=True)
class ControllerCfg:
    actions_per_plan: int = 1  # execute this many planned actions before replanning (1 = replan every step)
    seed: int = 0
    guidance: GuidanceCfg = field(default_factory=GuidanceCfg)
    onnxruntime: bool = True  # gradient-free denoiser passes in ONNX Runtime (2x faster on the CPU than torch)
    # Warm start: begin each plan from the previous one (advanced, re-framed, noised) at this denoising step,
    # skipping the ones before it; 0 samples from pure noise (see docs/benchmarks.md for what it changes).
    warm_start_step: int = 0


#: Plan latencies kept in ``DiffusionController.plan_ms`` (200 s of replanning at 50 Hz).
PLAN_MS_WINDOW = 10_000


class DiffusionController:
    """Turns simulator states into joint targets with a :class:`DiffusionPolicy`; usable without Gymnasium."""

    def __init__(self, policy: DiffusionPolicy, cfg: ControllerCfg | None = None) -> None:
        self.policy = policy
        self.cfg = cfg or ControllerCfg()
        if not 1 <= self.cfg.actions_per_plan <= policy.horizon:
            raise ValueError(f"actions_per_plan must be in 1..{policy.horizon}, got {self.cfg.actions_per_plan}")
        steps = len(policy.diffusion.sample_scheduler.timesteps)
        if not 0 <= self.cfg.warm_start_step < steps:
            raise ValueError(f"warm_start_step must be in 0..{steps - 1}, got {self.cfg.warm_start_step}")
        self.layout = policy.layout
        if self.cfg.onnxruntime and policy.fast_forward is None:
            policy.use_onnxruntime()
        self._states: deque[np.ndarray] = deque(maxlen=policy.history)
        self._actions: deque[np.ndarray] = deque(maxlen=policy.history)
        self._generator = torch.Generator().manual_seed(self.cfg.seed)
        self._plan: np.ndarray | None = None
        self._plan_origin: np.ndarray | None = None  # encoded (world-frame) state the current plan started from
        self._plan_step = 0
        # Latest plan latencies (a bounded window: a teleop session runs for hours) and the total count.
        self.plan_ms: deque[float] = deque(maxlen=PLAN_MS_WINDOW)
        self.plans = 0
        self.last_plan: np.ndarray | None = None  # [H, S+A] physical units, frame of the robot when planned
        self.last_cost: TaskCost | None = None  # the cost that guided last_plan (same frame)
        self.task: Task | None = None  # what guidance steers towards; None samples the unguided prior

    def set_task(self, task: Task | None, guidance: GuidanceCfg | None = None) -> None:
        """Change the task (and optionally the guidance settings) between any two control steps."""
        self.task = task
        if guidance is not None:
            self.cfg = dataclasses.replace(self.cfg, guidance=guidance)

    def reset(self, state: RobotState, seed: int | None = None) -> None:
        """Start a new episode: the history is the current state held with standing targets."""
        if seed is not None:
            self._generator.manual_seed(seed)
        s = self.layout.encode(state)
        self._states.clear()
        self._actions.clear()
        for _ in range(self.policy.history):
            self._states.append(s)
            self._actions.append(np.array(g1.DEFAULT_JOINT_POS, dtype=np.float32))
        self._plan = None
        self.plan_ms.clear()

    def history_window(self, state: RobotState) -> tuple[np.ndarray, np.ndarray]:
        """The model input [N+1, S+A] (canonicalized, physical units) and the encoded present state."""
        s = self.layout.encode(state)
        states = self.layout.canonicalize(np.stack([*self._states, s]), present=self.policy.history)
        actions = np.concatenate([np.stack(self._actions), np.zeros((1, self.layout.action_dim), np.float32)])
        return np.concatenate([states, actions], axis=1), s

    def _warm_start(self, s_now: np.ndarray) -> np.ndarray | None:
        """The previous plan advanced by the steps executed since, in the frame of the robot now."""
        if not self.cfg.warm_start_step or self._plan is None:
            return None
        d, executed = self.layout.dim, self._plan_step
        plan = np.concatenate([self._plan[executed:], np.repeat(self._plan[-1:], executed, axis=0)])
        now_in_plan_frame = self.layout.canonicalize(np.stack([self._plan_origin, s_now]), present=0)[1]
        states = self.layout.canonicalize(np.concatenate([plan[:, :d], now_in_plan_frame[None]]), present=len(plan))
        return np.concatenate([states[:-1], plan[:, d:]], axis=1)

    def act(self, state: RobotState) -> np.ndarray:
        """Joint position targets (simulator joint order) for this control step."""
        window, s = self.history_window(state)
        if self._plan is None or self._plan_step >= self.cfg.actions_per_plan:
            start = time.perf_counter()
            self.last_cost = None if self.task is None else self.task.cost(state)
            guide = None if self.last_cost is None else self.policy.guide(self.last_cost, self.cfg.guidance)
            warm = self._warm_start(s)
            step = self.cfg.warm_start_step if warm is not None else 0
            self._plan = self.policy.plan(window, self._generator, guide, init=warm, start_step=step)
            self._plan_origin = s
            self.plan_ms.append((time.perf_counter() - start) * 1000)
            self.plans += 1
            self.last_plan = self._plan
            self._plan_step = 0
        action = self._plan[self._plan_step, self.layout.dim :].astype(np.float64)
        self._plan_step += 1
        if not np.all(np.isfinite(action)):
            raise FloatingPointError("the diffusion policy produced non-finite joint targets")
        self._states.append(s)
        self._actions.append(action.astype(np.float32))
        return action
