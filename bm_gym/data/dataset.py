"""PyTorch dataset of (O_t, tau_t) windows, cut from whole episodes at load time.

    history O_t  [N+1, S+A]: rows k < N are (s_{t-N+k}, a_{t-N+k}); row N is (s_t, 0), the present
                 state with its not-yet-chosen action zeroed (after normalization).
    future tau_t [H, S+A]:   row k is (s_{t+k+1}, a_{t+k}), the action taken at t+k and the state it led to.

Root position and yaw of every row are expressed relative to the robot at t (``StateLayout.canonicalize``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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


def cut_window(episode: Episode, t: int, history: int, horizon: int, layout: StateLayout) -> tuple[np.ndarray, ...]:
    """Canonicalized states [N+H+1, S] and actions [N+H, A] around step t (raw units)."""
    states = layout.canonicalize(episode.states[t - history : t + horizon + 1], present=history)
    actions = episode.actions[t - history : t + horizon]
    return states, actions


def window_stats(
    episodes: list[Episode], layout: StateLayout, history: int, horizon: int, max_windows: int = 20_000, seed: int = 0
) -> dict[str, np.ndarray]:
    """Per-feature mean/std over canonicalized windows: exactly the values the model is trained on."""
    starts = [(i, t) for i, e in enumerate(episodes) for t in range(history, len(e) - horizon)]
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
    ) -> None:
        """``sources`` keeps only episodes of those manifest sources. ``fall_margin_s`` keeps the windows of fallen
        episodes that end at least that long before the fall (the paper keeps windows still stable seconds
        later); without it fallen episodes are left out whole, unless ``include_fallen``. ``mirror`` appends the
        left-right mirror image of every window (items ``len/2 ..``; bm_gym.data.mirror)."""
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
        self.episodes = episodes
        cut = 0 if fall_margin_s is None or include_fallen else round(fall_margin_s / self.control_dt)
        self.index = np.array([(i, t) for i, e in enumerate(episodes)
                               for t in range(history, len(e) - horizon - (cut if e.fell else 0))])  # fmt: skip
        if len(self.index) == 0:
            raise ValueError(f"{path}: no {split} windows of {history} + 1 + {horizon} steps")
        self.mirror = Mirror.for_layout(self.layout) if mirror else None
        self.state_mean, self.state_std = stats["state_mean"], stats["state_std"]
        self.action_mean, self.action_std = stats["action_mean"], stats["action_std"]

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
        flip, item = divmod(item, len(self.index))
        episode, t = self.index[item]
        states, actions = cut_window(self.episodes[episode], int(t), self.history, self.horizon, self.layout)
        if flip:
            states, actions = self.mirror.states(states), self.mirror.actions(actions)
        if self.normalize:
            states = (states - self.state_mean) / self.state_std
            actions = (actions - self.action_mean) / self.action_std
        n = self.history
        present_action = np.zeros((1, actions.shape[1]), dtype=np.float32)
        history = np.concatenate([states[: n + 1], np.concatenate([actions[:n], present_action])], axis=1)
        future = np.concatenate([states[n + 1 :], actions[n:]], axis=1)
        return torch.from_numpy(history.astype(np.float32)), torch.from_numpy(future.astype(np.float32))
