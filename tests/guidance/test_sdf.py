import math

import numpy as np
import pytest
import torch

from bm_gym.guidance import ObstacleField, OccupancyGrid
from bm_gym.obstacles import Box, Cylinder


def test_circle_and_rotated_box_distances_are_exact():
    field = ObstacleField([Cylinder(2.0, 0.0, 0.5), Box(0.0, 3.0, half_x=1.0, half_y=0.25, yaw=math.pi / 2)])
    points = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.5, 3.0]])
    d = field.distance(points)
    # Origin: 1.5 to the circle; box rotated 90 deg spans y 2..4, x -0.25..0.25 -> 2.0 away.
    np.testing.assert_allclose(d.numpy(), [1.5, -0.5, 1.0, 0.25], atol=1e-6)


def test_robot_frame_transform_preserves_distances():
    field = ObstacleField([Cylinder(2.0, 1.0, 0.3), Box(-1.0, 2.0, 0.4, 0.2, yaw=0.3)])
    x, y, yaw = 0.7, -0.4, 1.1
    world = torch.tensor([[1.0, 1.0], [-0.5, 2.2], [3.0, -1.0]])
    c, s = math.cos(yaw), math.sin(yaw)
    local = torch.stack(
        [c * (world[:, 0] - x) + s * (world[:, 1] - y), -s * (world[:, 0] - x) + c * (world[:, 1] - y)], 1
    )
    np.testing.assert_allclose(field.to_robot_frame(x, y, yaw).distance(local), field.distance(world), atol=1e-5)


def test_occupancy_grid_sdf_matches_the_analytic_box_and_is_differentiable():
    occupied = np.zeros((100, 100), dtype=bool)  # 5 cm cells covering 0..5 m
    occupied[40:60, 40:60] = True  # a 1 m square centred at (2.5, 2.5)
    grid = ObstacleField(grids=[OccupancyGrid(occupied, 0.05)])
    exact = ObstacleField([Box(2.5, 2.5, 0.5, 0.5)])
    points = torch.tensor([[0.5, 2.5], [2.5, 4.0], [4.0, 4.0], [2.5, 2.5]], requires_grad=True)
    np.testing.assert_allclose(grid.distance(points).detach(), exact.distance(points).detach(), atol=0.06)
    grid.distance(points).sum().backward()
    assert torch.isfinite(points.grad).all() and points.grad[0, 0] < 0  # moving left increases the distance
    moved = grid.to_robot_frame(1.0, 0.0, 0.0)
    np.testing.assert_allclose(moved.distance(torch.tensor([[-0.5, 2.5]])), [1.5], atol=0.06)


def test_empty_field_and_bad_grids():
    assert ObstacleField().empty
    assert torch.isinf(ObstacleField().distance(torch.zeros(3, 2))).all()
    with pytest.raises(ValueError, match="non-empty 2-D"):
        OccupancyGrid(np.zeros(5, dtype=bool), 0.1)
    with pytest.raises(ValueError, match="resolution"):
        OccupancyGrid(np.zeros((5, 5), dtype=bool), 0.0)


def test_occupancy_grid_becomes_a_few_boxes_that_cover_exactly_its_cells(backend):
    occupied = np.zeros((40, 60), dtype=bool)  # 10 cm cells, origin (-1, 2)
    occupied[5:15, 10:30] = True  # a 2 x 1 m wall
    occupied[20:35, 40:45] = True  # a 0.5 x 1.5 m post ...
    occupied[30:35, 45:50] = True  # ... with a foot: an L shape
    grid = OccupancyGrid(occupied, 0.1, origin=(-1.0, 2.0))
    boxes = grid.to_boxes()
    assert len(boxes) == 3
    centres = (np.stack(np.meshgrid(np.arange(60), np.arange(40)), -1) + 0.5) * 0.1 + np.array([-1.0, 2.0])
    inside = ObstacleField(boxes).distance(torch.as_tensor(centres, dtype=torch.float32)) < 0
    np.testing.assert_array_equal(inside.numpy(), occupied)  # the same cells, no more, no fewer
    handles = [backend.add_obstacle(b) for b in boxes]  # and the simulator takes them
    assert sorted(backend.obstacles()) == sorted(handles)
