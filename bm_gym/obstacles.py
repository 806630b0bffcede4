"""Obstacles as plain data: one description places physical geoms in a simulator and feeds guidance costs."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Cylinder:
    """Upright cylinder standing on the floor (a circle in the top-down map)."""

    x: float
    y: float
    radius: float
    height: float = 1.0

    def __post_init__(self) -> None:
        _check_finite(self, (self.x, self.y, self.radius, self.height))
        if self.radius <= 0 or self.height <= 0:
            raise ValueError(f"cylinder radius and height must be positive, got {self}")


@dataclass(frozen=True)
class Box:
    """Box standing on the floor: centre (x, y), half sizes along its own axes, yaw in radians."""

    x: float
    y: float
    half_x: float
    half_y: float
    yaw: float = 0.0
    height: float = 1.0

    def __post_init__(self) -> None:
        _check_finite(self, (self.x, self.y, self.half_x, self.half_y, self.yaw, self.height))
        if self.half_x <= 0 or self.half_y <= 0 or self.height <= 0:
            raise ValueError(f"box half sizes and height must be positive, got {self}")

    @property
    def bounding_radius(self) -> float:
        return math.hypot(self.half_x, self.half_y)


Obstacle = Cylinder | Box


def _check_finite(obj: object, values: tuple[float, ...]) -> None:
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"obstacle has non-finite values: {obj}")
