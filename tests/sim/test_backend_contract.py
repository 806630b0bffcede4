"""The :class:`~bm_gym.sim.SimBackend` contract, one suite for every backend.

``mujoco`` runs everywhere. ``isaaclab`` runs where Isaac Lab 3 imports (the Python 3.12 venv of
``bash scripts/setup.sh --isaaclab``; ``.ci/run`` runs this file there) and is skipped elsewhere. Isaac Lab's
simulation is a process-wide singleton, so each backend is built once per session and every test starts from a
clean slate: nominal gains, no randomization, no obstacles.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os

import numpy as np
import pytest

from bm_gym.obstacles import Box, Cylinder
from bm_gym.robot import g1
from bm_gym.sim import DomainRandomizationCfg, ObstaclePoolFull, PushCfg, RootPose, has_fallen, make_backend
from bm_gym.utils.math import quat_from_yaw

STAND = np.array(g1.DEFAULT_JOINT_POS)
ISAACLAB = importlib.util.find_spec("isaaclab") is not None
NOMINAL_KP = np.array([g1.actuator_group(n).stiffness for n in g1.JOINT_NAMES])
NOMINAL_KD = np.array([g1.actuator_group(n).damping for n in g1.JOINT_NAMES])

pytestmark = pytest.mark.parametrize(
    "sim",
    ["mujoco", pytest.param("isaaclab", marks=pytest.mark.skipif(not ISAACLAB, reason="Isaac Lab 3 not importable "
                                                                  "here (bash scripts/setup.sh --isaaclab)"))],
    indirect=True,
)  # fmt: skip


@pytest.fixture(scope="session")
def built_backends():
    """One backend of each kind for the whole session, closed at its end."""
    built: dict = {}
    yield built
    for backend in built.values():
        backend.close()


@pytest.fixture
def sim(request, built_backends):
    """The session's backend of this kind, at nominal settings with no obstacles."""
    name = request.param
    if name not in built_backends:
        # BM_GYM_ISAACLAB_SOLVER=mujoco_warp runs the suite on MuJoCo-Warp kernels (slow on a CPU: minutes).
        solver = os.environ.get("BM_GYM_ISAACLAB_SOLVER") if name == "isaaclab" else None
        built_backends[name] = make_backend(name, obstacle_pool=4, solver=solver)
    backend = built_backends[name]
    backend.set_randomization(None)
    backend.set_pd_gains(list(g1.JOINT_NAMES), NOMINAL_KP, NOMINAL_KD)
    backend.clear_obstacles()
    backend.reset()
    return backend


def _walk(backend, policy, command, seconds: float, seed: int = 0):
    policy.apply_gains(backend)
    state = backend.reset(seed=seed)
    policy.reset()
    start, yaw, fell = state.root_pos.copy(), 0.0, False
    for _ in range(round(seconds / backend.control_dt)):
        state = backend.step(policy.act(state, command))
        yaw += state.root_ang_vel_b[2] * backend.control_dt
        fell |= has_fallen(state)
    return state.root_pos[:2] - start[:2], yaw, fell


