"""The paper's protocols under one harness: the Stage 1 expert and the diffusion controller as drivers."""

import numpy as np
import pytest

from bm_gym.eval.protocols import (
    JOYSTICK_SEGMENTS,
    TOUR_LEGS,
    DiffusionDriver,
    ExpertDriver,
    joystick_command,
    run_joystick_profile,
    run_joystick_protocol,
    run_push,
    run_tour,
    run_walk_perturb,
    tour_command,
    tour_goals,
)
from bm_gym.stage1 import Stage1Policy


@pytest.fixture(scope="module")
def expert(velocity_dir):
    return ExpertDriver(Stage1Policy.load(velocity_dir))


def test_walk_perturb_kicks_once_a_second_and_the_expert_walks_on(backend, expert):
    result = run_walk_perturb(backend, expert, seed=3, duration_s=4.0)
    kicks = result.extra["kicks"]
    assert result.success and not result.fell and len(kicks) == 3 and all(0 <= k <= 0.5 for k in kicks)
    assert run_walk_perturb(backend, expert, seed=3, duration_s=4.0).extra["kicks"] == kicks  # seeded


def test_joystick_protocol_judges_every_segment(backend, expert):
    result = run_joystick_protocol(backend, expert, seed=0)
    assert set(result.extra["followed"]) == {name for name, *_ in JOYSTICK_SEGMENTS}
    assert result.success, result.extra  # the expert follows all four
    assert result.extra["achieved"]["forward"] > 0.25 and result.extra["achieved"]["turn right"] < -0.5


def test_joystick_profile_has_steps_and_ramps():
    assert joystick_command(1.0) == (0.0, 0.0)
    assert joystick_command(3.0) == (0.3, 0.0)  # halfway up the ramp to 0.6
    assert joystick_command(5.0) == (0.6, 0.0)
    assert joystick_command(10.0) == (0.3, 0.5)  # a step
    assert joystick_command(15.0) == (0.0, -0.6)  # turning in place


def test_the_expert_walks_the_joystick_profile_that_the_student_is_judged_on(backend, expert):
    result = run_joystick_profile(backend, expert, seed=0)
    assert result.success and result.seconds == pytest.approx(30.0)
    # the expert's own errors on raw commands (0.10 m/s, 0.12 rad/s): what its student is measured against
    assert 0 < result.extra["speed_error"] < 0.2 and 0 < result.extra["yaw_rate_error"] < 0.2, result.extra


def test_a_hard_kick_topples_the_robot_and_counts_as_a_fall(backend, expert):
    assert run_push(backend, expert, seed=0, kick=0.3, after_s=2.0).success
    assert run_push(backend, expert, seed=0, kick=4.0, after_s=2.0).fell


def test_the_diffusion_controller_runs_the_same_protocols(backend):
    from bm_gym.controller import DiffusionController
    from bm_gym.diffusion import SHIPPED_CHECKPOINT, DiffusionPolicy
    from bm_gym.guidance import GuidanceCfg

    driver = DiffusionDriver(DiffusionController(DiffusionPolicy.load(SHIPPED_CHECKPOINT)), GuidanceCfg())
    result = run_walk_perturb(backend, driver, seed=1, duration_s=2.0)
    assert result.success and len(result.extra["kicks"]) == 1
    assert np.isfinite(driver.controller.plan_ms[-1])


def test_omnidirectional_check_measures_speed_distance_and_drift_per_command(backend, expert):
    from bm_gym.eval.protocols import OMNI_COMMANDS, run_omnidirectional

    result = run_omnidirectional(backend, expert, seed=0, duration_s=3.0, settle_s=1.0)
    commands = result.extra["commands"]
    assert result.success and set(commands) == {name for name, *_ in OMNI_COMMANDS}
    assert commands["forward 1.0"]["distance"] > 1.5 and commands["sideways 0.5"]["distance"] > 0.5
    assert commands["forward 1.0"]["speed_error"] < 0.2 and all(c["drift"] >= 0 for c in commands.values())


def test_tour_goals_are_small_operator_moves_from_the_previous_goal():
    goals = tour_goals(3, count=12)
    assert goals == tour_goals(3, count=12) and goals != tour_goals(4, count=12)
    assert goals[0][0] == "forward" and {g[0] for g in goals} <= {name for name, *_ in TOUR_LEGS}
    previous = (0.0, 0.0, 0.0)
    for kind, x, y, yaw in goals:
        step = np.hypot(x - previous[0], y - previous[1])
        turn = abs(np.remainder(yaw - previous[2] + np.pi, 2 * np.pi) - np.pi)
        if kind == "turn":
            assert step < 1e-9 and np.pi / 4 - 1e-9 <= turn <= np.pi / 2 + 1e-9
        else:
            assert 0.3 - 1e-9 <= step <= 1.2 + 1e-9 and turn < 1e-9
        previous = (x, y, yaw)


