"""A Stage 1 policy ready to drive a simulated G1: actor + conventions + observations (+ reference motion)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bm_gym.robot import g1
from bm_gym.sim.backend import RobotState, RootPose, SimBackend
from bm_gym.stage1.actors import Actor, OnnxActor, RslRlActor
from bm_gym.stage1.conventions import PolicyConventions, from_deploy_yaml, from_onnx_metadata
from bm_gym.stage1.motion import MotionClip, load_motion
from bm_gym.stage1.observations import ObservationBuilder, ObsInputs


class Stage1Policy:
    """Maps simulator state (+ velocity command or motion frame) to joint targets in simulator order."""

    def __init__(self, actor: Actor, conventions: PolicyConventions, motion: MotionClip | None = None) -> None:
        if actor.action_dim != len(conventions.joint_names):
            raise ValueError(
                f"policy outputs {actor.action_dim} actions but its conventions name "
                f"{len(conventions.joint_names)} joints"
            )
        self.actor = actor
        self.conventions = conventions
        self.motion = motion
        self.observations = ObservationBuilder(conventions, obs_dim=actor.obs_dim)
        self._sim_index = conventions.sim_index
        self._default_targets = np.array(g1.DEFAULT_JOINT_POS)  # joints the policy does not drive hold this
        self.needs_motion = any(t.name.startswith("motion_") for t in conventions.obs_terms)
        if self.needs_motion and motion is None:
            raise ValueError("this is a tracking policy: pass its reference motion (motion=...)")
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
    ) -> Stage1Policy:
        """Load from a folder (policy.onnx or *.pt, deploy.yaml, optional motion.csv/npz) or a single file.

        Conventions come from, in order: the ``conventions`` argument, ONNX metadata, a ``deploy.yaml``
        beside the policy file.
        """
        path = Path(path)
        folder = path if path.is_dir() else path.parent
        if path.is_dir():
            candidates = sorted(path.glob("*.onnx")) or sorted(path.glob("*.pt"))
            if not candidates:
                raise FileNotFoundError(f"{path} holds no *.onnx or *.pt policy")
            path = candidates[0]
            if motion is None:
                found = sorted(folder.glob("motion.csv")) + sorted(folder.glob("motion.npz"))
                motion = found[0] if found else None
        actor: Actor = OnnxActor(path) if path.suffix == ".onnx" else RslRlActor(path, activation)
        if isinstance(conventions, PolicyConventions):
            conv = conventions
        elif conventions is not None:
            conv = from_deploy_yaml(conventions)
        elif "joint_names" in actor.metadata:
            conv = from_onnx_metadata(actor.metadata)
        elif (folder / "deploy.yaml").is_file():
            conv = from_deploy_yaml(folder / "deploy.yaml")
        else:
            raise FileNotFoundError(
                f"no deployment conventions for {path}: it has no ONNX metadata and {folder} has no deploy.yaml"
            )
        if isinstance(motion, (str, Path)):
            needs = any(t.name.startswith("motion_") for t in conv.obs_terms)
            motion = load_motion(motion, fps=motion_fps) if needs else None
        return cls(actor, conv, motion)

    def apply_gains(self, backend: SimBackend) -> None:
        """Set the simulator's PD gains to the ones this policy was trained with."""
        backend.set_pd_gains(list(self.conventions.joint_names), self.conventions.stiffness, self.conventions.damping)

    def reset(self, frame: int = 0) -> None:
        self.observations.reset()
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
        if self.motion is not None:
            self.frame = min(self.frame, self.motion.num_frames - 1)
        obs = self.observations(ObsInputs(state, self.last_action, command, self.motion, self.frame))
        action = self.actor(obs)
        self.last_action = action
        self.frame += 1
        targets = self._default_targets.copy()
        targets[self._sim_index] = action * self.conventions.action_scale + self.conventions.action_offset
        return targets

    @property
    def motion_finished(self) -> bool:
        return self.motion is not None and self.frame >= self.motion.num_frames
