"""PyTorch dataset of (O_t, tau_t) windows, cut from whole episodes at load time.

    history O_t  [N+1, S+A]: rows k < N are (s_{t-N+k}, a_{t-N+k}); row N is (s_t, 0), the present
                 state with its not-yet-chosen action zeroed (after normalization).
    future tau_t [H, S+A]:   row k is (s_{t+k+1}, a_{t+k}), the action taken at t+k and the state it led to.

Root position and yaw of every row are expressed relative to the robot at t (``StateLayout.canonicalize``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from bm_gym.data.hdf5 import Episode, load_episodes
from bm_gym.data.mirror import Mirror
from bm_gym.data.state import StateLayout

_GOLDEN = 2654435761  # Knuth's multiplicative hash: a stable, spread-out episode -> split assignment


def is_validation_episode(index: int, val_fraction: float) -> bool:
    return ((index * _GOLDEN) % 10_000) / 10_000 < val_fraction


def cut_windows(
    states: np.ndarray, actions: np.ndarray, rows: np.ndarray, history: int, horizon: int, layout: StateLayout
) -> tuple[np.ndarray, np.ndarray]:
    """Canonicalized states [B, N+H+1, S] and actions [B, N+H, A] around rows ``rows`` of [T, S] / [T, A] arrays
    (raw units), in one vectorized pass: per-window Python work bounded the training step."""
    offsets = np.arange(-history, horizon + 1)
    window_states = layout.canonicalize(states[rows[:, None] + offsets], present=history)
    return window_states, actions[rows[:, None] + offsets[:-1]]


def cut_window(episode: Episode, t: int, history: int, horizon: int, layout: StateLayout) -> tuple[np.ndarray, ...]:
    """Canonicalized states [N+H+1, S] and actions [N+H, A] around step t of one episode (raw units)."""
    states, actions = cut_windows(episode.states, episode.actions, np.array([t]), history, horizon, layout)
    return states[0], actions[0]


def window_starts(episode: Episode, history: int, horizon: int, end_cut: int = 0,
                  keep_push_futures: bool = False) -> np.ndarray:  # fmt: skip
    """Present steps t of the episode's training windows: a full history before t, ``horizon`` steps after it
    (and ``end_cut`` more), every future action the expert's (a student's steps only appear in histories) and,
    unless ``keep_push_futures``, no push in the future: a push is an event from outside that the model cannot
    foresee; trained to predict it, a planner samples kicks that never come and steps to meet them. Windows
    that start after a push (the kick in their history or present) teach the recovery."""
    starts = np.arange(history, len(episode) - horizon - end_cut)
    excluded = np.zeros(len(episode), bool)
    if episode.expert_driven is not None:
        excluded |= ~np.asarray(episode.expert_driven, bool)
    if episode.pushed is not None and not keep_push_futures:
        excluded |= np.asarray(episode.pushed, bool)
    if not excluded.any() or len(starts) == 0:
        return starts
    count = np.concatenate([[0], np.cumsum(excluded)])
    return starts[count[starts + horizon] == count[starts]]  # none in steps t .. t+H-1


@dataclass(frozen=True)
class WindowEpisode:
    """What a window dataset keeps of an episode besides its rows in the flat arrays."""

    index: int
    source: str
    fell: bool
    start: int  # first row in ExpertWindowDataset.states / .actions


def window_stats(
    episodes: list[Episode], layout: StateLayout, history: int, horizon: int, max_windows: int = 20_000, seed: int = 0
) -> dict[str, np.ndarray]:
    """Per-feature mean/std over canonicalized windows: exactly the values the model is trained on."""
    starts = [(i, int(t)) for i, e in enumerate(episodes) for t in window_starts(e, history, horizon)]
    if not starts:  # every window holds a push or a student's action: statistics over all of them
        starts = [(i, int(t)) for i, e in enumerate(episodes) for t in range(history, len(e) - horizon)]
    if not starts:
        raise ValueError(f"no episode is longer than history + horizon = {history + horizon} steps")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(starts), size=min(max_windows, len(starts)), replace=False)
    windows = [cut_window(episodes[starts[k][0]], starts[k][1], history, horizon, layout) for k in pick]
    states, actions = zip(*windows, strict=True)
    s, a = np.concatenate(states), np.concatenate(actions)
    return {
        "state_mean": s.mean(0), "state_std": np.maximum(s.std(0), 1e-3),
        "action_mean": a.mean(0), "action_std": np.maximum(a.std(0), 1e-3),
    }  # fmt: skip


class ExpertWindowDataset(Dataset):
    """(history, future) float32 tensors of shapes [N+1, S+A] and [H, S+A], normalized with the file's stats."""

    def __init__(
        self,
        path: str | Path,
        history: int = 4,
        horizon: int = 16,
        split: str = "all",
        val_fraction: float = 0.05,
        include_fallen: bool = False,
        normalize: bool = True,
        sources: Sequence[str] | None = None,
        fall_margin_s: float | None = None,
        mirror: bool = False,
        keep_push_futures: bool = False,
    ) -> None:
        """``sources`` keeps only episodes of those manifest sources. ``fall_margin_s`` keeps the windows of fallen
        episodes that end at least that long before the fall (the paper keeps windows still stable seconds
        later); without it fallen episodes are left out whole, unless ``include_fallen``. ``mirror`` appends the
        left-right mirror image of every window (items ``len/2 ..``; bm_gym.data.mirror). ``keep_push_futures`` keeps
        windows with a push in their future (:func:`window_starts`)."""
        if split not in ("all", "train", "val"):
            raise ValueError(f"split must be 'all', 'train' or 'val', got {split!r}")
        if fall_margin_s is not None and not (math.isfinite(fall_margin_s) and fall_margin_s >= 0):
            raise ValueError(f"fall_margin_s must be a finite number >= 0, got {fall_margin_s}")
        episodes, attrs, stats = load_episodes(path, include_fallen=include_fallen or fall_margin_s is not None)
        if sources is not None:
            present = sorted({e.source for e in episodes})
            unknown = sorted(set(sources) - set(present))
            if unknown:
                raise ValueError(f"{path}: no episodes of source(s) {unknown}; the file has {present}")
            episodes = [e for e in episodes if e.source in set(sources)]
        if split != "all":
            want_val = split == "val"
            episodes = [e for e in episodes if is_validation_episode(e.index, val_fraction) == want_val]
        self.layout = StateLayout.from_json(attrs["state_layout"])
        self.history, self.horizon, self.normalize = history, horizon, normalize
        self.control_dt = float(attrs["control_dt"])
        cut = 0 if fall_margin_s is None or include_fallen else round(fall_margin_s / self.control_dt)
        self.index = np.array([(i, int(t)) for i, e in enumerate(episodes)
                               for t in window_starts(e, history, horizon, cut if e.fell else 0,
                                                      keep_push_futures)])  # fmt: skip
        if len(self.index) == 0:
            raise ValueError(f"{path}: no {split} windows of {history} + 1 + {horizon} steps")
        # Every episode's states and actions in two flat arrays (what worker processes receive), windows by row.
        starts = np.cumsum([0] + [len(e) for e in episodes[:-1]])
        self.episodes = [WindowEpisode(e.index, e.source, e.fell, int(start))
                         for e, start in zip(episodes, starts, strict=True)]  # fmt: skip
        self.states = np.concatenate([e.states for e in episodes]).astype(np.float32, copy=False)
        self.actions = np.concatenate([e.actions for e in episodes]).astype(np.float32, copy=False)
        self._rows = starts[self.index[:, 0]] + self.index[:, 1]
        self.mirror = Mirror.for_layout(self.layout) if mirror else None
        self.state_mean, self.state_std = stats["state_mean"], stats["state_std"]
        self.action_mean, self.action_std = stats["action_mean"], stats["action_std"]

    def use_statistics(self, state_mean: np.ndarray, state_std: np.ndarray, action_mean: np.ndarray,
                       action_std: np.ndarray) -> None:  # fmt: skip
        """Normalize windows with these statistics instead of the file's (a model fine-tuned on this data
        expects the statistics it was first trained with)."""
        self.state_mean, self.state_std = state_mean, state_std
        self.action_mean, self.action_std = action_mean, action_std

    def __len__(self) -> int:
        return len(self.index) * (2 if self.mirror else 1)

    @property
    def sources(self) -> list[str]:
        """The source of every window (manifest source names; "" for single-policy files)."""
        return [self.episodes[i].source for i in self.index[:, 0]] * (2 if self.mirror else 1)

    def sample_weights(self, source_weights: Mapping[str, float]) -> np.ndarray:
        """Per-window sampling weights that give each source its share of ``source_weights`` (normalized) whatever
        its size; sources not named get weight 0."""
        names = np.array(self.sources)
        present = set(names.tolist())
        unknown = sorted(set(source_weights) - present)
        if unknown:
            raise ValueError(f"source weights name {unknown}, which this dataset has no windows of: {sorted(present)}")
        if any(not (math.isfinite(w) and w >= 0) for w in source_weights.values()) or not any(source_weights.values()):
            raise ValueError(f"source weights must be finite, >= 0 and not all 0: {dict(source_weights)}")
        weights = np.zeros(len(names))
        for name, share in source_weights.items():
            mask = names == name
            weights[mask] = share / mask.sum()
        return weights / weights.sum()

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        history, future = self.batch(np.array([item]))
        return history[0], future[0]

    def batch(self, items: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Items ``items`` stacked: history [B, N+1, S+A] and future [B, H, S+A], cut in one vectorized pass."""
        items = np.asarray(items, dtype=np.int64)
        if items.size and (items.min() < 0 or items.max() >= len(self)):
            raise IndexError(f"window index out of range [0, {len(self)}): {items.min()}..{items.max()}")
        flip, item = np.divmod(items, len(self.index))
        states, actions = cut_windows(self.states, self.actions, self._rows[item], self.history, self.horizon,
                                      self.layout)  # fmt: skip
        if flip.any():
            mirrored = flip == 1
            states[mirrored] = self.mirror.states(states[mirrored])
            actions[mirrored] = self.mirror.actions(actions[mirrored])
        if self.normalize:
            states = (states - self.state_mean) / self.state_std
            actions = (actions - self.action_mean) / self.action_std
        n = self.history
        present_action = np.zeros((len(items), 1, actions.shape[2]), dtype=np.float32)
        history = np.concatenate([states[:, : n + 1], np.concatenate([actions[:, :n], present_action], 1)], axis=2)
        future = np.concatenate([states[:, n + 1 :], actions[:, n:]], axis=2)
        return torch.from_numpy(history.astype(np.float32)), torch.from_numpy(future.astype(np.float32))
