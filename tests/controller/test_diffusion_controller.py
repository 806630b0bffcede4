import dataclasses

import numpy as np
import pytest

from bm_gym.controller import ControllerCfg, DiffusionController
from bm_gym.data import StateLayout
from bm_gym.diffusion import CPU, DiffusionPolicy, Normalizer, TrajectoryDenoiser
from bm_gym.robot import g1
from bm_gym.sim import RootPose
from bm_gym.utils.math import quat_from_yaw

LAYOUT = StateLayout()


@pytest.fixture
def untrained_policy():
    """Right shapes, untrained weights: tests the plumbing, not the walking."""
    norm = Normalizer(np.zeros(LAYOUT.dim), np.ones(LAYOUT.dim), np.array(g1.DEFAULT_JOINT_POS), np.full(29, 0.01))
    return DiffusionPolicy(CPU, LAYOUT, norm, TrajectoryDenoiser(CPU.denoiser, LAYOUT.dim, LAYOUT.action_dim))


def test_history_window_is_canonical_and_present_action_is_empty(untrained_policy, backend):
    controller = DiffusionController(untrained_policy)
    state = backend.reset(RootPose(pos=(4.0, -1.0, 0.78), quat=tuple(quat_from_yaw(2.0))))
    controller.reset(state)
    window, _ = controller.history_window(state)
    f = LAYOUT.fields
    assert window.shape == (5, LAYOUT.dim + LAYOUT.action_dim)
    np.testing.assert_allclose(window[:, f["root_pos_xy"]], 0.0, atol=1e-6)
    np.testing.assert_allclose(window[:, f["root_yaw_cs"]], [[1.0, 0.0]] * 5, atol=1e-6)
    np.testing.assert_array_equal(window[4, LAYOUT.dim :], 0.0)
    np.testing.assert_allclose(window[0, LAYOUT.dim :], g1.DEFAULT_JOINT_POS, atol=1e-6)


def test_act_returns_targets_and_records_latency(untrained_policy, backend):
    controller = DiffusionController(untrained_policy, ControllerCfg(actions_per_plan=2))
    state = backend.reset()
    controller.reset(state)
    for _ in range(4):
        targets = controller.act(state)
        assert targets.shape == (29,) and np.all(np.isfinite(targets))
        state = backend.step(targets)
    assert len(controller.plan_ms) == 2  # two actions per plan
    assert controller.last_plan.shape == (16, LAYOUT.dim + LAYOUT.action_dim)


def test_actions_per_plan_is_validated(untrained_policy):
    with pytest.raises(ValueError, match="actions_per_plan"):
        DiffusionController(untrained_policy, ControllerCfg(actions_per_plan=17))


def test_warm_start_is_the_previous_plan_advanced_and_reframed(untrained_policy, backend):
    with pytest.raises(ValueError, match="warm_start_step"):
        DiffusionController(untrained_policy, ControllerCfg(warm_start_step=10))
    controller = DiffusionController(untrained_policy, ControllerCfg(warm_start_step=5))
    state = backend.reset(RootPose(pos=(1.0, 2.0, 0.78), quat=tuple(quat_from_yaw(0.7))))
    controller.reset(state)
    assert controller._warm_start(LAYOUT.encode(state)) is None  # nothing to start from yet
    controller.act(state)
    plan = controller.last_plan
    # The robot has not moved, so the frame is the plan's: the warm start is the plan one step on.
    warm = controller._warm_start(LAYOUT.encode(state))
    np.testing.assert_allclose(warm, np.concatenate([plan[1:], plan[-1:]]), atol=1e-5)
    controller.act(state)  # and sampling starts from it
    assert np.all(np.isfinite(controller.last_plan))


def test_sampler_rejects_bad_warm_starts(untrained_policy):
    history = np.zeros((5, LAYOUT.dim + LAYOUT.action_dim), dtype=np.float32)
    with pytest.raises(ValueError, match="shape"):
        untrained_policy.plan(history, init=np.zeros((8, LAYOUT.dim + LAYOUT.action_dim)), start_step=3)
    with pytest.raises(ValueError, match="start_step"):
        untrained_policy.plan(history, init=np.zeros((16, LAYOUT.dim + LAYOUT.action_dim)), start_step=10)
    with pytest.raises(ValueError, match="init"):
        untrained_policy.plan(history, start_step=3)


