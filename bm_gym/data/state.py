"""The state s_t the diffusion model sees, and its canonicalization into the frame of the present step.

Stored per step (see docs/state.md for units and frames):

    root_pos_xy      2   world frame, m           (canonicalized at load: relative to the robot at t)
    root_yaw_cs      2   cos, sin of world yaw    (canonicalized at load: yaw relative to the robot at t)
    root_height      1   m above the floor
    gravity_b        3   gravity direction in the pelvis frame (tilt)
    lin_vel_h        3   root linear velocity, heading frame, m/s
    ang_vel_h        3   root angular velocity, heading frame, rad/s (z = yaw rate)
    body_pos_h      3K   key bodies relative to the root, heading frame, m (z relative to the floor)
    joint_pos       29   rad, MuJoCo joint order (names stored in every file)
    joint_vel       29   rad/s
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from bm_gym.robot import g1
from bm_gym.sim.backend import RobotState
from bm_gym.utils.math import quat_rotate


@dataclass(frozen=True)
class StateLayout:
    """Named slices of the state vector; written into every dataset and checkpoint."""

    joint_names: tuple[str, ...] = g1.JOINT_NAMES
    body_names: tuple[str, ...] = g1.KEY_BODIES

    @property
    def fields(self) -> dict[str, slice]:
        sizes = {
            "root_pos_xy": 2, "root_yaw_cs": 2, "root_height": 1, "gravity_b": 3, "lin_vel_h": 3,
            "ang_vel_h": 3, "body_pos_h": 3 * len(self.body_names), "joint_pos": len(self.joint_names),
            "joint_vel": len(self.joint_names),
        }  # fmt: skip
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
                "action": "joint position targets, rad, joint_names order",
            }
        )

    @classmethod
    def from_json(cls, text: str) -> StateLayout:
        spec = json.loads(text)
        layout = cls(tuple(spec["joint_names"]), tuple(spec["body_names"]))
        stored = {k: tuple(v) for k, v in spec["fields"].items()}
        if stored != {k: (v.start, v.stop) for k, v in layout.fields.items()}:
            raise ValueError(f"state layout in file does not match this version of bm_gym: {stored}")
        return layout

    def encode(self, state: RobotState) -> np.ndarray:
        """s_t from a simulator readout (world-frame root position and yaw kept raw)."""
        yaw = state.yaw
        c, s = np.cos(yaw), np.sin(yaw)
        to_heading = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])  # world -> heading
        rel = state.body_pos_w - np.array([state.root_pos[0], state.root_pos[1], 0.0])
        ang_vel_w = quat_rotate(state.root_quat, state.root_ang_vel_b)
        return np.concatenate(
            [
                state.root_pos[:2], [c, s], state.root_pos[2:3], state.projected_gravity,
                to_heading @ state.root_lin_vel_w, to_heading @ ang_vel_w, (rel @ to_heading.T).reshape(-1),
                state.joint_pos, state.joint_vel,
            ]
        ).astype(np.float32)  # fmt: skip

    def canonicalize(self, states: np.ndarray, present: int) -> np.ndarray:
        """Express root position and yaw of a window [T, S] relative to the robot at row ``present``."""
        f = self.fields
        out = states.copy()
        xy, cs = states[:, f["root_pos_xy"]], states[:, f["root_yaw_cs"]]
        c0, s0 = cs[present]
        delta = xy - xy[present]
        out[:, f["root_pos_xy"]] = np.stack(
            [c0 * delta[:, 0] + s0 * delta[:, 1], -s0 * delta[:, 0] + c0 * delta[:, 1]], 1
        )
        # cos/sin of (yaw - yaw0)
        out[:, f["root_yaw_cs"]] = np.stack([cs[:, 0] * c0 + cs[:, 1] * s0, cs[:, 1] * c0 - cs[:, 0] * s0], 1)
        return out
