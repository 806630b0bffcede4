"""Reference motions for tracking policies: CSV (any fps) or whole_body_tracking-style npz, resampled to 50 Hz."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import mujoco
import numpy as np

from bm_gym.robot import g1
from bm_gym.utils.math import quat_conj, quat_mul, quat_slerp

#: Longest motion accepted, in output frames (4 h at 50 Hz): beyond it a frame rate is almost surely wrong.
MAX_FRAMES = 720_000


@dataclass(frozen=True)
class MotionClip:
    """A reference trajectory at ``fps``; joints in :data:`g1.JOINT_NAMES` order, quaternions (w, x, y, z)."""

    fps: float
    root_pos: np.ndarray  # [T, 3]
    root_quat: np.ndarray  # [T, 4]
    root_lin_vel_w: np.ndarray  # [T, 3]
    root_ang_vel_b: np.ndarray  # [T, 3]
    joint_pos: np.ndarray  # [T, 29]
    joint_vel: np.ndarray  # [T, 29]
    anchor_quat_w: np.ndarray  # [T, 4] torso_link orientation (the tracking anchor)

    @property
    def num_frames(self) -> int:
        return len(self.joint_pos)

    @property
    def duration(self) -> float:
        return (self.num_frames - 1) / self.fps


def load_motion(
    path: str | Path,
    fps: float | None = None,
    joint_names: list[str] | None = None,
    target_fps: float = 50.0,
) -> MotionClip:
    """Load a motion file and resample it to ``target_fps``.

    CSV rows are root xyz, root quaternion (x, y, z, w), then joint angles; no header carries the frame
    rate, so ``fps`` comes from the argument or from the file name (``..._60hz.csv``, ``..._30fps.csv``, as
    Unitree names its clips); ``joint_names`` defaults to the G1's MuJoCo (= Unitree motor) order. npz files must name
    their joints (``joint_names`` array or argument) because exporters differ in joint order.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"motion file not found: {path}")
    if path.suffix == ".csv":
        fps = fps if fps is not None else _fps_from_name(path)
        if fps is None:
            raise ValueError(f"{path}: a CSV motion carries no frame rate; pass fps= (--motion-fps)")
        root_pos, root_quat, joint_pos, names = _read_csv(path, joint_names)
    elif path.suffix == ".npz":
        fps, root_pos, root_quat, joint_pos, names = _read_npz(path, fps, joint_names)
    else:
        raise ValueError(f"{path}: unsupported motion format {path.suffix!r} (expected .csv or .npz)")
    if len(root_pos) < 2:
        raise ValueError(f"{path}: a motion needs at least 2 frames, got {len(root_pos)}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"{path}: invalid frame rate {fps}")
    frames_out = (len(root_pos) - 1) / fps * target_fps + 1
    if frames_out > MAX_FRAMES:
        raise ValueError(
            f"{path}: {len(root_pos)} frames at {fps} fps last {(len(root_pos) - 1) / fps:.0f} s, more than the "
            f"{MAX_FRAMES / target_fps / 3600:.0f} h a motion may last; is the frame rate right?"
        )
    for name, arr in (("root position", root_pos), ("root quaternion", root_quat), ("joint angles", joint_pos)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{path}: {name} contain NaN or inf")
    norms = np.linalg.norm(root_quat, axis=1)
    if np.any(norms < 1e-6):
        raise ValueError(f"{path}: root quaternion has zero norm at frames {np.flatnonzero(norms < 1e-6)[:5]}")
    root_quat = root_quat / norms[:, None]
    # Reorder to the robot's joint order by name; missing joints are an error, not a silent zero.
    order = g1.joint_index_map(names)
    absent = sorted(set(g1.JOINT_NAMES) - set(names))
    if absent:
        raise ValueError(f"{path}: motion lacks G1 joints {absent}")
    joint_pos = joint_pos[:, np.argsort(order)]
    return _resample(float(fps), root_pos, root_quat, joint_pos, target_fps)


def _fps_from_name(path: Path) -> float | None:
    match = re.search(r"(\d+(?:\.\d+)?)_?(hz|fps)", path.stem, flags=re.IGNORECASE)
    return float(match.group(1)) if match else None


def _read_csv(path: Path, joint_names: list[str] | None):
    try:
        data = np.loadtxt(path, delimiter=",", ndmin=2)
    except ValueError as err:
        raise ValueError(f"{path}: malformed motion CSV ({err})") from err
    names = list(joint_names or g1.JOINT_NAMES)
    if data.shape[1] != 7 + len(names):
        raise ValueError(
            f"{path}: expected {7 + len(names)} columns (root xyz, quat xyzw, {len(names)} joints), got {data.shape[1]}"
        )
    quat_xyzw = data[:, 3:7]
    return data[:, :3], quat_xyzw[:, [3, 0, 1, 2]], data[:, 7:], names


def _read_npz(path: Path, fps: float | None, joint_names: list[str] | None):
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable npz motion ({err})") from err
    missing = [k for k in ("joint_pos", "body_pos_w", "body_quat_w") if k not in npz]
    if missing:
        raise ValueError(f"{path}: npz motion lacks arrays {missing}")
    if "joint_names" in npz:
        names = [str(n) for n in npz["joint_names"]]
    elif joint_names is not None:
        names = list(joint_names)
    else:
        raise ValueError(f"{path}: npz stores no joint_names; pass joint_names= in the file's joint order")
    if "fps" in npz:
        fps = float(np.asarray(npz["fps"]).reshape(-1)[0])
    elif fps is None:
        raise ValueError(f"{path}: npz stores no fps; pass fps=")
    joint_pos = npz["joint_pos"]
    if joint_pos.ndim != 2 or joint_pos.shape[1] != len(names):
        raise ValueError(f"{path}: joint_pos has shape {joint_pos.shape}, expected [T, {len(names)}]")
    # whole_body_tracking stores the root as body 0 (or the body named in body_names).
    root = 0
    if "body_names" in npz:
        body_names = [str(n) for n in npz["body_names"]]
        root = body_names.index(g1.ROOT_BODY) if g1.ROOT_BODY in body_names else 0
    return fps, npz["body_pos_w"][:, root], npz["body_quat_w"][:, root], joint_pos, names


def _resample(fps: float, root_pos, root_quat, joint_pos, target_fps: float) -> MotionClip:
    duration = (len(root_pos) - 1) / fps
    t_out = np.arange(0.0, duration + 1e-9, 1.0 / target_fps)
    src = np.minimum(t_out * fps, len(root_pos) - 1)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, len(root_pos) - 1)
    frac = src - i0
    lerp = lambda a: a[i0] + (a[i1] - a[i0]) * frac[:, None]  # noqa: E731
    pos, jpos = lerp(root_pos), lerp(joint_pos)
    quat = quat_slerp(root_quat[i0], root_quat[i1], frac)
    dt = 1.0 / target_fps
    lin_vel = np.gradient(pos, dt, axis=0)
    joint_vel = np.gradient(jpos, dt, axis=0)
    ang_vel = _body_angular_velocity(quat, dt)
    return MotionClip(target_fps, pos, quat, lin_vel, ang_vel, jpos, joint_vel, _anchor_quats(pos, quat, jpos))


def _body_angular_velocity(quat: np.ndarray, dt: float) -> np.ndarray:
    """Body-frame angular velocity from central differences of orientation."""
    q_next = np.concatenate([quat[1:], quat[-1:]])
    q_prev = np.concatenate([quat[:1], quat[:-1]])
    span = np.full(len(quat), 2 * dt)
    span[0] = span[-1] = dt
    dq = quat_mul(quat_conj(q_prev), q_next)
    dq = np.where(dq[:, :1] < 0, -dq, dq)
    angle = 2 * np.arctan2(np.linalg.norm(dq[:, 1:], axis=1), dq[:, 0])
    axis = dq[:, 1:] / np.maximum(np.linalg.norm(dq[:, 1:], axis=1, keepdims=True), 1e-12)
    return axis * (angle / span)[:, None]


@cache
def _kinematic_model() -> mujoco.MjModel:
    return g1.build_spec().compile()


def _anchor_quats(root_pos: np.ndarray, root_quat: np.ndarray, joint_pos: np.ndarray) -> np.ndarray:
    """Torso orientation of every reference frame by forward kinematics of the G1 model."""
    model = _kinematic_model()
    data = mujoco.MjData(model)
    qadr = [model.jnt_qposadr[model.joint(n).id] for n in g1.JOINT_NAMES]
    torso = model.body(g1.ANCHOR_BODY).id
    out = np.empty((len(root_pos), 4))
    for t in range(len(root_pos)):
        data.qpos[:3], data.qpos[3:7] = root_pos[t], root_quat[t]
        data.qpos[qadr] = joint_pos[t]
        mujoco.mj_kinematics(model, data)
        out[t] = data.xquat[torso]
    return out