def test_the_cost_that_guided_the_last_plan_is_kept_with_it(untrained_policy, backend):
    from bm_gym.guidance.costs import JoystickCost
    from bm_gym.guidance.tasks import VelocityTask

    controller = DiffusionController(untrained_policy, ControllerCfg(actions_per_plan=2))
    state = backend.reset()
    controller.reset(state)
    controller.act(state)
    assert controller.last_cost is None  # unguided
    controller.set_task(VelocityTask(0.5, 0.0, 0.2))
    state = backend.step(controller.act(state))  # second action of the unguided plan
    assert controller.last_cost is None
    controller.act(state)  # a new, guided plan
    assert controller.last_cost == JoystickCost(0.5, 0.0, 0.2)


def test_fused_plans_equal_reference_plans_along_a_closed_loop_episode(backend):
    """The reference path drives an obstacle course; at every plan the fused path, given the same history,
    noise generator state and cost, gives the same plan. Unit tests compare single plans; this covers what an
    episode brings on (routes that change, obstacles coming in range, costs near the goal)."""
    import torch

    from bm_gym.diffusion import SHIPPED_CHECKPOINT
    from bm_gym.eval.scenarios import goal_task, obstacle_course

    reference = DiffusionPolicy.load(SHIPPED_CHECKPOINT)
    fused = DiffusionPolicy.load(SHIPPED_CHECKPOINT).use_fused()
    differences = []
    plan = reference.plan

    def plan_both(history, generators, guides, init=None, start_step=0, action_start_step=None):
        copies = []
        for g in generators:
            copies.append(torch.Generator())
            copies[-1].set_state(g.get_state())
        planned = plan(history, generators, guides, init=init, start_step=start_step,
                       action_start_step=action_start_step)  # fmt: skip
        fused_guides = [None if g is None else fused.guide(g.cost, g.cfg) for g in guides]
        differences.append(np.abs(fused.plan(history, copies, fused_guides) - planned).max())
        return planned

    reference.plan = plan_both
    controller = DiffusionController(reference, ControllerCfg(seed=8, fused=False))
    goal, obstacles = obstacle_course(8)
    for obstacle in obstacles:
        backend.add_obstacle(obstacle)
    state = backend.reset(seed=8)
    controller.reset(state, seed=8)
    controller.set_task(goal_task(goal, obstacles))
    for _ in range(100):  # 2 s
        state = backend.step(controller.act(state))
    assert len(differences) == 100 and controller.last_cost is not None
    assert max(differences) < 2e-5  # float32 round-off; 700 plans of the whole episode: 1e-5 at most


def test_the_student_co_driver_takes_over_from_any_number_of_expert_steps(backend):
    """DAgger-style collection's student: it starts from the expert's recent steps (padded when there are fewer
    than its history) and walks on the episode's command with the checkpoint's guidance."""
    from bm_gym.controller import student_co_driver
    from bm_gym.diffusion import SHIPPED_CHECKPOINT

    student = student_co_driver(str(SHIPPED_CHECKPOINT), seed=0)
    state = backend.reset(seed=0)
    stand = np.array(g1.DEFAULT_JOINT_POS)
    student.begin([state, state], [stand, stand], seed=3)
    for _ in range(5):
        targets = student.act(state, np.array([0.5, 0.0, 0.0]))
        assert targets.shape == (29,) and np.isfinite(targets).all()
        state = backend.step(targets)
    assert student.controller.task.vx == 0.5
    with pytest.raises(ValueError, match="matching, non-empty steps"):
        student.begin([state], [], seed=3)


