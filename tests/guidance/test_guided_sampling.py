import numpy as np
import pytest
import torch

from bm_gym.data import StateLayout
from bm_gym.diffusion import CPU, DiffusionPolicy, Normalizer, TrajectoryDenoiser
from bm_gym.guidance import GuidanceCfg, JoystickCost, Trajectory

LAYOUT = StateLayout()


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    norm = Normalizer(np.zeros(LAYOUT.dim), np.ones(LAYOUT.dim), np.zeros(29), np.ones(29))
    return DiffusionPolicy(CPU, LAYOUT, norm, TrajectoryDenoiser(CPU.denoiser, LAYOUT.dim, LAYOUT.action_dim))


@pytest.mark.parametrize("through_model", [False, True])
def test_guidance_moves_plans_down_the_cost(policy, through_model):
    history = np.zeros((5, LAYOUT.dim + LAYOUT.action_dim), np.float32)
    cost = JoystickCost(vx=2.0)
    cfg = GuidanceCfg(scale=2.0, through_model=through_model, guided_steps=None, max_grad_norm=None)
    guide = policy.guide(cost, cfg)
    plain = policy.plan(history, torch.Generator().manual_seed(0))
    guided = policy.plan(history, torch.Generator().manual_seed(0), guide)
    c_plain = cost(Trajectory(LAYOUT, torch.from_numpy(plain)[None])).item()
    c_guided = cost(Trajectory(LAYOUT, torch.from_numpy(guided)[None])).item()
    assert c_guided < 0.8 * c_plain


def test_guidance_only_on_the_last_steps_and_clipping(policy):
    guide = policy.guide(JoystickCost(vx=1.0), GuidanceCfg(scale=1.0, guided_steps=3, max_grad_norm=0.1))
    n = len(policy.diffusion.sample_scheduler.timesteps)
    assert [guide.active(i, n) for i in range(n)] == [False] * (n - 3) + [True] * 3
    step = guide.step(torch.full((2, 16, LAYOUT.dim + LAYOUT.action_dim), 5.0))
    np.testing.assert_allclose(step.flatten(1).norm(dim=1).numpy(), [0.1, 0.1], rtol=1e-5)


def test_command_line_settings_replace_only_what_they_give():
    base = GuidanceCfg(scale=60.0, guided_steps=5, max_grad_norm=10.0)
    assert base.overridden() == base
    assert base.overridden(scale=20.0) == GuidanceCfg(scale=20.0, guided_steps=5, max_grad_norm=10.0)
    assert base.overridden(guided_steps=0).guided_steps is None  # 0: every step
    assert base.overridden(through_model=True, max_grad_norm=1.0) == GuidanceCfg(60.0, True, 5, 1.0)
    with pytest.raises(ValueError, match="GuidanceCfg.scale"):
        base.overridden(scale=float("nan"))
    eased = base.overridden(recovery_guided_steps=3)
    assert eased.recovery_guided_steps == 3 and eased.overridden(recovery_guided_steps=-1) == base  # -1: never eased
    ramped = base.overridden(velocity_ramp=0.3)
    assert ramped.velocity_ramp == 0.3 and ramped.overridden(velocity_ramp=-1) == base  # -1: no ramp
    with pytest.raises(ValueError, match="GuidanceCfg.velocity_ramp"):
        base.overridden(velocity_ramp=0.0)


def test_recovery_settings_are_checked_and_ease_only_the_step_count():
    cfg = GuidanceCfg(scale=40.0, guided_steps=None, recovery_guided_steps=5)
    assert cfg.recovering() == GuidanceCfg(scale=40.0, guided_steps=5, recovery_guided_steps=5)
    assert GuidanceCfg(scale=40.0, recovery_guided_steps=0).recovering().scale == 0.0  # 0: unguided while recovering
    for field, value in (("recovery_guided_steps", -2), ("disturbance_accel", 0.0), ("recovery_s", float("inf"))):
        with pytest.raises(ValueError, match=f"GuidanceCfg.{field}"):
            GuidanceCfg(**{field: value})
