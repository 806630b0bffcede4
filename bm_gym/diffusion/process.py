"""DDPM forward noising and reverse sampling with clean-trajectory (x0) prediction.

The noise schedules and update rules are diffusers' ``DDPMScheduler`` / ``DDIMScheduler``
(``prediction_type="sample"``); this module only wires them to trajectories and the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from diffusers import DDIMScheduler, DDPMScheduler

from bm_gym.diffusion.config import DenoiserCfg, DiffusionCfg, ModelCfg
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
        terms: ModelCfg = ModelCfg(),  # noqa: B008 - frozen dataclass, safe as default
        t: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """x0-prediction MSE at a random noise level per sample; returns the loss and its parts. ``t`` and ``noise``
        may be drawn by the caller (data-parallel training draws them for the whole batch on every process).

        ``terms`` weighs the parts: actions by ``action_loss_weight`` over the first ``action_loss_horizon`` steps
        (0: all), plus ``action_rate_weight`` x the mean squared change between consecutive predicted actions.
        """
        denoiser = getattr(model, "module", model)  # the denoiser itself, or inside a DistributedDataParallel
        s = denoiser.state_dim
        if t is None:
            t = torch.randint(0, self.cfg.train_timesteps, self.level_shape(denoiser.cfg, future.shape[0]),
                              device=future.device)  # fmt: skip
        noise = torch.randn_like(future) if noise is None else noise
        noisy = self.add_noise(future, noise, t, s)
        pred = model(noisy, t, history)
        err = (pred - future) ** 2
        horizon = terms.action_loss_horizon or future.shape[1]
        state_loss, action_loss = err[..., :s].mean(), err[:, :horizon, s:].mean()
        loss = state_loss + terms.action_loss_weight * action_loss
        parts = {"state": state_loss, "action": action_loss}
        if terms.action_rate_weight:
            parts["action_rate"] = (pred[:, 1:, s:] - pred[:, :-1, s:]).pow(2).mean()
            loss = loss + terms.action_rate_weight * parts["action_rate"]
        return loss, parts

    @staticmethod
    def level_shape(cfg: DenoiserCfg, batch: int) -> tuple[int, ...]:
        """Shape of the noise levels of a training batch: one per sample, or one per token (split layout)."""
        return (batch, cfg.horizon, 2) if cfg.tokens == "split" else (batch,)

    def add_noise(self, x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, state_dim: int) -> torch.Tensor:
        """Forward-noise ``x`` [B, H, S+A] to level ``t``: [B] (whole trajectories) or [B, H, 2] (the state and
        the action of each step at its own level)."""
        if t.dim() == 1:
            return self.train_scheduler.add_noise(x, noise, t)
        alpha_bar = self.per_feature(self.train_scheduler.alphas_cumprod.to(x.device)[t], state_dim, x.shape[-1])
        return alpha_bar.sqrt() * x + (1 - alpha_bar).sqrt() * noise

    @staticmethod
    def per_feature(per_token: torch.Tensor, state_dim: int, width: int) -> torch.Tensor:
        """[B, H, 2] values (state, action) -> [B, H, S+A], each repeated over its part's features."""
        counts = torch.tensor([state_dim, width - state_dim], device=per_token.device)
        return per_token.repeat_interleave(counts, dim=-1)

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
        action_start_step: int | None = None,
    ) -> torch.Tensor:
        """Denoise from Gaussian noise to a future trajectory [B, H, S+A] (normalized units).

        ``fast_forward`` (e.g. :class:`OnnxDenoiser`) replaces ``model`` wherever no gradient is needed.
        With a guide, each step's predicted clean trajectory moves down the task cost's gradient before
        the scheduler update (classifier guidance on x0; ``through_model`` differentiates via the denoiser).
        Warm start: ``init`` (e.g. the previous plan) is noised to the level of denoising step ``start_step``
        and the steps before it are skipped (SDEdit-style). ``noise`` gives the starting Gaussian sample instead
        of drawing it from ``generator`` (batched robots draw theirs each from its own generator).

        Rolling warm start (Diffuse-CLoC; split-token models): with ``action_start_step`` the actions of ``init``
        start at that later, less noisy step while its states start at ``start_step``; each token is denoised
        from its own level (DDIM per token), actions staying put until the states reach their level. The last
        step of ``init`` has no previous plan behind it, so its action starts with the states.
        """
        b = history.shape[0]
        shape = (b, model.cfg.horizon, model.state_dim + model.action_dim)
        timesteps = self.sample_scheduler.timesteps
        x = torch.randn(shape, generator=generator, device=history.device) if noise is None else noise
        token_steps = self.token_start_steps(model.cfg, start_step, action_start_step)
        if token_steps is not None and init is None:
            raise ValueError("action_start_step needs a warm-start trajectory (init)")
        if init is not None:
            if not 0 <= start_step < len(timesteps):
                raise ValueError(f"start_step must be in 0..{len(timesteps) - 1}, got {start_step}")
            if init.shape != shape:
                raise ValueError(f"warm-start trajectory must have shape {tuple(shape)}, got {tuple(init.shape)}")
            if token_steps is None:
                x = self.sample_scheduler.add_noise(init, x, timesteps[start_step : start_step + 1].expand(b))
            else:
                x = self.add_noise(init, x, timesteps[token_steps].expand(b, -1, -1), model.state_dim)
        elif start_step:
            raise ValueError("start_step > 0 needs a warm-start trajectory (init)")
        forward = fast_forward or model
        if token_steps is not None:
            forward = model  # per-token levels: the torch module (exported graphs take one level per sample)
        for i in range(start_step, len(timesteps)):
            t = timesteps[i]
            if token_steps is None:
                timestep = torch.full((b,), int(t), device=history.device)
            else:  # each token at its own level: the next of its steps, or its start while its turn has not come
                timestep = timesteps[torch.clamp(token_steps, min=i)].expand(b, -1, -1).to(history.device)
            if guide is not None and guide.active(i, len(timesteps)):
                x0, update = self._guidance_update(model, forward, x, timestep, history, guide, i, len(timesteps))
            else:
                with torch.no_grad():
                    x0 = forward(x, timestep, history)
                update = 0.0
            # Guidance shifts the next sample, as classifier guidance shifts the reverse-step mean (Diffuser-style).
            # Shifting only x0 would barely move x_{t-1} at high noise: DDIM's update nearly cancels it.
            # The next denoising step then sees the steered states and re-derives consistent actions.
            if token_steps is None:
                x = self.sample_scheduler.step(x0, t, x, generator=generator).prev_sample - update
            else:
                x = self._ddim_per_token(x, x0, token_steps, i, model.state_dim) - update
        return x

    def token_start_steps(self, cfg: DenoiserCfg, start_step: int, action_start_step: int | None
                          ) -> torch.Tensor | None:  # fmt: skip
        """[H, 2] denoising step at which each step's state and action start, or None (one level for all);
        raises for what cannot be: separate steps for a joint-token model or DDPM, or actions before states."""
        if action_start_step is None or action_start_step == start_step:
            return None
        steps = len(self.sample_scheduler.timesteps)
        if cfg.tokens != "split":
            raise ValueError("separate warm-start steps for states and actions need a split-token model "
                             "(DenoiserCfg.tokens='split'): a joint token carries both at one noise level")  # fmt: skip
        if self.cfg.sampler != "ddim":
            raise ValueError("separate warm-start steps for states and actions need the DDIM sampler")
        if not start_step <= action_start_step < steps:
            raise ValueError(f"action_start_step must be in {start_step}..{steps - 1} (from start_step, the states' "
                             f"step), got {action_start_step}")  # fmt: skip
        token_steps = torch.full((cfg.horizon, 2), start_step)
        token_steps[:-1, 1] = action_start_step
        return token_steps

    def _ddim_per_token(self, x: torch.Tensor, x0: torch.Tensor, token_steps: torch.Tensor, i: int, state_dim: int
                        ) -> torch.Tensor:  # fmt: skip
        """One deterministic DDIM step (eta 0) for the tokens whose start step has come; the others stay put."""
        timesteps, alpha_bar = self.sample_scheduler.timesteps, self.sample_scheduler.alphas_cumprod
        now = torch.clamp(token_steps, min=i)
        last = len(timesteps) - 1
        next_alpha = torch.where(now < last, alpha_bar[timesteps[torch.clamp(now + 1, max=last)]], torch.tensor(1.0))
        now_alpha = alpha_bar[timesteps[now]]
        next_alpha = torch.where(token_steps <= i, next_alpha, now_alpha)
        width = x.shape[-1]
        now_alpha, next_alpha = (self.per_feature(a[None], state_dim, width).to(x) for a in (now_alpha, next_alpha))
        eps = (x - now_alpha.sqrt() * x0) / (1 - now_alpha).sqrt()
        return next_alpha.sqrt() * x0 + (1 - next_alpha).sqrt() * eps

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
