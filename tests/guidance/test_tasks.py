import math

import numpy as np
import pytest
import torch

from bm_gym.data import StateLayout
from bm_gym.guidance import Trajectory
from bm_gym.guidance.tasks import AvoidObstaclesTask, CombinedTask, VelocityTask, WaypointTask
from bm_gym.obstacles import Cylinder
from bm_gym.sim import RootPose
from bm_gym.utils.math import quat_from_yaw


def test_waypoint_task_expresses_the_goal_in_the_robot_frame(backend):
    state = backend.reset(RootPose(pos=(1.0, 1.0, 0.78), quat=tuple(quat_from_yaw(math.pi / 2))))
    cost = WaypointTask(1.0, 3.0).cost(state)  # 2 m straight ahead of a robot facing +y
    assert cost.goal_x == pytest.approx(2.0, abs=1e-6) and cost.goal_y == pytest.approx(0.0, abs=1e-6)


def test_obstacle_task_sees_obstacles_from_the_robot(backend):
    state = backend.reset(RootPose(pos=(2.0, 0.0, 0.78), quat=tuple(quat_from_yaw(math.pi))))
    task = AvoidObstaclesTask((Cylinder(1.0, 0.0, 0.2),))  # 1 m in front of a robot facing -x
    distance = task.cost(state).field.distance(torch.tensor([[1.0, 0.0]]))
    np.testing.assert_allclose(distance.numpy(), [-0.2], atol=1e-5)
    combined = CombinedTask(((1.0, WaypointTask(0.0, 0.0)), (2.0, task))).cost(state)
    layout = StateLayout()
    x = torch.zeros(1, 16, layout.dim + layout.action_dim)
    x[..., layout.fields["root_yaw_cs"].start] = 1.0
    assert torch.isfinite(combined(Trajectory(layout, x))).all()


def test_bad_commands_are_rejected():
    with pytest.raises(ValueError, match="velocity command"):
        VelocityTask(float("nan"))
    with pytest.raises(ValueError, match="waypoint"):
        WaypointTask(1.0, float("inf"))


def test_goal_tasks_stand_at_the_goal_and_turn_to_its_heading(backend):
    from bm_gym.guidance import JoystickCost, WaypointCost, WeightedSum
    from bm_gym.guidance.tasks import ArrivalCfg, NavigateTask

    state = backend.reset(RootPose(pos=(1.0, 1.0, 0.78), quat=tuple(quat_from_yaw(0.0))))
    far = WaypointTask(3.0, 1.0).cost(state)
    assert isinstance(far, WaypointCost)  # 2 m away: approach (Eq. 8)
    held = WaypointTask(1.2, 1.1).cost(state)  # 0.22 m away: stand
    assert isinstance(held, JoystickCost) and (held.vx, held.vy, held.wz) == (0.0, 0.0, 0.0)
    turning = WaypointTask(1.2, 1.1, yaw=1.0).cost(state)  # and turn left to the goal's heading, rate-limited,
    assert turning.wz == pytest.approx(ArrivalCfg().max_yaw_rate)  # stepping towards the goal at 0.2 m/s at most
    np.testing.assert_allclose([turning.vx, turning.vy], 0.2 * np.array([0.2, 0.1]) / np.hypot(0.2, 0.1))
    near = WaypointTask(1.1, 1.05, yaw=1.0).cost(state)  # 0.11 m off: 1 (m/s)/m, under the bound
    np.testing.assert_allclose([near.vx, near.vy], [0.1, 0.05], atol=1e-9)
    assert isinstance(WaypointTask(1.2, 1.1, arrival=ArrivalCfg(radius=0.0)).cost(state), WaypointCost)
    navigate = NavigateTask(1.2, 1.1, obstacles=(Cylinder(3.0, 3.0, 0.3),), yaw=-0.2).cost(state)
    assert isinstance(navigate, WeightedSum) and navigate.terms[0][1].wz == pytest.approx(-ArrivalCfg().min_yaw_rate)
    assert WaypointTask(1.2, 1.1, yaw=0.05).cost(state).wz == 0.0  # within the heading tolerance
    # Recentring: a holding robot that crept past the dead band is pulled back as in a turn; within it, it stands.
    recentre = ArrivalCfg(recentre_radius=0.15)
    pulled = WaypointTask(1.2, 1.1, arrival=recentre).cost(state)  # 0.22 m off, without a heading
    np.testing.assert_allclose(
        [pulled.vx, pulled.vy, pulled.wz], [*(0.2 * np.array([0.2, 0.1]) / np.hypot(0.2, 0.1)), 0]
    )
    pulled = WaypointTask(1.2, 1.1, yaw=0.05, arrival=recentre).cost(state)  # turned to the heading already
    assert pulled.vx > 0 and pulled.wz == 0.0
    standing = WaypointTask(1.1, 1.05, arrival=recentre).cost(state)  # 0.11 m off: within the dead band
    assert (standing.vx, standing.vy, standing.wz) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="ArrivalCfg.recentre_radius"):
        ArrivalCfg(recentre_radius=-0.1)
    with pytest.raises(ValueError, match="ArrivalCfg.radius"):
        ArrivalCfg(radius=-1.0)
    with pytest.raises(ValueError, match="ArrivalCfg.stop_radius"):
        ArrivalCfg(radius=0.1)  # the stop radius (0.15) would lie outside the goal radius
    with pytest.raises(ValueError, match="ArrivalCfg.deceleration"):
        ArrivalCfg(deceleration=0.0)
    with pytest.raises(ValueError, match="goal heading"):
        WaypointTask(1.0, 1.0, yaw=float("nan"))


