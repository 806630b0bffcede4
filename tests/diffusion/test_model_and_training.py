import dataclasses
import json

import numpy as np
import pytest
import torch

from bm_gym.data import StateLayout
from bm_gym.diffusion import CPU, PAPER, CheckpointError, DiffusionPolicy, TrajectoryDenoiser, TrajectoryDiffusion
from bm_gym.diffusion.policy import layout_mismatch
from bm_gym.diffusion.training import TrainCfg, Trainer
from bm_gym.robot import g1

S, A = StateLayout().dim, StateLayout().action_dim


@pytest.mark.parametrize("cfg", [CPU, PAPER], ids=["cpu", "paper"])
def test_denoiser_maps_noisy_future_and_history_to_clean_future(cfg):
    model = TrajectoryDenoiser(cfg.denoiser, S, A)
    d = cfg.denoiser
    out = model(torch.randn(3, d.horizon, S + A), torch.tensor([0, 5, 49]), torch.randn(3, d.history + 1, S + A))
    assert out.shape == (3, d.horizon, S + A)
    layers = (model.decoder if d.tokens == "joint" else model.encoder).layers
    assert len(layers) == d.layers
    assert layers[0].self_attn.num_heads == d.heads and layers[0].self_attn.embed_dim == d.d_model


def test_paper_config_is_six_layers_four_heads_512_dims_split_tokens():
    assert (PAPER.denoiser.layers, PAPER.denoiser.heads, PAPER.denoiser.d_model) == (6, 4, 512)
    assert PAPER.denoiser.tokens == "split" and CPU.denoiser.tokens == "joint"
    assert (PAPER.denoiser.history, PAPER.denoiser.horizon) == (4, 16)


def test_output_depends_on_history_through_cross_attention():
    torch.manual_seed(0)
    model = TrajectoryDenoiser(CPU.denoiser, S, A).eval()
    x, t = torch.randn(1, 16, S + A), torch.tensor([10])
    a = model(x, t, torch.zeros(1, 5, S + A))
    b = model(x, t, torch.ones(1, 5, S + A))
    assert (a - b).abs().mean() > 1e-3


def test_training_reduces_the_loss_and_resumes(small_dataset, tmp_path):
    cfg = TrainCfg(data=str(small_dataset), out=str(tmp_path / "run"), steps=40, batch_size=32, warmup_steps=5,
                   val_every=20, val_batches=2, val_fraction=0.3, seed=0)  # fmt: skip
    trainer = Trainer(cfg)
    before = trainer.validate(trainer.model)["loss"]
    trainer.run(progress=False)
    after = trainer.validate(trainer.model)["loss"]
    assert after < 0.7 * before
    assert (tmp_path / "run/checkpoint/model.safetensors").exists() and (tmp_path / "run/tb").is_dir()
    resumed = Trainer(dataclasses.replace(cfg, steps=50))
    assert resumed.step == 40
    torch.testing.assert_close(resumed.model.state_dict(), trainer.model.state_dict())
    assert resumed.optimizer.state_dict()["state"], "optimizer moments restored"
    resumed.run(progress=False)
    assert json.loads((tmp_path / "run/checkpoint/config.json").read_text())["training"]["steps"] == 50


def test_action_loss_horizon_and_action_rate_terms_weigh_what_they_say():
    class Echo(torch.nn.Module):
        """Returns a fixed prediction: the loss terms are then plain arithmetic to check."""

        state_dim, cfg = S, CPU.denoiser

        def __init__(self, pred: torch.Tensor) -> None:
            super().__init__()
            self.pred = pred

        def forward(self, noisy, t, history):
            return self.pred

    future = torch.zeros(2, 16, S + A)
    pred = future.clone()
    pred[:, 8:, S:] = 3.0  # wrong actions beyond step 8 only
    diffusion = TrajectoryDiffusion(CPU.diffusion)
    history = torch.zeros(2, 5, S + A)
    full, parts = diffusion.loss(Echo(pred), history, future, dataclasses.replace(CPU, action_loss_weight=1.0))
    assert parts["action"].item() == pytest.approx(9.0 / 2) and "action_rate" not in parts
    masked, parts = diffusion.loss(Echo(pred), history, future, dataclasses.replace(CPU, action_loss_horizon=8))
    assert masked.item() == 0.0 and parts["action"].item() == 0.0
    rate = dataclasses.replace(CPU, action_loss_horizon=8, action_rate_weight=0.1)
    loss, parts = diffusion.loss(Echo(pred), history, future, rate)
    assert parts["action_rate"].item() == pytest.approx(9.0 / 15)  # one jump of 3 over 15 step pairs
    assert loss.item() == pytest.approx(0.1 * 9.0 / 15)
    assert (PAPER.action_loss_horizon, PAPER.action_rate_weight) == (8, 0.1)
    with pytest.raises(ValueError, match="action_loss_horizon"):
        dataclasses.replace(CPU, action_loss_horizon=17)


