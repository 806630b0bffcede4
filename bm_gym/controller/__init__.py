"""Closed-loop controllers that turn simulator states into joint targets."""

from bm_gym.controller.diffusion_controller import ControllerCfg, DiffusionController

__all__ = ["ControllerCfg", "DiffusionController"]