def test_a_walled_in_goal_has_no_route_and_the_task_stands_still(backend):
    from bm_gym.eval.scenarios import walled_in_course
    from bm_gym.guidance import JoystickCost
    from bm_gym.guidance.tasks import NavigateTask

    state = backend.reset(seed=0)
    walled = NavigateTask(3.0, 0.0, obstacles=tuple(walled_in_course((3.0, 0.0))))
    assert not walled.route_exists(state)
    hold = walled.cost(state).terms[0][1]
    assert isinstance(hold, JoystickCost) and (hold.vx, hold.vy, hold.wz) == (0.0, 0.0, 0.0)
    open_wall = NavigateTask(3.0, 0.0, obstacles=tuple(walled_in_course((3.0, 0.0))[1:]))  # one wall removed
    assert open_wall.route_exists(state) and open_wall.command(state) != (0.0, 0.0)


def test_arrival_stops_a_moving_robot_where_it_would_come_to_rest_at_the_goal(backend):
    """A robot at rest holds anywhere within the goal radius; a moving one is told to stop from where it would
    come to rest (position + speed x delay + speed^2 / (2 deceleration)), or once it is passing the goal."""
    import dataclasses

    from bm_gym.guidance.tasks import ArrivalCfg

    arrival = ArrivalCfg()  # radius 0.3, stop radius 0.15, 0.1 s + v^2 / (2 x 1 m/s^2)
    standing = backend.reset(RootPose(pos=(0.0, 0.0, 0.78), quat=tuple(quat_from_yaw(0.0))))

    def moving(vx: float, vy: float = 0.0):
        return dataclasses.replace(standing, root_lin_vel_w=np.array([vx, vy, 0.0]))

    assert arrival.arrived(standing, 0.25, 0.0) and not arrival.arrived(standing, 0.35, 0.0)
    # Walking at 0.5 m/s it comes to rest 0.05 + 0.125 = 0.175 m on: told to stop at 0.3 m, not at 0.45 m.
    np.testing.assert_allclose(arrival.rest_point(moving(0.5)), [0.175, 0.0])
    assert arrival.arrived(moving(0.5), 0.3, 0.0) and not arrival.arrived(moving(0.5), 0.45, 0.0)
    # At 1 m/s it comes to rest 0.1 + 0.5 = 0.6 m on: told to stop 0.7 m before the goal, not 0.9 m.
    assert arrival.arrived(moving(1.0), 0.7, 0.0) and not arrival.arrived(moving(1.0), 0.9, 0.0)
    # Passing beside the goal within the radius, or walking away from it: stop, nearer it will not get.
    assert arrival.arrived(moving(0.0, 0.5), 0.0, -0.2)
    assert arrival.arrived(moving(0.5), 0.1, 0.25)  # the rest point (0.175, 0) is level with the goal
    assert not arrival.arrived(moving(0.5), 1.0, 0.25)  # the goal is ahead: walk on
    # Late to react, a robot keeps 0.9 m/s (rest point 0.495 m on) for 0.2 s past the moment it was told to
    # stop beside a goal 0.25 m off its path: it stays told to stop all that time (its rest point, now 0.34 m
    # from the goal, has left the radius), where a rule on the rest point's distance let the cost drive it on.
    assert all(arrival.arrived(moving(0.9), along, 0.25) for along in (0.45, 0.36, 0.27, 0.1, -0.2))
    assert not arrival.arrived(moving(0.9), 0.3, 0.35)  # passing wide: walk on, the cost turns it round
    assert not arrival.arrived(moving(0.5), -1.0, 0.0)  # walking away from a goal far behind: not a stop
    assert not ArrivalCfg(radius=0.0).arrived(standing, 0.0, 0.0)  # 0: approach forever


