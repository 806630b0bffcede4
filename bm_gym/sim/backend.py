"""The one small interface every simulator implements: MuJoCo on the CPU, Isaac Lab 3 on Newton."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bm_gym.obstacles import Obstacle
from bm_gym.robot import g1
from bm_gym.sim.randomization import DomainRandomizationCfg
from bm_gym.utils.math import quat_rotate_inverse, yaw_from_quat


@dataclass
class RobotState:
    """Everything read out of the simulator after a control step. Joints in ``backend.joint_names`` order.

    Frames: ``root_lin_vel_w`` in the world frame, ``root_ang_vel_b`` in the pelvis frame (what an IMU
    reads), body poses in the world frame; quaternions are (w, x, y, z).
    """

    time: float
    root_pos: np.ndarray  # [3] m
    root_quat: np.ndarray  # [4]
    root_lin_vel_w: np.ndarray  # [3] m/s
    root_ang_vel_b: np.ndarray  # [3] rad/s
    projected_gravity: np.ndarray  # [3] unit gravity direction in the pelvis frame
    joint_pos: np.ndarray  # [J] rad
    joint_vel: np.ndarray  # [J] rad/s
    body_pos_w: np.ndarray  # [K, 3] every body, backend.body_names (g1.BODY_NAMES) order
    body_quat_w: np.ndarray  # [K, 4]
    body_lin_vel_w: np.ndarray  # [K, 3] m/s, velocity of each body's frame origin
    foot_contact: np.ndarray  # [2] bool, left then right
    obstacle_contact: bool  # any robot geom touches an obstacle
    # A push (a random one of the domain randomization, or ``SimBackend.push``) changed the root velocity in the
    # control step that led to this state: an event from outside that no model of the robot can predict.
    pushed: bool = False

    @property
    def root_lin_vel_b(self) -> np.ndarray:
        return quat_rotate_inverse(self.root_quat, self.root_lin_vel_w)

    @property
    def yaw(self) -> float:
        return float(yaw_from_quat(self.root_quat))

    @property
    def heading_lin_vel(self) -> np.ndarray:
        """[2] planar root velocity (forward, left) in the heading frame, m/s: what a joystick commands."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        v = self.root_lin_vel_w
        return np.array([c * v[0] + s * v[1], -s * v[0] + c * v[1]])


def has_fallen(state: RobotState, reference_height: float | None = None) -> bool:
    """Tilted past 60 degrees, or the pelvis 0.25 m below a reference height (else below 0.45 m)."""
    if state.projected_gravity[2] > -0.5:
        return True
    if reference_height is not None:
        return state.root_pos[2] < reference_height - 0.25
    return state.root_pos[2] < 0.45


def initial_joint_state(joint_pos, joint_vel, joints: int) -> tuple[np.ndarray, np.ndarray]:
    """``reset``'s joint positions and velocities: the standing pose and rest by default, checked."""
    joint_pos = np.asarray(g1.DEFAULT_JOINT_POS if joint_pos is None else joint_pos, dtype=np.float64)
    joint_vel = np.zeros(joints) if joint_vel is None else np.asarray(joint_vel, dtype=np.float64)
    for name, value in (("joint_pos", joint_pos), ("joint_vel", joint_vel)):
        if value.shape != (joints,) or not np.all(np.isfinite(value)):
            raise ValueError(f"{name} must be {joints} finite values, got shape {value.shape}")
    return joint_pos, joint_vel


def checked_targets(joint_targets, joint_names: tuple[str, ...], where: str = "") -> np.ndarray:
    """``step``'s joint targets as floats, or an error naming the bad shape or the joints that are not finite."""
    targets = np.asarray(joint_targets, dtype=np.float64)
    if targets.shape != (len(joint_names),):
        raise ValueError(f"joint_targets{where} must have shape ({len(joint_names)},), got {targets.shape}")
    if not np.all(np.isfinite(targets)):
        bad = [joint_names[i] for i in np.flatnonzero(~np.isfinite(targets))]
        raise ValueError(f"joint_targets{where} contain NaN/inf for joints {bad}")
    return targets


def checked_gains(joint_names, stiffness, damping) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``set_pd_gains``' arguments: (indices into the G1's joints, stiffness, damping), checked."""
    idx = g1.joint_index_map(joint_names)
    stiffness, damping = np.asarray(stiffness, float), np.asarray(damping, float)
    if stiffness.shape != (len(idx),) or damping.shape != (len(idx),):
        raise ValueError(f"expected {len(idx)} stiffness and damping values")
    return idx, stiffness, damping


@dataclass(frozen=True)
class RootPose:
    """Initial root placement for ``reset``."""

    pos: tuple[float, float, float] = (0.0, 0.0, 0.76)
    quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)


class SimBackend(Protocol):
    """A simulated G1 stepped at the control rate with joint position targets."""

    joint_names: tuple[str, ...]
    body_names: tuple[str, ...]
    control_dt: float

    def reset(
        self,
        root: RootPose | None = None,
        joint_pos: np.ndarray | None = None,
        joint_vel: np.ndarray | None = None,
        seed: int | None = None,
    ) -> RobotState:
        """Place the robot (default standing pose) and re-draw domain randomization if enabled."""

    def step(self, joint_targets: np.ndarray) -> RobotState:
        """Hold ``joint_targets`` (rad, ``joint_names`` order) for one control period."""

    def state(self) -> RobotState: ...

    def set_pd_gains(self, joint_names: list[str], stiffness: np.ndarray, damping: np.ndarray) -> None:
        """Nominal PD gains per joint (randomization scales these)."""

    def pd_gains(self, joint_names: list[str] | tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """The nominal (stiffness, damping) of the named joints, as last set."""

    def applied_pd_gains(self) -> tuple[np.ndarray, np.ndarray]:
        """The (stiffness, damping) in effect now, ``joint_names`` order (nominal unless randomized)."""

    def set_randomization(self, cfg: DomainRandomizationCfg | None) -> None: ...

    def push(self, lin_vel: np.ndarray, ang_vel: np.ndarray) -> None:
        """Add a velocity impulse to the root (world-frame linear, body-frame angular)."""

    obstacle_capacity: dict[str, int]  # obstacles of each shape the scene holds at once

    def set_obstacles(self, obstacles: list[Obstacle] | tuple[Obstacle, ...]) -> list[int]:
        """Replace every obstacle, all or nothing: more than the capacity raises before anything changes."""

    def add_obstacle(self, obstacle: Obstacle) -> int:
        """Place an obstacle while the simulation runs; returns its handle."""

    def move_obstacle(self, handle: int, obstacle: Obstacle) -> None: ...

    def remove_obstacle(self, handle: int) -> None: ...

    def clear_obstacles(self) -> None: ...

    def obstacles(self) -> dict[int, Obstacle]: ...

    def render(self, width: int = 640, height: int = 480, camera: str | None = None) -> np.ndarray:
        """An RGB image [H, W, 3] uint8 of the current scene."""

    def close(self) -> None: ...
