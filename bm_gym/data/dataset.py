"""PyTorch dataset of (O_t, tau_t) windows, cut from whole episodes at load time.

    history O_t  [N+1, S+A]: rows k < N are (s_{t-N+k}, a_{t-N+k}); row N is (s_t, 0), the present
                 state with its not-yet-chosen action zeroed (after normalization).
    future tau_t [H, S+A]:   row k is (s_{t+k+1}, a_{t+k}), the action taken at t+k and the state it led to.

Root position and yaw of every row are expressed relative to the robot at t (``StateLayout.canonicalize``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from bm_gym.data.hdf5 import Episode, load_episodes
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
    ) -> None:
        if split not in ("all", "train", "val"):
            raise ValueError(f"split must be 'all', 'train' or 'val', got {split!r}")
        episodes, attrs, stats = load_episodes(path, include_fallen=include_fallen)
        if split != "all":
            want_val = split == "val"
            episodes = [e for e in episodes if is_validation_episode(e.index, val_fraction) == want_val]
        self.layout = StateLayout.from_json(attrs["state_layout"])
        self.history, self.horizon, self.normalize = history, horizon, normalize
        self.control_dt = float(attrs["control_dt"])
        self.episodes = episodes
        self.index = np.array([(i, t) for i, e in enumerate(episodes) for t in range(history, len(e) - horizon)])
        if len(self.index) == 0:
            raise ValueError(f"{path}: no {split} windows of {history} + 1 + {horizon} steps")
        self.state_mean, self.state_std = stats["state_mean"], stats["state_std"]
        self.action_mean, self.action_std = stats["action_mean"], stats["action_std"]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        episode, t = self.index[item]
        states, actions = cut_window(self.episodes[episode], int(t), self.history, self.horizon, self.layout)
        if self.normalize:
            states = (states - self.state_mean) / self.state_std
            actions = (actions - self.action_mean) / self.action_std
        n = self.history
        present_action = np.zeros((1, actions.shape[1]), dtype=np.float32)
        history = np.concatenate([states[: n + 1], np.concatenate([actions[:n], present_action])], axis=1)
        future = np.concatenate([states[n + 1 :], actions[n:]], axis=1)
        return torch.from_numpy(history.astype(np.float32)), torch.from_numpy(future.astype(np.float32))