def test_heading_hold_keeps_a_straight_walk_on_the_heading_it_started_with(backend):
    """Walking without a turn, the heading at the walk's start is held (yaw-rate correction gain x error, bounded);
    a turn lets go, and the next straight walk holds its own start heading; a stand holds the heading it stopped
    with once it is stand_tolerance off, and a push re-takes it."""
    import dataclasses

    from bm_gym.guidance.tasks import HeadingHold, HeadingHoldCfg

    hold = HeadingHold(HeadingHoldCfg(gain=3.0, max_rate=0.5))

    def facing(yaw: float):
        return backend.reset(RootPose(pos=(0.0, 0.0, 0.78), quat=tuple(quat_from_yaw(yaw))))

    assert hold(facing(0.3), (1.0, 0.0, 0.0)) == (1.0, 0.0, 0.0)  # the walk starts: 0.3 rad is held
    assert hold(facing(0.35), (1.0, 0.0, 0.0))[2] == pytest.approx(-0.15)  # 0.05 rad off: turned back at 3x
    assert hold(facing(0.1), (0.9, 0.3, 0.0))[2] == pytest.approx(0.5)  # bounded at 0.5 rad/s
    assert hold(facing(0.1), (-0.4, 0.0, 0.0))[2] == 0.0  # backing up is a new walk: it holds 0.1 rad
    assert hold(facing(0.2), (-0.4, 0.0, 0.0))[2] == pytest.approx(-0.3)
    assert hold(facing(0.1), (1.0, 0.0, 0.8)) == (1.0, 0.0, 0.8)  # a turn passes raw and lets go
    assert hold(facing(1.2), (1.0, 0.0, 0.0)) == (1.0, 0.0, 0.0)  # the next walk holds 1.2 rad
    assert hold(facing(1.1), (1.0, 0.0, 0.0))[2] == pytest.approx(0.3)
    assert hold(facing(0.0), (0.0, 0.0, 0.0)) == (0.0, 0.0, 0.0)  # a stand holds the heading it stopped with
    assert hold(facing(0.1), (0.0, 0.0, 0.0)) == (0.0, 0.0, 0.0)  # a sway within stand_tolerance: no step round
    assert hold(facing(-0.2), (0.0, 0.0, 0.0))[2] == pytest.approx(0.5)  # a spin past it is turned back
    pushed = dataclasses.replace(facing(-0.4), pushed=True)
    assert hold(pushed, (0.0, 0.0, 0.0)) == (0.0, 0.0, 0.0) and hold.heading == pytest.approx(-0.4)  # a shove stays
    later = dataclasses.replace(facing(-0.7), time=0.9)  # still recovering: the heading follows
    assert hold(later, (0.0, 0.0, 0.0)) == (0.0, 0.0, 0.0) and hold.heading == pytest.approx(-0.7)
    settled = dataclasses.replace(facing(-0.9), time=1.1)  # push_settle_s after it: held again
    assert hold(settled, (0.0, 0.0, 0.0))[2] == pytest.approx(0.5) and hold.heading == pytest.approx(-0.7)
    assert hold(facing(0.3), (0.0, 0.0, 0.5)) == (0.0, 0.0, 0.5) and hold.heading is None  # a turn in place lets go
    raw = HeadingHold(HeadingHoldCfg(stand_tolerance=None))
    assert raw(facing(0.0), (0.0, 0.0, 0.0)) == (0.0, 0.0, 0.0) and raw.heading is None  # None: a stand passes raw
    hold(facing(math.pi - 0.05), (1.0, 0.0, 0.0))
    assert hold(facing(-math.pi + 0.05), (1.0, 0.0, 0.0))[2] == pytest.approx(-0.3)  # the short way round
    hold.reset()
    assert hold.heading is None
    with pytest.raises(ValueError, match="HeadingHoldCfg.gain"):
        HeadingHoldCfg(gain=-1.0)
    with pytest.raises(ValueError, match="HeadingHoldCfg.max_rate"):
        dataclasses.replace(HeadingHoldCfg(), max_rate=float("nan"))


