"""HDF5 expert-data files: layout, atomic writes, merging episode shards, validation.

Layout (schema 1)::

    /                 attrs: schema_version, control_dt, state_layout (JSON), source_policy,
                             policy_conventions (JSON), collect_cfg (JSON), created
    /episodes/000042  states [T, S] f32, actions [T, A] f32 (expert targets), applied_actions [T, A] f32,
                      commands [T, 3] f32, motion_frames [T] i32, and in newer files pushed [T] bool (a push
                      hit between s_t and s_t+1), in episodes a student co-drove expert_driven [T] bool
                      (whether the expert chose step t's action; absent: every step);
                      attrs: fell, seed, length, and in files collected from a manifest source (its name) and
                      motion (the clip's name)
    /stats            state_mean/std [S], action_mean/std [A] over canonicalized windows of
                      non-fallen episodes; attrs: history, horizon

A killed writer never leaves a corrupt file: everything is written to ``<name>.tmp`` and renamed. Every array
carries an HDF5 Fletcher-32 checksum, verified whenever it is read: flipped bits raise instead of loading.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from bm_gym.data.state import StateLayout

SCHEMA_VERSION = 1
EPISODE_ARRAYS = ("states", "actions", "applied_actions", "commands", "motion_frames")
#: Per-step flags [T] bool an episode may carry (None where a file has none).
OPTIONAL_EPISODE_FLAGS = ("expert_driven", "pushed")


class DatasetError(ValueError):
    """A dataset file is missing, corrupt or of another layout; the message says which."""


@dataclass
class Episode:
    index: int
    states: np.ndarray
    actions: np.ndarray
    applied_actions: np.ndarray
    commands: np.ndarray
    motion_frames: np.ndarray
    fell: bool
    seed: int
    source: str = ""  # manifest source the episode came from ("" in single-policy files)
    motion: str = ""  # reference motion of a tracking source
    # [T] bool: step t's action was the expert's; False where a student drove (DAgger-style collection). None: all.
    expert_driven: np.ndarray | None = None
    # [T] bool: a push hit the robot between s_t and s_t+1 (RobotState.pushed); None: not recorded (older files).
    pushed: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.states)


def _atomic_h5(path: Path):
    """Open ``path.tmp`` for writing; the caller renames it into place once closed."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    return tmp, h5py.File(tmp, "w")


def _commit(tmp: Path, path: Path) -> None:
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_episode_group(group: h5py.Group, episode: Episode) -> None:
    for name in EPISODE_ARRAYS:
        group.create_dataset(name, data=getattr(episode, name), fletcher32=True)
    for name in OPTIONAL_EPISODE_FLAGS:
        if getattr(episode, name) is not None:
            group.create_dataset(name, data=np.asarray(getattr(episode, name), bool), fletcher32=True)
    group.attrs.update(fell=episode.fell, seed=episode.seed, length=len(episode))
    if episode.source or episode.motion:
        group.attrs.update(source=episode.source, motion=episode.motion)


def read_episode_group(group: h5py.Group, index: int) -> Episode:
    return Episode(index, *(group[name][()] for name in EPISODE_ARRAYS), bool(group.attrs["fell"]),
                   int(group.attrs["seed"]), str(group.attrs.get("source", "")),
                   str(group.attrs.get("motion", "")),
                   *(group[flag][()].astype(bool) if flag in group else None
                     for flag in OPTIONAL_EPISODE_FLAGS))  # fmt: skip


@contextlib.contextmanager
def _reading(path: Path | str, what: str = ""):
    """Turn h5py's low-level errors (checksum mismatch, truncated file, damaged metadata) into DatasetError."""
    try:
        yield
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as err:
        where = f" ({what})" if what else ""
        raise DatasetError(f"{path}{where} is corrupt or unreadable: {err}") from err


def write_shard(path: Path, episode: Episode) -> None:
    """One finished episode, written atomically."""
    tmp, f = _atomic_h5(path)
    with f:
        write_episode_group(f.create_group("episode"), episode)
    _commit(tmp, path)


def read_shard(path: Path, index: int) -> Episode:
    with _reading(path, "episode shard"), h5py.File(path, "r") as f:
        return read_episode_group(f["episode"], index)


def write_dataset(
    path: Path,
    episodes: Iterable[Episode],
    attrs: dict[str, str | float | int],
    stats: dict[str, np.ndarray],
    stats_attrs: dict[str, int],
) -> None:
    """Write a whole dataset file atomically (the previous file stays intact until the rename)."""
    tmp, f = _atomic_h5(path)
    with f:
        f.attrs.update(attrs)
        f.attrs["schema_version"] = SCHEMA_VERSION
        group = f.create_group("episodes")
        for episode in episodes:
            write_episode_group(group.create_group(f"{episode.index:06d}"), episode)
        s = f.create_group("stats")
        for name, value in stats.items():
            s.create_dataset(name, data=value, fletcher32=True)
        s.attrs.update(stats_attrs)
    _commit(tmp, path)


