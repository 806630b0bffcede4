import numpy as np
import pytest
import torch

from bm_gym.data import StateLayout
from bm_gym.guidance import JoystickCost, ObstacleCost, ObstacleField, Trajectory, WaypointCost, WeightedSum
from bm_gym.guidance.costs import relaxed_barrier
from bm_gym.obstacles import Cylinder

LAYOUT = StateLayout()
F = LAYOUT.fields


def straight_walk(speed: float, steps: int = 16, dt: float = 0.02, batch: int = 1) -> torch.Tensor:
    """Planned trajectory of a robot walking straight along +x at ``speed``."""
    x = torch.zeros(batch, steps, LAYOUT.dim + LAYOUT.action_dim)
    t = torch.arange(1, steps + 1) * dt
    x[..., F["root_pos_xy"].start] = speed * t
    x[..., F["root_yaw_cs"].start] = 1.0
    x[..., F["lin_vel_h"].start] = speed
    return x


def test_trajectory_view_puts_bodies_in_the_plan_frame():
    x = straight_walk(1.0)
    body = F["body_pos_h"].start + 3 * 2  # third key body
    x[..., body] = 0.1  # 10 cm ahead in its own heading frame
    x[..., F["root_yaw_cs"]] = torch.tensor([0.0, 1.0])  # every step faces +y
    traj = Trajectory(LAYOUT, x)
    np.testing.assert_allclose(traj.body_xy[0, 0, 2].numpy(), [0.02, 0.1], atol=1e-6)
    np.testing.assert_allclose(traj.yaw[0, 0].item(), np.pi / 2, atol=1e-6)


def test_joystick_cost_is_zero_on_target_and_grows_with_error():
    cost = JoystickCost(vx=0.8)
    assert cost(Trajectory(LAYOUT, straight_walk(0.8))).item() < 1e-9
    assert cost(Trajectory(LAYOUT, straight_walk(0.3))).item() > cost(Trajectory(LAYOUT, straight_walk(0.6))).item()


def test_path_is_integrated_from_planned_velocities():
    x = straight_walk(0.5)
    x[..., F["ang_vel_h"].start + 2] = 1.0  # turning left at 1 rad/s while walking
    traj = Trajectory(LAYOUT, x)
    np.testing.assert_allclose(traj.path_yaw[0, -1].item(), 16 * 0.02, atol=1e-6)
    assert traj.path_xy[0, -1, 0].item() == pytest.approx(0.5 * 0.32, abs=0.01)
    assert traj.path_xy[0, -1, 1].item() > 0.005  # curving left


def test_waypoint_turns_towards_goals_behind_instead_of_backing_up():
    behind = WaypointCost(-3.0, 0.5)
    x = straight_walk(0.0).requires_grad_(True)
    behind(Trajectory(LAYOUT, x)).sum().backward()
    turn, walk = x.grad[0, :, F["ang_vel_h"].start + 2], x.grad[0, :, F["lin_vel_h"].start]
    assert turn.lt(0).all()  # descending the cost turns left (towards +y)
    assert walk.abs().max() < 0.1 * turn.abs().max()  # and barely asks for backward walking


def test_waypoint_cost_pulls_towards_far_goals_and_stops_at_near_ones():
    far = WaypointCost(3.0, 0.0)
    assert far(Trajectory(LAYOUT, straight_walk(1.0))) < far(Trajectory(LAYOUT, straight_walk(0.0)))
    near = WaypointCost(0.0, 0.0)  # already there: standing still is best
    assert near(Trajectory(LAYOUT, straight_walk(0.0))) < near(Trajectory(LAYOUT, straight_walk(0.5)))
    x = straight_walk(0.5).requires_grad_(True)
    far(Trajectory(LAYOUT, x)).sum().backward()
    assert x.grad[0, :, F["lin_vel_h"].start].lt(0).all()  # descending the cost speeds up towards +x


def test_relaxed_barrier_is_continuous_and_finite_inside_obstacles():
    delta = 0.1
    left, right = relaxed_barrier(torch.tensor(delta - 1e-6), delta), relaxed_barrier(torch.tensor(delta + 1e-6), delta)
    assert abs(left.item() - right.item()) < 1e-4
    assert torch.isfinite(relaxed_barrier(torch.tensor([-1.0, 0.0]), delta)).all()


def test_obstacle_cost_penalises_paths_through_obstacles_and_composes():
    field = ObstacleField([Cylinder(0.2, 0.0, 0.1)])
    obstacle = ObstacleCost(field)
    through = obstacle(Trajectory(LAYOUT, straight_walk(1.0)))
    aside = ObstacleCost(ObstacleField([Cylinder(0.2, 2.0, 0.1)]))  # the same obstacle 2 m to the side
    assert through.item() > 0 and aside(Trajectory(LAYOUT, straight_walk(1.0))).item() == 0.0
    total = WeightedSum([(1.0, obstacle), (2.0, JoystickCost(vx=1.0))])
    assert torch.allclose(total(Trajectory(LAYOUT, straight_walk(1.0))), through)
    assert ObstacleCost(ObstacleField())(Trajectory(LAYOUT, straight_walk(1.0))).item() == 0.0


def test_obstacle_margins_are_per_body_by_name():
    from bm_gym.guidance.costs import body_margins
    from bm_gym.robot import g1

    names = StateLayout().body_names
    margins = body_margins(None, names)
    assert margins[names.index("pelvis")] == g1.OBSTACLE_MARGINS["pelvis"] > margins[names.index("left_wrist_yaw_link")]
    np.testing.assert_array_equal(body_margins(0.25, names), np.full(len(names), 0.25, np.float32))
    with pytest.raises(KeyError, match="torso_link"):
        body_margins({"pelvis": 0.2}, ["pelvis", "torso_link"])
