"""The mirror map against MuJoCo: mirrored actions from the (symmetric) standing start give the mirrored run."""

import dataclasses

import numpy as np
import pytest

from bm_gym.data.dataset import ExpertWindowDataset
from bm_gym.data.mirror import Mirror, joint_signs, partner
from bm_gym.data.state import StateLayout
from bm_gym.robot import g1
from bm_gym.sim import MujocoBackend
from bm_gym.stage1 import Stage1Policy


def run(
    velocity_dir, actions: list[np.ndarray] | None = None, steps: int = 10, layout: StateLayout | None = None
) -> tuple[np.ndarray, list]:
    """Encoded states of an open-loop run from the (symmetric) standing start: the expert walking forward, left and
    turning left, or the given actions; returns the states and the actions applied."""
    layout, policy, backend = layout or StateLayout(), Stage1Policy.load(velocity_dir), MujocoBackend()
    policy.apply_gains(backend)
    state = backend.reset(seed=0)
    policy.reset()
    states, applied = [layout.encode(state)], []
    for t in range(steps):
        applied.append(policy.act(state, (0.4, 0.3, 0.5)) if actions is None else actions[t])
        state = backend.step(applied[-1])
        states.append(layout.encode(state))
    return np.array(states), applied


def test_mirrored_actions_give_the_mirrored_trajectory(velocity_dir):
    mirror = Mirror.for_layout(StateLayout())
    states, actions = run(velocity_dir)
    mirrored_run, _ = run(velocity_dir, [mirror.actions(a) for a in actions])
    error = np.abs(mirror.states(states) - mirrored_run)
    assert error.max() < 0.03 and np.median(error) < 1e-3, error.max(axis=1)  # contact-order noise only
    hip_roll = np.where(np.array(g1.JOINT_NAMES) == "left_hip_roll_joint", -1.0, 1.0).astype(np.float32)
    wrong = dataclasses.replace(mirror, action_sign=mirror.action_sign * hip_roll)  # one wrong sign
    wrong_run, _ = run(velocity_dir, [wrong.actions(a) for a in actions])
    assert np.abs(mirror.states(states) - wrong_run).max() > 0.1, "the check would catch a wrong sign"


def test_the_body_pos_state_mirrors_the_same_way(velocity_dir):
    layout = StateLayout.named("body-pos")
    mirror = Mirror.for_layout(layout)
    states, actions = run(velocity_dir, layout=layout)
    mirrored_run, _ = run(velocity_dir, [mirror.actions(a) for a in actions], layout=layout)
    error = np.abs(mirror.states(states) - mirrored_run)
    assert error.max() < 0.02 and np.median(error) < 1e-3, error.max(axis=1)  # a wrong sign: 0.6
    assert np.array_equal(mirror.states(mirror.states(states)), states)


def test_signs_follow_the_joint_axes_and_the_map_is_an_involution():
    signs = dict(zip(g1.JOINT_NAMES, joint_signs(g1.JOINT_NAMES), strict=True))
    assert signs["left_hip_pitch_joint"] == signs["left_knee_joint"] == signs["waist_pitch_joint"] == 1.0
    assert signs["left_hip_roll_joint"] == signs["right_hip_yaw_joint"] == signs["waist_yaw_joint"] == -1.0
    assert partner("left_wrist_yaw_link") == "right_wrist_yaw_link" and partner("pelvis") == "pelvis"
    mirror = Mirror.for_layout(StateLayout())
    x = np.random.default_rng(0).normal(size=(7, StateLayout().dim)).astype(np.float32)
    assert np.array_equal(mirror.states(mirror.states(x)), x)
    assert Mirror.commands(np.array([0.5, 0.2, -0.3])).tolist() == pytest.approx([0.5, -0.2, 0.3])


def test_mirror_augmentation_doubles_the_windows_with_mirrored_copies(small_dataset):
    plain = ExpertWindowDataset(small_dataset, normalize=False)
    doubled = ExpertWindowDataset(small_dataset, normalize=False, mirror=True)
    assert len(doubled) == 2 * len(plain) and doubled.sources == plain.sources * 2
    history, future = plain[5]
    m_history, m_future = doubled[len(plain) + 5]
    mirror, s = Mirror.for_layout(plain.layout), plain.layout.dim
    assert np.allclose(m_history[:, :s], mirror.states(history[:, :s].numpy()), atol=1e-6)
    assert np.allclose(m_future[:, s:], mirror.actions(future[:, s:].numpy()), atol=1e-6)
    assert np.array_equal(doubled[5][0], history)
