"""The device contract: a source of (vx, vy, wz) base-velocity commands with named button callbacks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np


class Se2Device(ABC):
    """A source of SE(2) commands: forward and left velocity (m/s) and yaw rate (rad/s, left positive)."""

    def __init__(self) -> None:
        self._callbacks: dict[str, list[Callable[[], None]]] = {}

    @property
    @abstractmethod
    def buttons(self) -> tuple[str, ...]:
        """Names ``add_callback`` accepts on this device."""

    @abstractmethod
    def advance(self) -> np.ndarray | None:
        """The current command as a float32 array (vx, vy, wz), or None when the device is idle or absent."""

    def reset(self) -> None:  # noqa: B027 - optional hook: most devices hold no state to forget
        """Forget held inputs (a new episode starts from rest)."""

    def close(self) -> None:  # noqa: B027 - optional hook: most devices hold nothing to release
        """Release the device."""

    def add_callback(self, button: str, func: Callable[[], None]) -> None:
        """Call ``func()`` each time ``button`` is pressed (from inside ``advance()``, on the caller's thread)."""
        if button not in self.buttons:
            raise ValueError(f"{type(self).__name__} has no button {button!r}; it has {', '.join(self.buttons)}")
        self._callbacks.setdefault(button, []).append(func)

    def _pressed(self, button: str) -> None:
        for func in self._callbacks.get(button, ()):
            func()

    @property
    def description(self) -> str:
        """What the operator sees in the status bar."""
        return type(self).__name__


def command(vx: float, vy: float, wz: float) -> np.ndarray:
    return np.array([vx, vy, wz], dtype=np.float32)