def test_loss_options_are_stored_with_the_checkpoint_and_guard_resume(small_dataset, tmp_path):
    cfg = TrainCfg(data=str(small_dataset), out=str(tmp_path / "run"), steps=3, batch_size=8, val_every=100,
                   val_fraction=0.3, action_loss_horizon=8, action_rate_weight=0.1)  # fmt: skip
    Trainer(cfg).run(progress=False)
    policy = DiffusionPolicy.load(tmp_path / "run/checkpoint")
    assert (policy.cfg.action_loss_horizon, policy.cfg.action_rate_weight) == (8, 0.1)
    with pytest.raises(ValueError, match="action_loss_horizon=8"):
        Trainer(dataclasses.replace(cfg, action_loss_horizon=None))


def test_checkpoint_round_trip_and_layout_check(small_dataset, tmp_path):
    cfg = TrainCfg(data=str(small_dataset), out=str(tmp_path / "run"), steps=2, batch_size=8, val_every=100,
                   val_fraction=0.3)  # fmt: skip
    Trainer(cfg).run(progress=False)
    folder = tmp_path / "run/checkpoint"
    policy = DiffusionPolicy.load(folder, robot_joints=g1.JOINT_NAMES)
    again = DiffusionPolicy.load(folder)
    history = np.random.default_rng(0).normal(size=(5, S + A)).astype(np.float32)
    plan_a = policy.plan(history, torch.Generator().manual_seed(3))
    plan_b = again.plan(history, torch.Generator().manual_seed(3))
    assert plan_a.shape == (16, S + A)
    np.testing.assert_allclose(plan_a, plan_b, atol=1e-5)
    with pytest.raises(CheckpointError, match="joints are the same but in another order"):
        DiffusionPolicy.load(folder, robot_joints=g1.JOINT_NAMES[::-1])
    assert "only in environment ['head_joint']" in layout_mismatch(StateLayout(), (*g1.JOINT_NAMES, "head_joint"))
    (folder / "ema.safetensors").write_bytes(b"corrupt")
    with pytest.raises(CheckpointError, match="ema.safetensors does not match its sha256"):
        DiffusionPolicy.load(folder)


def test_ddim_and_ddpm_samplers_return_finite_trajectories():
    model = TrajectoryDenoiser(CPU.denoiser, S, A).eval()
    history = torch.randn(2, 5, S + A)
    for sampler in ("ddim", "ddpm"):
        diffusion = TrajectoryDiffusion(dataclasses.replace(CPU.diffusion, sampler=sampler))
        out = diffusion.sample(model, history, torch.Generator().manual_seed(0))
        assert out.shape == (2, 16, S + A) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="DiffusionCfg.sampler must be 'ddim' or 'ddpm'"):
        TrajectoryDiffusion(dataclasses.replace(CPU.diffusion, sampler="euler"))


def test_the_export_spelling_of_the_forward_is_the_same_function():
    model = TrajectoryDenoiser(CPU.denoiser, S, A).eval()
    x, t, history = torch.randn(3, 16, S + A), torch.tensor([45, 10, 0]), torch.randn(3, 5, S + A)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_for_export(x, t, history), model(x, t, history), atol=1e-5, rtol=1e-5)
