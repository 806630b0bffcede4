"""Differentiable, batched task costs on planned trajectories (physical units, robot frame at plan time).

Each cost maps a :class:`Trajectory` view of a [B, H, S+A] tensor to one value per batch entry [B];
costs compose by weighted sum (:class:`WeightedSum`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from bm_gym.data.state import StateLayout
from bm_gym.guidance.sdf import ObstacleField
from bm_gym.robot import g1


class Trajectory:
    """Named views into a planned trajectory tensor [B, H, S+A].

    ``path_xy`` and ``path_yaw`` are the root path integrated from the planned velocities and yaw rates.
    Position and heading costs use them rather than the planned pose states: their gradient then lands on
    the velocities, which the denoiser turns into consistent actions (a gradient on the pose states alone
    barely changes what the robot does).
    """

    def __init__(self, layout: StateLayout, x: torch.Tensor, dt: float = 0.02) -> None:
        f = layout.fields
        self.x = x
        self.body_names = layout.body_names  # order of the bodies in ``body_xy``
        self.root_xy = x[..., f["root_pos_xy"]]  # [B, H, 2], robot frame at plan time
        cs = x[..., f["root_yaw_cs"]]
        self.yaw = torch.atan2(cs[..., 1], cs[..., 0])  # [B, H], relative to plan time
        self.lin_vel_h = x[..., f["lin_vel_h"]]  # heading frame of each step
        self.yaw_rate = x[..., f["ang_vel_h"]][..., 2]
        self.path_yaw = torch.cumsum(self.yaw_rate * dt, dim=-1)  # [B, H]
        c, s = torch.cos(self.path_yaw), torch.sin(self.path_yaw)
        vx, vy = self.lin_vel_h[..., 0], self.lin_vel_h[..., 1]
        self.path_xy = torch.cumsum(torch.stack([c * vx - s * vy, s * vx + c * vy], dim=-1) * dt, dim=-2)
        rel = x[..., f["body_pos_h"]].reshape(*x.shape[:-1], len(layout.body_names), 3)[..., :2]
        c, s = torch.cos(self.yaw)[..., None], torch.sin(self.yaw)[..., None]
        # Body positions: heading frame of their step -> robot frame at plan time, along the integrated path.
        self.body_xy = self.path_xy[..., None, :] + torch.stack(
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
    """Track a commanded planar velocity (heading frame) and yaw rate over the whole horizon.

    The weights balance this cost against the waypoint cost at one guidance scale.
    """

    vx: float = 0.0
    vy: float = 0.0
    wz: float = 0.0
    velocity_weight: float = 3.0
    yaw_rate_weight: float = 3.0

    def __call__(self, traj: Trajectory) -> torch.Tensor:
        v = traj.lin_vel_h
        err = self.velocity_weight * ((v[..., 0] - self.vx) ** 2 + (v[..., 1] - self.vy) ** 2) + (
            self.yaw_rate_weight * (traj.yaw_rate - self.wz) ** 2
        )
        return err.mean(dim=-1)


#: The waypoint cost's braking curve: the speed (m/s) it allows at the goal, and the distance (m) before the
#: goal where that speed is reached.
BRAKE_SPEED_AT_GOAL = 0.2
BRAKE_OFFSET = 0.1


@dataclass
class WaypointCost:
    """BeyondMimic Eq. 8 plus a heading term: a pull to the goal blended into a velocity penalty near it.

    Per step, with d the distance of the integrated path to the goal, near = exp(-k d) and e the bearing
    error: (1 - near) * (g * w_d * d^p + f * w_h * e^2 / 2) + near * |v|^2. Far away the robot is pulled to
    the goal and turned towards it; close to it, moving costs, so it arrives and stops.

    Departures from the paper, each for a failure we saw:
    - ``power`` 1 instead of the squared distance: with d^2 the pull fades near the goal and the robot
      stalled 0.3-1.3 m short;
    - ``sharpness`` k = 4 instead of 2: with 2 it stopped about 0.3 m short;
    - the heading term turns a standing robot towards goals beside or behind it (e^2 rather than
      1 - cos e, whose gradient vanishes with the goal right behind);
    - the gate g = (1 + cos e) / 2 switches the pull off while the goal is behind, so the robot turns round
      instead of being asked to back up while turning (it then stood still);
    - the heading term fades within ``heading_fade`` m of the goal (f = min(1, d / fade)), where the
      bearing is ill-defined and made the robot spin. Since the goal tasks hold the robot at the goal
      (``ArrivalCfg``), 0.5 m rather than 1 m: steered longer, the robot passes nearer the goal (Eq. 8
      stays 56 / 60 against 54 / 60 with 1 m, both with the arrival rule of today; docs/benchmarks.md).
    - a braking curve: speed above sqrt(v0^2 + 2 a max(d - d0, 0)) (v0 = ``BRAKE_SPEED_AT_GOAL``, d0 =
      ``BRAKE_OFFSET``, a = ``brake_deceleration``) costs ``brake_weight`` x excess^2. Pulled by Eq. 8 alone,
      students arrived at 0.8-1.1 m/s, reacted 0.3-0.6 s late to the stop and came to rest up to 1.3 m past
      the goal (docs/benchmarks.md).
    g and f are held constant in the gradient.
    """

    goal_x: float
    goal_y: float
    power: float = 1.0
    sharpness: float = 4.0
    pull_weight: float = 3.0
    heading_weight: float = 2.0
    heading_fade: float = 0.5
    brake_weight: float = 5.0
    brake_deceleration: float = 1.0  # m/s^2

    def __call__(self, traj: Trajectory) -> torch.Tensor:
        goal = torch.tensor([self.goal_x, self.goal_y], dtype=traj.x.dtype)
        delta = goal - traj.path_xy
        distance = torch.sqrt((delta**2).sum(-1) + 1e-6)
        near = torch.exp(-self.sharpness * distance)
        error = torch.atan2(delta[..., 1], delta[..., 0]) - traj.path_yaw
        error = torch.atan2(torch.sin(error), torch.cos(error))  # wrapped to (-pi, pi]
        gate = ((1 + torch.cos(error)) / 2).detach()
        fade = torch.clamp(distance / self.heading_fade, max=1.0).detach()
        speed2 = (traj.lin_vel_h[..., :2] ** 2).sum(-1)
        pull = gate * self.pull_weight * distance**self.power + fade * self.heading_weight * error**2 / 2
        allowed = torch.sqrt(BRAKE_SPEED_AT_GOAL**2 + 2 * self.brake_deceleration *
                             torch.clamp(distance - BRAKE_OFFSET, min=0))  # fmt: skip
        brake = self.brake_weight * torch.relu(torch.sqrt(speed2 + 1e-6) - allowed) ** 2
        return ((1 - near) * pull + near * speed2 + brake).mean(dim=-1)


def relaxed_barrier(x: torch.Tensor, delta: float) -> torch.Tensor:
    """BeyondMimic Eq. 10: -ln(x) for x > delta, a quadratic extension below (finite for x <= 0)."""
    safe = torch.clamp(x, min=delta)
    quadratic = 0.5 * (((x - 2 * delta) / delta) ** 2 - 1) - math.log(delta)
    return torch.where(x > delta, -torch.log(safe), quadratic)


def body_margins(margin: float | Mapping[str, float] | None, body_names: Sequence[str]) -> np.ndarray:
    """Per-body clearances [K] for ``body_names``: one value for all, values by body name (every body named), or
    None for the G1's own (:data:`bm_gym.robot.g1.OBSTACLE_MARGINS`): those guard its key bodies, which stand for
    their neighbours, and leave any other body of a state (the Body-Pos state has all 30) unguarded (-inf)."""
    if margin is None:
        return np.array([g1.OBSTACLE_MARGINS.get(name, -np.inf) for name in body_names], np.float32)
    if not isinstance(margin, Mapping):
        return np.full(len(body_names), float(margin), np.float32)
    missing = [name for name in body_names if name not in margin]
    if missing:
        raise KeyError(f"obstacle margins give no value for the key bodies {missing}")
    return np.array([margin[name] for name in body_names], np.float32)


@dataclass
class ObstacleCost:
    """Relaxed log barrier (Eq. 10) on the signed distance from key bodies to obstacles (robot-frame field).

    Each body keeps its own margin (by default its reach, :data:`bm_gym.robot.g1.OBSTACLE_MARGINS`). Summed over
    bodies, averaged over the horizon like the other costs. Clearances beyond ``influence`` m cost nothing,
    so open space exerts no pull and obstacles do not push the robot back from afar (at 0.5 m the barrier
    outweighed the task cost near obstacles and the robot stalled beside them).
    """

    field: ObstacleField
    margin: float | Mapping[str, float] | None = None  # m: one for all bodies, by body name, or None: the G1's
    delta: float = 0.1
    influence: float = 0.3

    def __call__(self, traj: Trajectory) -> torch.Tensor:
        if self.field.empty:
            return torch.zeros(traj.x.shape[0], dtype=traj.x.dtype)
        margins = torch.as_tensor(body_margins(self.margin, traj.body_names), dtype=traj.x.dtype)
        clearance = self.field.distance(traj.body_xy) - margins
        barrier = relaxed_barrier(torch.clamp(clearance, max=self.influence), self.delta)
        return (barrier - relaxed_barrier(torch.tensor(self.influence), self.delta)).sum(dim=-1).mean(dim=-1)


@dataclass
class WeightedSum:
    terms: list[tuple[float, TaskCost]]

    def __call__(self, traj: Trajectory) -> torch.Tensor:
        return sum(weight * cost(traj) for weight, cost in self.terms)
