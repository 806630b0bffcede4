"""Deployment conventions of a Stage 1 policy: its joint order, gains, action mapping and observation terms.

Read from a Unitree-style ``deploy.yaml`` or from the ONNX metadata that Isaac Lab / mjlab /
whole_body_tracking exporters attach. Every per-joint field of a format is in the order that format
defines (:data:`FIELD_ORDERS`): the readers convert each one to the *policy's* joint order, and mapping
to the simulator happens by joint name (:func:`bm_gym.robot.g1.joint_index_map`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bm_gym.robot import g1

#: The policy's own joint order: its action outputs and per-joint observation blocks.
POLICY_ORDER = "policy"
#: The robot's motor (Unitree SDK) order, which is :data:`bm_gym.robot.g1.JOINT_NAMES`.
MOTOR_ORDER = "motor"

#: Which order every per-joint field of every supported format is in (docs/stage1.md explains each).
FIELD_ORDERS: dict[str, dict[str, str]] = {
    "deploy.yaml": {
        # joint_ids_map[i] is the motor index of policy joint i (unitree_rl_lab's export_deploy_cfg.py).
        "joint_ids_map": POLICY_ORDER,
        "joint_names": POLICY_ORDER,
        # Written as ``stiffness[joint_ids_map] = ...``, read by the C++ deploy as ``kp[motor i]``.
        "stiffness": MOTOR_ORDER,
        "damping": MOTOR_ORDER,
        "default_joint_pos": POLICY_ORDER,
        "actions.JointPositionAction.scale": POLICY_ORDER,
        "actions.JointPositionAction.offset": POLICY_ORDER,
        "observations.<term>.scale": POLICY_ORDER,
    },
    "onnx metadata": {
        "joint_names": POLICY_ORDER,
        "joint_stiffness": POLICY_ORDER,
        "joint_damping": POLICY_ORDER,
        "default_joint_pos": POLICY_ORDER,
        "action_scale": POLICY_ORDER,
    },
}


@dataclass(frozen=True)
class ObsTermSpec:
    """One observation term as the policy saw it: values are clipped, scaled, then stacked over history."""

    name: str
    scale: np.ndarray | float = 1.0
    clip: tuple[float, float] | None = None
    history_length: int = 1


@dataclass(frozen=True)
class PolicyConventions:
    """Everything needed to drive a policy, every per-joint array in the policy's joint order."""

    joint_names: tuple[str, ...]  # policy joint order
    default_joint_pos: np.ndarray  # rad, policy order
    action_scale: np.ndarray
    action_offset: np.ndarray  # target = action * scale + offset
    stiffness: np.ndarray  # N m / rad
    damping: np.ndarray  # N m s / rad
    obs_terms: tuple[ObsTermSpec, ...]
    step_dt: float = 0.02
    command_ranges: dict[str, tuple[float, float]] | None = None
    source: str = "<in memory>"  # the file (and format) these conventions were read from, for messages

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        try:
            g1.joint_index_map(self.joint_names)
        except (KeyError, ValueError) as err:
            raise ValueError(f"{self.source}: joint names: {err.args[0]}") from None
        for field in ("default_joint_pos", "action_scale", "action_offset", "stiffness", "damping"):
            value = getattr(self, field)
            if np.shape(value) != (n,):
                raise ValueError(f"{self.source}: {field} has {np.size(value)} entries but the policy has {n} joints")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{self.source}: {field} contains non-finite values")
        if not (math.isfinite(self.step_dt) and self.step_dt > 0):
            raise ValueError(f"{self.source}: step_dt must be a positive number of seconds, got {self.step_dt}")

    @property
    def tracks_motion(self) -> bool:
        """A motion-tracking policy: it observes a reference motion (``motion_*`` terms)."""
        return any(t.name.startswith("motion_") for t in self.obs_terms)

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


class UnsupportedTag:
    """A YAML value with a tag the safe loader does not construct (e.g. ``!!python/object/apply``)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __repr__(self) -> str:
        return f"<unsupported YAML tag {self.tag}>"


class _DeployYamlLoader(yaml.SafeLoader):
    """yaml.SafeLoader that reads Python-tagged values (older unitree_rl_lab exports) as inert placeholders.

    Nothing is ever constructed from a tag: the loader stays safe, and a key we do use that holds such a
    value is reported by name.
    """


def _placeholder(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> UnsupportedTag:
    return UnsupportedTag(node.tag)


_DeployYamlLoader.add_multi_constructor("tag:yaml.org,2002:python/", _placeholder)
_DeployYamlLoader.add_multi_constructor("!", _placeholder)


def read_deploy_yaml(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a deploy.yaml, read safely (unknown tags become :class:`UnsupportedTag`)."""
    path = Path(path)
    try:
        cfg = yaml.load(path.read_text(), Loader=_DeployYamlLoader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"cannot read deploy conventions {path}: {err}") from err
    if not isinstance(cfg, dict):
        raise ValueError(f"{path} is not a deploy.yaml mapping (got {type(cfg).__name__})")
    return cfg


