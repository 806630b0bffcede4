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
