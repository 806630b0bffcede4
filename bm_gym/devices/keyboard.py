"""Keyboard driving: W/S forward and back, A/D sideways, Q/E turn; other keys can carry callbacks.

The key state comes from whoever owns the window: the app passes Dear PyGui's, a pygame window pygame's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bm_gym.devices.se2 import Se2Device, command

DRIVE_KEYS = ("W", "S", "A", "D", "Q", "E")
CALLBACK_KEYS = ("R", "P", "SPACE", "ESCAPE")


@dataclass(frozen=True)
class Se2KeyboardCfg:
    v_x_sensitivity: float = 0.8  # m/s while W is held
    v_y_sensitivity: float = 0.4  # m/s while A or D is held
    omega_z_sensitivity: float = 0.8  # rad/s while Q or E is held
    backward_scale: float = 0.5  # S drives backward at this fraction of v_x_sensitivity


class Se2Keyboard(Se2Device):
    """``key_down(name)`` says whether a key (``"W"``, ``"SPACE"``, ...) is held now; presses are found by edges."""

    def __init__(self, key_down: Callable[[str], bool], cfg: Se2KeyboardCfg | None = None) -> None:
        super().__init__()
        self.cfg, self._key_down = cfg or Se2KeyboardCfg(), key_down
        self._held: set[str] = set()

    @property
    def buttons(self) -> tuple[str, ...]:
        return DRIVE_KEYS + CALLBACK_KEYS

    @property
    def description(self) -> str:
        return "keyboard"

    def advance(self) -> np.ndarray | None:
        """The command while a drive key is held, else None (idle)."""
        down = {key for key in self.buttons if self._key_down(key)}
        for key in down - self._held:
            self._pressed(key)
        self._held = down
        if not down & set(DRIVE_KEYS):
            return None
        cfg, key = self.cfg, down.__contains__
        return command(cfg.v_x_sensitivity * (key("W") - cfg.backward_scale * key("S")),
                       cfg.v_y_sensitivity * (key("A") - key("D")),
                       cfg.omega_z_sensitivity * (key("Q") - key("E")))  # fmt: skip

    def reset(self) -> None:
        self._held.clear()
