"""Test helpers: rsl_rl checkpoints made from the real ONNX velocity policy, Isaac Lab joint order."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import mujoco
import numpy as np
import onnx
import torch
from onnx import numpy_helper

from bm_gym.robot import g1


def onnx_weights(onnx_path: Path) -> dict[str, np.ndarray]:
    model = onnx.load(str(onnx_path))
    return {i.name: numpy_helper.to_array(i).copy() for i in model.graph.initializer}


def breadth_first_joint_names() -> list[str]:
    """The G1 joints in Isaac Lab's breadth-first order, computed from the MJCF body tree."""
    model = g1.build_spec().compile()
    children: dict[int, list[int]] = {}
    for b in range(1, model.nbody):
        children.setdefault(int(model.body_parentid[b]), []).append(b)
    order, queue = [], deque(children[0])
    while queue:
        body = queue.popleft()
        order += [model.joint(j).name for j in range(model.njnt)
                  if model.jnt_bodyid[j] == body and model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE]  # fmt: skip
        queue.extend(children.get(body, []))
    return order


def save_rsl_rl_checkpoint(weights: dict[str, np.ndarray], path: Path, layout: str) -> Path:
    """Write the ONNX actor as an rsl_rl checkpoint: ``layout`` 'v5' (actor_state_dict) or 'v2' (model_state_dict)."""
    t = lambda a: torch.tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
    mean, std = weights["normalizer._mean"], weights["add"] - 1e-2  # ONNX stores std + eps
    layers = {f"{i}.{k}": t(weights[f"actor.{i}.{k}"]) for i in (0, 2, 4, 6) for k in ("weight", "bias")}
    if layout == "v5":
        state = {f"mlp.{k}": v for k, v in layers.items()}
        state |= {"obs_normalizer._mean": t(mean), "obs_normalizer._var": t(std**2), "obs_normalizer._std": t(std),
                  "obs_normalizer.count": torch.tensor(1000)}  # fmt: skip
        ckpt = {"actor_state_dict": state, "critic_state_dict": {}, "iter": 1, "infos": None}
    else:
        state = {f"actor.{k}": v for k, v in layers.items()} | {"std": t(np.ones(29))}
        ckpt = {"model_state_dict": state, "obs_norm_state_dict": {"_mean": t(mean), "_var": t(std**2), "_std": t(std),
                "count": torch.tensor(1000)}, "iter": 1}  # fmt: skip
    torch.save(ckpt, path)
    return path


def _joint_columns(obs_dim: int, perm: np.ndarray) -> np.ndarray:
    """Column map from an Isaac-order observation to the original (MuJoCo-order) one, per policy."""
    n = len(perm)
    inv = np.argsort(perm)  # MuJoCo joint j sits at position inv[j] of the Isaac order
    cols = np.arange(obs_dim)
    if obs_dim == 96:  # ang vel, gravity, command, then q, dq, last action
        starts = [9, 9 + n, 9 + 2 * n]
    elif obs_dim == 154:  # motion q, motion dq, anchor ori (6), ang vel (3), then q, dq, last action
        starts = [0, n, 2 * n + 9, 3 * n + 9, 4 * n + 9]
    else:
        raise ValueError(f"no joint layout known for a {obs_dim}-value observation")
    for s in starts:
        cols[s : s + n] = s + inv
    return cols


def permuted_onnx(src: Path, dest: Path, perm: np.ndarray) -> Path:
    """The ONNX policy re-expressed in another joint order by graph surgery: Gather nodes on input and output.

    ``perm[k]`` is the original (MuJoCo) index of joint k of the new order.
    """
    model = onnx.load(str(src))  # loads the external weights too
    graph = model.graph
    inp, out = graph.input[0].name, graph.output[0].name
    obs_dim = graph.input[0].type.tensor_type.shape.dim[1].dim_value
    for node in graph.node:
        node.input[:] = [f"{inp}_motor" if x == inp else x for x in node.input]
        node.output[:] = [f"{out}_motor" if x == out else x for x in node.output]
    graph.initializer.extend([
        numpy_helper.from_array(_joint_columns(obs_dim, perm).astype(np.int64), "obs_columns"),
        numpy_helper.from_array(np.asarray(perm, dtype=np.int64), "action_columns"),
    ])  # fmt: skip
    graph.node.insert(0, onnx.helper.make_node("Gather", [inp, "obs_columns"], [f"{inp}_motor"], axis=1))
    graph.node.append(onnx.helper.make_node("Gather", [f"{out}_motor", "action_columns"], [out], axis=1))
    onnx.checker.check_model(model)
    dest.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dest))
    return dest


def unitree_export(src_dir: Path, dest: Path, gains_in_policy_order: bool = False,
                   python_tags: bool = True) -> Path:  # fmt: skip
    """A shared policy laid out as unitree_rl_lab exports it, in Isaac Lab (breadth-first) joint order.

    ``exported/policy.onnx`` + ``params/deploy.yaml`` (non-identity ``joint_ids_map``, gains in motor order,
    everything else in policy order) + ``params/<clip>_30hz.csv`` for tracking policies. With
    ``gains_in_policy_order`` the gains are written the way the old loader read them: scrambled.
    """
    import yaml

    bfs = breadth_first_joint_names()
    perm = g1.joint_index_map(bfs)  # Isaac position k -> motor index, i.e. unitree's joint_ids_map
    permuted_onnx(src_dir / "policy.onnx", dest / "exported" / "policy.onnx", perm)
    cfg = yaml.safe_load((src_dir / "deploy.yaml").read_text())
    assert cfg["joint_ids_map"] == list(range(29))  # the shared files are in motor order throughout
    cfg["joint_ids_map"] = perm.tolist()
    if gains_in_policy_order:
        cfg["stiffness"] = [cfg["stiffness"][i] for i in perm]
        cfg["damping"] = [cfg["damping"][i] for i in perm]
    to_policy = lambda values: [values[i] for i in perm]  # noqa: E731
    cfg["default_joint_pos"] = to_policy(cfg["default_joint_pos"])
    action = cfg["actions"]["JointPositionAction"]
    action["scale"], action["offset"] = to_policy(action["scale"]), to_policy(action["offset"])
    for term in cfg["observations"].values():
        if isinstance(term["scale"], list) and len(term["scale"]) == 29:
            term["scale"] = to_policy(term["scale"])
    text = yaml.safe_dump(cfg, sort_keys=False)
    if python_tags:  # older exports carry Python-tagged values under keys a loader does not need
        text = text.replace("joint_ids: null", "joint_ids: !!python/object/apply:builtins.slice [null, null, null]")
    params = dest / "params"
    params.mkdir(parents=True, exist_ok=True)
    (params / "deploy.yaml").write_text(text)
    if (src_dir / "motion.csv").is_file():
        (params / "dance_30hz.csv").write_bytes((src_dir / "motion.csv").read_bytes())
    return dest
