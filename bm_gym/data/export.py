"""Export an expert dataset or an app recording (our HDF5, schema 1) to the formats other libraries load.

- **LeRobotDataset v3** (the layout robot-learning users share data in): ``meta/info.json``, ``meta/stats.json``,
  ``meta/tasks.parquet``, ``meta/episodes/chunk-000/file-000.parquet`` and ``data/chunk-000/file-NNN.parquet``,
  written with pyarrow and pandas as LeRobot itself writes them, so ``LeRobotDataset(repo_id, root=OUT)`` loads it
  without LeRobot being installed here (LeRobot pins torch < 2.11 and a CUDA torchvision).
- **Minari** (Gymnasium's offline-RL standard), through ``minari.create_dataset_from_buffers``.

What goes where, per control step t of an episode of T steps:

    our HDF5               LeRobot                    Minari
    states[t]              observation.state          observations["state"]
    commands[t]            observation.command        observations["command"]
    applied_actions[t]     action                     actions            (what the robot executed)
    actions[t]             action.expert              infos["expert_action"]  (the clean expert target)
    motion_frames[t]       observation.motion_frame   infos["motion_frame"]
    expert_driven[t]       action.expert_driven       infos["expert_driven"]  (False: a student drove, DAgger)

``action`` is the executed joint target, so states follow from actions as they do on a robot; the clean expert
target (what bm_gym's diffusion model learns) travels beside it. Minari stores transitions with the state after
each action, so an episode of T recorded steps becomes T - 1 Minari steps (the last action has no recorded
next state). Per-dimension names (state fields, joint names) are in both.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bm_gym.data.hdf5 import DatasetError, Episode, load_episodes
from bm_gym.data.state import StateLayout

LEROBOT_CODEBASE_VERSION = "v3.0"
ROBOT_TYPE = "unitree_g1"
FILE_FRAMES = 500_000  # frames per data parquet file (LeRobot splits its files near 100 MB; this is about 60 MB)
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
VELOCITY_TASK = "walk following base velocity commands (vx, vy, yaw rate)"
TRACKING_TASK = "track a reference motion"


class ExportError(ValueError):
    """An export that cannot be made; the message names the file."""


@dataclass(frozen=True)
class Source:
    """An HDF5 dataset read for export: all its episodes (fallen ones too; each carries its ``fell`` flag)."""

    path: Path
    episodes: list[Episode]
    layout: StateLayout
    control_dt: float
    source_policy: str

    @classmethod
    def read(cls, path: str | Path) -> Source:
        episodes, attrs, _ = load_episodes(path, include_fallen=True)
        if not episodes:
            raise DatasetError(f"{path}: no episodes to export")
        layout = StateLayout.from_json(attrs["state_layout"])
        return cls(Path(path), episodes, layout, float(attrs["control_dt"]), str(attrs.get("source_policy", "")))

    @property
    def fps(self) -> int:
        fps = 1.0 / self.control_dt
        if abs(fps - round(fps)) > 1e-6:
            raise ExportError(f"{self.path}: control rate {fps} Hz is not a whole number of frames per second")
        return round(fps)

    def task(self, episode: Episode) -> str:
        return TRACKING_TASK if np.any(episode.motion_frames >= 0) else VELOCITY_TASK


def state_names(layout: StateLayout) -> list[str]:
    """One name per state dimension, e.g. ``lin_vel_h.x``, ``joint_pos.left_knee_joint``."""
    per_field = {
        "root_pos_xy": ["x", "y"], "root_yaw_cs": ["cos", "sin"], "root_height": ["z"], "gravity_b": ["x", "y", "z"],
        "lin_vel_h": ["x", "y", "z"], "ang_vel_h": ["x", "y", "z"],
        "body_pos_h": [f"{b}.{a}" for b in layout.body_names for a in "xyz"],
        "body_vel_h": [f"{b}.{a}" for b in layout.body_names for a in "xyz"],
        "joint_pos": list(layout.joint_names), "joint_vel": list(layout.joint_names),
    }  # fmt: skip
    names = [f"{field}.{suffix}" for field in layout.fields for suffix in per_field[field]]
    if len(names) != layout.dim:
        raise ExportError(f"state names ({len(names)}) do not cover the state ({layout.dim})")
    return names


def _prepare_out(out: Path, overwrite: bool) -> Path:
    """A fresh temporary folder beside ``out``; the finished export is moved into place in one rename."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise ExportError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _commit(tmp: Path, out: Path) -> Path:
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def _expert_driven(episode: Episode) -> np.ndarray:
    """[T] bool: whether the expert chose each step's action (every step, but where a student drove)."""
    return np.ones(len(episode), bool) if episode.expert_driven is None else np.asarray(episode.expert_driven, bool)


