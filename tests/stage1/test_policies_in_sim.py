"""The real Stage 1 policies behave in our MuJoCo G1 as they did where they were trained."""

import numpy as np
import pytest

from bm_gym.stage1 import Stage1Policy

FALL_HEIGHT = 0.5


@pytest.fixture(scope="module")
def velocity_policy(velocity_dir):
    return Stage1Policy.load(velocity_dir)


def _rollout(policy, backend, command, seconds):
    policy.apply_gains(backend)
    root, q, dq = policy.initial_state()
    state = backend.reset(root, q, dq)
    policy.reset()
    start, yaw, min_height = state.root_pos.copy(), 0.0, np.inf
    for _ in range(round(seconds / backend.control_dt)):
        state = backend.step(policy.act(state, command))
        yaw += state.root_ang_vel_b[2] * backend.control_dt
        min_height = min(min_height, state.root_pos[2])
    return state.root_pos - start, yaw, min_height


def test_walks_forward_at_one_meter_per_second(velocity_policy, backend):
    displacement, _, min_height = _rollout(velocity_policy, backend, (1.0, 0.0, 0.0), 10.0)
    assert min_height > FALL_HEIGHT
    assert displacement[0] >= 8.0
    assert abs(displacement[1]) < 1.0


def test_stands_still_at_zero_command(velocity_policy, backend):
    displacement, yaw, min_height = _rollout(velocity_policy, backend, (0.0, 0.0, 0.0), 30.0)
    assert min_height > 0.7
    assert np.linalg.norm(displacement[:2]) < 0.3 and abs(yaw) < 0.3


@pytest.mark.parametrize("wz, min_turn", [(-0.8, 5.0), (1.0, 4.0)])
def test_turns_in_place(velocity_policy, backend, wz, min_turn):
    # +0.8 from a standstill stalls (about 0.7 rad in 10 s): a property of this policy, see docs/benchmarks.md.
    displacement, yaw, min_height = _rollout(velocity_policy, backend, (0.0, 0.0, wz), 10.0)
    assert min_height > FALL_HEIGHT
    assert np.sign(yaw) == np.sign(wz) and abs(yaw) >= min_turn
    assert np.linalg.norm(displacement[:2]) < 0.5


def test_tracking_policy_follows_the_whole_clip(tracking_dir, backend):
    policy = Stage1Policy.load(tracking_dir, motion_fps=30)
    policy.apply_gains(backend)
    root, q, dq = policy.initial_state(0)
    state = backend.reset(root, q, dq)
    policy.reset(0)
    errors, motion = [], policy.motion
    while not policy.motion_finished:
        state = backend.step(policy.act(state))
        frame = min(policy.frame, motion.num_frames - 1)
        errors.append(np.abs(state.joint_pos - motion.joint_pos[frame]).mean())
        # The dance crouches, so "fallen" is judged against the reference height (whole_body_tracking's rule).
        assert state.root_pos[2] > motion.root_pos[frame, 2] - 0.25, f"fell at frame {frame}"
    assert len(errors) == policy.motion.num_frames
    assert np.mean(errors) <= 0.15


def test_follow_makes_the_executed_targets_the_last_action(velocity_dir, backend):
    """After another controller's step the policy observes what the robot did, as if it had chosen it."""
    policy = Stage1Policy.load(velocity_dir)
    policy.apply_gains(backend)
    state = backend.reset(seed=0)
    policy.reset()
    targets = policy.act(state, (0.5, 0.0, 0.0))
    own = policy.last_action.copy()
    policy.follow(targets)
    np.testing.assert_allclose(policy.last_action, own, atol=1e-5)
    other = targets + 0.05
    policy.follow(other)
    np.testing.assert_allclose(policy.last_action, own + 0.05 / policy.conventions.action_scale, atol=1e-5)
    with pytest.raises(ValueError, match="29 finite joint positions"):
        policy.follow(targets[:5])
