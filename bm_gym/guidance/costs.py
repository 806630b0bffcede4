"""Differentiable, batched task costs on planned trajectories (physical units, robot frame at plan time).

Each cost maps a :class:`Trajectory` view of a [B, H, S+A] tensor to one value per batch entry [B];
costs compose by weighted sum (:class:`WeightedSum`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from bm_gym.data.state import StateLayout
from bm_gym.guidance.sdf import ObstacleField


class Trajectory:
    """Named views into a planned trajectory tensor [B, H, S+A]."""

    def __init__(self, layout: StateLayout, x: torch.Tensor) -> None:
        f = layout.fields
        self.x = x
        self.root_xy = x[..., f["root_pos_xy"]]  # [B, H, 2], robot frame at plan time
        cs = x[..., f["root_yaw_cs"]]
        self.yaw = torch.atan2(cs[..., 1], cs[..., 0])  # [B, H], relative to plan time
        self.lin_vel_h = x[..., f["lin_vel_h"]]  # heading frame of each step
        self.yaw_rate = x[..., f["ang_vel_h"]][..., 2]
        rel = x[..., f["body_pos_h"]].reshape(*x.shape[:-1], len(layout.body_names), 3)[..., :2]
        c, s = torch.cos(self.yaw)[..., None], torch.sin(self.yaw)[..., None]
        # Body positions: heading frame of their step -> robot frame at plan time.
        self.body_xy = self.root_xy[..., None, :] + torch.stack(
            [c * rel[..., 0] - s * rel[..., 1], s * rel[..., 0] + c * rel[..., 1]], dim=-1
        )  # [B, H, K, 2]

    @property
    def planar_velocity_plan_frame(self) -> torch.Tensor:
        """Root planar velocity rotated into the plan-time robot frame [B, H, 2]."""
        c, s = torch.cos(self.yaw), torch.sin(self.yaw)
        vx, vy = self.lin_vel_h[..., 0], self.lin_vel_h[..., 1]
        return torch.stack([c * vx - s * vy, s * vx + c * vy], dim=-1)


class TaskCost(Protocol):
    def __call__(self, traj: Trajectory) -> torch.Tensor:
        """Cost per plan [B]."""


@dataclass
class JoystickCost:
    """Track a commanded planar velocity (heading frame) and yaw rate over the whole horizon."""

    vx: float = 0.0
    vy: float = 0.0
    wz: float = 0.0
    yaw_rate_weight: float = 1.0

    def __call__(self, traj: Trajectory) -> torch.Tensor:
        v = traj.lin_vel_h
        err = (
            (v[..., 0] - self.vx) ** 2
            + (v[..., 1] - self.vy) ** 2
            + self.yaw_rate_weight * (traj.yaw_rate - self.wz) ** 2
        )
        return err.mean(dim=-1)


@dataclass
class WaypointCost:
    """BeyondMimic Eq. 8: squared distance to the goal, blended into a velocity penalty as the goal nears.

    Per step, with d the distance to the goal: (1 - exp(-2 d)) * d^2 + exp(-2 d) * |v|^2. Far away the
    robot is pulled to the goal; close to it, moving costs, so it arrives and stops.
    """

    goal_x: float
    goal_y: float

    def __call__(self, traj: Trajectory) -> torch.Tensor:
        goal = torch.tensor([self.goal_x, self.goal_y], dtype=traj.x.dtype)
        dist2 = ((traj.root_xy - goal) ** 2).sum(-1)
        near = torch.exp(-2.0 * torch.sqrt(dist2 + 1e-6))
        speed2 = (traj.lin_vel_h[..., :2] ** 2).sum(-1)
        return ((1 - near) * dist2 + near * speed2).mean(dim=-1)


def relaxed_barrier(x: torch.Tensor, delta: float) -> torch.Tensor:
    """BeyondMimic Eq. 10: -ln(x) for x > delta, a quadratic extension below (finite for x <= 0)."""
    safe = torch.clamp(x, min=delta)
    quadratic = 0.5 * (((x - 2 * delta) / delta) ** 2 - 1) - math.log(delta)
    return torch.where(x > delta, -torch.log(safe), quadratic)


@dataclass
class ObstacleCost:
    """Relaxed log barrier on the signed distance from key bodies to obstacles (robot-frame field).

    Distances beyond ``influence`` m cost nothing, so open space exerts no pull.
    """

    field: ObstacleField
    margin: float = 0.2  # body radius + clearance, m
    delta: float = 0.1
    influence: float = 1.0

    def __call__(self, traj: Trajectory) -> torch.Tensor:
        if self.field.empty:
            return torch.zeros(traj.x.shape[0], dtype=traj.x.dtype)
        clearance = self.field.distance(traj.body_xy) - self.margin
        barrier = relaxed_barrier(torch.clamp(clearance, max=self.influence), self.delta)
        return (barrier - relaxed_barrier(torch.tensor(self.influence), self.delta)).sum(dim=(-1, -2))


@dataclass
class WeightedSum:
    terms: list[tuple[float, TaskCost]]

    def __call__(self, traj: Trajectory) -> torch.Tensor:
        return sum(weight * cost(traj) for weight, cost in self.terms)
