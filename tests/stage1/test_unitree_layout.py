"""The shared policies re-expressed in Isaac Lab joint order and laid out as unitree_rl_lab exports them."""

import shutil

import numpy as np
import pytest

from bm_gym.stage1 import Stage1Policy
from tools import stage1_check

from .helpers import unitree_export
from .test_policies_in_sim import _rollout


@pytest.fixture(scope="module")
def exports(tmp_path_factory, velocity_dir, tracking_dir):
    root = tmp_path_factory.mktemp("unitree")
    return {
        "velocity": unitree_export(velocity_dir, root / "velocity"),
        "tracking": unitree_export(tracking_dir, root / "tracking"),
        "velocity_scrambled": unitree_export(velocity_dir, root / "velocity_scrambled", gains_in_policy_order=True),
    }


def test_layout_loads_with_non_identity_joint_ids_map(exports):
    policy = Stage1Policy.load(exports["velocity"])
    assert policy.conventions.source.endswith("params/deploy.yaml (deploy.yaml)")
    assert policy.conventions.joint_names[:3] == ("left_hip_pitch_joint", "right_hip_pitch_joint", "waist_yaw_joint")
    tracking = Stage1Policy.load(exports["tracking"])  # params/dance_30hz.csv: fps from the name
    assert tracking.motion is not None and tracking.motion.fps == 50.0


@pytest.mark.parametrize("name, original", [("velocity", "velocity_dir"), ("tracking", "tracking_dir")])
def test_gains_after_apply_gains_equal_the_original_policys(exports, backend, request, name, original):
    base = Stage1Policy.load(request.getfixturevalue(original), motion_fps=30)
    base.apply_gains(backend)
    expected = backend.pd_gains(backend.joint_names)
    Stage1Policy.load(exports[name]).apply_gains(backend)
    got = backend.pd_gains(backend.joint_names)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_permuted_velocity_policy_walks_as_far(exports, velocity_dir, backend):
    original, _, _ = _rollout(Stage1Policy.load(velocity_dir), backend, (1.0, 0.0, 0.0), 10.0)
    permuted, _, low = _rollout(Stage1Policy.load(exports["velocity"]), backend, (1.0, 0.0, 0.0), 10.0)
    assert low > 0.5 and original[0] > 8.0
    assert permuted[0] == pytest.approx(original[0], rel=0.01)


def _tracking_error(policy, backend, seconds=10.0):
    policy.apply_gains(backend)
    root, q, dq = policy.initial_state(0)
    state = backend.reset(root, q, dq, seed=0)
    policy.reset(0)
    errors = []
    for _ in range(round(seconds / backend.control_dt)):
        state = backend.step(policy.act(state))
        errors.append(np.abs(state.joint_pos - policy.motion.joint_pos[policy.frame]).mean())
    return float(np.mean(errors))


def test_permuted_tracking_policy_tracks_as_well(exports, tracking_dir, backend):
    original = _tracking_error(Stage1Policy.load(tracking_dir, motion_fps=30), backend)
    permuted = _tracking_error(Stage1Policy.load(exports["tracking"]), backend)
    assert original < 0.15
    assert permuted == pytest.approx(original, abs=0.005)


def test_stage1_check_passes_the_exports_and_fails_scrambled_gains(exports, capsys):
    assert stage1_check.main([str(exports["velocity"])]) == 0
    assert stage1_check.main([str(exports["tracking"])]) == 0
    out = capsys.readouterr().out
    assert "PASS  stand 10 s" in out and "PASS  track the first 10 s of the motion" in out
    assert "0 right_hip_pitch_joint" not in out and " 6 right_hip_pitch_joint" in out  # simulator order
    assert stage1_check.main([str(exports["velocity_scrambled"]), "--no-probes"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  mirror-joint gains" in out and "motor order" in out


def test_stage1_check_flags_an_observation_that_does_not_add_up(exports, tmp_path, capsys):
    bad = shutil.copytree(exports["velocity"], tmp_path / "bad")
    deploy = bad / "params" / "deploy.yaml"
    deploy.write_text(deploy.read_text().replace("history_length: 1", "history_length: 2", 1))
    assert stage1_check.main([str(bad)]) == 1
    assert "FAIL  observation size: terms add up to 99, the policy takes 96" in capsys.readouterr().out


def test_stage1_check_reports_unloadable_policies(tmp_path, capsys):
    assert stage1_check.main([str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_command_ranges_are_clamped_with_one_warning(velocity_dir, backend):
    policy = Stage1Policy.load(velocity_dir)  # lin_vel_x in [-0.5, 1.0]
    state = backend.reset()
    with pytest.warns(UserWarning, match=r"clamped to \[1.0, 0.0, 0.0\]") as record:
        clamped = policy.act(state, (3.0, 0.0, 0.0))
        policy.act(state, (3.0, 0.0, 0.0))
    assert len(record) == 1
    policy.reset()
    policy.observations.reset()
    np.testing.assert_array_equal(clamped, Stage1Policy.load(velocity_dir).act(state, (1.0, 0.0, 0.0)))
    free = Stage1Policy.load(velocity_dir, clamp_commands=False)
    assert not np.array_equal(free.act(state, (3.0, 0.0, 0.0)), clamped)
