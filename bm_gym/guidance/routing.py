"""A coarse route around obstacles, so waypoint guidance chases a reachable point instead of a local minimum.

Guidance is local: with the goal straight behind a wall, the pull and the barrier cancel and the robot
stands still. A grid distance-to-goal field over free space (Dijkstra, 8-connected, obstacles inflated by
the robot's clearance) gives, from any position, the point ``lookahead`` m along the shortest route; the
waypoint cost then steers to that point and the barrier keeps the bodies clear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from bm_gym.guidance.sdf import ObstacleField


@dataclass(frozen=True)
class RouteCfg:
    resolution: float = 0.1  # m per cell
    clearance: float = 0.45  # free cells are at least this far from every obstacle (body half-width + margin)
    lookahead: float = 1.0  # m along the route
    padding: float = 2.0  # grid extends this far beyond the start, the goal and the obstacles


class Route:
    """Shortest routes to one goal through one obstacle field, for any start inside the grid."""

    def __init__(self, goal: tuple[float, float], field: ObstacleField, start: tuple[float, float],
                 cfg: RouteCfg | None = None) -> None:  # fmt: skip
        self.cfg = cfg = cfg or RouteCfg()
        self.goal = np.asarray(goal, dtype=float)
        points = [self.goal, np.asarray(start, dtype=float)]
        points += [c[:2].numpy() for c in field.circles] + [b[:2].numpy() for b in field.boxes]
        lo = np.min(points, axis=0) - cfg.padding
        hi = np.max(points, axis=0) + cfg.padding
        self.origin = lo
        self.shape = tuple(np.ceil((hi - lo) / cfg.resolution).astype(int) + 1)  # (nx, ny)
        xs = lo[0] + np.arange(self.shape[0]) * cfg.resolution
        ys = lo[1] + np.arange(self.shape[1]) * cfg.resolution
        centres = np.stack(np.meshgrid(xs, ys, indexing="ij"), axis=-1)  # [nx, ny, 2]
        with torch.no_grad():
            sdf = field.distance(torch.as_tensor(centres, dtype=torch.float32)).numpy()
        self.free = sdf > cfg.clearance
        goal_cell = self._nearest_free(self.cell(self.goal))
        self.distance = self._distances_to(goal_cell)

    def cell(self, xy: np.ndarray) -> tuple[int, int]:
        ij = np.round((np.asarray(xy) - self.origin) / self.cfg.resolution).astype(int)
        return int(np.clip(ij[0], 0, self.shape[0] - 1)), int(np.clip(ij[1], 0, self.shape[1] - 1))

    def contains(self, xy: np.ndarray) -> bool:
        ij = (np.asarray(xy) - self.origin) / self.cfg.resolution
        return bool(np.all(ij >= 0) and np.all(ij <= np.array(self.shape) - 1))

    def position(self, cell: tuple[int, int]) -> np.ndarray:
        return self.origin + np.array(cell) * self.cfg.resolution

    def target(self, xy: np.ndarray) -> np.ndarray:
        """The point ``lookahead`` m along the route from ``xy`` (the goal itself once it is that close)."""
        if np.linalg.norm(self.goal - xy) <= self.cfg.lookahead:
            return self.goal
        cell = self._nearest_free(self.cell(xy))
        if not np.isfinite(self.distance[cell]):
            return self.goal  # no route: let the plain pull and the barrier do what they can
        travelled, start = 0.0, self.position(cell)
        while travelled < self.cfg.lookahead:
            nxt = min(self._neighbours(cell), key=lambda c: self.distance[c], default=cell)
            if self.distance[nxt] >= self.distance[cell]:
                return self.goal  # reached the goal cell
            travelled += self.cfg.resolution * math.dist(nxt, cell)
            cell = nxt
        return self.position(cell) if np.linalg.norm(self.position(cell) - start) > 0 else self.goal

    def _neighbours(self, cell: tuple[int, int]) -> list[tuple[int, int]]:
        i, j = cell
        out = []
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                n = (i + di, j + dj)
                if (di or dj) and 0 <= n[0] < self.shape[0] and 0 <= n[1] < self.shape[1] and self.free[n]:
                    out.append(n)
        return out

    def _nearest_free(self, cell: tuple[int, int]) -> tuple[int, int]:
        if self.free[cell]:
            return cell
        free = np.argwhere(self.free)
        if len(free) == 0:
            return cell
        k = np.argmin(((free - np.array(cell)) ** 2).sum(axis=1))
        return int(free[k][0]), int(free[k][1])

    def _distances_to(self, goal_cell: tuple[int, int]) -> np.ndarray:
        """Dijkstra over free cells (scipy's csgraph; edges of 1 or sqrt(2) cells) -> [nx, ny] metres."""
        nx, ny = self.shape
        index = np.arange(nx * ny).reshape(nx, ny)
        rows, cols, weights = [], [], []
        for di, dj in ((1, 0), (0, 1), (1, 1), (1, -1)):
            a = index[: nx - di, max(0, -dj) : ny - max(0, dj)]
            b = index[di:, max(0, dj) : ny - max(0, -dj)]  # a's cells shifted by (di, dj)
            ok = self.free.ravel()[a.ravel()] & self.free.ravel()[b.ravel()]
            rows.append(a.ravel()[ok])
            cols.append(b.ravel()[ok])
            weights.append(np.full(ok.sum(), self.cfg.resolution * math.hypot(di, dj)))
        graph = coo_matrix(
            (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))), shape=(nx * ny,) * 2
        )
        distance = dijkstra(graph.tocsr(), directed=False, indices=int(index[goal_cell]))
        return distance.reshape(nx, ny)