@dataclass
class DatasetSummary:
    path: Path
    episodes: int
    fallen: int
    steps: int
    control_dt: float
    state_dim: int
    action_dim: int
    source_policy: str
    checksummed: bool = True  # every array carries a Fletcher-32 checksum (files written before it did not)
    state_kind: str = "joint"  # the state layout (bm_gym.data.state.STATE_KINDS, or "custom")

    @property
    def hours(self) -> float:
        return self.steps * self.control_dt / 3600

    def __str__(self) -> str:
        return (
            f"{self.path}: {self.episodes} episodes, {self.steps} steps ({self.hours:.2f} h at "
            f"{1 / self.control_dt:.0f} Hz), {self.fallen} fell ({self.fallen / max(self.episodes, 1):.1%}); "
            f"state {self.state_dim} ({self.state_kind}), action {self.action_dim}; source {self.source_policy}"
            + ("" if self.checksummed else "; no checksums (written by an older bm_gym)")
        )


def open_dataset(path: str | Path) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"no dataset at {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise DatasetError(f"{path} is not a readable HDF5 file (corrupt or truncated?): {err}") from err
    try:
        version = f.attrs.get("schema_version")
    except (OSError, KeyError, RuntimeError) as err:
        f.close()
        raise DatasetError(f"{path} has damaged metadata: {err}") from err
    if version != SCHEMA_VERSION:
        f.close()
        raise DatasetError(f"{path} has schema_version {version!r}; this bm_gym reads {SCHEMA_VERSION}")
    return f


def validate(path: str | Path) -> DatasetSummary:
    """Check every episode (values and checksums) and the stats; raise :class:`DatasetError` naming the first
    problem."""
    with open_dataset(path) as f, _reading(path):
        for key in ("control_dt", "state_layout", "source_policy"):
            if key not in f.attrs:
                raise DatasetError(f"{path}: missing root attribute {key!r}")
        layout = StateLayout.from_json(f.attrs["state_layout"])
        steps = fallen = 0
        checksummed = True
        episodes = f.get("episodes")
        if episodes is None or len(episodes) == 0:
            raise DatasetError(f"{path}: no episodes")
        expected = {"states": layout.dim, "actions": layout.action_dim, "applied_actions": layout.action_dim,
                    "commands": 3}  # fmt: skip
        for name, group in episodes.items():
            length = int(group.attrs.get("length", -1))
            for array, width in expected.items():
                if array not in group:
                    raise DatasetError(f"{path}: episode {name} lacks {array!r}")
                checksummed &= bool(group[array].fletcher32)
                data = group[array][()]
                if data.shape != (length, width):
                    raise DatasetError(
                        f"{path}: episode {name} {array} has shape {data.shape}, expected {(length, width)}"
                    )
                if not np.all(np.isfinite(data)):
                    raise DatasetError(f"{path}: episode {name} {array} contains NaN or inf")
            if "motion_frames" not in group or group["motion_frames"][()].shape != (length,):
                raise DatasetError(f"{path}: episode {name} motion_frames is missing or not of length {length}")
            for flag in OPTIONAL_EPISODE_FLAGS:
                if flag in group and group[flag].shape != (length,):
                    raise DatasetError(f"{path}: episode {name} {flag} has shape {group[flag].shape}, expected "
                                       f"{(length,)}")  # fmt: skip
            steps += length
            fallen += bool(group.attrs["fell"])
        if "stats" not in f:
            raise DatasetError(f"{path}: missing normalization stats")
        for name, width in (("state_mean", layout.dim), ("state_std", layout.dim), ("action_mean", layout.action_dim),
                            ("action_std", layout.action_dim)):  # fmt: skip
            value = f["stats"][name][()] if name in f["stats"] else None
            if value is None or value.shape != (width,) or not np.all(np.isfinite(value)):
                raise DatasetError(f"{path}: stats/{name} missing, of wrong shape or not finite")
        return DatasetSummary(Path(path), len(episodes), fallen, steps, float(f.attrs["control_dt"]), layout.dim,
                              layout.action_dim, str(f.attrs["source_policy"]), checksummed, layout.kind)  # fmt: skip


def load_episodes(path: str | Path, include_fallen: bool = False) -> tuple[list[Episode], dict, dict[str, np.ndarray]]:
    """All episodes (optionally without fallen ones), root attributes and stats, read into memory and checked:
    every value finite, every stat of the right size, std positive."""
    with open_dataset(path) as f, _reading(path):
        episodes = [read_episode_group(g, int(name)) for name, g in f["episodes"].items()]
        attrs = dict(f.attrs)
        stats = {k: v[()] for k, v in f["stats"].items()} | dict(f["stats"].attrs)
    for e in episodes:
        for name in ("states", "actions", "applied_actions", "commands"):
            if not np.all(np.isfinite(getattr(e, name))):
                raise DatasetError(f"{path}: episode {e.index:06d} {name} contains NaN or inf")
    for name in ("state_mean", "state_std", "action_mean", "action_std"):
        value = stats.get(name)
        if value is None or not np.all(np.isfinite(value)) or (name.endswith("std") and np.any(value <= 0)):
            raise DatasetError(f"{path}: stats/{name} is missing, not finite or not positive")
    if not include_fallen:
        episodes = [e for e in episodes if not e.fell]
    return episodes, attrs, stats


def json_attr(value: object) -> str:
    return json.dumps(value, default=str)
