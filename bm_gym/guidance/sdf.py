"""Signed distance fields of floor obstacles in the plane, cheap to query and differentiable (torch).

Obstacles are given in the world frame and expressed in the robot's frame at planning time
(``to_robot_frame``), because planned trajectories are canonicalized to that frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt

from bm_gym.obstacles import Box, Cylinder, Obstacle


@dataclass(frozen=True)
class OccupancyGrid:
    """A boolean occupancy map (True = blocked) of ``resolution`` m cells whose corner (0, 0) sits at ``origin``."""

    occupied: np.ndarray  # [rows (y), cols (x)]
    resolution: float
    origin: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        if self.occupied.ndim != 2 or self.occupied.size == 0:
            raise ValueError(f"occupancy grid must be a non-empty 2-D array, got shape {self.occupied.shape}")
        if not self.resolution > 0:
            raise ValueError(f"grid resolution must be positive, got {self.resolution}")

    def signed_distance(self) -> np.ndarray:
        """Per-cell signed distance (m): positive outside obstacles, negative inside (SciPy's exact EDT)."""
        occ = self.occupied.astype(bool)
        outside = distance_transform_edt(~occ) * self.resolution
        inside = distance_transform_edt(occ) * self.resolution
        return np.where(occ, -inside + 0.5 * self.resolution, outside - 0.5 * self.resolution).astype(np.float32)

    def to_boxes(self, height: float = 1.0) -> list[Box]:
        """The occupied cells as few axis-aligned boxes (greedy rectangles), to place the grid in a simulator.

        Each box grows right along its row, then down while the whole span stays occupied; together they
        cover exactly the occupied cells. A blob of cells becomes a handful of boxes, within the sim's pool.
        """
        free = ~self.occupied.astype(bool)
        rows, cols = free.shape
        r = self.resolution
        boxes = []
        for i in range(rows):
            j = 0
            while j < cols:
                if free[i, j]:
                    j += 1
                    continue
                end = j
                while end < cols and not free[i, end]:
                    end += 1
                bottom = i + 1
                while bottom < rows and not free[bottom, j:end].any():
                    bottom += 1
                free[i:bottom, j:end] = True  # covered
                boxes.append(Box(self.origin[0] + (j + end) * r / 2, self.origin[1] + (i + bottom) * r / 2,
                                 half_x=(end - j) * r / 2, half_y=(bottom - i) * r / 2, height=height))  # fmt: skip
                j = end
        return boxes


class ObstacleField:
    """Union of cylinders, boxes and grids; ``distance(points [..., 2])`` is the SDF, autograd-friendly."""

    def __init__(self, obstacles: list[Obstacle] | None = None, grids: list[OccupancyGrid] | None = None) -> None:
        obstacles = obstacles or []
        circles = [o for o in obstacles if isinstance(o, Cylinder)]
        boxes = [o for o in obstacles if isinstance(o, Box)]
        unknown = [o for o in obstacles if not isinstance(o, (Cylinder, Box))]
        if unknown:
            raise TypeError(f"unsupported obstacles {unknown}")
        self.circles = torch.tensor([[c.x, c.y, c.radius] for c in circles], dtype=torch.float32).reshape(-1, 3)
        self.boxes = torch.tensor([[b.x, b.y, b.half_x, b.half_y, b.yaw] for b in boxes], dtype=torch.float32)
        self.boxes = self.boxes.reshape(-1, 5)
        self.grids = [(torch.from_numpy(g.signed_distance())[None, None], g) for g in grids or []]
        self.frame = (0.0, 0.0, 0.0)  # (x, y, yaw) of the frame points are given in, in world coordinates

    @property
    def empty(self) -> bool:
        return len(self.circles) == 0 and len(self.boxes) == 0 and not self.grids

    def to_robot_frame(self, x: float, y: float, yaw: float) -> ObstacleField:
        """The same obstacles seen from a robot at (x, y, yaw): translate, then rotate by -yaw."""
        c, s = math.cos(yaw), math.sin(yaw)
        rot = torch.tensor([[c, s], [-s, c]], dtype=torch.float32)
        out = ObstacleField()
        if len(self.circles):
            xy = (self.circles[:, :2] - torch.tensor([x, y])) @ rot.T
            out.circles = torch.cat([xy, self.circles[:, 2:]], dim=1)
        if len(self.boxes):
            xy = (self.boxes[:, :2] - torch.tensor([x, y])) @ rot.T
            out.boxes = torch.cat([xy, self.boxes[:, 2:4], self.boxes[:, 4:] - yaw], dim=1)
        out.grids = self.grids  # grids stay in the world; their lookup maps points back
        out.frame = (x, y, yaw)
        return out

    def distance(self, points: torch.Tensor) -> torch.Tensor:
        """Signed distance (m) from each planar point [..., 2] to the nearest obstacle; +inf where there are none."""
        d = torch.full(points.shape[:-1], float("inf"), dtype=points.dtype)
        if len(self.circles):
            diff = points[..., None, :] - self.circles[:, :2]
            d = torch.minimum(d, (diff.norm(dim=-1) - self.circles[:, 2]).min(dim=-1).values)
        if len(self.boxes):
            d = torch.minimum(d, self._box_distance(points).min(dim=-1).values)
        for sdf, grid in self.grids:
            d = torch.minimum(d, self._grid_distance(points, sdf, grid))
        return d

    def _box_distance(self, points: torch.Tensor) -> torch.Tensor:
        diff = points[..., None, :] - self.boxes[:, :2]
        c, s = torch.cos(self.boxes[:, 4]), torch.sin(self.boxes[:, 4])
        local = torch.stack([c * diff[..., 0] + s * diff[..., 1], -s * diff[..., 0] + c * diff[..., 1]], dim=-1)
        q = local.abs() - self.boxes[:, 2:4]
        outside = q.clamp(min=0).norm(dim=-1)
        inside = q.max(dim=-1).values.clamp(max=0)
        return outside + inside

    def _grid_distance(self, points: torch.Tensor, sdf: torch.Tensor, grid: OccupancyGrid) -> torch.Tensor:
        x, y, yaw = self.frame
        c, s = math.cos(yaw), math.sin(yaw)
        px, py = points[..., 0], points[..., 1]
        world = torch.stack([c * px - s * py + x, s * px + c * py + y], dim=-1)
        rows, cols = grid.occupied.shape
        u = (world[..., 0] - grid.origin[0]) / (cols * grid.resolution) * 2 - 1
        v = (world[..., 1] - grid.origin[1]) / (rows * grid.resolution) * 2 - 1
        flat = torch.stack([u, v], dim=-1).reshape(1, -1, 1, 2)
        # Bilinear lookup; beyond the grid the border value continues (align_corners=False: cell centres).
        value = F.grid_sample(sdf.to(points.dtype), flat, mode="bilinear", padding_mode="border", align_corners=False)
        return value.reshape(points.shape[:-1])
