"""The paper's token layout: separate state and action tokens, per-token noise levels, the attention mask, the
rolling warm start; and that the rest of the stack (fused plans, checkpoints, the controller) takes it."""

import dataclasses

import numpy as np
import pytest
import torch

from bm_gym.controller import ControllerCfg, DiffusionController
from bm_gym.data import StateLayout
from bm_gym.diffusion import CPU, SHIPPED_CHECKPOINT, DiffusionPolicy, TrajectoryDenoiser, TrajectoryDiffusion
from bm_gym.diffusion.model import split_attention_mask
from bm_gym.diffusion.training import TrainCfg, Trainer
from bm_gym.guidance import JoystickCost

S, A = StateLayout().dim, StateLayout().action_dim
SPLIT = dataclasses.replace(CPU, denoiser=dataclasses.replace(CPU.denoiser, tokens="split"))


def split_model(seed: int = 0) -> TrajectoryDenoiser:
    torch.manual_seed(seed)
    return TrajectoryDenoiser(SPLIT.denoiser, S, A).eval()


def test_the_mask_lets_states_see_states_and_actions_see_the_states_they_lead_to():
    n, h = 4, 16
    blocked = split_attention_mask(n, h)
    fs, fa = 2 * n + 1, 2 * n + 1 + h  # first future state (s_1), first future action (a_0)
    assert not blocked[fs + 3, : n + 1].any() and blocked[fs + 3, n + 1 : fs].all()  # history states, no actions
    assert blocked[fs:fa, fa:].all() and not blocked[fs:fa, fs:fa].any()  # states: all states, no action
    assert not blocked[fa + 2, fs + 2] and blocked[fa + 2, fs + 3]  # a_2 sees s_3, not s_4
    assert not blocked[fa + 2, fa + 2] and blocked[fa + 2, fa + 3]  # a_2 sees a_2, not a_3


@pytest.mark.parametrize("lookahead", [0, 3, 16])
def test_action_lookahead_sets_how_far_each_action_sees_the_planned_states(lookahead):
    n, h = 4, 16
    blocked = split_attention_mask(n, h, lookahead)
    fs, fa = 2 * n + 1, 2 * n + 1 + h
    last_seen = min(lookahead, h)  # a_0 sees s_1..s_lookahead (s_0 is history)
    assert not blocked[fa, fs : fs + last_seen].any() and blocked[fa, fs + last_seen : fa].all()
    assert not blocked[fa, : n + 1].any()  # every action sees the history states
    assert blocked[fs:fa, fa:].all() and blocked[fa + 2, fa + 3]  # states see no action; actions stay causal
    # One layer: no indirect path (through the state tokens), so a_0 reads exactly s_1..s_lookahead.
    cfg = dataclasses.replace(SPLIT.denoiser, action_lookahead=lookahead, layers=1)
    model = TrajectoryDenoiser(cfg, S, A).eval()
    x = torch.randn(1, 16, S + A, requires_grad=True)
    grad_a0 = torch.autograd.grad(model(x, torch.tensor([20]), torch.randn(1, 5, S + A))[0, 0, S:].sum(), x)[0]
    reads = grad_a0[0, :, :S].abs().amax(-1) > 0  # row k holds s_k+1
    assert reads.tolist() == [k < last_seen for k in range(h)]


def test_action_lookahead_is_checked():
    with pytest.raises(ValueError, match="action_lookahead"):
        dataclasses.replace(SPLIT.denoiser, action_lookahead=-1)
    with pytest.raises(ValueError, match="joint tokens have no action tokens"):
        dataclasses.replace(CPU.denoiser, tokens="joint", action_lookahead=16)


def test_outputs_depend_only_on_what_the_mask_allows():
    model = split_model()
    x = torch.randn(1, 16, S + A, requires_grad=True)
    out = model(x, torch.tensor([20]), torch.randn(1, 5, S + A))
    grad_states = torch.autograd.grad(out[0, :, :S].sum(), x, retain_graph=True)[0]
    assert grad_states[..., S:].abs().max() == 0  # no planned state reads a planned action
    grad_a2 = torch.autograd.grad(out[0, 2, S:].sum(), x)[0]  # row 2 holds a_2 and s_3
    # a_2 reads s_3 directly (and later states only through the state tokens), never a later action
    assert grad_a2[0, 2, :S].abs().max() > 0 and grad_a2[0, 3:, S:].abs().max() == 0


@pytest.mark.parametrize("levels", ["one per sample", "one per token"])
def test_the_export_spelling_is_the_same_function(levels):
    model = split_model()
    x, history = torch.randn(3, 16, S + A), torch.randn(3, 5, S + A)
    t = torch.tensor([0, 17, 49]) if levels == "one per sample" else torch.randint(0, 50, (3, 16, 2))
    torch.testing.assert_close(model.forward_for_export(x, t, history), model(x, t, history), atol=2e-5, rtol=1e-4)