def test_speed_hold_adds_the_integral_of_the_speed_error_to_a_walk(backend):
    """Per axis of the heading frame: the speed error since the set speed was given, clipped, integrated (gain x
    error x dt) and bounded, is added to it; a stop, a turn in place or a new set speed starts afresh."""
    import dataclasses

    from bm_gym.guidance.tasks import SpeedHold, SpeedHoldCfg

    hold = SpeedHold(SpeedHoldCfg(gain=1.0, max_error=0.3, max_boost=0.25, settle_s=0.0))
    facing = backend.reset(RootPose(pos=(0.0, 0.0, 0.78), quat=tuple(quat_from_yaw(math.pi / 2))))  # +y

    def moving(time: float, forward: float, left: float = 0.0):
        return dataclasses.replace(facing, time=time, root_lin_vel_w=np.array([-left, forward, 0.0]))

    assert hold(moving(0.0, 0.0), (-0.4, 0.0, 0.0)) == (-0.4, 0.0, 0.0)  # the walk starts
    assert hold(moving(1.0, -0.3), (-0.4, 0.0, 0.0)) == pytest.approx((-0.5, 0.0, 0.0))  # 0.1 m/s short for 1 s
    assert hold(moving(1.5, -0.3, 0.2), (-0.4, 0.0, 0.1)) == pytest.approx((-0.55, -0.1, 0.1))  # and drifting
    assert hold(moving(2.5, 0.8), (-0.4, 0.0, 0.0))[0] == pytest.approx(-0.25 - 0.4)  # a kick: clipped, bounded
    assert hold(moving(3.0, 0.0), (0.0, 0.0, 0.5)) == (0.0, 0.0, 0.5)  # turning in place: raw, and it lets go
    assert not hold.walk.boost.any() and hold.walk.setpoint is None
    hold(moving(3.0, 0.0), (0.5, 0.0, 0.0))
    assert hold(moving(4.0, 0.3), (0.5, 0.0, 0.0)) == pytest.approx((0.7, 0.0, 0.0))
    assert hold(moving(4.5, 0.3), (0.52, 0.0, 0.0)) == pytest.approx((0.77, 0.0, 0.0))  # jitter: held, bounded
    assert hold(moving(5.0, 0.3), (0.4, 0.0, 0.0)) == (0.4, 0.0, 0.0)  # a new set speed
    assert hold(moving(6.0, 0.3), (-0.5, 0.0, 0.0)) == (-0.5, 0.0, 0.0)  # backing up: a new walk

    settling = SpeedHold(SpeedHoldCfg(settle_s=1.0))  # getting up to speed, and a push, are not integrated
    assert settling(moving(0.0, 0.0), (0.5, 0.0, 0.0)) == (0.5, 0.0, 0.0)
    assert settling(moving(0.5, 0.2), (0.5, 0.0, 0.0)) == (0.5, 0.0, 0.0)
    assert settling(moving(1.5, 0.3), (0.5, 0.0, 0.0)) == pytest.approx((0.6, 0.0, 0.0))  # from 1 s on
    pushed = dataclasses.replace(moving(1.6, 1.0), pushed=True)
    assert settling(pushed, (0.5, 0.0, 0.0)) == pytest.approx((0.6, 0.0, 0.0))  # held as it was
    assert settling(moving(2.5, 0.3), (0.5, 0.0, 0.0)) == pytest.approx((0.6, 0.0, 0.0))
    assert settling(moving(3.0, 0.3), (0.5, 0.0, 0.0)) == pytest.approx((0.68, 0.0, 0.0))  # from 2.6 s on
    with pytest.raises(ValueError, match="SpeedHoldCfg.gain"):
        SpeedHoldCfg(gain=-1.0)


