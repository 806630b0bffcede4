"""The state s_t the diffusion model sees, and its canonicalization into the frame of the present step.

Stored per step (see docs/data.md for units and frames):

    root_pos_xy      2   world frame, m           (canonicalized at load: relative to the robot at t)
    root_yaw_cs      2   cos, sin of world yaw    (canonicalized at load: yaw relative to the robot at t)
    root_height      1   m above the floor
    gravity_b        3   gravity direction in the pelvis frame (tilt)
    lin_vel_h        3   root linear velocity, heading frame, m/s
    ang_vel_h        3   root angular velocity, heading frame, rad/s (z = yaw rate)
    body_pos_h      3K   key bodies relative to the root, heading frame, m (z relative to the floor)
    body_vel_h      3K   their linear velocities, heading frame, m/s            (body_velocities layouts only)
    joint_pos       29   rad, MuJoCo joint order (names stored in every file)   (joint_state layouts only)
    joint_vel       29   rad/s                                                   (joint_state layouts only)

Two named layouts (:data:`STATE_KINDS`): ``joint``, the default (8 key bodies, joint angles and velocities, 96
values), and ``body-pos``, the paper's Body-Pos state (all 30 bodies' positions and velocities, no joint
angles, 194 values: in the paper's Table III it made the difference between 0 % and 80 % on its Joystick
protocol). Actions are joint position targets in either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from bm_gym.robot import g1
from bm_gym.sim.backend import RobotState
from bm_gym.utils.math import quat_rotate

STATE_KINDS = ("joint", "body-pos")


@dataclass(frozen=True)
class StateLayout:
    """Named slices of the state vector; written into every dataset and checkpoint."""

    joint_names: tuple[str, ...] = g1.JOINT_NAMES
    body_names: tuple[str, ...] = g1.KEY_BODIES
    joint_state: bool = True  # joint angles and velocities in the state
    body_velocities: bool = False  # the bodies' linear velocities in the state

    def __post_init__(self) -> None:
        unknown = [n for n in self.body_names if n not in g1.BODY_NAMES]
        if unknown:
            raise ValueError(f"the state layout names bodies the G1 does not have: {unknown}")

    @classmethod
    def named(cls, kind: str) -> StateLayout:
        """The layout called ``kind`` (:data:`STATE_KINDS`)."""
        if kind == "joint":
            return cls()
        if kind == "body-pos":
            return cls(body_names=g1.BODY_NAMES, joint_state=False, body_velocities=True)
        raise ValueError(f"unknown state kind {kind!r}: choose one of {STATE_KINDS}")

    @property
    def kind(self) -> str:
        """The name of this layout if it is a named one, else "custom"."""
        return next((k for k in STATE_KINDS if StateLayout.named(k) == self), "custom")

    @property
    def fields(self) -> dict[str, slice]:
        k, j = 3 * len(self.body_names), len(self.joint_names)
        sizes = {"root_pos_xy": 2, "root_yaw_cs": 2, "root_height": 1, "gravity_b": 3, "lin_vel_h": 3, "ang_vel_h": 3,
                 "body_pos_h": k, **({"body_vel_h": k} if self.body_velocities else {}),
                 **({"joint_pos": j, "joint_vel": j} if self.joint_state else {})}  # fmt: skip
        out, start = {}, 0
        for name, size in sizes.items():
            out[name] = slice(start, start + size)
            start += size
        return out

    @property
    def dim(self) -> int:
        return max(s.stop for s in self.fields.values())

    @property
    def action_dim(self) -> int:
        return len(self.joint_names)

    def to_json(self) -> str:
        return json.dumps(
            {
                "fields": {k: [v.start, v.stop] for k, v in self.fields.items()},
                "joint_names": list(self.joint_names),
                "body_names": list(self.body_names),
                "joint_state": self.joint_state,
                "body_velocities": self.body_velocities,
                "action": "joint position targets, rad, joint_names order",
            }
        )

    @classmethod
    def from_json(cls, text: str) -> StateLayout:
        spec = json.loads(text)
        # files written before the Body-Pos option have neither flag: the joint layout
        layout = cls(tuple(spec["joint_names"]), tuple(spec["body_names"]), bool(spec.get("joint_state", True)),
                     bool(spec.get("body_velocities", False)))  # fmt: skip
        stored = {k: tuple(v) for k, v in spec["fields"].items()}
        if stored != {k: (v.start, v.stop) for k, v in layout.fields.items()}:
            raise ValueError(f"state layout in file does not match this version of bm_gym: {stored}")
        return layout

    @cached_property
    def _readout_bodies(self) -> np.ndarray:
        """Rows of this layout's bodies in a backend readout (every body, :data:`g1.BODY_NAMES` order)."""
        return np.array([g1.BODY_NAMES.index(n) for n in self.body_names])

    def encode(self, state: RobotState) -> np.ndarray:
        """s_t from a simulator readout (world-frame root position and yaw kept raw)."""
        yaw = state.yaw
        c, s = np.cos(yaw), np.sin(yaw)
        to_heading = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])  # world -> heading
        bodies = self._readout_bodies
        rel = state.body_pos_w[bodies] - np.array([state.root_pos[0], state.root_pos[1], 0.0])
        ang_vel_w = quat_rotate(state.root_quat, state.root_ang_vel_b)
        parts = [
            state.root_pos[:2], [c, s], state.root_pos[2:3], state.projected_gravity,
            to_heading @ state.root_lin_vel_w, to_heading @ ang_vel_w, (rel @ to_heading.T).reshape(-1),
        ]  # fmt: skip
        if self.body_velocities:
            parts.append((state.body_lin_vel_w[bodies] @ to_heading.T).reshape(-1))
        if self.joint_state:
            parts += [state.joint_pos, state.joint_vel]
        return np.concatenate(parts).astype(np.float32)

    def canonicalize(self, states: np.ndarray, present: int) -> np.ndarray:
        """Express root position and yaw of windows [..., T, S] relative to the robot at row ``present``."""
        f = self.fields
        out = states.copy()
        xy, cs = states[..., f["root_pos_xy"]], states[..., f["root_yaw_cs"]]
        c0, s0 = cs[..., present, None, 0], cs[..., present, None, 1]  # [..., 1]: broadcast over the rows
        dx, dy = xy[..., 0] - xy[..., present, None, 0], xy[..., 1] - xy[..., present, None, 1]
        out[..., f["root_pos_xy"]] = np.stack([c0 * dx + s0 * dy, -s0 * dx + c0 * dy], -1)
        # cos/sin of (yaw - yaw0)
        c, s = cs[..., 0], cs[..., 1]
        out[..., f["root_yaw_cs"]] = np.stack([c * c0 + s * s0, s * c0 - c * s0], -1)
        return out
