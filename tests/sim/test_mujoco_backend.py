import dataclasses

import numpy as np
import pytest

from bm_gym.obstacles import Box, Cylinder
from bm_gym.robot import g1
from bm_gym.sim import DomainRandomizationCfg, MujocoBackend, MujocoBackendCfg, ObstaclePoolFull, PushCfg, RootPose

STAND = np.array(g1.DEFAULT_JOINT_POS)


def test_state_readout_shapes_and_frames(backend):
    state = backend.reset(RootPose(pos=(1.0, 2.0, 0.8)))
    assert state.joint_pos.shape == (29,) and state.joint_vel.shape == (29,)
    assert state.body_pos_w.shape == (len(g1.KEY_BODIES), 3) and state.body_quat_w.shape == (len(g1.KEY_BODIES), 4)
    np.testing.assert_allclose(state.root_pos, [1.0, 2.0, 0.8])
    np.testing.assert_allclose(state.projected_gravity, [0, 0, -1], atol=1e-9)
    np.testing.assert_allclose(state.body_pos_w[0], state.root_pos)  # pelvis is the root body
    state = backend.step(STAND)
    assert state.time == pytest.approx(0.02)
    assert state.foot_contact.dtype == bool


def test_step_rejects_bad_targets(backend):
    backend.reset()
    with pytest.raises(ValueError, match=r"shape \(29,\)"):
        backend.step(np.zeros(12))
    bad = STAND.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="left_knee_joint"):
        backend.step(bad)


def test_obstacles_are_added_moved_and_removed_while_running(backend):
    backend.reset()
    for _ in range(5):
        backend.step(STAND)
    t = backend.state().time
    h = backend.add_obstacle(Box(x=3.0, y=0.0, half_x=0.2, half_y=0.5, yaw=0.3))
    c = backend.add_obstacle(Cylinder(x=0.0, y=3.0, radius=0.3))
    assert set(backend.obstacles()) == {h, c}
    state = backend.step(STAND)
    assert state.time == pytest.approx(t + 0.02)  # no reset happened
    assert not state.obstacle_contact
    # Move the box onto the robot: contact is detected without any reset.
    backend.move_obstacle(h, Box(x=0.0, y=0.0, half_x=0.3, half_y=0.3))
    assert backend.step(STAND).obstacle_contact
    backend.remove_obstacle(h)
    assert set(backend.obstacles()) == {c}
    with pytest.raises(KeyError, match="no obstacle with handle"):
        backend.remove_obstacle(h)


def test_obstacle_pool_exhaustion_and_invalid_obstacles_raise():
    sim = MujocoBackend(MujocoBackendCfg(obstacle_pool=2))
    sim.reset()
    sim.add_obstacle(Cylinder(5, 5, 0.2))
    sim.add_obstacle(Cylinder(6, 5, 0.2))
    with pytest.raises(ObstaclePoolFull, match="slots are in use"):
        sim.add_obstacle(Cylinder(7, 5, 0.2))
    before = sim.obstacles()
    with pytest.raises(ObstaclePoolFull, match="3 cylinder obstacles requested"):
        sim.set_obstacles([Cylinder(1, 1, 0.2)] * 3)
    assert sim.obstacles() == before  # all or nothing
    assert sim.obstacle_capacity == {"box": 2, "cylinder": 2}
    with pytest.raises(ValueError, match="positive"):
        Cylinder(0, 0, -1.0)
    with pytest.raises(ValueError, match="non-finite"):
        Box(float("nan"), 0, 1, 1)


def test_offscreen_render_shows_the_robot_and_obstacles(backend):
    backend.reset()
    empty = backend.render(160, 120)
    assert empty.shape == (120, 160, 3) and empty.dtype == np.uint8
    assert empty.std() > 5  # robot and floor, not a blank frame
    backend.add_obstacle(Cylinder(x=1.0, y=1.0, radius=0.4, height=1.5))
    backend.step(STAND)
    with_obstacle = backend.render(160, 120)
    assert np.abs(with_obstacle.astype(int) - empty.astype(int)).mean() > 1.0


def test_domain_randomization_is_seeded_and_restored():
    cfg = DomainRandomizationCfg()
    sim = MujocoBackend(MujocoBackendCfg(randomization=cfg))
    sim.reset(seed=3)
    friction_a, mass_a = sim.model.geom_friction.copy(), sim.model.body_mass.copy()
    kp_a = sim.model.actuator_gainprm[:, 0].copy()
    sim.reset(seed=3)
    np.testing.assert_array_equal(sim.model.geom_friction, friction_a)
    np.testing.assert_array_equal(sim.model.body_mass, mass_a)
    sim.reset(seed=4)
    assert not np.array_equal(sim.model.body_mass, mass_a)
    assert not np.array_equal(sim.model.actuator_gainprm[:, 0], kp_a)
    nominal = MujocoBackend()
    sim.set_randomization(None)
    sim.reset()
    np.testing.assert_allclose(sim.model.body_mass, nominal.model.body_mass)
    np.testing.assert_allclose(sim.model.actuator_gainprm[:, 0], nominal.model.actuator_gainprm[:, 0])


def test_pushes_happen_at_random_intervals():
    pushes_only = dataclasses.replace(DomainRandomizationCfg.off(), push=PushCfg())
    sim = MujocoBackend(MujocoBackendCfg(randomization=pushes_only))
    sim.reset(seed=0)
    speeds = []
    for _ in range(200):  # 4 s: at least one push (interval 1-3 s)
        speeds.append(np.linalg.norm(sim.step(STAND).root_lin_vel_w[:2]))
    assert max(speeds) > 0.1
