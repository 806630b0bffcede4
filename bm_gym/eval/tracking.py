"""Does a diffusion model continue a tracked motion? Start it inside the motion and let it go on unguided.

For a tracking source (a Stage 1 tracking policy and its reference motion): at a random frame, the Stage 1
expert tracks the motion for ``lead_s`` (from the reference pose) so the robot is moving as in the data; its
last N states and executed targets become the diffusion controller's history; then the diffusion model
drives alone, with no task, for ``seconds``. The score is the mean absolute joint error against the
reference at the same frames (rad, over the joints and the steps before any fall), and whether it fell. The
same start run on by the expert gives the floor the student is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bm_gym.controller import DiffusionController
from bm_gym.sim import MujocoBackend, RobotState, has_fallen
from bm_gym.stage1 import Stage1Policy


@dataclass(frozen=True)
class ContinuationResult:
    seed: int
    start_frame: int
    fell: bool
    seconds: float  # driven before the end or a fall
    joint_error: float  # mean |q - q_ref| in rad

    @property
    def success(self) -> bool:
        return not self.fell


def start_frame(expert: Stage1Policy, seed: int, lead_steps: int, steps: int) -> int:
    """A random frame with room for the lead-in before it and the evaluated span after it."""
    last = expert.motion.num_frames - steps - 1
    if last <= lead_steps:
        raise ValueError(f"the motion has {expert.motion.num_frames} frames: too short for a {lead_steps}-step lead "
                         f"and {steps} evaluated steps")  # fmt: skip
    return int(np.random.default_rng(seed).integers(lead_steps, last))


def run_continuation(backend: MujocoBackend, expert: Stage1Policy, controller: DiffusionController | None, seed: int,
                     seconds: float = 10.0, lead_s: float = 1.0) -> ContinuationResult:  # fmt: skip
    """One start; ``controller`` None lets the expert go on instead (the reference figure)."""
    dt = backend.control_dt
    lead, steps = round(lead_s / dt), round(seconds / dt)
    frame0 = start_frame(expert, seed, lead, steps)
    first = frame0 - lead
    state = backend.reset(*expert.initial_state(first), seed=seed)
    expert.reset(first)
    states: list[RobotState] = []
    actions: list[np.ndarray] = []
    for _ in range(lead):
        states.append(state)
        actions.append(expert.act(state))
        state = backend.step(actions[-1])
    if controller is not None:
        controller.set_task(None)
        controller.reset_from(states, actions, seed=seed)
    reference = expert.motion.joint_pos
    errors = []
    for t in range(steps):
        targets = controller.act(state) if controller is not None else expert.act(state)
        state = backend.step(targets)
        errors.append(np.abs(state.joint_pos - reference[frame0 + t + 1]).mean())
        if has_fallen(state, expert.motion.root_pos[frame0 + t + 1, 2]):
            return ContinuationResult(seed, frame0, True, (t + 1) * dt, float(np.mean(errors)))
    return ContinuationResult(seed, frame0, False, steps * dt, float(np.mean(errors)))