def test_tour_follower_steers_towards_the_goal_in_the_robot_frame(backend):
    state = backend.reset()  # at the origin facing +x
    assert tour_command(state, (1.0, 0.0, 0.0))[0] == pytest.approx(0.8)  # ahead: forward, saturated
    assert tour_command(state, (-1.0, 0.0, 0.0))[0] == pytest.approx(-0.4)  # behind: backing up, slower
    vx, vy, wz = tour_command(state, (0.0, 0.3, 0.0))
    assert vx == 0.0 and vy == pytest.approx(0.36) and wz == 0.0  # left: a sidestep
    assert tour_command(state, (0.0, 0.0, 1.2))[2] == pytest.approx(1.0)  # a turn in place, saturated
    assert tour_command(state, (0.02, 0.0, 0.0)) == (0.0, 0.0, 0.0)  # inside the deadband


def test_the_expert_follows_a_tour(backend, expert):
    result = run_tour(backend, expert, seed=0, count=3)
    assert not result.fell and len(result.extra["legs"]) == 3
    assert all(leg["error"] < 0.3 for leg in result.extra["legs"]), result.extra


def test_the_holds_reach_either_driver_through_the_same_wrapper(backend):
    """HoldDriver resets its holds at every start and hands the driver the held command."""
    from bm_gym.eval.protocols import HoldDriver
    from bm_gym.guidance.tasks import CommandHolds, SpeedHoldCfg

    class Recording:
        def __init__(self):
            self.commands = []

        def start(self, backend, seed):
            return backend.reset(seed=seed)

        def act(self, state, command):
            self.commands.append(command)
            return np.zeros(len(state.joint_pos))

    inner = Recording()
    driver = HoldDriver(inner, CommandHolds(speed=SpeedHoldCfg(settle_s=0.0)))
    state = driver.start(backend, seed=0)
    driver.act(state, (1.0, 0.0, 0.0))
    assert driver.holds.heading.heading == pytest.approx(state.yaw) and inner.commands == [(1.0, 0.0, 0.0)]
    state = backend.step(np.asarray(state.joint_pos))
    driver.act(state, (1.0, 0.0, 0.0))
    assert inner.commands[-1][0] > 1.0, "a robot slower than its command is asked for more"
    driver.start(backend, seed=1)
    assert driver.holds.heading.heading is None and driver.holds.speed.walk.setpoint is None  # a new run holds its own
    unheld = HoldDriver(inner, CommandHolds(None, None))
    unheld.act(state, (0.3, 0.1, 0.2))
    assert inner.commands[-1] == (0.3, 0.1, 0.2)


def test_the_handover_probe_measures_what_happens_after_the_expert_lets_go(backend, expert, capsys):
    """The expert goes on walking sideways after its own hand-over; the student starts from the expert's history,
    guided or not; the tool prints one (forward, left, yaw rate) per second."""
    from bm_gym.controller import DiffusionController
    from bm_gym.diffusion import SHIPPED_CHECKPOINT, DiffusionPolicy
    from bm_gym.eval.protocols import run_handover
    from tools import probe_handover

    reference = run_handover(backend, expert.policy, None, seed=0, command=(0.0, 0.5, 0.0), lead_s=2.0, after_s=2.0)
    assert reference.success and len(reference.extra["per_second"]) == 2
    assert all(0.4 < left < 0.6 for _, left, _ in reference.extra["per_second"])
    policy = DiffusionPolicy.load(SHIPPED_CHECKPOINT)
    controller = DiffusionController(policy)
    student = run_handover(backend, expert.policy, controller, seed=0, command=(0.0, 0.5, 0.0),
                           guidance=policy.guidance, lead_s=2.0, after_s=1.0)  # fmt: skip
    assert controller.task.vy == 0.5 and len(student.extra["per_second"]) == 1
    unguided = run_handover(backend, expert.policy, controller, seed=0, command=(0.5, 0.0, 0.0), lead_s=1.0,
                            after_s=1.0)  # fmt: skip
    assert controller.task is None and unguided.seconds == pytest.approx(2.0)
    assert probe_handover.main(["--command", "0", "0.5", "0", "--controller", "expert", "--after-s", "1"]) == 0
    assert "seed 0: (" in capsys.readouterr().out
    assert probe_handover.main(["--command", "0", "nan", "0"]) == 2
    assert probe_handover.main(["--command", "0", "0.5", "0", "--checkpoint", "/no/such/folder"]) == 1