def test_speed_hold_adds_the_integral_of_the_yaw_rate_error_to_a_turn(backend):
    """A turn (|wz| over min_turn_rate) gets the integral of its yaw-rate error, walking or in place, as a walk
    gets its speed's; no turn, or a new rate, starts afresh; turn_gain 0 passes turns raw."""
    import dataclasses

    from bm_gym.guidance.tasks import SpeedHold, SpeedHoldCfg

    hold = SpeedHold(SpeedHoldCfg(turn_gain=1.0, max_turn_error=0.3, max_turn_boost=0.25, settle_s=0.0))
    start = backend.reset()

    def turning(time: float, rate: float, forward: float = 0.0):
        return dataclasses.replace(start, time=time, root_ang_vel_b=np.array([0.0, 0.0, rate]),
                                   root_lin_vel_w=np.array([forward, 0.0, 0.0]))  # fmt: skip

    assert hold(turning(0.0, 0.0, 0.3), (0.3, 0.0, 0.5)) == (0.3, 0.0, 0.5)  # the turn starts
    assert hold(turning(1.0, 0.4, 0.3), (0.3, 0.0, 0.5)) == pytest.approx((0.3, 0.0, 0.6))  # 0.1 rad/s short
    assert hold(turning(2.0, -0.5, 0.3), (0.3, 0.0, 0.5)) == pytest.approx((0.3, 0.0, 0.75))  # clipped, bounded
    assert hold(turning(2.5, 0.0), (0.0, 0.0, 0.0)) == (0.0, 0.0, 0.0)  # no turn: it lets go
    assert hold.turn.setpoint is None and not hold.turn.boost.any()
    hold(turning(3.0, 0.0), (0.0, 0.0, -1.0))
    assert hold(turning(4.0, -0.8), (0.0, 0.0, -1.0)) == pytest.approx((0.0, 0.0, -1.2))  # in place, either way
    assert hold(turning(5.0, -0.8), (0.0, 0.0, -0.6)) == (0.0, 0.0, -0.6)  # a new rate
    raw = SpeedHold(SpeedHoldCfg(turn_gain=0.0, settle_s=0.0))
    raw(turning(0.0, 0.0), (0.0, 0.0, 0.5))
    assert raw(turning(1.0, 0.0), (0.0, 0.0, 0.5)) == (0.0, 0.0, 0.5)


def test_a_ramped_joystick_target_leads_the_present_velocity_by_at_most_the_ramp(backend):
    """Per axis of the heading frame: the command where it is within the ramp of the velocity, else the velocity
    plus the ramp towards it; the yaw rate is not ramped."""
    import dataclasses

    from bm_gym.guidance.tasks import with_velocity_ramp

    facing_y = backend.reset(RootPose(pos=(0.0, 0.0, 0.78), quat=tuple(quat_from_yaw(math.pi / 2))))
    assert VelocityTask(0.8, -0.5, 1.0, ramp=0.3).target(facing_y) == pytest.approx((0.3, -0.3))  # from standstill
    walking = dataclasses.replace(facing_y, root_lin_vel_w=np.array([-0.5, 0.6, 0.0]))  # 0.6 forward, 0.5 left
    assert walking.heading_lin_vel == pytest.approx((0.6, 0.5))
    assert VelocityTask(0.8, 0.0, 0.0, ramp=0.3).target(walking) == pytest.approx((0.8, 0.2))
    assert VelocityTask(-0.4, 0.0, 0.0, ramp=0.3).target(walking) == pytest.approx((0.3, 0.2))  # a reversal eases
    cost = VelocityTask(0.8, -0.5, 1.0, ramp=0.3).cost(facing_y)
    assert (cost.vx, cost.vy, cost.wz) == pytest.approx((0.3, -0.3, 1.0))
    assert VelocityTask(0.8, -0.5).target(facing_y) == (0.8, -0.5)  # no ramp: the command
    # A checkpoint's ramp reaches joystick commands inside combined tasks, not a command's own or other tasks.
    avoid = AvoidObstaclesTask((Cylinder(1.0, 0.0, 0.2),))
    ramped = with_velocity_ramp(CombinedTask(((1.0, VelocityTask(0.5)), (2.0, avoid))), 0.2)
    assert ramped.terms == ((1.0, VelocityTask(0.5, ramp=0.2)), (2.0, avoid))
    assert with_velocity_ramp(VelocityTask(0.5, ramp=0.1), 0.2) == VelocityTask(0.5, ramp=0.1)
    assert with_velocity_ramp(WaypointTask(1.0, 0.0), 0.2) == WaypointTask(1.0, 0.0)
    for bad in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="VelocityTask.ramp"):
            VelocityTask(0.5, ramp=bad)


