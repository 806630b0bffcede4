import numpy as np
import pytest

from bm_gym.controller import ControllerCfg, DiffusionController
from bm_gym.data import StateLayout
from bm_gym.diffusion import CPU, DiffusionPolicy, Normalizer, TrajectoryDenoiser
from bm_gym.robot import g1
from bm_gym.sim import RootPose
from bm_gym.utils.math import quat_from_yaw

LAYOUT = StateLayout()


@pytest.fixture
def untrained_policy():
    """Right shapes, untrained weights: tests the plumbing, not the walking."""
    norm = Normalizer(np.zeros(LAYOUT.dim), np.ones(LAYOUT.dim), np.array(g1.DEFAULT_JOINT_POS), np.full(29, 0.01))
    return DiffusionPolicy(CPU, LAYOUT, norm, TrajectoryDenoiser(CPU.denoiser, LAYOUT.dim, LAYOUT.action_dim))


def test_history_window_is_canonical_and_present_action_is_empty(untrained_policy, backend):
    controller = DiffusionController(untrained_policy)
    state = backend.reset(RootPose(pos=(4.0, -1.0, 0.78), quat=tuple(quat_from_yaw(2.0))))
    controller.reset(state)
    window, _ = controller.history_window(state)
    f = LAYOUT.fields
    assert window.shape == (5, LAYOUT.dim + LAYOUT.action_dim)
    np.testing.assert_allclose(window[:, f["root_pos_xy"]], 0.0, atol=1e-6)
    np.testing.assert_allclose(window[:, f["root_yaw_cs"]], [[1.0, 0.0]] * 5, atol=1e-6)
    np.testing.assert_array_equal(window[4, LAYOUT.dim :], 0.0)
    np.testing.assert_allclose(window[0, LAYOUT.dim :], g1.DEFAULT_JOINT_POS, atol=1e-6)


def test_act_returns_targets_and_records_latency(untrained_policy, backend):
    controller = DiffusionController(untrained_policy, ControllerCfg(actions_per_plan=2))
    state = backend.reset()
    controller.reset(state)
    for _ in range(4):
        targets = controller.act(state)
        assert targets.shape == (29,) and np.all(np.isfinite(targets))
        state = backend.step(targets)
    assert len(controller.plan_ms) == 2  # two actions per plan
    assert controller.last_plan.shape == (16, LAYOUT.dim + LAYOUT.action_dim)


def test_actions_per_plan_is_validated(untrained_policy):
    with pytest.raises(ValueError, match="actions_per_plan"):
        DiffusionController(untrained_policy, ControllerCfg(actions_per_plan=17))
