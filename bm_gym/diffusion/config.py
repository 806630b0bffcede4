"""Typed configs for the denoiser and the diffusion process: the paper's size and a small CPU one, same code."""

from __future__ import annotations

from dataclasses import dataclass, field

from bm_gym.utils.checks import is_finite, positive_finite, positive_int, require

TOKEN_LAYOUTS = ("joint", "split")


@dataclass(frozen=True)
class DenoiserCfg:
    """Transformer decoder over the H future steps, cross-attending to the N+1 history steps."""

    d_model: int = 128
    heads: int = 4
    layers: int = 2
    ff_mult: int = 4
    dropout: float = 0.0
    history: int = 4  # N past (state, action) pairs; the present state makes N+1 memory tokens
    horizon: int = 16  # H future steps predicted
    # "joint": one token per future step (its state and action embedded together), the history as cross-attention
    # memory. "split" (the paper's): separate state and action tokens, each with its own noise level (independent
    # per token in training), in one sequence with the history; states attend to states only, actions to states
    # and actions up to their own step. Actions are then inferred from the (guided) states, and a plan can be
    # warm-started with states and actions at different noise levels.
    tokens: str = "joint"
    # Split layout: action a_k attends to the planned states up to s_(k + action_lookahead); >= horizon: all of
    # them. 1 reads a_k from the state it leads to; at 50 Hz that state shows little of a_k (joint targets move
    # the joints over several steps), and such a model predicted the executed action a_0 from the history alone
    # (docs/benchmarks.md, the inverse-dynamics probe), so guidance on the states did not reach it.
    action_lookahead: int = 1

    def __post_init__(self) -> None:
        for name in ("d_model", "heads", "layers", "ff_mult", "history", "horizon"):
            positive_int("DenoiserCfg", name, getattr(self, name))
        require(self.d_model % self.heads == 0, "DenoiserCfg", "d_model", self.d_model,
                f"a multiple of heads ({self.heads})")  # fmt: skip
        require(is_finite(self.dropout) and 0 <= self.dropout < 1, "DenoiserCfg", "dropout", self.dropout, "in [0, 1)")
        require(self.tokens in TOKEN_LAYOUTS, "DenoiserCfg", "tokens", self.tokens, f"one of {TOKEN_LAYOUTS}")
        positive_int("DenoiserCfg", "action_lookahead", self.action_lookahead, minimum=0)
        require(self.tokens == "split" or self.action_lookahead == 1, "DenoiserCfg", "action_lookahead",
                self.action_lookahead, "1 unless tokens are split (joint tokens have no action tokens)")  # fmt: skip


@dataclass(frozen=True)
class DiffusionCfg:
    """DDPM noising with clean-trajectory (x0) prediction; DDIM with few steps for sampling."""

    train_timesteps: int = 50
    beta_schedule: str = "squaredcos_cap_v2"
    sampler: str = "ddim"  # "ddim" (fast, deterministic) or "ddpm" (every training step, stochastic)
    # DDIM steps per plan. A divisor of train_timesteps, so the evenly spaced steps start at the noisiest level (20 of
    # 50 would start at t = 38 and read part of the starting noise as signal). A checkpoint records the count
    # measured for it (tools.checkpoint; docs/benchmarks.md, "Denoising steps").
    sample_steps: int = 10

    def __post_init__(self) -> None:
        positive_int("DiffusionCfg", "train_timesteps", self.train_timesteps)
        positive_int("DiffusionCfg", "sample_steps", self.sample_steps)
        require(self.sample_steps <= self.train_timesteps, "DiffusionCfg", "sample_steps", self.sample_steps,
                f"at most train_timesteps ({self.train_timesteps})")  # fmt: skip
        require(self.sampler in ("ddim", "ddpm"), "DiffusionCfg", "sampler", self.sampler, "'ddim' or 'ddpm'")
        divisors = [k for k in range(1, self.train_timesteps + 1) if self.train_timesteps % k == 0]
        require(self.sampler != "ddim" or self.sample_steps in divisors, "DiffusionCfg", "sample_steps",
                self.sample_steps,
                f"a divisor of train_timesteps ({self.train_timesteps}): one of {divisors}")  # fmt: skip


@dataclass(frozen=True)
class ModelCfg:
    denoiser: DenoiserCfg = field(default_factory=DenoiserCfg)
    diffusion: DiffusionCfg = field(default_factory=DiffusionCfg)
    action_loss_weight: float = 2.0  # actions are what the robot executes; weigh them above states
    # Only the first this many future actions carry the action loss (0: all H). The paper masks beyond 8: a plan
    # executes its first actions, and later ones, conditioned on a far, uncertain future, are mostly noise to fit.
    action_loss_horizon: int = 0
    # Weight of the mean squared change between consecutive predicted clean actions (the authors' code: 0.1):
    # smooth setpoints, as the RL experts' action-rate penalty made theirs.
    action_rate_weight: float = 0.0

    def __post_init__(self) -> None:
        positive_finite("ModelCfg", "action_loss_weight", self.action_loss_weight, allow_zero=True)
        positive_int("ModelCfg", "action_loss_horizon", self.action_loss_horizon, minimum=0)
        require(self.action_loss_horizon <= self.denoiser.horizon, "ModelCfg", "action_loss_horizon",
                self.action_loss_horizon, f"at most the horizon ({self.denoiser.horizon}); 0 for all")  # fmt: skip
        positive_finite("ModelCfg", "action_rate_weight", self.action_rate_weight, allow_zero=True)


#: BeyondMimic's model: 6 layers, 4 heads, 512 dims, split state and action tokens with per-token noise levels,
#: the action loss over 8 steps and an action-rate loss of 0.1. Train it on a GPU.
PAPER = ModelCfg(
    denoiser=DenoiserCfg(d_model=512, heads=4, layers=6, tokens="split"), action_loss_horizon=8, action_rate_weight=0.1
)
#: Small enough to train in under an hour and plan at 50 Hz on 2 CPU cores.
CPU = ModelCfg(denoiser=DenoiserCfg(d_model=128, heads=4, layers=2))

PRESETS = {"paper": PAPER, "cpu": CPU}
