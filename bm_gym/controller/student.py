"""The guided diffusion controller as the student of DAgger-style data collection (bm_gym.data.collect.CoDriver)."""

from __future__ import annotations

import numpy as np
import torch

from bm_gym.controller.diffusion_controller import ControllerCfg, DiffusionController
from bm_gym.diffusion.policy import DiffusionPolicy
from bm_gym.guidance.tasks import VelocityTask
from bm_gym.robot import g1
from bm_gym.sim import RobotState


class StudentCoDriver:
    """Takes the robot over from the expert with the expert's recent steps as its history and follows the
    episode's velocity commands through the joystick cost, with the checkpoint's guidance settings."""

    def __init__(self, policy: DiffusionPolicy, seed: int = 0) -> None:
        self.controller = DiffusionController(policy, ControllerCfg(seed=seed))
        self.history = policy.history

    def begin(self, states: list[RobotState], actions: list[np.ndarray], seed: int) -> None:
        if not states or len(states) != len(actions):
            raise ValueError(f"a co-driver starts from matching, non-empty steps; got {len(states)} states and "
                             f"{len(actions)} actions")  # fmt: skip
        pad = max(0, self.history - len(states))  # an early hand-over: the oldest step held, as at a reset
        self.controller.reset_from([states[0]] * pad + list(states), [actions[0]] * pad + list(actions), seed)

    def act(self, state: RobotState, command: np.ndarray) -> np.ndarray:
        vx, vy, wz = (float(c) for c in command)
        self.controller.set_task(VelocityTask(vx, vy, wz))
        return self.controller.act(state)


def student_co_driver(checkpoint: str, seed: int = 0) -> StudentCoDriver:
    """The :data:`bm_gym.data.collect.CoDriverFactory` of ``tools.data``: one single-threaded student per worker."""
    torch.set_num_threads(1)
    return StudentCoDriver(DiffusionPolicy.load(checkpoint, robot_joints=g1.JOINT_NAMES), seed)
