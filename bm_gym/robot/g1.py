"""Unitree G1 (29 DoF) description: the mjlab MJCF plus the actuator facts Stage 1 policies were trained with.

The XML ships inside the ``mjlab`` wheel. We locate it with ``importlib.util.find_spec`` instead of
importing ``mjlab`` because its ``__init__`` pulls in warp and tyro, which bm_gym never needs.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import re
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

ROOT_BODY = "pelvis"
ANCHOR_BODY = "torso_link"
FREE_JOINT = "floating_base_joint"

#: The 29 actuated joints in MuJoCo (depth-first) order, which is also Unitree's motor order.
JOINT_NAMES: tuple[str, ...] = (
    "left_hip_pitch_joint", "left_hip_roll_joint", "left_hip_yaw_joint", "left_knee_joint",
    "left_ankle_pitch_joint", "left_ankle_roll_joint",
    "right_hip_pitch_joint", "right_hip_roll_joint", "right_hip_yaw_joint", "right_knee_joint",
    "right_ankle_pitch_joint", "right_ankle_roll_joint",
    "waist_yaw_joint", "waist_roll_joint", "waist_pitch_joint",
    "left_shoulder_pitch_joint", "left_shoulder_roll_joint", "left_shoulder_yaw_joint",
    "left_elbow_joint", "left_wrist_roll_joint", "left_wrist_pitch_joint", "left_wrist_yaw_joint",
    "right_shoulder_pitch_joint", "right_shoulder_roll_joint", "right_shoulder_yaw_joint",
    "right_elbow_joint", "right_wrist_roll_joint", "right_wrist_pitch_joint", "right_wrist_yaw_joint",
)  # fmt: skip

#: The robot's 30 bodies in MuJoCo (depth-first) order: what backends read out every step (poses and velocities).
BODY_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip_pitch_link", "left_hip_roll_link", "left_hip_yaw_link", "left_knee_link", "left_ankle_pitch_link",
    "left_ankle_roll_link",
    "right_hip_pitch_link", "right_hip_roll_link", "right_hip_yaw_link", "right_knee_link",
    "right_ankle_pitch_link", "right_ankle_roll_link",
    "waist_yaw_link", "waist_roll_link", "torso_link",
    "left_shoulder_pitch_link", "left_shoulder_roll_link", "left_shoulder_yaw_link", "left_elbow_link",
    "left_wrist_roll_link", "left_wrist_pitch_link", "left_wrist_yaw_link",
    "right_shoulder_pitch_link", "right_shoulder_roll_link", "right_shoulder_yaw_link", "right_elbow_link",
    "right_wrist_roll_link", "right_wrist_pitch_link", "right_wrist_yaw_link",
)  # fmt: skip

#: The bodies of the default state (bm_gym.data.state): root, torso, knees, feet, hands.
KEY_BODIES: tuple[str, ...] = (
    "pelvis", "torso_link", "left_knee_link", "right_knee_link",
    "left_ankle_roll_link", "right_ankle_roll_link", "left_wrist_yaw_link", "right_wrist_yaw_link",
)  # fmt: skip
#: Clearance (m) each key body keeps from obstacles under the barrier: how far the collision geometry of that
#: body reaches from its origin in the horizontal plane (corners of the geoms' boxes, standing pose): knees
#: 0.09, feet 0.14, hands 0.105. The pelvis stands for the hips and thighs, the torso for the shoulders: 0.2 m.
#: The barrier's own delta (0.1 m) is the safety buffer on top. With 5 cm more on the limbs, the hands alone
#: held the robot in front of gaps under 0.9 m that the Stage 1 expert walks through (issue 15).
OBSTACLE_MARGINS: dict[str, float] = {
    "pelvis": 0.2, "torso_link": 0.2, "left_knee_link": 0.09, "right_knee_link": 0.09,
    "left_ankle_roll_link": 0.14, "right_ankle_roll_link": 0.14, "left_wrist_yaw_link": 0.105,
    "right_wrist_yaw_link": 0.105,
}  # fmt: skip
FEET: tuple[str, str] = ("left_ankle_roll_link", "right_ankle_roll_link")
FOOT_GEOM_PATTERN = re.compile(r"^(left|right)_foot[1-7]_collision$")

#: Nominal standing pose (the Stage 1 policies' default joint positions), MuJoCo order.
DEFAULT_JOINT_POS: tuple[float, ...] = (
    -0.1, 0.0, 0.0, 0.3, -0.2, 0.0,
    -0.1, 0.0, 0.0, 0.3, -0.2, 0.0,
    0.0, 0.0, 0.0,
    0.35, 0.18, 0.0, 0.87, 0.0, 0.0, 0.0,
    0.35, -0.18, 0.0, 0.87, 0.0, 0.0, 0.0,
)  # fmt: skip
DEFAULT_ROOT_HEIGHT = 0.76


@dataclass(frozen=True)
class ActuatorGroup:
    """One motor type: reflected-inertia armature, torque limit, and the joints it drives."""

    name: str
    joint_pattern: str
    armature: float
    effort_limit: float

    @property
    def stiffness(self) -> float:
        """PD stiffness used in Stage 1 training: 10 Hz natural frequency on the armature."""
        return self.armature * (2 * math.pi * 10.0) ** 2

    @property
    def damping(self) -> float:
        """Critical-ish damping (ratio 2) on the same natural frequency."""
        return 2.0 * 2.0 * self.armature * (2 * math.pi * 10.0)


#: Facts from ../shared/stage1/README.md (mjlab's G1 actuator config). Order matters: first match wins.
ACTUATOR_GROUPS: tuple[ActuatorGroup, ...] = (
    ActuatorGroup("7520_14", r".*_hip_pitch_joint|.*_hip_yaw_joint|waist_yaw_joint", 0.010178, 88.0),
    ActuatorGroup("7520_22", r".*_hip_roll_joint|.*_knee_joint", 0.025102, 139.0),
    ActuatorGroup("5020x2", r".*_ankle_(pitch|roll)_joint|waist_(roll|pitch)_joint", 0.0072195, 50.0),
    ActuatorGroup("4010", r".*_wrist_(pitch|yaw)_joint", 0.00425, 5.0),
    ActuatorGroup("5020", r".*_shoulder_.*_joint|.*_elbow_joint|.*_wrist_roll_joint", 0.0036097, 25.0),
)


def actuator_group(joint_name: str) -> ActuatorGroup:
    """The motor group driving ``joint_name``; raises for names that are not G1 joints."""
    for group in ACTUATOR_GROUPS:
        if re.fullmatch(group.joint_pattern, joint_name):
            return group
    raise KeyError(f"{joint_name!r} is not an actuated G1 joint; known joints: {', '.join(JOINT_NAMES)}")


def g1_xml_path() -> Path:
    """Path of ``g1.xml`` inside the installed mjlab wheel."""
    spec = importlib.util.find_spec("mjlab")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "The G1 model comes from the mjlab wheel: run `pip install --no-deps mjlab==1.6.0` "
            "(scripts/setup.sh does this)."
        )
    path = Path(spec.submodule_search_locations[0]) / "asset_zoo/robots/unitree_g1/xmls/g1.xml"
    if not path.is_file():
        raise FileNotFoundError(f"mjlab is installed but has no G1 model at {path}")
    return path


def joint_index_map(names: list[str] | tuple[str, ...]) -> np.ndarray:
    """Indices into :data:`JOINT_NAMES` for ``names``; the one place where joint order is mapped by name."""
    lookup = {n: i for i, n in enumerate(JOINT_NAMES)}
    unknown = [n for n in names if n not in lookup]
    if unknown:
        raise KeyError(f"unknown G1 joint names {unknown}; known joints: {', '.join(JOINT_NAMES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate joint names in {list(names)}")
    return np.array([lookup[n] for n in names], dtype=np.int64)


@functools.cache
def joint_limits() -> np.ndarray:
    """[29, 2] position limits (rad) of the actuated joints from the MJCF, in :data:`JOINT_NAMES` order."""
    model = build_spec().compile()
    return np.array([model.jnt_range[model.joint(n).id] for n in JOINT_NAMES])


def build_spec() -> mujoco.MjSpec:
    """The G1 as trained in mjlab: armature, effort-limited position actuators, all collisions on."""
    spec = mujoco.MjSpec.from_file(str(g1_xml_path()))
    for name in JOINT_NAMES:
        group = actuator_group(name)
        spec.joint(name).armature = group.armature
        act = spec.add_actuator(name=name, target=name)
        act.trntype = mujoco.mjtTrn.mjTRN_JOINT
        act.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        act.biastype = mujoco.mjtBias.mjBIAS_AFFINE
        act.gainprm[0] = group.stiffness
        act.biasprm[1] = -group.stiffness
        act.biasprm[2] = -group.damping
        # Targets may lie beyond the joint limits (the policy relies on it); torque is what is bounded.
        act.inheritrange = 0.0
        act.ctrllimited = False
        act.forcelimited = True
        act.forcerange[:] = [-group.effort_limit, group.effort_limit]
    for geom in spec.geoms:
        if geom.name.endswith("_collision"):
            foot = bool(FOOT_GEOM_PATTERN.match(geom.name))
            geom.contype, geom.conaffinity = 1, 1
            geom.condim = 3 if foot else 1
            geom.priority = 1 if foot else 0
            if foot:
                geom.friction[0] = 0.6
    return spec