def from_deploy_yaml(path: str | Path) -> PolicyConventions:
    """Parse Unitree's deploy format; each field is read in the order :data:`FIELD_ORDERS` gives for it."""
    path = Path(path)
    cfg = read_deploy_yaml(path)
    where = lambda key: f"{path}: {key}"  # noqa: E731
    missing = [k for k in ("stiffness", "damping", "default_joint_pos", "actions", "observations") if k not in cfg]
    if missing:
        raise ValueError(f"{path} lacks required keys {missing}")
    n_motors = len(g1.JOINT_NAMES)
    if "joint_names" in cfg:
        names = tuple(str(n) for n in _list(cfg["joint_names"], where("joint_names")))
    else:
        ids = _list(cfg.get("joint_ids_map", list(range(n_motors))), where("joint_ids_map"))
        if not all(isinstance(i, int) and 0 <= i < n_motors for i in ids):
            raise ValueError(f"{where('joint_ids_map')} {ids} must hold motor indices 0-{n_motors - 1}")
        if len(set(ids)) != len(ids):
            raise ValueError(f"{where('joint_ids_map')} {ids} names a motor twice")
        names = tuple(g1.JOINT_NAMES[i] for i in ids)
    try:
        policy_to_motor = g1.joint_index_map(names)
    except (KeyError, ValueError) as err:
        raise ValueError(f"{where('joint_names')}: {err.args[0]}") from None
    n = len(names)
    actions = cfg["actions"]
    if not isinstance(actions, dict) or "JointPositionAction" not in actions:
        kinds = list(actions) if isinstance(actions, dict) else actions
        raise ValueError(f"{where('actions')}: only JointPositionAction policies are supported, got {kinds}")
    action = actions["JointPositionAction"] or {}
    observations = cfg["observations"]
    if not isinstance(observations, dict) or not observations:
        raise ValueError(f"{where('observations')} must map term names to their settings")
    terms = tuple(_obs_term(name, spec, where(f"observations.{name}")) for name, spec in observations.items())
    default = _per_joint(cfg["default_joint_pos"], n, where("default_joint_pos"), POLICY_ORDER)
    # Gains are written in motor order, one value per motor of the robot: pick the policy's joints.
    stiffness = _per_joint(cfg["stiffness"], n_motors, where("stiffness"), MOTOR_ORDER)[policy_to_motor]
    damping = _per_joint(cfg["damping"], n_motors, where("damping"), MOTOR_ORDER)[policy_to_motor]
    offset = action.get("offset")
    return PolicyConventions(
        joint_names=names,
        default_joint_pos=default,
        action_scale=_per_joint(action.get("scale", 1.0), n, where("actions.JointPositionAction.scale"), POLICY_ORDER),
        action_offset=default.copy()
        if offset is None
        else _per_joint(offset, n, where("actions.JointPositionAction.offset"), POLICY_ORDER),
        stiffness=stiffness,
        damping=damping,
        obs_terms=terms,
        step_dt=_number(cfg.get("step_dt", 0.02), where("step_dt")),
        command_ranges=_command_ranges(cfg.get("commands"), where("commands.base_velocity.ranges")),
        source=f"{path} (deploy.yaml)",
    )


def from_onnx_metadata(metadata: dict[str, str], source: str = "ONNX metadata") -> PolicyConventions:
    """Parse the comma-separated metadata written by mjlab / whole_body_tracking ONNX exporters."""
    required = ("joint_names", "default_joint_pos", "action_scale", "joint_stiffness", "joint_damping",
                "observation_names")  # fmt: skip
    missing = [k for k in required if k not in metadata]
    if missing:
        raise ValueError(f"{source} lacks {missing}; pass a deploy.yaml conventions file instead")
    names = tuple(metadata["joint_names"].split(","))
    n = len(names)
    obs_names = metadata["observation_names"].split(",")
    scales = _csv_entries(metadata.get("observation_terms_scale"), len(obs_names), source, "observation_terms_scale")
    history = _csv_entries(
        metadata.get("observation_terms_history_length"), len(obs_names), source, "observation_terms_history_length"
    )
    clips = _csv_entries(metadata.get("observation_terms_clip"), len(obs_names), source, "observation_terms_clip")
    terms = []
    for i, name in enumerate(obs_names):
        where = f"{source}: observation term {name!r}"
        clip = None
        if clips[i] is not None:
            bounds = [_number(v, f"{where} clip", allow_inf=True) for v in clips[i].split(";")]
            if len(bounds) != 2:
                raise ValueError(f"{where}: clip needs 'low;high', got {clips[i]!r}")
            clip = None if math.isinf(bounds[0]) and math.isinf(bounds[1]) else (bounds[0], bounds[1])
        scale = 1.0 if scales[i] is None else _scale([_number(v, f"{where} scale") for v in scales[i].split(";")])
        length = 1 if not history[i] else int(_number(history[i], f"{where} history length"))
        terms.append(ObsTermSpec(name, scale, clip, max(length, 1)))
    default = _floats(metadata["default_joint_pos"], n, f"{source}: default_joint_pos")
    return PolicyConventions(
        joint_names=names,
        default_joint_pos=default,
        action_scale=_broadcast(
            _floats(metadata["action_scale"], None, f"{source}: action_scale"), n, f"{source}: action_scale"
        ),  # fmt: skip
        action_offset=default.copy(),
        stiffness=_floats(metadata["joint_stiffness"], n, f"{source}: joint_stiffness"),
        damping=_floats(metadata["joint_damping"], n, f"{source}: joint_damping"),
        obs_terms=tuple(terms),
        source=source,
    )