def _feature_stats(values: np.ndarray) -> dict[str, list]:
    values = values.reshape(len(values), -1).astype(np.float64)
    stats = {"min": values.min(0), "max": values.max(0), "mean": values.mean(0), "std": values.std(0),
             "count": np.array([len(values)])}  # fmt: skip
    for q in QUANTILES:
        stats[f"q{round(q * 100):02d}"] = np.quantile(values, q, axis=0)
    return {k: v.tolist() for k, v in stats.items()}


def export_lerobot(path: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Write ``path`` (our HDF5) as a LeRobotDataset v3 in the folder ``out``; returns ``out``."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    source, out = Source.read(path), Path(out)
    tmp = _prepare_out(out, overwrite)
    layout, fps, episodes = source.layout, source.fps, source.episodes
    features = {
        "observation.state": {"dtype": "float32", "shape": [layout.dim], "names": state_names(layout)},
        "observation.command": {"dtype": "float32", "shape": [3], "names": ["vx", "vy", "wz"]},
        "observation.motion_frame": {"dtype": "int64", "shape": [1], "names": None},
        "action": {"dtype": "float32", "shape": [layout.action_dim], "names": list(layout.joint_names)},
        "action.expert": {"dtype": "float32", "shape": [layout.action_dim], "names": list(layout.joint_names)},
        "action.expert_driven": {"dtype": "bool", "shape": [1], "names": None},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }
    tasks = sorted({source.task(e) for e in episodes})
    columns = {
        "observation.state": lambda e: e.states, "observation.command": lambda e: e.commands,
        "observation.motion_frame": lambda e: e.motion_frames.astype(np.int64),
        "action": lambda e: e.applied_actions, "action.expert": lambda e: e.actions,
        "action.expert_driven": _expert_driven,
        "timestamp": lambda e: (np.arange(len(e)) / fps).astype(np.float32),
        "frame_index": lambda e: np.arange(len(e), dtype=np.int64),
        "task_index": lambda e: np.full(len(e), tasks.index(source.task(e)), dtype=np.int64),
    }  # fmt: skip

    def arrow_column(name: str, values: np.ndarray) -> pa.Array:
        spec = features[name]
        if spec["shape"] == [1]:
            return pa.array(np.asarray(values).reshape(-1), type=pa.from_numpy_dtype(np.dtype(spec["dtype"])))
        flat = pa.array(np.asarray(values, dtype=spec["dtype"]).reshape(-1))
        return pa.FixedSizeListArray.from_arrays(flat, spec["shape"][0])

    episode_rows, frame = [], 0
    file_index, file_frames, writer = 0, 0, None
    for position, e in enumerate(episodes):
        if writer is not None and file_frames + len(e) > FILE_FRAMES:
            writer.close()
            writer, file_index, file_frames = None, file_index + 1, 0
        data = {name: make(e) for name, make in columns.items()}
        data["episode_index"] = np.full(len(e), position, dtype=np.int64)
        data["index"] = np.arange(frame, frame + len(e), dtype=np.int64)
        table = pa.table({name: arrow_column(name, data[name]) for name in features})
        if writer is None:
            file = tmp / "data" / f"chunk-000/file-{file_index:03d}.parquet"
            file.parent.mkdir(parents=True, exist_ok=True)
            writer = pq.ParquetWriter(file, table.schema, compression="snappy")
        writer.write_table(table)
        row = {"episode_index": position, "tasks": [source.task(e)], "length": len(e),
               "data/chunk_index": 0, "data/file_index": file_index,
               "dataset_from_index": frame, "dataset_to_index": frame + len(e),
               "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
               "bm_gym/source_episode": e.index, "bm_gym/fell": e.fell, "bm_gym/seed": e.seed}  # fmt: skip
        for name, values in data.items():
            row |= {f"stats/{name}/{k}": v for k, v in _feature_stats(values).items()}
        episode_rows.append(row)
        frame += len(e)
        file_frames += len(e)
    writer.close()

    meta = tmp / "meta"
    (meta / "episodes/chunk-000").mkdir(parents=True)
    pd.DataFrame(episode_rows).to_parquet(meta / "episodes/chunk-000/file-000.parquet")
    pd.DataFrame({"task_index": range(len(tasks))}, index=pd.Index(tasks, name="task")).to_parquet(
        meta / "tasks.parquet"
    )
    stacked = {name: np.concatenate([np.asarray(make(e)) for e in episodes]) for name, make in columns.items()}
    stacked["episode_index"] = np.concatenate([np.full(len(e), k) for k, e in enumerate(episodes)])
    stacked["index"] = np.arange(frame)
    (meta / "stats.json").write_text(json.dumps({name: _feature_stats(v) for name, v in stacked.items()}))
    info = {
        "codebase_version": LEROBOT_CODEBASE_VERSION, "robot_type": ROBOT_TYPE,
        "total_episodes": len(episodes), "total_frames": frame, "total_tasks": len(tasks),
        "chunks_size": 1000, "data_files_size_in_mb": 100, "video_files_size_in_mb": 200, "fps": fps,
        "splits": {"train": f"0:{len(episodes)}"},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet", "video_path": None,
        "features": features,
        "bm_gym": {"source": str(source.path), "source_policy": source.source_policy,
                   "state_layout": json.loads(layout.to_json())},
    }  # fmt: skip
    (meta / "info.json").write_text(json.dumps(info, indent=2))
    return _commit(tmp, out)


def export_minari(path: str | Path, out: str | Path, dataset_id: str | None = None, overwrite: bool = False) -> str:
    """Write ``path`` as a Minari dataset under the datasets root ``out``; returns its id.

    Load it with ``MINARI_DATASETS_PATH=out`` and ``minari.load_dataset(id)``. The id defaults to
    ``bm_gym/<file stem>-v0`` (Minari ids are ``namespace/name-vN``).
    """
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    source, out = Source.read(path), Path(out)
    dataset_id = dataset_id or f"bm_gym/{source.path.stem.replace('_', '-')}-v0"
    tmp = _prepare_out(out, overwrite)
    layout = source.layout
    unbounded = dict(low=-np.inf, high=np.inf, dtype=np.float32)
    observation_space = gym.spaces.Dict({"state": gym.spaces.Box(shape=(layout.dim,), **unbounded),
                                         "command": gym.spaces.Box(shape=(3,), **unbounded)})  # fmt: skip
    action_space = gym.spaces.Box(shape=(layout.action_dim,), **unbounded)
    buffers = []
    for position, e in enumerate(source.episodes):
        if len(e) < 2:
            continue  # one recorded step makes no transition
        steps = len(e) - 1
        last = np.zeros(steps, dtype=bool)
        last[-1] = True
        buffers.append(EpisodeBuffer(
            id=position, seed=e.seed,
            observations={"state": e.states.astype(np.float32), "command": e.commands.astype(np.float32)},
            actions=e.applied_actions[:steps].astype(np.float32), rewards=np.zeros(steps),
            terminations=last & e.fell, truncations=last & (not e.fell),
            infos={"expert_action": e.actions.astype(np.float32), "motion_frame": e.motion_frames.astype(np.int64),
                   "expert_driven": _expert_driven(e)},
        ))  # fmt: skip
    if not buffers:
        raise ExportError(f"{source.path}: no episode has two or more steps")
    previous_root = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(tmp)
    try:
        with warnings.catch_warnings():  # Minari warns of metadata an export has no value for (permalink, email)
            warnings.filterwarnings("ignore", category=UserWarning, module="minari")
            minari.create_dataset_from_buffers(
                dataset_id, buffers, observation_space=observation_space, action_space=action_space,
                algorithm_name=f"Stage 1 expert ({source.source_policy})", author="bm_gym export",
                description=(f"Exported by bm_gym from {source.path.name}. actions: executed joint position "
                             f"targets (rad), joint order as in the state names; infos['expert_action']: the clean "
                             f"expert targets. State names: {state_names(layout)}"),
                data_format="hdf5",
            )  # fmt: skip
    finally:
        if previous_root is None:
            os.environ.pop("MINARI_DATASETS_PATH")
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous_root
    _commit(tmp, out)
    return dataset_id