def test_standing_pose_and_readout(sim):
    state = sim.reset(RootPose(pos=(1.0, 2.0, 0.8)))
    assert state.joint_pos.shape == (29,) and state.joint_vel.shape == (29,)
    k = len(g1.BODY_NAMES)
    assert sim.body_names == g1.BODY_NAMES and state.body_quat_w.shape == (k, 4)
    assert state.body_pos_w.shape == state.body_lin_vel_w.shape == (k, 3)
    np.testing.assert_allclose(state.root_pos, [1.0, 2.0, 0.8], atol=1e-5)
    np.testing.assert_allclose(state.root_quat, [1, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(state.projected_gravity, [0, 0, -1], atol=1e-6)
    np.testing.assert_allclose(state.joint_pos, STAND, atol=1e-5)
    np.testing.assert_allclose(state.body_pos_w[0], state.root_pos, atol=1e-5)  # pelvis is the root body
    for _ in range(10):
        state = sim.step(STAND)
    assert state.time == pytest.approx(0.2)
    assert state.foot_contact.dtype == bool and state.foot_contact.all()  # standing on both feet
    assert 0.7 < state.root_pos[2] < 0.8 and not has_fallen(state)
    np.testing.assert_allclose(state.joint_pos, STAND, atol=0.1)  # PD joints sag a little under gravity
    # The feet are below the knees, the hands at hip height: key bodies are where the names say.
    names = list(g1.BODY_NAMES)
    feet = state.body_pos_w[[names.index(n) for n in g1.FEET]]
    assert (feet[:, 2] < 0.1).all() and feet[0, 1] > feet[1, 1]  # left foot on the +y side


def test_body_velocities_are_the_rates_of_the_body_positions(sim, velocity_dir):
    from bm_gym.stage1 import Stage1Policy

    policy = Stage1Policy.load(velocity_dir)
    policy.apply_gains(sim)
    state = sim.reset(seed=0)
    policy.reset()
    positions, velocities, root = [], [], []
    for _ in range(60):  # walking forward and turning: every body moves
        state = sim.step(policy.act(state, (0.6, 0.0, 0.8)))
        positions.append(state.body_pos_w)
        velocities.append(state.body_lin_vel_w)
        root.append(state.root_lin_vel_w)
    positions, velocities = np.array(positions[30:]), np.array(velocities[30:])
    rates = (positions[2:] - positions[:-2]) / (2 * sim.control_dt)  # central differences [T, K, 3]
    error = np.abs(rates - velocities[1:-1])
    assert np.abs(velocities).max() > 0.5 and np.median(error) < 0.01 and error.max() < 0.3, error.max(axis=(0, 2))
    pelvis = g1.BODY_NAMES.index(g1.ROOT_BODY)
    assert np.median(np.abs(velocities[:, pelvis] - np.array(root[30:]))) < 0.01  # the root body moves with the root


def test_bad_targets_are_rejected(sim):
    with pytest.raises(ValueError, match=r"shape \(29,\)"):
        sim.step(np.zeros(12))
    bad = STAND.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="left_knee_joint"):
        sim.step(bad)


def test_per_joint_gains_reach_the_solver(sim):
    names = ["left_elbow_joint", "right_knee_joint"]
    kp, kd = np.array([7.0, 150.0]), np.array([0.5, 4.0])
    sim.set_pd_gains(names, kp, kd)
    got_kp, got_kd = sim.pd_gains(names)
    np.testing.assert_allclose(got_kp, kp)
    np.testing.assert_allclose(got_kd, kd)
    applied_kp, applied_kd = sim.applied_pd_gains()
    idx = g1.joint_index_map(names)
    np.testing.assert_allclose(applied_kp[idx], kp, rtol=1e-5)
    np.testing.assert_allclose(applied_kd[idx], kd, rtol=1e-5)
    # Dynamically: a stiffer elbow follows a target step further in 40 ms.
    elbow = g1.JOINT_NAMES.index("left_elbow_joint")
    moved = {}
    for scale in (0.05, 1.0):  # below the elbow's 25 N m effort limit: saturation is another matter
        sim.set_pd_gains(["left_elbow_joint"], [NOMINAL_KP[elbow] * scale], [NOMINAL_KD[elbow] * scale])
        state = sim.reset()
        target = STAND.copy()
        target[elbow] += 0.5
        for _ in range(2):
            state = sim.step(target)
        moved[scale] = state.joint_pos[elbow] - STAND[elbow]
    assert moved[1.0] - moved[0.05] > 0.05, moved  # both backends: 0.209 against 0.118 rad


def test_obstacles_are_added_moved_resized_and_removed_while_running(sim):
    for _ in range(5):
        sim.step(STAND)
    t = sim.state().time
    h = sim.add_obstacle(Box(x=3.0, y=0.0, half_x=0.2, half_y=0.5, yaw=0.3))
    c = sim.add_obstacle(Cylinder(x=0.0, y=3.0, radius=0.3))
    assert set(sim.obstacles()) == {h, c}
    state = sim.step(STAND)
    assert state.time == pytest.approx(t + 0.02)  # no reset happened
    assert not state.obstacle_contact
    sim.move_obstacle(h, Box(x=0.0, y=0.0, half_x=0.3, half_y=0.3))  # onto the robot
    assert sim.step(STAND).obstacle_contact
    sim.remove_obstacle(h)
    assert set(sim.obstacles()) == {c}
    sim.reset()  # the box shoved the robot; obstacles stay through a reset
    assert set(sim.obstacles()) == {c} and not sim.step(STAND).obstacle_contact
    # Resizing: the same cylinder slot, far away and small, then grown until it reaches the robot.
    sim.move_obstacle(c, Cylinder(x=1.0, y=0.0, radius=0.2))
    assert not sim.step(STAND).obstacle_contact
    sim.move_obstacle(c, Cylinder(x=1.0, y=0.0, radius=0.95))
    assert sim.step(STAND).obstacle_contact
    with pytest.raises(KeyError, match="no obstacle with handle"):
        sim.remove_obstacle(h)


def test_a_robot_shoved_into_a_wall_is_stopped_by_it(sim):
    """Obstacles are solid and static: not passed through, not thrown back (a fault of kinematic free bodies)."""
    sim.add_obstacle(Box(x=0.55, y=0.0, half_x=0.1, half_y=1.5, height=2.0))  # wall face 0.45 m ahead, 3 m wide
    sim.reset()
    sim.push(np.array([1.5, 0.0, 0.0]), np.zeros(3))
    touched, fastest, furthest = False, 0.0, -np.inf
    for _ in range(40):
        state = sim.step(STAND)
        touched |= state.obstacle_contact
        fastest = max(fastest, float(np.linalg.norm(state.root_lin_vel_w)))
        furthest = max(furthest, *state.body_pos_w[:, 0])
    assert touched and furthest < 0.6 and fastest < 2.0, (touched, furthest, fastest)


def test_obstacle_pool_is_all_or_nothing(sim):
    capacity = sim.obstacle_capacity["cylinder"]
    handles = [sim.add_obstacle(Cylinder(5 + i, 5, 0.2)) for i in range(capacity)]
    with pytest.raises(ObstaclePoolFull, match="slots are in use"):
        sim.add_obstacle(Cylinder(20, 5, 0.2))
    before = sim.obstacles()
    with pytest.raises(ObstaclePoolFull, match=f"{capacity + 1} cylinder obstacles requested"):
        sim.set_obstacles([Cylinder(1, 1, 0.2)] * (capacity + 1))
    assert sim.obstacles() == before and set(before) == set(handles)


def test_push_adds_world_linear_and_body_angular_velocity(sim):
    yaw = np.pi / 2
    sim.reset(RootPose(quat=tuple(quat_from_yaw(yaw))))
    sim.push(np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 0.0]))
    state = sim.state()
    np.testing.assert_allclose(state.root_lin_vel_w[:2], [1.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(state.root_lin_vel_b[:2], [0.0, -1.0], atol=1e-4)  # the robot faces +y
    state = sim.step(STAND)
    assert state.root_lin_vel_w[0] > 0.5 and state.pushed, "the step after a push reports it"
    assert not sim.step(STAND).pushed
    sim.reset()
    sim.push(np.zeros(3), np.array([0.0, 0.0, 1.5]))
    np.testing.assert_allclose(sim.state().root_ang_vel_b, [0.0, 0.0, 1.5], atol=1e-4)


def test_randomization_is_seeded_and_undone(sim):
    sim.set_randomization(dataclasses.replace(DomainRandomizationCfg(), push=None))
    sim.reset(seed=3)
    kp_a, _ = sim.applied_pd_gains()
    sim.reset(seed=3)
    np.testing.assert_allclose(sim.applied_pd_gains()[0], kp_a)
    sim.reset(seed=4)
    assert not np.allclose(sim.applied_pd_gains()[0], kp_a)
    assert np.all(np.abs(kp_a / NOMINAL_KP - 1) <= 0.1 + 1e-6)
    sim.set_randomization(None)
    sim.reset()
    np.testing.assert_allclose(sim.applied_pd_gains()[0], NOMINAL_KP, rtol=1e-5)


def test_a_randomized_reset_keeps_the_given_pose(sim):
    """Randomization is drawn at reset and must not move the robot off the pose it is reset to."""
    sim.set_randomization(dataclasses.replace(DomainRandomizationCfg(), push=None))
    joints = STAND.copy()
    joints[g1.JOINT_NAMES.index("left_elbow_joint")] = 0.5
    state = sim.reset(RootPose(pos=(1.0, 2.0, 0.8)), joints, seed=1)
    np.testing.assert_allclose(state.root_pos, [1.0, 2.0, 0.8], atol=1e-5)
    np.testing.assert_allclose(state.joint_pos, joints, atol=0.02)  # encoder bias at most 0.015 rad


def test_random_pushes_arrive(sim):
    sim.set_randomization(dataclasses.replace(DomainRandomizationCfg.off(), push=PushCfg()))
    sim.reset(seed=0)
    states = [sim.step(STAND) for _ in range(200)]  # 4 s: at least one push
    assert max(np.linalg.norm(s.root_lin_vel_w[:2]) for s in states) > 0.1
    pushed = [k for k, s in enumerate(states) if s.pushed]
    assert 1 <= len(pushed) <= 4 and all(np.diff(pushed) >= 45), "one every 1-3 s"
    assert not sim.reset(seed=0).pushed


def test_render_shows_robot_and_obstacles(sim):
    empty = sim.render(160, 120)
    assert empty.shape == (120, 160, 3) and empty.dtype == np.uint8 and empty.std() > 5
    sim.add_obstacle(Cylinder(x=1.0, y=1.0, radius=0.4, height=1.5))
    sim.step(STAND)
    assert np.abs(sim.render(160, 120).astype(int) - empty.astype(int)).mean() > 1.0


def test_stage1_velocity_policy_walks(sim, velocity_dir):
    from bm_gym.stage1 import Stage1Policy

    policy = Stage1Policy.load(velocity_dir)
    moved, _, fell = _walk(sim, policy, (1.0, 0.0, 0.0), 10.0)
    assert not fell and moved[0] >= 8.0, moved


def test_backends_agree_on_the_same_commands(sim, velocity_dir):
    """The Stage 1 velocity policy's distances and turns in this backend within 10 % of MuJoCo's."""
    from bm_gym.sim import MujocoBackend
    from bm_gym.stage1 import Stage1Policy

    policy = Stage1Policy.load(velocity_dir)
    reference = MujocoBackend()
    for command, seconds in (((0.0, 0.5, 0.0), 6.0), ((-0.5, 0.0, 0.0), 6.0), ((0.0, 0.0, -0.8), 6.0)):
        moved, yaw, fell = _walk(sim, policy, command, seconds)
        ref_moved, ref_yaw, ref_fell = _walk(reference, policy, command, seconds)
        assert not fell and not ref_fell
        if command[2]:
            assert yaw == pytest.approx(ref_yaw, rel=0.1), (command, yaw, ref_yaw)
        else:
            distance, ref_distance = np.linalg.norm(moved), np.linalg.norm(ref_moved)
            assert distance == pytest.approx(ref_distance, rel=0.1), (command, moved, ref_moved)


def _shipped_controller(seed: int):
    from bm_gym.controller import ControllerCfg, DiffusionController
    from bm_gym.diffusion.policy import SHIPPED_CHECKPOINT, DiffusionPolicy

    policy = DiffusionPolicy.load(SHIPPED_CHECKPOINT, robot_joints=g1.JOINT_NAMES)
    return DiffusionController(policy, ControllerCfg(seed=seed))


def test_shipped_diffusion_controller_walks_a_minute_unguided(sim):
    controller = _shipped_controller(seed=0)
    state = sim.reset(seed=0)
    controller.reset(state, seed=0)
    for _ in range(round(60.0 / sim.control_dt)):
        state = sim.step(controller.act(state))
        assert not has_fallen(state), f"fell at t={state.time:.2f} s"


def test_shipped_diffusion_controller_solves_an_obstacle_course(sim):
    from bm_gym.eval.scenarios import obstacle_course, run_waypoint
    from bm_gym.guidance.guide import GuidanceCfg

    goal, obstacles = obstacle_course(0)
    result = run_waypoint(sim, _shipped_controller(seed=0), 0, GuidanceCfg(), obstacles=obstacles, goal=goal,
                          timeout_s=30.0, navigator="navigate")  # fmt: skip
    assert result.success and result.collisions == 0 and not result.fell, result
