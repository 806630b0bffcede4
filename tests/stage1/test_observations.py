import dataclasses

import numpy as np
import pytest

from bm_gym.stage1 import Stage1Policy, from_deploy_yaml
from bm_gym.stage1.observations import ObservationBuilder, ObsInputs


def test_velocity_observation_layout(velocity_dir, backend):
    conv = from_deploy_yaml(velocity_dir / "deploy.yaml")
    state = backend.reset()
    obs = ObservationBuilder(conv, obs_dim=96)(ObsInputs(state, np.full(29, 0.5), np.array([0.3, 0.1, -0.2])))
    assert obs.shape == (96,) and obs.dtype == np.float32
    np.testing.assert_allclose(obs[3:6], [0, 0, -1], atol=1e-6)
    np.testing.assert_allclose(obs[6:9], [0.3, 0.1, -0.2], atol=1e-7)
    np.testing.assert_allclose(obs[9:38], 0.0, atol=1e-6)  # standing pose = defaults
    np.testing.assert_allclose(obs[67:96], 0.5)


def test_history_terms_stack_oldest_first(velocity_dir, backend):
    conv = from_deploy_yaml(velocity_dir / "deploy.yaml")
    terms = tuple(
        dataclasses.replace(t, history_length=3) if t.name == "velocity_commands" else t for t in conv.obs_terms
    )
    builder = ObservationBuilder(dataclasses.replace(conv, obs_terms=terms), obs_dim=102)
    state = backend.reset()
    first = builder(ObsInputs(state, np.zeros(29), np.array([1.0, 0, 0])))
    np.testing.assert_allclose(first[6:15], [1, 0, 0] * 3)  # fresh buffer is filled with the first value
    second = builder(ObsInputs(state, np.zeros(29), np.array([2.0, 0, 0])))
    np.testing.assert_allclose(second[6:15], [1, 0, 0, 1, 0, 0, 2, 0, 0])


def test_size_mismatch_names_the_terms(velocity_dir, backend):
    conv = from_deploy_yaml(velocity_dir / "deploy.yaml")
    builder = ObservationBuilder(conv, obs_dim=154)
    with pytest.raises(ValueError, match="observation has 96 values but the policy expects 154.*base_ang_vel"):
        builder(ObsInputs(backend.reset(), np.zeros(29), np.zeros(3)))


def test_bad_velocity_command_is_rejected(velocity_dir, backend):
    policy = Stage1Policy.load(velocity_dir)
    with pytest.raises(ValueError, match="velocity command"):
        policy.act(backend.reset(), (float("nan"), 0, 0))
    with pytest.raises(ValueError, match="velocity command"):
        policy.act(backend.reset(), (1.0, 0))


def test_tracking_policy_requires_its_motion(tracking_dir, tmp_path):
    import shutil

    for name in ("policy.onnx", "policy.onnx.data", "deploy.yaml"):
        shutil.copy(tracking_dir / name, tmp_path / name)
    with pytest.raises(ValueError, match="tracking policy"):
        Stage1Policy.load(tmp_path)
