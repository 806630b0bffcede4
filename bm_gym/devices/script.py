"""Scripted commands for reproducible demos and tests: a CSV of ``time, vx, vy, wz`` rows, held until the next row.

    # time (s), vx (m/s), vy (m/s), wz (rad/s)
    time,vx,vy,wz
    0.0, 0.0, 0.0, 0.0
    1.0, 0.6, 0.0, 0.0
    6.0, 0.0, 0.0, 0.0

Times count from when the script starts, on the clock the caller gives (simulation time in the app, so a
replay does not depend on how fast the machine is). Before the first row the command is zero; after the last
row its command holds and ``finished`` is True. The header line and ``#`` comments are optional.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bm_gym.devices.se2 import Se2Device, command
from bm_gym.utils.files import atomic_write_text

HEADER = ("time", "vx", "vy", "wz")


class ScriptError(ValueError):
    """A command script that cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class CommandScript:
    times: tuple[float, ...]  # strictly increasing, from 0
    commands: tuple[tuple[float, float, float], ...]

    def __post_init__(self) -> None:
        if not self.times:
            raise ScriptError("a command script needs at least one row")
        if len(self.times) != len(self.commands):
            raise ScriptError(f"{len(self.times)} times for {len(self.commands)} commands")
        if any(b <= a for a, b in zip(self.times, self.times[1:], strict=False)) or self.times[0] < 0:
            raise ScriptError("script times must start at 0 or later and increase strictly")

    @property
    def duration(self) -> float:
        return self.times[-1]

    def at(self, t: float) -> tuple[float, float, float]:
        """The command held at time ``t`` (zero before the first row)."""
        index = int(np.searchsorted(self.times, t, side="right")) - 1
        return (0.0, 0.0, 0.0) if index < 0 else self.commands[index]

    @classmethod
    def from_samples(cls, samples: Iterable[tuple[float, tuple[float, float, float]]]) -> CommandScript:
        """From (time, command) samples, e.g. one per control step: only the changes are kept, times from 0."""
        times: list[float] = []
        commands: list[tuple[float, float, float]] = []
        start = None
        for t, cmd in samples:
            start = t if start is None else start
            cmd = tuple(round(float(c), 4) for c in cmd)
            if not commands or cmd != commands[-1]:
                times.append(round(t - start, 4))
                commands.append(cmd)
        return cls(tuple(times), tuple(commands))

    @classmethod
    def load(cls, path: str | Path) -> CommandScript:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise ScriptError(f"{path}: cannot read the command script ({err.strerror})") from err
        times, commands = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = [f.strip() for f in line.split(",")]
            if tuple(f.lower() for f in fields) == HEADER:
                continue
            if len(fields) != 4:
                raise ScriptError(f"{path}:{number}: expected 4 fields (time, vx, vy, wz), got {len(fields)}: {line!r}")
            try:
                values = [float(f) for f in fields]
            except ValueError as err:
                raise ScriptError(f"{path}:{number}: not a number in {line!r}") from err
            if not all(math.isfinite(v) for v in values):
                raise ScriptError(f"{path}:{number}: values must be finite: {line!r}")
            if times and values[0] <= times[-1]:
                raise ScriptError(f"{path}:{number}: time {values[0]} does not come after {times[-1]}")
            if values[0] < 0:
                raise ScriptError(f"{path}:{number}: time {values[0]} is negative")
            times.append(values[0])
            commands.append(tuple(values[1:]))
        if not times:
            raise ScriptError(f"{path}: no command rows (expected lines of time, vx, vy, wz)")
        return cls(tuple(times), tuple(commands))

    def save(self, path: str | Path) -> Path:
        lines = ["# bm_gym command script: each row's command holds until the next row's time", ",".join(HEADER)]
        lines += [f"{t:g},{vx:g},{vy:g},{wz:g}" for t, (vx, vy, wz) in zip(self.times, self.commands, strict=True)]
        atomic_write_text(Path(path), "\n".join(lines) + "\n")
        return Path(path)


class Se2Script(Se2Device):
    """Plays a ``CommandScript`` against ``clock()`` (seconds); the script's time 0 is the first ``advance()``."""

    def __init__(self, script: CommandScript | str | Path, clock: Callable[[], float], name: str = "") -> None:
        super().__init__()
        if not isinstance(script, CommandScript):
            name = name or Path(script).name
            script = CommandScript.load(script)
        self.script, self.clock, self.name = script, clock, name or "script"
        self._start: float | None = None

    @property
    def buttons(self) -> tuple[str, ...]:
        return ()

    @property
    def elapsed(self) -> float:
        return 0.0 if self._start is None else self.clock() - self._start

    @property
    def finished(self) -> bool:
        return self._start is not None and self.elapsed >= self.script.duration

    @property
    def description(self) -> str:
        return f"script {self.name} ({min(self.elapsed, self.script.duration):.1f}/{self.script.duration:.1f} s)"

    def advance(self) -> np.ndarray:
        now = self.clock()
        if self._start is None or now < self._start:  # first call, or the clock was reset under us
            self._start = now
        return command(*self.script.at(self.elapsed))

    def reset(self) -> None:
        """Play from the beginning at the next ``advance()``."""
        self._start = None
