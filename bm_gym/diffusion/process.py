"""DDPM forward noising and reverse sampling with clean-trajectory (x0) prediction.

The noise schedules and update rules are diffusers' ``DDPMScheduler`` / ``DDIMScheduler``
(``prediction_type="sample"``); this module only wires them to trajectories and the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from diffusers import DDIMScheduler, DDPMScheduler

from bm_gym.diffusion.config import DiffusionCfg
from bm_gym.diffusion.model import TrajectoryDenoiser

if TYPE_CHECKING:
    from bm_gym.guidance.guide import CostGuide


class TrajectoryDiffusion:
    def __init__(self, cfg: DiffusionCfg) -> None:
        self.cfg = cfg
        kwargs = dict(
            num_train_timesteps=cfg.train_timesteps,
            beta_schedule=cfg.beta_schedule,
            prediction_type="sample",
            clip_sample=False,
        )
        self.train_scheduler = DDPMScheduler(**kwargs)
        if cfg.sampler == "ddim":
            self.sample_scheduler = DDIMScheduler(**kwargs)
            self.sample_scheduler.set_timesteps(cfg.sample_steps)
        elif cfg.sampler == "ddpm":
            self.sample_scheduler = DDPMScheduler(**kwargs)
            self.sample_scheduler.set_timesteps(cfg.train_timesteps)
        else:
            raise ValueError(f"unknown sampler {cfg.sampler!r}; choose 'ddim' or 'ddpm'")

    def loss(
        self,
        model: TrajectoryDenoiser,
        history: torch.Tensor,
        future: torch.Tensor,
        action_weight: float = 1.0,
        t: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """x0-prediction MSE at a random noise level per sample; returns the loss and its parts. ``t`` and ``noise``
        may be drawn by the caller (data-parallel training draws them for the whole batch on every process)."""
        b = future.shape[0]
        t = torch.randint(0, self.cfg.train_timesteps, (b,), device=future.device) if t is None else t
        noise = torch.randn_like(future) if noise is None else noise
        noisy = self.train_scheduler.add_noise(future, noise, t)
        pred = model(noisy, t, history)
        err = (pred - future) ** 2
        s = getattr(model, "module", model).state_dim  # the denoiser itself, or inside a DistributedDataParallel
        state_loss, action_loss = err[..., :s].mean(), err[..., s:].mean()
        return state_loss + action_weight * action_loss, {"state": state_loss, "action": action_loss}

    def sample(
        self,
        model: TrajectoryDenoiser,
        history: torch.Tensor,
        generator: torch.Generator | None = None,
        guide: CostGuide | None = None,
        fast_forward: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        init: torch.Tensor | None = None,
        start_step: int = 0,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Denoise from Gaussian noise to a future trajectory [B, H, S+A] (normalized units).

        ``fast_forward`` (e.g. :class:`OnnxDenoiser`) replaces ``model`` wherever no gradient is needed.
        With a guide, each step's predicted clean trajectory moves down the task cost's gradient before
        the scheduler update (classifier guidance on x0; ``through_model`` differentiates via the denoiser).
        Warm start: ``init`` (e.g. the previous plan) is noised to the level of denoising step ``start_step``
        and the steps before it are skipped (SDEdit-style). ``noise`` gives the starting Gaussian sample instead
        of drawing it from ``generator`` (batched robots draw theirs each from its own generator).
        """
        b = history.shape[0]
        shape = (b, model.cfg.horizon, model.state_dim + model.action_dim)
        timesteps = self.sample_scheduler.timesteps
        x = torch.randn(shape, generator=generator, device=history.device) if noise is None else noise
        if init is not None:
            if not 0 <= start_step < len(timesteps):
                raise ValueError(f"start_step must be in 0..{len(timesteps) - 1}, got {start_step}")
            if init.shape != shape:
                raise ValueError(f"warm-start trajectory must have shape {tuple(shape)}, got {tuple(init.shape)}")
            x = self.sample_scheduler.add_noise(init, x, timesteps[start_step : start_step + 1].expand(b))
        elif start_step:
            raise ValueError("start_step > 0 needs a warm-start trajectory (init)")
        forward = fast_forward or model
        for i in range(start_step, len(timesteps)):
            t = timesteps[i]
            timestep = torch.full((b,), int(t), device=history.device)
            if guide is not None and guide.active(i, len(timesteps)):
                x0, update = self._guidance_update(model, forward, x, timestep, history, guide, i, len(timesteps))
                # Shift the next sample, as classifier guidance shifts the reverse-step mean (Diffuser-style).
                # Shifting only x0 would barely move x_{t-1} at high noise: DDIM's update nearly cancels it.
                # The next denoising step then sees the steered states and re-derives consistent actions.
                x = self.sample_scheduler.step(x0, t, x, generator=generator).prev_sample - update
            else:
                with torch.no_grad():
                    x0 = forward(x, timestep, history)
                x = self.sample_scheduler.step(x0, t, x, generator=generator).prev_sample
        return x

    @staticmethod
    def _guidance_update(model, forward, x, timestep, history, guide: CostGuide, step: int, steps: int
                         ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """The predicted clean trajectory and the guidance step (cost gradient, scaled and clipped)."""
        with torch.enable_grad():
            if guide.cfg.through_model:
                x_in = x.detach().requires_grad_(True)
                x0 = model(x_in, timestep, history)
                gradient = torch.autograd.grad(guide.evaluate(x0).sum(), x_in)[0]
                return x0.detach(), guide.step(gradient, step, steps)
            with torch.no_grad():
                x0 = forward(x, timestep, history)
            x0_in = x0.detach().requires_grad_(True)
            gradient = torch.autograd.grad(guide.evaluate(x0_in).sum(), x0_in)[0]
            return x0, guide.step(gradient, step, steps)
