"""Domain randomization settings, mirroring what the Stage 1 policies saw in mjlab training."""

from __future__ import annotations

from dataclasses import dataclass, field


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
