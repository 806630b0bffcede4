"""Deployment conventions of a Stage 1 policy: its joint order, gains, action mapping and observation terms.

Read from a Unitree-style ``deploy.yaml`` or from the ONNX metadata that Isaac Lab / mjlab /
whole_body_tracking exporters attach. Everything is kept in the *policy's* joint order; mapping to
the simulator happens by joint name (:func:`bm_gym.robot.g1.joint_index_map`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from bm_gym.robot import g1


@dataclass(frozen=True)
class ObsTermSpec:
    """One observation term as the policy saw it: values are clipped, scaled, then stacked over history."""

    name: str
    scale: np.ndarray | float = 1.0
    clip: tuple[float, float] | None = None
    history_length: int = 1


@dataclass(frozen=True)
class PolicyConventions:
    joint_names: tuple[str, ...]  # policy joint order
    default_joint_pos: np.ndarray  # rad, policy order
    action_scale: np.ndarray
    action_offset: np.ndarray  # target = action * scale + offset
    stiffness: np.ndarray  # N m / rad
    damping: np.ndarray  # N m s / rad
    obs_terms: tuple[ObsTermSpec, ...]
    step_dt: float = 0.02
    command_ranges: dict[str, tuple[float, float]] | None = None

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        g1.joint_index_map(self.joint_names)  # raises on unknown / duplicate names
        for field in ("default_joint_pos", "action_scale", "action_offset", "stiffness", "damping"):
            value = getattr(self, field)
            if np.shape(value) != (n,):
                raise ValueError(f"{field} has {np.size(value)} entries but the policy has {n} joints")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{field} contains non-finite values")

    @property
    def sim_index(self) -> np.ndarray:
        """For each policy joint, its index in the simulator's (MuJoCo) joint order."""
        return g1.joint_index_map(self.joint_names)

    def to_json(self) -> str:
        """Serialisable record of the conventions, stored in every dataset written from this policy."""
        return json.dumps(
            {
                "joint_names": list(self.joint_names),
                "default_joint_pos": self.default_joint_pos.tolist(),
                "action_scale": self.action_scale.tolist(),
                "action_offset": self.action_offset.tolist(),
                "stiffness": self.stiffness.tolist(),
                "damping": self.damping.tolist(),
                "obs_terms": [
                    {"name": t.name, "scale": np.asarray(t.scale).tolist(), "clip": t.clip,
                     "history_length": t.history_length}
                    for t in self.obs_terms
                ],
                "step_dt": self.step_dt,
                "command_ranges": self.command_ranges,
            }
        )  # fmt: skip


def from_deploy_yaml(path: str | Path) -> PolicyConventions:
    """Parse Unitree's deploy format (``joint_ids_map`` maps policy joints to the robot's motor order)."""
    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"cannot read deploy conventions {path}: {err}") from err
    if not isinstance(cfg, dict):
        raise ValueError(f"{path} is not a deploy.yaml mapping")
    missing = [k for k in ("stiffness", "damping", "default_joint_pos", "actions", "observations") if k not in cfg]
    if missing:
        raise ValueError(f"{path} lacks required keys {missing}")
    if "joint_names" in cfg:
        names = tuple(cfg["joint_names"])
    else:
        ids = cfg.get("joint_ids_map", list(range(len(g1.JOINT_NAMES))))
        if any(not 0 <= i < len(g1.JOINT_NAMES) for i in ids):
            raise ValueError(f"{path}: joint_ids_map {ids} indexes outside the G1's 29 motors")
        names = tuple(g1.JOINT_NAMES[i] for i in ids)
    action = cfg["actions"].get("JointPositionAction")
    if action is None:
        raise ValueError(f"{path}: only JointPositionAction policies are supported, got {list(cfg['actions'])}")
    n = len(names)
    terms = tuple(
        ObsTermSpec(
            name=name,
            scale=_scale(spec.get("scale", 1.0)),
            clip=tuple(spec["clip"]) if spec.get("clip") else None,
            history_length=int(spec.get("history_length", 1) or 1),
        )
        for name, spec in cfg["observations"].items()
    )
    ranges = (cfg.get("commands") or {}).get("base_velocity", {}).get("ranges")
    return PolicyConventions(
        joint_names=names,
        default_joint_pos=np.asarray(cfg["default_joint_pos"], dtype=np.float64),
        action_scale=_broadcast(action.get("scale", 1.0), n),
        action_offset=_broadcast(action.get("offset", cfg["default_joint_pos"]), n),
        stiffness=np.asarray(cfg["stiffness"], dtype=np.float64),
        damping=np.asarray(cfg["damping"], dtype=np.float64),
        obs_terms=terms,
        step_dt=float(cfg.get("step_dt", 0.02)),
        command_ranges={k: tuple(v) for k, v in ranges.items() if v is not None} if ranges else None,
    )


def from_onnx_metadata(metadata: dict[str, str]) -> PolicyConventions:
    """Parse the comma-separated metadata written by mjlab / whole_body_tracking ONNX exporters."""
    required = ("joint_names", "default_joint_pos", "action_scale", "joint_stiffness", "joint_damping",
                "observation_names")  # fmt: skip
    missing = [k for k in required if k not in metadata]
    if missing:
        raise ValueError(f"ONNX metadata lacks {missing}; pass a deploy.yaml conventions file instead")
    names = tuple(metadata["joint_names"].split(","))
    n = len(names)
    obs_names = metadata["observation_names"].split(",")
    scales = _csv_entries(metadata.get("observation_terms_scale"), len(obs_names))
    history = _csv_entries(metadata.get("observation_terms_history_length"), len(obs_names))
    clips = _csv_entries(metadata.get("observation_terms_clip"), len(obs_names))
    terms = []
    for i, name in enumerate(obs_names):
        clip = None
        if clips[i] is not None:
            lo, hi = (float(v) for v in clips[i].split(";"))
            clip = None if math.isinf(lo) and math.isinf(hi) else (lo, hi)
        scale = 1.0 if scales[i] is None else _scale([float(v) for v in scales[i].split(";")])
        terms.append(ObsTermSpec(name, scale, clip, int(float(history[i])) if history[i] else 1))
    default = _floats(metadata["default_joint_pos"])
    return PolicyConventions(
        joint_names=names,
        default_joint_pos=default,
        action_scale=_broadcast(_floats(metadata["action_scale"]), n),
        action_offset=default.copy(),
        stiffness=_floats(metadata["joint_stiffness"]),
        damping=_floats(metadata["joint_damping"]),
        obs_terms=tuple(terms),
    )


def _floats(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split(",")], dtype=np.float64)


def _csv_entries(text: str | None, n: int) -> list[str | None]:
    if text is None:
        return [None] * n
    entries = text.split(",")
    if len(entries) != n:
        raise ValueError(f"ONNX metadata lists {len(entries)} entries for {n} observation terms")
    return entries


def _scale(value: float | list[float]) -> np.ndarray | float:
    arr = np.asarray(value, dtype=np.float64)
    return float(arr.reshape(-1)[0]) if arr.size == 1 else arr


def _broadcast(value: float | list[float], n: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"expected 1 or {n} values, got {arr.size}")
    return arr
