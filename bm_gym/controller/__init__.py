"""Closed-loop controllers that turn simulator states into joint targets."""

from bm_gym.controller.diffusion_controller import ControllerCfg, DiffusionController
from bm_gym.controller.student import StudentCoDriver, student_co_driver

__all__ = ["ControllerCfg", "DiffusionController", "StudentCoDriver", "student_co_driver"]
