import math

import numpy as np
import pytest

from bm_gym.guidance.costs import JoystickCost, ObstacleCost, WeightedSum
from bm_gym.guidance.routing import PursuitCfg, Route, RouteCfg, cached_route, pursuit_command
from bm_gym.guidance.sdf import ObstacleField
from bm_gym.guidance.tasks import NavigateTask, RoutedWaypointTask
from bm_gym.obstacles import Box, Cylinder


def test_route_goes_around_a_wall_and_ends_at_the_goal():
    wall = Box(2.0, 0.0, 0.2, 1.0)  # blocks y in [-1, 1] at x = 2
    route = Route((4.0, 0.0), ObstacleField([wall]), start=(0.0, 0.0), cfg=RouteCfg(lookahead=0.5))
    position, visited = np.zeros(2), []
    for _ in range(40):
        target = route.target(position)
        step = target - position
        position = position + step * min(1.0, 0.25 / max(np.linalg.norm(step), 1e-9))
        visited.append(position.copy())
    visited = np.array(visited)
    np.testing.assert_allclose(visited[-1], [4.0, 0.0], atol=1e-6)
    beside_wall = visited[np.abs(visited[:, 0] - 2.0) < 0.3]
    assert len(beside_wall) and np.all(np.abs(beside_wall[:, 1]) > 1.0 + 0.2)  # passed the wall's end, clear of it


def test_routed_task_targets_the_goal_when_the_way_is_free(backend):
    state = backend.reset(seed=0)
    task = RoutedWaypointTask(3.0, 0.0, obstacles=(Box(0.0, 3.0, 0.3, 0.3),))
    assert task.target(state)[0] > 0.9 and abs(task.target(state)[1]) < 0.15  # 1 m straight towards the goal
    assert task.distance(state) == np.hypot(3.0 - state.root_pos[0], state.root_pos[1])


def test_route_is_cached_per_goal_and_obstacles_and_rebuilt_outside_its_grid():
    field, key, cfg = ObstacleField([Box(2.0, 0.0, 0.2, 1.0)]), ("wall",), RouteCfg()
    first = cached_route((4.0, 0.0), key, field, np.zeros(2), cfg)
    assert cached_route((4.0, 0.0), key, field, np.array([1.0, 0.5]), cfg) is first
    assert cached_route((4.0, 0.5), key, field, np.zeros(2), cfg) is not first  # another goal
    far = cached_route((4.0, 0.0), key, field, np.array([-10.0, 0.0]), cfg)  # outside the first grid
    assert far is not first and far.contains(np.array([-10.0, 0.0]))


def test_pursuit_walks_at_targets_ahead_turns_to_targets_behind_and_stops_at_the_goal():
    cfg = PursuitCfg()
    assert pursuit_command(np.array([1.0, 0.0]), 3.0, cfg) == pytest.approx((cfg.cruise, 0.0))
    speed, yaw_rate = pursuit_command(np.array([-1.0, 0.2]), 3.0, cfg)  # behind, a little to the left
    assert speed == 0.0 and yaw_rate == cfg.max_yaw_rate
    speed, yaw_rate = pursuit_command(np.array([1.0, -0.2]), 3.0, cfg)  # a little to the right: turn right
    bearing = math.atan2(-0.2, 1.0)
    assert speed == pytest.approx(cfg.cruise * math.cos(bearing) ** 2) and yaw_rate == pytest.approx(
        cfg.turn_gain * bearing
    )
    assert pursuit_command(np.array([0.7, 0.0]), 0.7, cfg)[0] == pytest.approx(cfg.cruise * 0.7 / cfg.slow_radius)
    assert pursuit_command(np.array([0.3, 0.0]), 0.3, cfg)[0] == pytest.approx(cfg.min_speed)  # the floor
    assert pursuit_command(np.array([0.0, 0.1]), 0.1, cfg) == pytest.approx((0.0, 0.0))  # beside the goal: stand