def test_a_co_driven_episode_does_not_depend_on_the_episodes_before_it(velocity_dir, tmp_path):
    """The student's noise is seeded per stretch from the episode's seed, so collection stays deterministic per
    episode index whatever the number of workers or the order of their episodes."""
    from bm_gym.controller import student_co_driver
    from bm_gym.data import CollectCfg, StudentCfg
    from bm_gym.data.collect import EpisodeRunner
    from bm_gym.diffusion import SHIPPED_CHECKPOINT

    student = StudentCfg(str(SHIPPED_CHECKPOINT), first_s=(0.5, 1.0), student_s=(0.5, 1.0), expert_s=(0.3, 0.6))
    cfg = CollectCfg(policy=str(velocity_dir), out=str(tmp_path / "d.h5"), episode_s=3.0, student=student)
    runner = EpisodeRunner(cfg, student_co_driver)
    runner.run(0)
    after_another = runner.run(1)
    alone = EpisodeRunner(cfg, student_co_driver).run(1)
    assert (~after_another.expert_driven).sum() > 25
    np.testing.assert_array_equal(after_another.states, alone.states)
    np.testing.assert_array_equal(after_another.actions, alone.actions)


def _record_guides(monkeypatch, policy) -> list:
    """(cost, guidance settings) of every guide the controller asks ``policy`` for, in order."""
    guides, guide = [], policy.guide
    monkeypatch.setattr(policy, "guide", lambda cost, cfg: guides.append((cost, cfg)) or guide(cost, cfg))
    return guides


def test_a_kick_eases_guidance_for_recovery_s_and_calm_steps_do_not(untrained_policy, backend, monkeypatch):
    from bm_gym.guidance.guide import GuidanceCfg
    from bm_gym.guidance.tasks import VelocityTask

    guidance = GuidanceCfg(scale=40.0, guided_steps=None, recovery_guided_steps=5, recovery_s=0.1)
    controller = DiffusionController(untrained_policy, ControllerCfg(guidance=guidance, onnxruntime=False))
    guides = _record_guides(monkeypatch, untrained_policy)
    controller.set_task(VelocityTask(0.0, 0.0, 0.0))
    state = backend.reset()
    controller.reset(state)

    def step(targets=None):
        return backend.step(np.asarray(g1.DEFAULT_JOINT_POS) if targets is None else targets)

    for _ in range(5):  # standing: the root barely moves
        controller.act(state)
        state = step()
    assert not controller.recovering() and {cfg.guided_steps for _, cfg in guides} == {None}
    assert controller.kicks_seen == 0
    backend.push(np.array([1.0, 0.0, 0.0]), np.zeros(3))
    state = step()
    guides.clear()
    controller.act(state)
    assert controller.recovering() and guides[-1][1] == guidance.recovering() and controller.kicks_seen == 1
    assert guides[-1][1].guided_steps == 5 and guides[-1][1].scale == 40.0
    for _ in range(int(0.1 / backend.control_dt) + 1):  # recovery_s later, the root still moving but slowing
        state = step()
    controller.act(state)
    assert not controller.recovering() and guides[-1][1] == guidance
    controller.reset(state)  # a new episode starts calm
    assert not controller.recovering()


def test_a_jolt_while_touching_an_obstacle_is_not_a_kick_and_touching_ends_the_easing(untrained_policy, backend):
    """Bumping into an obstacle jolts the root like a kick, but the barrier must stay whole to take it off."""
    from bm_gym.guidance.guide import GuidanceCfg

    guidance = GuidanceCfg(guided_steps=None, recovery_guided_steps=3, recovery_s=1.0)
    controller = DiffusionController(untrained_policy, ControllerCfg(guidance=guidance, onnxruntime=False))
    state = backend.reset()
    controller.reset(state)
    controller.act(state)
    backend.push(np.array([1.0, 0.0, 0.0]), np.zeros(3))
    state = backend.step(np.asarray(g1.DEFAULT_JOINT_POS))
    controller.act(dataclasses.replace(state, obstacle_contact=True))
    assert not controller.recovering() and controller.kicks_seen == 0

    backend.push(np.array([-2.0, 0.0, 0.0]), np.zeros(3))  # a kick in the open starts a recovery
    state = backend.step(np.asarray(g1.DEFAULT_JOINT_POS))
    controller.act(state)
    assert controller.recovering() and controller.kicks_seen == 1
    state = backend.step(np.asarray(g1.DEFAULT_JOINT_POS))
    controller.act(dataclasses.replace(state, obstacle_contact=True))  # pushed into an obstacle: whole again
    assert not controller.recovering()
    state = backend.step(np.asarray(g1.DEFAULT_JOINT_POS))
    controller.act(state)  # off the obstacle, within recovery_s of the kick: eased again
    assert controller.recovering() and controller.kicks_seen == 1


