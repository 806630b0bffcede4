"""The paper's Body-Pos state through the whole stack: collection, windows (mirrored), training, checkpoint, fused
and reference plans with the barrier (guarding the key bodies among all 30), and the controller in MuJoCo."""

import numpy as np
import pytest
import torch

from bm_gym.controller import ControllerCfg, DiffusionController
from bm_gym.data import CollectCfg, Collector, ExpertWindowDataset, StateLayout, validate
from bm_gym.diffusion import DiffusionPolicy
from bm_gym.diffusion.training import TrainCfg, Trainer
from bm_gym.eval.scenarios import goal_task, obstacle_course
from bm_gym.guidance import JoystickCost, ObstacleCost, ObstacleField, WeightedSum
from bm_gym.guidance.costs import body_margins
from bm_gym.obstacles import Cylinder
from bm_gym.robot import g1
from bm_gym.sim import MujocoBackend

BODY_POS = StateLayout.named("body-pos")


@pytest.fixture(scope="module")
def body_pos_run(tmp_path_factory, velocity_dir):
    """Two 3 s episodes recorded in the Body-Pos state, and a model trained on them for a few steps."""
    root = tmp_path_factory.mktemp("body_pos")
    data = root / "velocity_body_pos.h5"
    cfg = CollectCfg(policy=str(velocity_dir), out=str(data), episodes=2, episode_s=3.0, workers=1, seed=3,
                     state="body-pos")  # fmt: skip
    Collector(cfg).run(progress=False)
    train = TrainCfg(data=str(data), out=str(root / "run"), steps=4, batch_size=16, warmup_steps=1, val_every=100,
                     val_fraction=0.3, mirror=True)  # fmt: skip
    Trainer(train).run(progress=False)
    return data, root / "run/checkpoint"


def test_collection_records_the_body_pos_state_and_training_reads_it(body_pos_run):
    data, checkpoint = body_pos_run
    summary = validate(data)
    assert summary.state_dim == BODY_POS.dim and "state 194 (body-pos)" in str(summary)
    windows = ExpertWindowDataset(data, normalize=False, mirror=True)
    assert windows.layout == BODY_POS and windows[0][0].shape == (5, BODY_POS.dim + 29)
    velocities = windows[0][0][:, BODY_POS.fields["body_vel_h"]].numpy()
    assert np.abs(velocities).max() > 0.05  # the robot moves: body velocities are recorded
    policy = DiffusionPolicy.load(checkpoint, robot_joints=g1.JOINT_NAMES)
    assert policy.layout == BODY_POS


def test_the_barrier_guards_the_key_bodies_among_all_thirty():
    margins = body_margins(None, BODY_POS.body_names)
    guarded = [name for name, m in zip(BODY_POS.body_names, margins, strict=True) if np.isfinite(m)]
    assert sorted(guarded) == sorted(g1.OBSTACLE_MARGINS) and (margins[~np.isfinite(margins)] < 0).all()
    with pytest.raises(KeyError, match="torso_link"):  # a mapping of the caller's names every body
        body_margins({"pelvis": 0.2}, ("pelvis", "torso_link"))


def test_fused_and_reference_plans_agree_and_the_controller_walks(body_pos_run):
    _, checkpoint = body_pos_run
    policy, fused_policy = DiffusionPolicy.load(checkpoint), DiffusionPolicy.load(checkpoint).use_fused()
    rng = np.random.default_rng(0)
    history = policy.denormalize(torch.from_numpy(rng.normal(size=(5, BODY_POS.dim + 29)).astype(np.float32) * 0.3))
    cost = WeightedSum(
        [(1.0, JoystickCost(0.5, 0.0, 0.2)), (1.5, ObstacleCost(ObstacleField([Cylinder(0.5, 0.1, 0.3)])))]
    )
    reference = policy.plan(history.numpy(), torch.Generator().manual_seed(4), policy.guide(cost))
    fused = fused_policy.plan(history.numpy(), torch.Generator().manual_seed(4), fused_policy.guide(cost))
    assert np.isfinite(reference).all()
    np.testing.assert_allclose(fused, reference, atol=2e-5)

    goal, obstacles = obstacle_course(0)  # the controller encodes the Body-Pos state and routes round obstacles
    backend = MujocoBackend()
    for obstacle in obstacles:
        backend.add_obstacle(obstacle)
    controller = DiffusionController(fused_policy, ControllerCfg(seed=0))
    state = backend.reset(seed=0)
    controller.reset(state, seed=0)
    controller.set_task(goal_task(goal, obstacles))
    for _ in range(5):
        state = backend.step(controller.act(state))
    assert controller.last_plan.shape == (16, BODY_POS.dim + 29) and np.isfinite(state.joint_pos).all()
    backend.close()
