"""Velocity-command schedules covering what a joystick and a navigator ask for.

Segments of standing, walking at speeds across the policy's range, turning while walking and in place,
sideways and backwards, joined by smooth ramps or abrupt steps.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from bm_gym.utils.checks import is_finite, positive_finite, require

DEFAULT_RANGES = {"lin_vel_x": (-0.5, 1.0), "lin_vel_y": (-0.5, 0.5), "ang_vel_z": (-1.0, 1.0)}


@dataclass(frozen=True)
class CommandScheduleCfg:
    segment_s: tuple[float, float] = (1.0, 4.0)
    ramp_s: tuple[float, float] = (0.3, 1.5)
    abrupt_prob: float = 0.3  # share of transitions that are steps instead of ramps
    initial_stand_s: tuple[float, float] = (0.5, 1.5)
    # Relative frequency of each kind of segment.
    stand: float = 0.15
    forward: float = 0.25
    walk_turn: float = 0.2
    turn_in_place: float = 0.15
    sideways: float = 0.1
    backward: float = 0.05
    omni: float = 0.1  # all three components random
    # Speed floor (m/s) of forward, backward and sideways segments; None: 0.1 forward and backward, none sideways
    # (the first datasets). In 4 h of that mix the velocity expert moved at 0.07 m/s on average when commanded
    # 0.15-0.3 m/s sideways, at 0.35 when commanded 0.45-0.6: few steady sideways gaits to learn from (issue 15).
    min_speed: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "min_speed":
                if value is not None:
                    positive_finite("CommandScheduleCfg", f.name, value, allow_zero=True)
            elif isinstance(f.default, tuple):
                ok = (
                    isinstance(value, tuple)
                    and len(value) == 2
                    and all(is_finite(v) and v >= 0 for v in value)
                    and value[0] <= value[1]
                )
                require(ok, "CommandScheduleCfg", f.name, value, "(low, high) with 0 <= low <= high")
            else:
                positive_finite("CommandScheduleCfg", f.name, value, allow_zero=True)
        require(0 <= self.abrupt_prob <= 1, "CommandScheduleCfg", "abrupt_prob", self.abrupt_prob, "in [0, 1]")
        require(self.segment_s[0] > 0, "CommandScheduleCfg", "segment_s", self.segment_s, "a low end above 0")
        require(sum(getattr(self, k) for k in SEGMENT_KINDS) > 0, "CommandScheduleCfg", "segment weights",
                tuple(getattr(self, k) for k in SEGMENT_KINDS), "not all zero")  # fmt: skip


SEGMENT_KINDS = ("stand", "forward", "walk_turn", "turn_in_place", "sideways", "backward", "omni")


def sample_segment(
    kind: str, rng: np.random.Generator, ranges: dict[str, tuple[float, float]], min_speed: float | None = None
) -> np.ndarray:
    """One segment's (vx, vy, wz) target; single-axis walking segments ask for at least ``min_speed`` (within the
    policy's ranges; see :class:`CommandScheduleCfg`)."""
    (x_lo, x_hi), (y_lo, y_hi), (w_lo, w_hi) = ranges["lin_vel_x"], ranges["lin_vel_y"], ranges["ang_vel_z"]
    vx, vy, wz = 0.0, 0.0, 0.0
    floor = 0.1 if min_speed is None else min_speed
    if kind == "forward":
        vx = rng.uniform(min(floor, x_hi), x_hi)
    elif kind == "walk_turn":
        vx, wz = rng.uniform(0.1, x_hi), rng.uniform(w_lo, w_hi)
    elif kind == "turn_in_place":
        wz = rng.choice([-1, 1]) * rng.uniform(0.3, max(abs(w_lo), w_hi))
        wz = float(np.clip(wz, w_lo, w_hi))
    elif kind == "sideways" and min_speed is None:
        vy = rng.uniform(y_lo, y_hi)
    elif kind == "sideways":
        side = rng.choice([-1.0, 1.0])
        limit = max(y_hi if side > 0 else -y_lo, 0.0)
        vy = side * rng.uniform(min(floor, limit), limit)
    elif kind == "backward":
        vx = rng.uniform(x_lo, min(-floor, x_hi))
    elif kind == "omni":
        vx, vy, wz = rng.uniform(x_lo, x_hi), rng.uniform(y_lo, y_hi), rng.uniform(w_lo, w_hi)
    elif kind != "stand":
        raise ValueError(f"unknown command segment kind {kind!r}")
    return np.array([vx, vy, wz])


def sample_schedule(
    rng: np.random.Generator,
    steps: int,
    dt: float,
    cfg: CommandScheduleCfg = CommandScheduleCfg(),  # noqa: B008 - frozen dataclass, safe as default
    ranges: dict[str, tuple[float, float]] | None = None,
) -> np.ndarray:
    """A [steps, 3] array of (vx, vy, wz) commands."""
    ranges = {**DEFAULT_RANGES, **(ranges or {})}
    kinds = SEGMENT_KINDS
    weights = np.array([getattr(cfg, k) for k in kinds], dtype=float)
    weights /= weights.sum()
    out = np.zeros((steps, 3))
    t = int(rng.uniform(*cfg.initial_stand_s) / dt)
    current = np.zeros(3)
    while t < steps:
        target = sample_segment(kinds[rng.choice(len(kinds), p=weights)], rng, ranges, cfg.min_speed)
        length = max(1, int(rng.uniform(*cfg.segment_s) / dt))
        ramp = 0 if rng.random() < cfg.abrupt_prob else min(length, int(rng.uniform(*cfg.ramp_s) / dt))
        blend = np.ones(length)
        if ramp:
            blend[:ramp] = np.arange(1, ramp + 1) / ramp
        segment = current + (target - current) * blend[:, None]
        out[t : t + length] = segment[: steps - t]
        current, t = target, t + length
    return out
