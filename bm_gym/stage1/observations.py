"""Stage 1 observation vectors, built term by term exactly as mjlab / Isaac Lab assemble them."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bm_gym.robot import g1
from bm_gym.sim.backend import RobotState
from bm_gym.stage1.conventions import ObsTermSpec, PolicyConventions
from bm_gym.stage1.motion import MotionClip
from bm_gym.utils.math import quat_conj, quat_mul, quat_to_matrix


@dataclass
class ObsInputs:
    """What the terms read: the simulator state, the previous raw action, and the current command."""

    state: RobotState
    last_action: np.ndarray  # policy joint order
    velocity_command: np.ndarray  # (vx, vy, wz)
    motion: MotionClip | None = None
    frame: int = 0


TermFn = Callable[[ObsInputs, np.ndarray, PolicyConventions], np.ndarray]


def _reference(inputs: ObsInputs) -> MotionClip:
    if inputs.motion is None:
        raise ValueError("this policy observes a reference motion; load one (motion=...)")
    return inputs.motion


def _anchor_ori_b(inputs: ObsInputs, idx: np.ndarray, conv: PolicyConventions) -> np.ndarray:
    """Reference anchor orientation in the robot anchor frame: first two rotation-matrix columns."""
    motion = _reference(inputs)
    robot_anchor = inputs.state.body_quat_w[g1.BODY_NAMES.index(g1.ANCHOR_BODY)]
    rel = quat_mul(quat_conj(robot_anchor), motion.anchor_quat_w[inputs.frame])
    return quat_to_matrix(rel)[:, :2].reshape(-1)


#: Term name (as in deploy.yaml / ONNX metadata) -> function returning the raw, unscaled values.
TERMS: dict[str, TermFn] = {
    "base_ang_vel": lambda i, idx, c: i.state.root_ang_vel_b,
    "base_lin_vel": lambda i, idx, c: i.state.root_lin_vel_b,
    "projected_gravity": lambda i, idx, c: i.state.projected_gravity,
    "velocity_commands": lambda i, idx, c: i.velocity_command,
    "command": lambda i, idx, c: i.velocity_command,
    "joint_pos_rel": lambda i, idx, c: i.state.joint_pos[idx] - c.default_joint_pos,
    "joint_pos": lambda i, idx, c: i.state.joint_pos[idx] - c.default_joint_pos,
    "joint_vel_rel": lambda i, idx, c: i.state.joint_vel[idx],
    "joint_vel": lambda i, idx, c: i.state.joint_vel[idx],
    "last_action": lambda i, idx, c: i.last_action,
    "actions": lambda i, idx, c: i.last_action,
    "motion_command": lambda i, idx, c: np.concatenate(
        [_reference(i).joint_pos[i.frame][idx], _reference(i).joint_vel[i.frame][idx]]
    ),
    "motion_anchor_ori_b": _anchor_ori_b,
}


class ObservationBuilder:
    """Turns simulator state into the policy's observation vector, keeping per-term history."""

    def __init__(self, conventions: PolicyConventions, obs_dim: int | None = None) -> None:
        unknown = [t.name for t in conventions.obs_terms if t.name not in TERMS]
        if unknown:
            raise KeyError(f"unknown observation terms {unknown}; supported: {sorted(TERMS)}")
        self.conventions = conventions
        self._idx = conventions.sim_index
        self._history: list[deque[np.ndarray]] = [deque(maxlen=t.history_length) for t in conventions.obs_terms]
        self._terms = [
            (term, TERMS[term.name], np.asarray(term.scale, dtype=np.float64)) for term in conventions.obs_terms
        ]
        self.expected_dim = obs_dim

    def reset(self) -> None:
        for history in self._history:
            history.clear()

    def __call__(self, inputs: ObsInputs) -> np.ndarray:
        parts = []
        for (term, fn, scale), history in zip(self._terms, self._history, strict=True):
            value = self._process(term, scale, fn(inputs, self._idx, self.conventions))
            if not history:  # Isaac Lab fills a fresh history buffer with the first value
                history.extend([value] * term.history_length)
            else:
                history.append(value)
            parts.extend(history)
        obs = np.concatenate(parts).astype(np.float32)
        if self.expected_dim is not None and obs.shape[0] != self.expected_dim:
            sizes = {t.name: len(h) * h[0].size for t, h in zip(self.conventions.obs_terms, self._history, strict=True)}
            raise ValueError(
                f"observation has {obs.shape[0]} values but the policy expects {self.expected_dim}; terms: {sizes}"
            )
        return obs

    @staticmethod
    def _process(term: ObsTermSpec, scale: np.ndarray, value: np.ndarray) -> np.ndarray:
        if term.clip is not None:
            value = np.clip(value, *term.clip)
        if scale.ndim and scale.shape != value.shape:
            raise ValueError(f"term {term.name!r}: scale has {scale.size} entries for {value.size} values")
        return value * scale
