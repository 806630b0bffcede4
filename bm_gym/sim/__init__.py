"""Simulation backends behind one interface (:class:`SimBackend`); MuJoCo on the CPU is the default."""

from bm_gym.sim.backend import RobotState, RootPose, SimBackend, has_fallen
from bm_gym.sim.factory import BACKENDS, backend_problem, make_backend, process_backend
from bm_gym.sim.mujoco_backend import MujocoBackend, MujocoBackendCfg
from bm_gym.sim.pool import ObstaclePoolFull
from bm_gym.sim.randomization import DomainRandomizationCfg, PushCfg

__all__ = [
    "BACKENDS", "DomainRandomizationCfg", "MujocoBackend", "MujocoBackendCfg", "ObstaclePoolFull", "PushCfg",
    "RobotState", "RootPose", "SimBackend", "backend_problem", "has_fallen", "make_backend", "process_backend",
]  # fmt: skip
