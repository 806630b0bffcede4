"""Domain randomization settings, mirroring what the Stage 1 policies saw in mjlab training."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class PushCfg:
    """Random root velocity kicks (mjlab's ``push_by_setting_velocity``)."""

    interval_s: tuple[float, float] = (1.0, 3.0)
    lin_vel_xy: float = 0.5  # m/s, uniform in [-v, v] per axis
    lin_vel_z: float = 0.4
    ang_vel_rp: float = 0.52  # rad/s roll and pitch
    ang_vel_yaw: float = 0.78


@dataclass(frozen=True)
class DomainRandomizationCfg:
    """Ranges drawn at every reset; ``None`` disables a term."""

    foot_friction: tuple[float, float] | None = (0.3, 1.2)
    link_mass_scale: tuple[float, float] | None = (0.9, 1.1)
    torso_com_offset: tuple[float, float, float] | None = (0.025, 0.025, 0.03)  # m, +- per axis
    kp_scale: tuple[float, float] | None = (0.9, 1.1)
    kd_scale: tuple[float, float] | None = (0.9, 1.1)
    latency_substeps: tuple[int, int] | None = (0, 2)  # new targets reach the motors this many substeps late
    joint_pos_bias: float | None = 0.015  # rad, encoder bias
    push: PushCfg | None = field(default_factory=PushCfg)

    @classmethod
    def off(cls) -> DomainRandomizationCfg:
        return cls(None, None, None, None, None, None, None, None)


@dataclass(frozen=True)
class RandomizationDraw:
    """One reset's values of every :class:`DomainRandomizationCfg` term, drawn in one fixed order for every
    backend (so a seed means the same robot in each); ``None`` where a term is off."""

    foot_friction: float | None = None
    mass_scale: np.ndarray | None = None  # per robot body
    torso_com_offset: np.ndarray | None = None  # [3] m
    kp_scale: np.ndarray | None = None  # per joint
    kd_scale: np.ndarray | None = None
    latency_substeps: int = 0
    joint_bias: np.ndarray | None = None  # per joint, rad
    first_push_in: float = math.inf  # s until the first random push

    @classmethod
    def draw(cls, cfg: DomainRandomizationCfg | None, rng: np.random.Generator, bodies: int,
             joints: int) -> RandomizationDraw:  # fmt: skip
        if cfg is None:
            return cls()
        return cls(
            foot_friction=rng.uniform(*cfg.foot_friction) if cfg.foot_friction else None,
            mass_scale=rng.uniform(*cfg.link_mass_scale, size=bodies) if cfg.link_mass_scale else None,
            torso_com_offset=rng.uniform(-1, 1, 3) * np.asarray(cfg.torso_com_offset) if cfg.torso_com_offset else None,
            kp_scale=rng.uniform(*cfg.kp_scale, size=joints) if cfg.kp_scale else None,
            kd_scale=rng.uniform(*cfg.kd_scale, size=joints) if cfg.kd_scale else None,
            latency_substeps=(
                int(rng.integers(cfg.latency_substeps[0], cfg.latency_substeps[1] + 1)) if cfg.latency_substeps else 0
            ),  # fmt: skip
            joint_bias=rng.uniform(-cfg.joint_pos_bias, cfg.joint_pos_bias, joints) if cfg.joint_pos_bias else None,
            first_push_in=rng.uniform(*cfg.push.interval_s) if cfg.push else math.inf,
        )

    def gains(self, kp: np.ndarray, kd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The nominal gains scaled by this draw."""
        kp = kp if self.kp_scale is None else kp * self.kp_scale
        return kp, (kd if self.kd_scale is None else kd * self.kd_scale)


def draw_push(push: PushCfg, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """A random push: (world-frame linear, body-frame angular velocity kick, seconds until the next one)."""
    lin = rng.uniform(-1, 1, 3) * np.array([push.lin_vel_xy, push.lin_vel_xy, push.lin_vel_z])
    ang = rng.uniform(-1, 1, 3) * np.array([push.ang_vel_rp, push.ang_vel_rp, push.ang_vel_yaw])
    return lin, ang, rng.uniform(*push.interval_s)