def test_guidance_is_never_eased_without_recovery_steps(untrained_policy, backend):
    from bm_gym.guidance.guide import GuidanceCfg

    controller = DiffusionController(untrained_policy, ControllerCfg(guidance=GuidanceCfg(recovery_guided_steps=None)))
    state = backend.reset()
    controller.reset(state)
    controller.act(state)
    backend.push(np.array([1.5, 0.0, 0.0]), np.zeros(3))
    state = backend.step(np.asarray(g1.DEFAULT_JOINT_POS))
    controller.act(state)
    assert controller.recovering()  # the kick is seen, but the settings stay what they are
    assert GuidanceCfg(recovery_guided_steps=None).recovering() == GuidanceCfg(recovery_guided_steps=None)


def test_the_checkpoint_velocity_ramp_shapes_the_joystick_target(untrained_policy, backend, monkeypatch):
    """GuidanceCfg.velocity_ramp reaches the cost of every plan; a robot's own settings can turn it off."""
    from bm_gym.guidance.guide import GuidanceCfg
    from bm_gym.guidance.tasks import VelocityTask

    guidance = GuidanceCfg(scale=40.0, velocity_ramp=0.25)
    controller = DiffusionController(untrained_policy, ControllerCfg(guidance=guidance, onnxruntime=False))
    guides = _record_guides(monkeypatch, untrained_policy)
    controller.set_task(VelocityTask(0.8, 0.0, 0.5))
    state = backend.reset()
    controller.reset(state)
    controller.act(state)
    cost = guides[-1][0]
    assert (cost.vx, cost.wz) == pytest.approx((0.25, 0.5))  # from standstill: 0.25 m/s ahead
    controller.set_task(VelocityTask(0.8, 0.0, 0.5), guidance.overridden(velocity_ramp=-1))
    controller.reset(state)
    controller.act(state)
    assert guides[-1][0].vx == 0.8


def test_the_checkpoint_stopping_distance_tells_a_goal_task_when_to_stop(untrained_policy, backend, monkeypatch):
    """GuidanceCfg.stop_delay / stop_deceleration (and recentre_radius) replace the goal task's own in what is planned
    (the task the caller gave stays as given); a walking robot 0.5 m short of the goal is told to stop or not."""
    from bm_gym.guidance.costs import JoystickCost
    from bm_gym.guidance.guide import GuidanceCfg
    from bm_gym.guidance.tasks import ArrivalCfg, WaypointTask

    walking = dataclasses.replace(backend.reset(), root_lin_vel_w=np.array([0.8, 0.0, 0.0]))
    goal = WaypointTask(float(walking.root_pos[0]) + 0.5, float(walking.root_pos[1]))
    # The task's own model: 0.8 x 0.1 + 0.64 / 2 = 0.40 m on, within 0.15 of the goal: told to stop now.
    assert isinstance(goal.cost(walking), JoystickCost)
    guides = _record_guides(monkeypatch, untrained_policy)
    hard_braking = GuidanceCfg(scale=40.0, stop_delay=0.0, stop_deceleration=2.0, recentre_radius=0.1)  # 0.16 m on
    controller = DiffusionController(untrained_policy, ControllerCfg(guidance=hard_braking, onnxruntime=False))
    controller.set_task(goal)
    assert controller.task is goal
    controller.reset(walking)
    controller.act(walking)
    assert not isinstance(guides[-1][0], JoystickCost)  # still approaching
    assert controller.robots[0].steered.arrival == ArrivalCfg(stop_delay=0.0, deceleration=2.0, recentre_radius=0.1)
    controller.set_task(goal, hard_braking.overridden(stop_delay=-1, stop_deceleration=-1, recentre_radius=-1))
    controller.reset(walking)
    controller.act(walking)
    assert isinstance(guides[-1][0], JoystickCost)
