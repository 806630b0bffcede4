"""Record a teleop session to HDF5 in the expert-dataset format (schema 1), so it validates and trains like one.

Each reset or fall closes an episode. The file is rewritten atomically after every closed episode, so a
crash loses at most the episode in progress and never an earlier one.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bm_gym.data.dataset import window_stats
from bm_gym.data.hdf5 import Episode, write_dataset
from bm_gym.data.state import StateLayout
from bm_gym.sim.backend import RobotState, has_fallen

STATS_HISTORY, STATS_HORIZON = 4, 16


class SessionRecorder:
    def __init__(self, path: str | Path, layout: StateLayout, control_dt: float) -> None:
        self.path, self.layout, self.control_dt = Path(path), layout, control_dt
        self.episodes: list[Episode] = []
        self._states: list[np.ndarray] = []
        self._actions: list[np.ndarray] = []
        self._commands: list[tuple[float, float, float]] = []

    def add(self, state: RobotState, action: np.ndarray, command: tuple[float, float, float]) -> None:
        """One control step: the state the action was chosen in, the applied joint targets, the command."""
        self._states.append(self.layout.encode(state))
        self._actions.append(np.asarray(action, dtype=np.float32))
        self._commands.append(command)
        if has_fallen(state):
            self.end_episode(fell=True)

    def end_episode(self, fell: bool) -> None:
        if not self._states:
            return
        actions = np.stack(self._actions)
        self.episodes.append(
            Episode(len(self.episodes), np.stack(self._states), actions, actions.copy(),
                    np.asarray(self._commands, dtype=np.float32), np.full(len(actions), -1, np.int32), fell, 0)
        )  # fmt: skip
        self._states, self._actions, self._commands = [], [], []
        self._write()

    def close(self) -> None:
        self.end_episode(fell=False)

    def _write(self) -> None:
        usable = [e for e in self.episodes if len(e) > STATS_HISTORY + STATS_HORIZON]
        if not usable:
            return  # nothing long enough for normalization statistics yet
        stats = window_stats([e for e in usable if not e.fell] or usable, self.layout, STATS_HISTORY, STATS_HORIZON)
        attrs = {
            "control_dt": self.control_dt,
            "state_layout": self.layout.to_json(),
            "source_policy": "bm_gym teleop app (guided diffusion controller)",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        write_dataset(self.path, self.episodes, attrs, stats, {"history": STATS_HISTORY, "horizon": STATS_HORIZON})