def test_a_joystick_walk_at_an_obstacle_is_turned_towards_the_nearest_clear_line(backend):
    """A cylinder just left of the line of travel turns the walk right (and one to the right turns it left);
    a clear line, standing and turning in place pass unchanged; the added turn is bounded."""
    from bm_gym.guidance.tasks import ObstacleSteerCfg

    state = backend.reset(RootPose(pos=(0.0, 0.0, 0.78), quat=tuple(quat_from_yaw(0.0))))
    left = AvoidObstaclesTask((Cylinder(1.0, 0.25, 0.25),))
    vx, vy, wz = left.steer(state, (0.6, 0.0, 0.1))
    assert (vx, vy) == (0.6, 0.0) and -0.6 <= wz - 0.1 < -0.1  # turned right, by at most max_rate
    assert AvoidObstaclesTask((Cylinder(1.0, -0.25, 0.25),)).steer(state, (0.6, 0.0, 0.0))[2] > 0.1
    assert AvoidObstaclesTask((Cylinder(1.0, 1.5, 0.25),)).steer(state, (0.6, 0.0, 0.0)) == (0.6, 0.0, 0.0)
    assert left.steer(state, (0.0, 0.0, 0.0)) == (0.0, 0.0, 0.0)  # a standing robot is not made to turn
    assert left.steer(state, (0.0, 0.0, -0.8)) == (0.0, 0.0, -0.8)
    assert AvoidObstaclesTask(()).steer(state, (0.6, 0.0, 0.0)) == (0.6, 0.0, 0.0)
    behind = backend.reset(RootPose(pos=(2.0, 0.25, 0.78), quat=tuple(quat_from_yaw(0.0))))
    assert left.steer(behind, (0.6, 0.0, 0.0)) == (0.6, 0.0, 0.0)  # passed: the obstacle is behind
    assert left.steer(behind, (-0.4, 0.0, 0.0))[2] != 0.0  # backing up towards it: the line of travel is behind
    gentle = left.steer(state, (0.6, 0.0, 0.0), ObstacleSteerCfg(gain=0.5, max_rate=0.1))
    assert gentle[2] == pytest.approx(-0.1)
    with pytest.raises(ValueError, match="ObstacleSteerCfg.lookahead"):
        ObstacleSteerCfg(lookahead=0.0)


def test_a_models_arrival_settings_reach_every_goal_in_a_task_and_nothing_else():
    from bm_gym.guidance.tasks import ArrivalCfg, NavigateTask, with_arrival

    avoid = AvoidObstaclesTask((Cylinder(1.0, 0.0, 0.2),))
    own = ArrivalCfg(radius=0.4)
    combined = CombinedTask(((1.0, WaypointTask(1.0, 0.0, arrival=own)), (2.0, avoid), (1.0, VelocityTask(0.5))))
    steered = with_arrival(combined, 0.05, 2.0, recentre_radius=0.1)
    assert steered.terms[0][1].arrival == ArrivalCfg(radius=0.4, stop_delay=0.05, deceleration=2.0, recentre_radius=0.1)
    assert steered.terms[1:] == combined.terms[1:]  # no goal, nothing to change
    navigate = with_arrival(NavigateTask(2.0, 1.0, obstacles=(Cylinder(1.0, 0.0, 0.2),), yaw=0.5), None, 3.0)
    assert navigate.arrival == ArrivalCfg(deceleration=3.0) and (navigate.x, navigate.y, navigate.yaw) == (
        2.0,
        1.0,
        0.5,
    )
    assert navigate.arrival.stopping_distance(1.0) == pytest.approx(0.1 + 1 / 6)
    task = WaypointTask(1.0, 0.0)
    assert with_arrival(task) is task  # a checkpoint without arrival settings of its own: the task's


def test_arrival_settings_are_checked_and_can_be_turned_off():
    from bm_gym.guidance.guide import GuidanceCfg

    cfg = GuidanceCfg().overridden(stop_delay=0.05, stop_deceleration=2.0, recentre_radius=0.15)
    assert (cfg.stop_delay, cfg.stop_deceleration, cfg.recentre_radius) == (0.05, 2.0, 0.15)
    assert cfg.overridden(stop_delay=-1, stop_deceleration=-1, recentre_radius=-1) == GuidanceCfg()
    with pytest.raises(ValueError, match="GuidanceCfg.recentre_radius"):
        GuidanceCfg(recentre_radius=float("inf"))
    with pytest.raises(ValueError, match="GuidanceCfg.stop_deceleration"):
        GuidanceCfg(stop_deceleration=0.0)
    with pytest.raises(ValueError, match="GuidanceCfg.stop_delay"):
        GuidanceCfg(stop_delay=float("nan"))
