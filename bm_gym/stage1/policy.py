"""A Stage 1 policy ready to drive a simulated G1: actor + conventions + observations (+ reference motion)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from bm_gym.robot import g1
from bm_gym.sim.backend import RobotState, RootPose, SimBackend
from bm_gym.stage1.actors import Actor, OnnxActor, RslRlActor
from bm_gym.stage1.conventions import PolicyConventions, from_deploy_yaml, from_onnx_metadata
from bm_gym.stage1.motion import MotionClip, load_motion
from bm_gym.stage1.observations import ObservationBuilder, ObsInputs


class Stage1Policy:
    """Maps simulator state (+ velocity command or motion frame) to joint targets in simulator order.

    Velocity commands outside the policy's ``commands.base_velocity.ranges`` are clamped to them, as
    Unitree's deploy code does (``clamp_commands=False`` passes them through); the first clamp warns once.
    """

    def __init__(
        self,
        actor: Actor,
        conventions: PolicyConventions,
        motion: MotionClip | None = None,
        clamp_commands: bool = True,
    ) -> None:
        if actor.action_dim != len(conventions.joint_names):
            raise ValueError(
                f"{conventions.source}: the policy outputs {actor.action_dim} actions but its conventions name "
                f"{len(conventions.joint_names)} joints"
            )
        self.actor = actor
        self.conventions = conventions
        self.motion = motion
        self.observations = ObservationBuilder(conventions, obs_dim=actor.obs_dim)
        self._sim_index = conventions.sim_index
        self._default_targets = np.array(g1.DEFAULT_JOINT_POS)  # joints the policy does not drive hold this
        self.needs_motion = conventions.tracks_motion
        if self.needs_motion and motion is None:
            raise ValueError(f"{conventions.source}: this is a tracking policy: pass its reference motion (motion=...)")
        self._command_low, self._command_high = _command_bounds(conventions.command_ranges)
        self.clamp_commands = clamp_commands
        self._clamp_warned = False
        self.last_action = np.zeros(actor.action_dim, dtype=np.float32)
        self.frame = 0

    @classmethod
    def load(
        cls,
        path: str | Path,
        conventions: str | Path | PolicyConventions | None = None,
        motion: str | Path | MotionClip | None = None,
        motion_fps: float | None = None,
        activation: str = "elu",
        clamp_commands: bool = True,
    ) -> Stage1Policy:
        """Load from a policy folder or a single policy file.

        A folder may be laid out flat (``policy.onnx`` or ``*.pt``, ``deploy.yaml``, ``motion.csv|npz``) or as
        Unitree's ``unitree_rl_lab`` exports it (``exported/policy.onnx``, ``params/deploy.yaml``,
        ``params/*.csv``). Conventions come from, in order: the ``conventions`` argument, ONNX metadata, a
        ``deploy.yaml`` beside the policy file or in ``params/``.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"Stage 1 policy not found: {path} does not exist")
        root = path if path.is_dir() else _policy_root(path)
        if path.is_dir():
            path = _find_policy_file(path)
        actor: Actor = OnnxActor(path) if path.suffix == ".onnx" else RslRlActor(path, activation)
        if isinstance(conventions, PolicyConventions):
            conv = conventions
        elif conventions is not None:
            conv = from_deploy_yaml(conventions)
        elif "joint_names" in actor.metadata:
            conv = from_onnx_metadata(actor.metadata, source=f"{path} (ONNX metadata)")
        else:
            found = [f for f in (path.parent / "deploy.yaml", root / "deploy.yaml", root / "params" / "deploy.yaml")
                     if f.is_file()]  # fmt: skip
            if not found:
                raise FileNotFoundError(
                    f"no deployment conventions for {path}: it has no ONNX metadata and there is no deploy.yaml "
                    f"in {path.parent} or {root / 'params'}"
                )
            conv = from_deploy_yaml(found[0])
        if conv.tracks_motion and motion is None:
            motion = find_motion(root)
        if isinstance(motion, (str, Path)):
            motion = load_motion(motion, fps=motion_fps) if conv.tracks_motion else None
        return cls(actor, conv, motion, clamp_commands=clamp_commands)

    def apply_gains(self, backend: SimBackend) -> None:
        """Set the simulator's PD gains to the ones this policy was trained with."""
        backend.set_pd_gains(list(self.conventions.joint_names), self.conventions.stiffness, self.conventions.damping)

    def reset(self, frame: int = 0) -> None:
        self.observations.reset()
        self.actor.reset()
        self.last_action[:] = 0.0
        self.frame = frame

    def initial_state(self, frame: int = 0) -> tuple[RootPose, np.ndarray, np.ndarray]:
        """Root pose and joint state to reset the simulator to: the motion frame, or the default pose."""
        if self.motion is None:
            return RootPose(pos=(0.0, 0.0, g1.DEFAULT_ROOT_HEIGHT)), np.array(g1.DEFAULT_JOINT_POS), np.zeros(29)
        m = self.motion
        root = RootPose(pos=tuple(m.root_pos[frame]), quat=tuple(m.root_quat[frame]))
        return root, m.joint_pos[frame].copy(), m.joint_vel[frame].copy()

    def act(self, state: RobotState, velocity_command: np.ndarray | tuple = (0.0, 0.0, 0.0)) -> np.ndarray:
        """Joint position targets (simulator order) for this control step; advances the motion frame."""
        command = np.asarray(velocity_command, dtype=np.float64)
        if command.shape != (3,) or not np.all(np.isfinite(command)):
            raise ValueError(f"velocity command must be 3 finite values (vx, vy, wz), got {velocity_command!r}")
        if self.clamp_commands:
            clamped = np.clip(command, self._command_low, self._command_high)
            if not self._clamp_warned and not np.array_equal(clamped, command):
                self._clamp_warned = True
                warnings.warn(
                    f"velocity command {command.tolist()} clamped to {clamped.tolist()}: outside the policy's command "
                    f"ranges {self.conventions.command_ranges} ({self.conventions.source}); warned once per policy",
                    stacklevel=2,
                )
            command = clamped
        if self.motion is not None:
            self.frame = min(self.frame, self.motion.num_frames - 1)
        obs = self.observations(ObsInputs(state, self.last_action, command, self.motion, self.frame))
        action = self.actor(obs)
        self.last_action = action
        self.frame += 1
        targets = self._default_targets.copy()
        targets[self._sim_index] = action * self.conventions.action_scale + self.conventions.action_offset
        return targets

    def follow(self, targets: np.ndarray) -> None:
        """Take ``targets`` (simulator order) as this step's executed action in place of the policy's own, when
        another controller drove the step: the next observation's last action is then what the robot did."""
        targets = np.asarray(targets, dtype=np.float64)
        if targets.shape != self._default_targets.shape or not np.all(np.isfinite(targets)):
            raise ValueError(f"targets must be {self._default_targets.shape[0]} finite joint positions, got shape "
                             f"{targets.shape}")  # fmt: skip
        raw = (targets[self._sim_index] - self.conventions.action_offset) / self.conventions.action_scale
        self.last_action = raw.astype(self.last_action.dtype)

    @property
    def motion_finished(self) -> bool:
        return self.motion is not None and self.frame >= self.motion.num_frames


_COMMAND_KEYS = ("lin_vel_x", "lin_vel_y", "ang_vel_z")


def _command_bounds(ranges: dict[str, tuple[float, float]] | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis (vx, vy, wz) bounds; an axis the policy states no range for is left unbounded."""
    ranges = ranges or {}
    low = np.array([ranges.get(k, (-np.inf, np.inf))[0] for k in _COMMAND_KEYS])
    high = np.array([ranges.get(k, (-np.inf, np.inf))[1] for k in _COMMAND_KEYS])
    return low, high


def _policy_root(file: Path) -> Path:
    """The policy folder of a policy file: Unitree keeps it in ``<policy>/exported/``."""
    return file.parent.parent if file.parent.name == "exported" else file.parent


def _find_policy_file(folder: Path) -> Path:
    """``policy.onnx`` (or the only ONNX / ``.pt`` file) in the folder or its ``exported/`` subfolder."""
    for where in (folder, folder / "exported"):
        for pattern in ("*.onnx", "*.pt"):
            candidates = sorted(where.glob(pattern))
            preferred = [c for c in candidates if c.stem == "policy"]
            if preferred or len(candidates) == 1:
                return (preferred or candidates)[0]
            if candidates:
                raise ValueError(
                    f"{where} holds several {pattern} policies {[c.name for c in candidates]}; pass the file to load"
                )
    raise FileNotFoundError(f"{folder} holds no *.onnx or *.pt policy (looked in it and in {folder / 'exported'})")


def find_motion(root: Path) -> Path | None:
    """The reference motion of a tracking policy: ``motion.csv|npz`` or the only motion in ``params/``."""
    for name in ("motion.csv", "motion.npz"):
        if (root / name).is_file():
            return root / name
    found = sorted((root / "params").glob("*.csv")) + sorted((root / "params").glob("*.npz"))
    if len(found) > 1:
        raise ValueError(f"{root / 'params'} holds several motions {[f.name for f in found]}; pass motion=")
    return found[0] if found else None
