import numpy as np

from bm_gym.guidance.routing import Route, RouteCfg
from bm_gym.guidance.sdf import ObstacleField
from bm_gym.guidance.tasks import RoutedWaypointTask
from bm_gym.obstacles import Box


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