def test_navigate_task_turns_off_the_straight_line_round_a_blocking_obstacle(backend):
    state = backend.reset(seed=0)
    task = NavigateTask(4.0, 0.0, obstacles=(Cylinder(1.5, 0.0, 0.4),))
    tx, ty = task.target(state)
    assert abs(ty) > 0.3 and tx > 0.3  # 1 m along the route, which leaves the blocked straight line
    vx, wz = task.command(state)
    assert 0 < vx < PursuitCfg().cruise and math.copysign(1, wz) == math.copysign(1, ty)
    cost = task.cost(state)
    assert isinstance(cost, WeightedSum)
    assert [type(term) for _, term in cost.terms] == [JoystickCost, ObstacleCost]
    free = NavigateTask(4.0, 0.0)  # no obstacles: pursue the goal itself
    assert free.command(state)[0] == pytest.approx(PursuitCfg().cruise, abs=0.05)
    with pytest.raises(ValueError, match="finite"):
        NavigateTask(float("nan"), 0.0)


def test_routes_pass_gaps_the_robot_fits_and_keep_clear_where_there_is_room():
    from bm_gym.eval.scenarios import _wall

    wall = [_wall(2.0, -5.0, 2.0, -0.45), _wall(2.0, 0.45, 2.0, 5.0)]  # a 0.9 m gap at y = 0 (less the walls)
    route = Route((4.0, 0.0), ObstacleField(wall), start=(0.0, 0.0))
    assert route.reachable(np.zeros(2))
    position = np.zeros(2)
    for _ in range(60):
        position = route.target(position)
        if abs(position[0] - 2.0) < 0.1:
            assert abs(position[1]) < 0.15, "through the gap, not round the 10 m wall"
    assert route.reachable(np.zeros(2)) and np.allclose(position, [4.0, 0.0])
    narrow = [_wall(2.0, -5.0, 2.0, -0.25), _wall(2.0, 0.25, 2.0, 5.0)]  # 0.5 m: too narrow for the robot
    blocked = Route((4.0, 0.0), ObstacleField(narrow), start=(0.0, 0.0), cfg=RouteCfg(padding=1.0))
    assert not blocked.reachable(np.zeros(2))
    # One post in open ground: the route passes it at the preferred clearance, not at the body radius.
    post = Route((4.0, 0.0), ObstacleField([Cylinder(2.0, 0.0, 0.3)]), start=(0.0, 0.0))
    position, closest = np.zeros(2), np.inf
    for _ in range(60):
        position = post.target(position)
        closest = min(closest, np.hypot(position[0] - 2.0, position[1]) - 0.3)
    assert closest > RouteCfg().clearance - 0.15


def test_the_pursued_point_comes_closer_near_obstacles():
    """Regulated lookahead: the full lookahead in the open, ``tight_lookahead`` in front of a gap that the robot
    only just fits through, so the pursuit lines the robot up with the gap instead of cutting the corner."""
    from bm_gym.eval.scenarios import _wall

    gap = [_wall(2.0, -5.0, 2.0, -0.42), _wall(2.0, 0.42, 2.0, 5.0)]  # 0.84 m, as the passages scenario's
    cfg = RouteCfg()
    route = Route((4.0, -0.6), ObstacleField(gap), start=(0.0, 0.0), cfg=cfg)
    assert route.lookahead(np.array([0.0, 0.0])) == pytest.approx(cfg.lookahead)  # 2 m from the wall
    in_front = np.array([1.7, 0.0])  # 0.42 m from the gap's edges: between body_radius and tight_clearance
    assert cfg.tight_lookahead < route.lookahead(in_front) < 0.7
    target = route.target(in_front)
    assert np.linalg.norm(target - in_front) < 0.75
    assert abs(target[1]) < 0.1  # on the gap's axis, not yet bending towards the goal beside it


@pytest.mark.parametrize(
    ("cfg", "kwargs", "message"),
    [
        (RouteCfg, {"resolution": 0.0}, "RouteCfg.resolution must be a finite number > 0"),
        (RouteCfg, {"lookahead": float("nan")}, "RouteCfg.lookahead"),
        (RouteCfg, {"tight_lookahead": 1.5}, r"RouteCfg.tight_lookahead must be <= lookahead \(1.0\)"),
        (RouteCfg, {"clearance": 0.2}, r"RouteCfg.clearance must be >= body_radius \(0.3\)"),
        (RouteCfg, {"tight_clearance": 0.3}, r"RouteCfg.tight_clearance must be > body_radius"),
        (PursuitCfg, {"cruise": -0.1}, "PursuitCfg.cruise must be a finite number > 0"),
        (PursuitCfg, {"alignment_power": 1.5}, "PursuitCfg.alignment_power must be an integer >= 0"),
    ],
)
def test_route_and_pursuit_settings_are_checked_where_they_are_set(cfg, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cfg(**kwargs)