def _obs_term(name: str, spec: Any, where: str) -> ObsTermSpec:
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise ValueError(f"{where} must be a mapping of settings, got {spec!r}")
    clip = spec.get("clip")
    if clip is not None:
        bounds = _list(clip, f"{where}.clip")
        if len(bounds) != 2:
            raise ValueError(f"{where}.clip must be [low, high], got {clip!r}")
        clip = tuple(_number(b, f"{where}.clip", allow_inf=True) for b in bounds)
        if not clip[0] <= clip[1]:
            raise ValueError(f"{where}.clip has low > high: {list(clip)}")
    scale = spec.get("scale", 1.0)
    scale_values = [_number(v, f"{where}.scale") for v in (scale if isinstance(scale, list) else [scale])]
    history = spec.get("history_length", 1)
    history = 1 if history in (None, 0) else history
    if not isinstance(history, int) or history < 1:
        raise ValueError(f"{where}.history_length must be a positive integer, got {history!r}")
    return ObsTermSpec(name=name, scale=_scale(scale_values), clip=clip, history_length=history)


def _command_ranges(commands: Any, where: str) -> dict[str, tuple[float, float]] | None:
    if not isinstance(commands, dict):
        return None
    base = commands.get("base_velocity")
    ranges = base.get("ranges") if isinstance(base, dict) else None
    if not isinstance(ranges, dict):
        return None
    out = {}
    for key in ("lin_vel_x", "lin_vel_y", "ang_vel_z"):
        value = ranges.get(key)
        if value is None:
            continue
        bounds = _list(value, f"{where}.{key}")
        if len(bounds) != 2:
            raise ValueError(f"{where}.{key} must be [low, high], got {value!r}")
        low, high = (_number(b, f"{where}.{key}") for b in bounds)
        if low > high:
            raise ValueError(f"{where}.{key} has low > high: {[low, high]}")
        out[key] = (low, high)
    return out or None


def _list(value: Any, where: str) -> list:
    if isinstance(value, UnsupportedTag):
        raise ValueError(f"{where} holds a value with the unsupported YAML tag {value.tag}")
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list, got {value!r}")
    return value


def _number(value: Any, where: str, allow_inf: bool = False) -> float:
    if isinstance(value, UnsupportedTag):
        raise ValueError(f"{where} holds a value with the unsupported YAML tag {value.tag}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {value!r} is not a number") from None
    if math.isnan(number) or (math.isinf(number) and not allow_inf):
        raise ValueError(f"{where}: {value!r} is not a finite number")
    return number


def _per_joint(value: Any, n: int, where: str, order: str) -> np.ndarray:
    """One value per joint (or one for all), in ``order``; the error says which order the field is in."""
    values = value if isinstance(value, list) else [value]
    arr = np.array([_number(v, where) for v in values], dtype=np.float64)
    if arr.size == 1:
        return np.full(n, arr[0])
    if arr.size != n:
        who = "motor of the G1, in motor (SDK) order" if order == MOTOR_ORDER else "policy joint, in policy order"
        raise ValueError(f"{where} has {arr.size} values; expected 1 or {n} (one per {who})")
    return arr


def _floats(text: str, n: int | None, where: str) -> np.ndarray:
    arr = np.array([_number(v, where) for v in text.split(",")], dtype=np.float64)
    if n is not None and arr.size != n:
        raise ValueError(f"{where} has {arr.size} values but joint_names lists {n} joints")
    return arr


def _csv_entries(text: str | None, n: int, source: str, key: str) -> list[str | None]:
    if text is None:
        return [None] * n
    entries = text.split(",")
    if len(entries) != n:
        raise ValueError(f"{source}: {key} lists {len(entries)} entries for {n} observation terms")
    return entries


def _scale(value: float | list[float]) -> np.ndarray | float:
    arr = np.asarray(value, dtype=np.float64)
    return float(arr.reshape(-1)[0]) if arr.size == 1 else arr


def _broadcast(arr: np.ndarray, n: int, where: str) -> np.ndarray:
    if arr.size == 1:
        return np.full(n, float(arr[0]))
    if arr.shape != (n,):
        raise ValueError(f"{where} has {arr.size} values; expected 1 or {n} (one per policy joint)")
    return arr
