"""Left-right mirror images of states, actions and commands: the G1 reflected in its sagittal (x-z) plane.

A walk to the left mirrored is a walk to the right, so mirrored windows double the data and remove any
left-right bias the expert rollouts happened to have (the paper's mirror augmentation). Joint partners come
from the names (``left_`` / ``right_``); each joint's sign comes from the model, not from a table: reflecting a
rotation about axis ``a`` by angle q gives the rotation about ``M a`` by -q (M = diag(1, -1, 1)), so the partner
angle is -q if its axis is ``M a`` and +q if it is ``-M a`` (pitch joints keep their sign, roll and yaw joints
flip). tests/data/test_mirror.py checks the whole map against MuJoCo's dynamics: mirrored actions from a
mirrored start give the mirrored trajectory.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from bm_gym.data.state import StateLayout
from bm_gym.robot import g1

REFLECT = np.array([1.0, -1.0, 1.0])
COMMAND_SIGN = np.array([1.0, -1.0, -1.0], dtype=np.float32)  # (vx, vy, wz)


def partner(name: str) -> str:
    """The name of the mirror-image joint or body (itself on the midline)."""
    if name.startswith("left_"):
        return "right_" + name[len("left_") :]
    if name.startswith("right_"):
        return "left_" + name[len("right_") :]
    return name


def joint_signs(joint_names: tuple[str, ...]) -> np.ndarray:
    """+1 or -1 per joint: how its partner's angle relates to its own under the reflection (from the G1 model)."""
    model = g1.build_spec().compile()
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    signs = np.empty(len(joint_names))
    for k, name in enumerate(joint_names):
        axis = data.xaxis[model.joint(name).id]
        other = data.xaxis[model.joint(partner(name)).id]
        alignment = float(np.dot(REFLECT * axis, other))
        if abs(abs(alignment) - 1.0) > 1e-6:
            raise ValueError(f"{name} and {partner(name)} are not mirror images in the G1 model (axes {axis}, {other})")
        signs[k] = -np.sign(alignment)
    return signs


@dataclass(frozen=True)
class Mirror:
    """Index permutation and signs that mirror a state vector of ``layout`` and an action vector."""

    state_index: np.ndarray
    state_sign: np.ndarray
    action_index: np.ndarray
    action_sign: np.ndarray

    @classmethod
    def for_layout(cls, layout: StateLayout) -> Mirror:
        joints = layout.joint_names
        missing = sorted({partner(n) for n in (*joints, *layout.body_names)} - {*joints, *layout.body_names})
        if missing:
            raise ValueError(f"the state layout lacks the mirror partners {missing}")
        j_index = np.array([joints.index(partner(n)) for n in joints])
        j_sign = joint_signs(joints)[j_index]  # sign of the partner written into this slot: the same by symmetry
        f = layout.fields
        index, sign = np.arange(layout.dim), np.ones(layout.dim)
        sign[f["root_pos_xy"].start + 1] = -1.0  # y
        sign[f["root_yaw_cs"].start + 1] = -1.0  # sin(yaw)
        for field in ("gravity_b", "lin_vel_h"):
            sign[f[field].start + 1] = -1.0  # y components
        ang = f["ang_vel_h"].start
        sign[ang], sign[ang + 2] = -1.0, -1.0  # roll and yaw rates; the pitch rate keeps its sign
        bodies = layout.body_names
        for field in ("body_pos_h", "body_vel_h"):
            if field not in f:
                continue
            for k, name in enumerate(bodies):
                source = f[field].start + 3 * bodies.index(partner(name))
                index[f[field].start + 3 * k : f[field].start + 3 * k + 3] = source + np.arange(3)
                sign[f[field].start + 3 * k + 1] = -1.0  # y
        for field in ("joint_pos", "joint_vel"):
            if field not in f:
                continue
            start = f[field].start
            index[start : start + len(joints)] = start + j_index
            sign[start : start + len(joints)] = j_sign
        return cls(index, sign.astype(np.float32), j_index, j_sign.astype(np.float32))

    def states(self, states: np.ndarray) -> np.ndarray:
        return states[..., self.state_index] * self.state_sign

    def actions(self, actions: np.ndarray) -> np.ndarray:
        return actions[..., self.action_index] * self.action_sign

    @staticmethod
    def commands(commands: np.ndarray) -> np.ndarray:
        return np.asarray(commands) * COMMAND_SIGN
