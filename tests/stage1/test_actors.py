import shutil

import numpy as np
import pytest

from bm_gym.stage1 import OnnxActor, RslRlActor

from .helpers import onnx_weights, save_rsl_rl_checkpoint


@pytest.mark.parametrize("layout", ["v5", "v2"])
def test_rsl_rl_checkpoint_matches_the_onnx_export(tmp_path, velocity_dir, layout):
    onnx_actor = OnnxActor(velocity_dir / "policy.onnx")
    ckpt = save_rsl_rl_checkpoint(onnx_weights(velocity_dir / "policy.onnx"), tmp_path / "model.pt", layout)
    rsl = RslRlActor(ckpt)
    assert (rsl.obs_dim, rsl.action_dim) == (96, 29)
    rng = np.random.default_rng(0)
    for _ in range(5):
        obs = rng.normal(size=96).astype(np.float32)
        np.testing.assert_allclose(rsl(obs), onnx_actor(obs), atol=1e-4)


def test_missing_external_weights_are_named(tmp_path, velocity_dir):
    shutil.copy(velocity_dir / "policy.onnx", tmp_path / "policy.onnx")
    with pytest.raises(FileNotFoundError, match="policy.onnx.data"):
        OnnxActor(tmp_path / "policy.onnx")


def test_corrupt_files_and_wrong_observation_sizes(tmp_path, velocity_dir):
    (tmp_path / "bad.onnx").write_bytes(b"definitely not protobuf" * 10)
    with pytest.raises(ValueError, match="not a valid ONNX model"):
        OnnxActor(tmp_path / "bad.onnx")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        RslRlActor(tmp_path / "bad.pt")
    actor = OnnxActor(velocity_dir / "policy.onnx")
    with pytest.raises(ValueError, match=r"does not match the policy input \(96,\)"):
        actor(np.zeros(95, dtype=np.float32))
