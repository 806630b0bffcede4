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


def _rsl_rl_model(kind: str, obs_dim: int = 96, action_dim: int = 29, seed: int = 0):
    """An actor built with rsl-rl-lib's own classes, with non-trivial normaliser statistics."""
    import torch
    from rsl_rl.models import MLPModel, RNNModel
    from tensordict import TensorDict

    torch.manual_seed(seed)
    obs = TensorDict({"policy": torch.zeros(4, obs_dim)}, batch_size=[4])
    args = dict(obs=obs, obs_groups={"actor": ["policy"]}, obs_set="actor", output_dim=action_dim,
                hidden_dims=[64, 32], activation="elu", obs_normalization=True,
                distribution_cfg={"class_name": "GaussianDistribution", "init_std": 1.0})  # fmt: skip
    model = RNNModel(**args, rnn_type="lstm", rnn_hidden_dim=48) if kind == "lstm" else MLPModel(**args)
    model.train()
    for _ in range(3):  # gives the empirical normaliser a mean and std of its own
        model.update_normalization(TensorDict({"policy": torch.randn(64, obs_dim) * 2 + 1}, batch_size=[64]))
    return model.eval()


def test_checkpoint_written_by_rsl_rl_lib_matches_its_onnx_export(tmp_path):
    import torch

    model = _rsl_rl_model("mlp")
    torch.save({"actor_state_dict": model.state_dict(), "critic_state_dict": {}, "iter": 10, "infos": None},
               tmp_path / "model_10.pt")  # as rsl_rl's PPO.save + OnPolicyRunner.save write it  # fmt: skip
    onnx_model = model.as_onnx(verbose=False)
    torch.onnx.export(onnx_model, onnx_model.get_dummy_inputs(), str(tmp_path / "policy.onnx"), opset_version=18,
                      input_names=onnx_model.input_names, output_names=onnx_model.output_names)  # fmt: skip
    rsl, exported = RslRlActor(tmp_path / "model_10.pt"), OnnxActor(tmp_path / "policy.onnx")
    rng = np.random.default_rng(1)
    for _ in range(5):
        obs = rng.normal(size=96).astype(np.float32)
        np.testing.assert_allclose(rsl(obs), exported(obs), atol=1e-5)


def test_recurrent_rsl_rl_actor_keeps_and_resets_its_state(tmp_path):
    import torch

    model = _rsl_rl_model("lstm")
    torch.save({"actor_state_dict": model.state_dict(), "iter": 1}, tmp_path / "lstm.pt")
    actor = RslRlActor(tmp_path / "lstm.pt")
    reference = model.as_jit()  # rsl-rl-lib's own stepping export
    assert actor.recurrent and (actor.obs_dim, actor.action_dim) == (96, 29)
    obs = np.random.default_rng(2).normal(size=(6, 96)).astype(np.float32)
    with torch.inference_mode():
        expected = [reference(torch.from_numpy(o)[None])[0].numpy() for o in obs]
    got = [actor(o) for o in obs]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert not np.allclose(got[0], got[1])  # the hidden state carries over between calls
    actor.reset()
    np.testing.assert_allclose(actor(obs[0]), expected[0], atol=1e-5)


def test_unsupported_rsl_rl_checkpoints_get_clear_errors(tmp_path):
    import torch

    state = _rsl_rl_model("mlp").state_dict()
    torch.save({"actor_state_dict": state | {"distribution.alpha_param": torch.ones(29)}}, tmp_path / "beta.pt")
    with pytest.raises(ValueError, match="beta.pt: unsupported output distribution"):
        RslRlActor(tmp_path / "beta.pt")
    torch.save({"actor_state_dict": state}, tmp_path / "model.pt")
    with pytest.raises(ValueError, match="model.pt: rsl-rl-lib cannot rebuild this actor"):
        RslRlActor(tmp_path / "model.pt", activation="sparkle")
    torch.save({"weights": state}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt: no actor_state_dict or model_state_dict"):
        RslRlActor(tmp_path / "other.pt")


def test_truncated_and_empty_onnx_files_are_named(tmp_path, velocity_dir):
    shutil.copy(velocity_dir / "policy.onnx", tmp_path / "policy.onnx")
    data = (velocity_dir / "policy.onnx.data").read_bytes()
    (tmp_path / "policy.onnx.data").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"policy.onnx: ONNX Runtime cannot load this policy"):
        OnnxActor(tmp_path / "policy.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.onnx is empty or not an ONNX policy"):
        OnnxActor(tmp_path / "empty.onnx")
