"""Classifier guidance: the gradient of a task cost steers every denoising step of the sampler."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from bm_gym.data.state import StateLayout
from bm_gym.guidance.costs import TaskCost, Trajectory
from bm_gym.utils.checks import positive_finite, positive_int


@dataclass(frozen=True)
class GuidanceCfg:
    scale: float = 40.0  # step size on the predicted clean trajectory, in normalized units
    through_model: bool = False  # True: differentiate the cost through the denoiser (d J(x0(x_t)) / d x_t)
    guided_steps: int | None = 5  # guide only the last k denoising steps (None: all); 5 of 10 halves the cost
    max_grad_norm: float | None = 10.0  # per-plan clip of the guidance step, keeps barriers from exploding
    # Easing after a kick. Guidance that makes the student follow commands (every step guided) also fights the
    # steps it takes to catch itself after a kick (docs/benchmarks.md). When the root's horizontal velocity
    # changes faster than ``disturbance_accel`` (m/s^2: guided walks up to 1 m/s, turns and stops stayed under
    # 7 in 99.9 % of steps and reached 10 at most; a kick of 0.2 m/s within one 50 Hz step is 10), the next
    # ``recovery_s`` seconds are guided on only the last ``recovery_guided_steps`` denoising steps (0: not at
    # all). None never eases. A robot touching an obstacle is never eased: the barrier takes it off.
    recovery_guided_steps: int | None = None
    disturbance_accel: float = 10.0
    recovery_s: float = 1.0
    # m/s, None: off. Joystick commands (VelocityTask) are guided towards the present velocity plus at most this
    # much per axis, so a step command is a ramp. A student guided on every step, asked for 0.8 m/s from
    # standstill, lurched to 1.4-1.9 m/s and fell forward (docs/benchmarks.md).
    velocity_ramp: float | None = None
    # How this checkpoint's model stops when told to: it goes on speed x stop_delay + speed^2 / (2
    # stop_deceleration) m, which goal tasks (ArrivalCfg) use to tell it to stop in time. None: the task's own
    # values, fit to the default checkpoint; a model that brakes harder comes to rest short of the goal with
    # them (docs/benchmarks.md). ``python -m tools.calibrate_stop`` measures and records them.
    stop_delay: float | None = None  # s
    stop_deceleration: float | None = None  # m/s^2
    # m: this checkpoint's model creeps off while it stands at a goal, so a holding robot further than this
    # from the goal is pulled back (ArrivalCfg.recentre_radius). None: the task's own (off). Measured per model:
    # it keeps the larger models at their goals and walks the default one off them (docs/benchmarks.md).
    recentre_radius: float | None = None

    def __post_init__(self) -> None:
        positive_finite("GuidanceCfg", "scale", self.scale, allow_zero=True)  # 0 turns guidance off
        if self.guided_steps is not None:
            positive_int("GuidanceCfg", "guided_steps", self.guided_steps, minimum=0)
        if self.max_grad_norm is not None:
            positive_finite("GuidanceCfg", "max_grad_norm", self.max_grad_norm)
        if self.recovery_guided_steps is not None:
            positive_int("GuidanceCfg", "recovery_guided_steps", self.recovery_guided_steps, minimum=0)
        positive_finite("GuidanceCfg", "disturbance_accel", self.disturbance_accel)
        positive_finite("GuidanceCfg", "recovery_s", self.recovery_s, allow_zero=True)
        if self.velocity_ramp is not None:
            positive_finite("GuidanceCfg", "velocity_ramp", self.velocity_ramp)
        if self.stop_delay is not None:
            positive_finite("GuidanceCfg", "stop_delay", self.stop_delay, allow_zero=True)
        if self.stop_deceleration is not None:
            positive_finite("GuidanceCfg", "stop_deceleration", self.stop_deceleration)
        if self.recentre_radius is not None:
            positive_finite("GuidanceCfg", "recentre_radius", self.recentre_radius, allow_zero=True)

    def recovering(self) -> GuidanceCfg:
        """The settings for a robot recovering from a kick: guided on the last ``recovery_guided_steps`` steps."""
        if self.recovery_guided_steps is None:
            return self
        if self.recovery_guided_steps == 0:
            return dataclasses.replace(self, scale=0.0)
        return dataclasses.replace(self, guided_steps=self.recovery_guided_steps)

    def overridden(
        self,
        scale: float | None = None,
        guided_steps: int | None = None,
        through_model: bool | None = None,
        max_grad_norm: float | None = None,
        recovery_guided_steps: int | None = None,
        velocity_ramp: float | None = None,
        stop_delay: float | None = None,
        stop_deceleration: float | None = None,
        recentre_radius: float | None = None,
    ) -> GuidanceCfg:
        """These settings with the given ones (not None) in their place, as command lines give them:
        ``guided_steps`` 0 guides every step; ``recovery_guided_steps``, ``velocity_ramp``, ``stop_delay``,
        ``stop_deceleration`` and ``recentre_radius`` -1 turn the easing after kicks, the ramp and the model's
        own arrival settings off."""
        given = {"scale": scale, "guided_steps": guided_steps, "through_model": through_model,
                 "max_grad_norm": max_grad_norm, "recovery_guided_steps": recovery_guided_steps,
                 "velocity_ramp": velocity_ramp, "stop_delay": stop_delay,
                 "stop_deceleration": stop_deceleration, "recentre_radius": recentre_radius}  # fmt: skip
        given = {name: value for name, value in given.items() if value is not None}
        if "guided_steps" in given:
            given["guided_steps"] = given["guided_steps"] or None
        for name in ("recovery_guided_steps", "velocity_ramp", "stop_delay", "stop_deceleration", "recentre_radius"):
            if given.get(name) == -1:
                given[name] = None
        return dataclasses.replace(self, **given)


class CostGuide:
    """Computes the guidance gradient of ``cost`` for normalized trajectories."""

    def __init__(self, cost: TaskCost, layout: StateLayout, mean: torch.Tensor, std: torch.Tensor,
                 cfg: GuidanceCfg | None = None) -> None:  # fmt: skip
        self.cost, self.layout, self.mean, self.std = cost, layout, mean, std
        self.cfg = cfg or GuidanceCfg()

    def active(self, step_index: int, total_steps: int) -> bool:
        k = self.cfg.guided_steps
        return self.cfg.scale > 0 and (k is None or step_index >= total_steps - k)

    def evaluate(self, x0_normalized: torch.Tensor) -> torch.Tensor:
        """Cost per plan [B] of a normalized trajectory."""
        return self.cost(Trajectory(self.layout, x0_normalized * self.std + self.mean))

    def step(
        self, gradient: torch.Tensor, step_index: int | None = None, total_steps: int | None = None
    ) -> torch.Tensor:
        """The (clipped, scaled) update subtracted from the predicted clean trajectory."""
        update = self.cfg.scale * gradient
        if self.cfg.max_grad_norm is not None:
            norm = update.flatten(1).norm(dim=1).clamp(min=1e-12)[:, None, None]
            update = update * torch.clamp(self.cfg.max_grad_norm / norm, max=1.0)
        return update


class BatchGuide:
    """One guide per robot of a batched plan (None: that robot samples unguided); the reference autograd path.

    Each robot's cost sees only its own trajectory and its own guidance settings apply to its update.
    """

    def __init__(self, guides: list[CostGuide | None]) -> None:
        self.guides = guides

    def active(self, step_index: int, total_steps: int) -> bool:
        return any(g is not None and g.active(step_index, total_steps) for g in self.guides)

    @property
    def cfg(self) -> GuidanceCfg:
        """Settings shared by the batch's sampling loop (``through_model``): the first guide's."""
        return next(g.cfg for g in self.guides if g is not None)

    def evaluate(self, x0_normalized: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            g.evaluate(x0_normalized[i : i + 1]) if g is not None else x0_normalized[i : i + 1].sum(dim=(1, 2)) * 0.0
            for i, g in enumerate(self.guides)
        ])  # fmt: skip

    def step(self, gradient: torch.Tensor, step_index: int, total_steps: int) -> torch.Tensor:
        parts = [
            g.step(gradient[i : i + 1]) if g is not None and g.active(step_index, total_steps)
            else torch.zeros_like(gradient[i : i + 1])
            for i, g in enumerate(self.guides)
        ]  # fmt: skip
        return torch.cat(parts)
