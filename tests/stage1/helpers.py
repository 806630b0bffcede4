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
