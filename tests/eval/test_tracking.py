"""Tracking continuation: the model starts inside a motion with the expert's history and goes on alone."""

import numpy as np
import pytest

from bm_gym.controller import DiffusionController
from bm_gym.diffusion import SHIPPED_CHECKPOINT, DiffusionPolicy
from bm_gym.eval.tracking import run_continuation, start_frame
from bm_gym.robot import g1
from bm_gym.sim import MujocoBackend
from bm_gym.stage1 import Stage1Policy


@pytest.fixture(scope="module")
def dance(tracking_dir):
    return Stage1Policy.load(tracking_dir, motion_fps=30)


def test_the_expert_continues_its_own_motion_closely_and_the_student_is_scored_against_it(dance):
    backend = MujocoBackend()
    dance.apply_gains(backend)
    expert = run_continuation(backend, dance, None, seed=3, seconds=2.0)
    controller = DiffusionController(DiffusionPolicy.load(SHIPPED_CHECKPOINT, robot_joints=g1.JOINT_NAMES))
    student = run_continuation(backend, dance, controller, seed=3, seconds=2.0)
    assert expert.start_frame == student.start_frame == start_frame(dance, 3, 50, 100)
    assert not expert.fell and expert.joint_error < 0.15, expert
    # the shipped model never saw the dance: it is scored, not expected to follow
    assert student.seconds > 0 and np.isfinite(student.joint_error) and student.joint_error > expert.joint_error
    assert len(controller.plan_ms) > 0


def test_the_history_comes_from_the_given_states_and_actions(dance):
    backend = MujocoBackend()
    controller = DiffusionController(DiffusionPolicy.load(SHIPPED_CHECKPOINT, robot_joints=g1.JOINT_NAMES))
    state = backend.reset(*dance.initial_state(100), seed=0)
    dance.reset(100)
    states, actions = [], []
    for _ in range(6):
        states.append(state)
        actions.append(dance.act(state))
        state = backend.step(actions[-1])
    controller.reset_from(states, actions)
    window, _ = controller.history_window(state)
    n, layout = controller.policy.history, controller.layout
    assert np.allclose(window[:n, layout.dim :], np.stack(actions[-n:]), atol=1e-6), "the expert's last N actions"
    with pytest.raises(ValueError, match="last 4 states"):
        controller.reset_from(states[:2], actions[:2])