def test_training_draws_a_level_per_token_and_learns(small_dataset, tmp_path):
    diffusion = TrajectoryDiffusion(SPLIT.diffusion)
    assert diffusion.level_shape(SPLIT.denoiser, 8) == (8, 16, 2)
    future, noise = torch.randn(2, 16, S + A), torch.randn(2, 16, S + A)
    t = torch.zeros(2, 16, 2, dtype=torch.long)
    t[:, :, 1] = 49  # clean-ish states, fully noised actions
    noisy = diffusion.add_noise(future, noise, t, S)
    as_one = lambda level: diffusion.train_scheduler.add_noise(future, noise, torch.full((2,), level))  # noqa: E731
    torch.testing.assert_close(noisy[..., :S], as_one(0)[..., :S])
    torch.testing.assert_close(noisy[..., S:], as_one(49)[..., S:])
    cfg = TrainCfg(data=str(small_dataset), out=str(tmp_path / "run"), steps=40, batch_size=32, warmup_steps=5,
                   val_every=20, val_batches=2, val_fraction=0.3, seed=0, tokens="split")  # fmt: skip
    trainer = Trainer(cfg)
    before = trainer.validate(trainer.model)["loss"]
    trainer.run(progress=False)
    assert trainer.validate(trainer.model)["loss"] < 0.7 * before
    assert DiffusionPolicy.load(tmp_path / "run/checkpoint").cfg.denoiser.tokens == "split"


def test_per_token_ddim_is_the_scheduler_step_when_all_tokens_share_a_level():
    diffusion = TrajectoryDiffusion(SPLIT.diffusion)
    x, x0 = torch.randn(2, 16, S + A), torch.randn(2, 16, S + A)
    for i, t in enumerate(diffusion.sample_scheduler.timesteps):
        expected = diffusion.sample_scheduler.step(x0, t, x).prev_sample
        got = diffusion._ddim_per_token(x, x0, torch.full((16, 2), i), i, S)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    frozen = diffusion._ddim_per_token(x, x0, torch.full((16, 2), 7), 3, S)  # tokens whose turn has not come
    torch.testing.assert_close(frozen, x)


@pytest.fixture(scope="module")
def split_policy():
    shipped = DiffusionPolicy.load(SHIPPED_CHECKPOINT)
    return DiffusionPolicy(SPLIT, shipped.layout, shipped.normalizer, split_model())


def test_rolling_warm_start_keeps_low_noise_actions_near_the_previous_plan(split_policy):
    rng = np.random.default_rng(0)
    history = split_policy.denormalize(torch.from_numpy(rng.normal(size=(5, S + A)).astype(np.float32) * 0.3)).numpy()
    init = split_policy.plan(history, torch.Generator().manual_seed(1))
    rolled = split_policy.plan(history, torch.Generator().manual_seed(2), init=init, start_step=3, action_start_step=8)
    anchored = split_policy.plan(history, torch.Generator().manual_seed(2), init=init, start_step=3)
    assert np.isfinite(rolled).all()
    distance = lambda plan: np.abs(plan - init)[:-1, S:].mean()  # noqa: E731
    assert distance(rolled) < distance(anchored)  # actions started at less noise stay nearer the previous plan


def test_split_models_plan_on_the_fused_path_and_joint_models_refuse_rolling_starts(split_policy):
    rng = np.random.default_rng(1)
    history = split_policy.denormalize(torch.from_numpy(rng.normal(size=(5, S + A)).astype(np.float32) * 0.3)).numpy()
    guide = split_policy.guide(JoystickCost(0.5, 0.0, 0.2))
    reference = split_policy.plan(history, torch.Generator().manual_seed(5), guide)
    fused_policy = DiffusionPolicy(SPLIT, split_policy.layout, split_policy.normalizer, split_model()).use_fused()
    fused = fused_policy.plan(
        history, torch.Generator().manual_seed(5), fused_policy.guide(JoystickCost(0.5, 0.0, 0.2))
    )
    np.testing.assert_allclose(fused, reference, atol=2e-5)
    joint = DiffusionPolicy.load(SHIPPED_CHECKPOINT)
    with pytest.raises(ValueError, match="split-token model"):
        DiffusionController(joint, ControllerCfg(warm_start_step=3, warm_start_action_step=8, fused=False))
    with pytest.raises(ValueError, match="split-token model"):
        joint.plan(history, init=reference, start_step=3, action_start_step=8)
    with pytest.raises(ValueError, match="action_start_step must be in"):
        DiffusionController(split_policy, ControllerCfg(warm_start_step=3, warm_start_action_step=2, fused=False))
