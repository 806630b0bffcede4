"""The state-action diffusion model: denoiser, DDPM/DDIM process, training, checkpoints."""

from bm_gym.diffusion.config import CPU, PAPER, PRESETS, DenoiserCfg, DiffusionCfg, ModelCfg
from bm_gym.diffusion.model import TrajectoryDenoiser
from bm_gym.diffusion.policy import SHIPPED_CHECKPOINT, CheckpointError, DiffusionPolicy, Normalizer
from bm_gym.diffusion.process import TrajectoryDiffusion

__all__ = [
    "CPU", "PAPER", "PRESETS", "CheckpointError", "DenoiserCfg", "DiffusionCfg", "DiffusionPolicy", "ModelCfg",
    "Normalizer", "SHIPPED_CHECKPOINT", "TrajectoryDenoiser", "TrajectoryDiffusion",
]  # fmt: skip
