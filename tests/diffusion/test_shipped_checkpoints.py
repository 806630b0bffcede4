"""Every checkpoint shipped in bm_gym/checkpoints loads for the G1, plans, and says what it is (a model card)."""

import json
from pathlib import Path

import numpy as np
import pytest

from bm_gym.diffusion import SHIPPED_CHECKPOINT, DiffusionPolicy
from bm_gym.robot import g1

SHIPPED = sorted(p.parent for p in SHIPPED_CHECKPOINT.parent.glob("*/config.json"))
OMNI = SHIPPED_CHECKPOINT.parent / "g1_velocity_omni"


def test_the_default_and_the_omnidirectional_checkpoints_are_shipped():
    assert SHIPPED_CHECKPOINT in SHIPPED and OMNI in SHIPPED


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_a_shipped_checkpoint_loads_for_the_g1_plans_and_has_a_model_card(folder: Path):
    policy = DiffusionPolicy.load(folder, robot_joints=g1.JOINT_NAMES)
    config = json.loads((folder / "config.json").read_text())
    assert "guidance" in config  # the settings it was evaluated with travel with it
    card = (folder / "MODEL_CARD.md").read_text()
    assert f"# {folder.name}" in card and "python -m tools." in card  # what it is and how it was made
    norm = policy.normalizer
    history = norm.mean + norm.std * np.random.default_rng(0).normal(
        size=(policy.cfg.denoiser.history + 1, norm.mean.size)
    )
    future = policy.plan(history.astype(np.float32))
    assert future.shape == (policy.cfg.denoiser.horizon, norm.mean.size) and np.isfinite(future).all()


@pytest.mark.slow
@pytest.mark.parametrize(
    "folder, sideways", [(OMNI, (1.5, 5.0)), (SHIPPED_CHECKPOINT, (-0.5, 0.5))], ids=["omni", "default"]
)
def test_asked_to_walk_sideways_the_omnidirectional_checkpoint_does_and_the_default_one_does_not(folder, sideways):
    """Driven as the app's joystick and the protocols drive it (the speed hold on the command): the option's
    plans and actions walk sideways only when asked for more than it does; raw, it walks at 0.05 m/s."""
    from bm_gym.controller import ControllerCfg, DiffusionController
    from bm_gym.eval.protocols import DiffusionDriver, HoldDriver
    from bm_gym.sim import has_fallen, make_backend

    sim = make_backend("mujoco")
    policy = DiffusionPolicy.load(folder, robot_joints=g1.JOINT_NAMES)
    driver = HoldDriver(DiffusionDriver(DiffusionController(policy, ControllerCfg(seed=0)), policy.guidance))
    state = driver.start(sim, seed=0)
    start = state.root_pos[:2].copy()
    for _ in range(round(8.0 / sim.control_dt)):  # 0.5 m/s to the left for 8 s, from standing
        state = sim.step(driver.act(state, (0.0, 0.5, 0.0)))
        assert not has_fallen(state), f"fell at t={state.time:.2f} s"
    moved = state.root_pos[:2] - start
    assert sideways[0] < moved[1] < sideways[1], moved
    assert abs(moved[0]) < 0.5, moved
