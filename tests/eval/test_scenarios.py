import math

import numpy as np

from bm_gym.eval.scenarios import obstacle_course, waypoint_goal
from bm_gym.obstacles import Cylinder


def test_waypoint_goals_are_seeded_and_2_to_5_m_away_in_all_directions():
    goals = [waypoint_goal(s) for s in range(20)]
    assert goals == [waypoint_goal(s) for s in range(20)]
    distances = [math.hypot(*g) for g in goals]
    assert min(distances) >= 2.0 and max(distances) <= 5.0
    angles = np.array([math.atan2(g[1], g[0]) for g in goals])
    assert (angles < -math.pi / 2).any() and (angles > math.pi / 2).any()  # goals behind the robot too


def test_obstacle_courses_block_the_straight_path():
    for seed in range(10):
        goal, obstacles = obstacle_course(seed)
        assert 4.0 <= goal[0] <= 5.0 and 1 <= len(obstacles) <= 3
        first = obstacles[0]
        on_line_y = goal[1] * first.x / goal[0]
        reach = first.radius if isinstance(first, Cylinder) else min(first.half_x, first.half_y)
        assert abs(first.y - on_line_y) <= 0.15 + 1e-9  # within 15 cm of the straight line ...
        assert abs(first.y - on_line_y) < reach + 0.25  # ... so it blocks a robot about 0.5 m wide


def test_shipped_model_walks_round_the_obstacles_of_a_course_to_its_goal(backend):
    """Closed loop, shipped checkpoint: NavigateTask solves course 0 (about 11 s simulated) without contact."""
    from bm_gym.controller import ControllerCfg, DiffusionController
    from bm_gym.diffusion import SHIPPED_CHECKPOINT, DiffusionPolicy
    from bm_gym.eval.scenarios import run_waypoint
    from bm_gym.guidance import GuidanceCfg

    controller = DiffusionController(DiffusionPolicy.load(SHIPPED_CHECKPOINT), ControllerCfg(seed=0))
    goal, obstacles = obstacle_course(0)
    result = run_waypoint(backend, controller, 0, GuidanceCfg(), obstacles=obstacles, goal=goal, timeout_s=20.0,
                          navigator="navigate")  # fmt: skip
    assert result.success and not result.fell and result.collisions == 0, result


def test_passages_are_seeded_narrow_and_the_only_way():
    from bm_gym.eval.scenarios import passage_course
    from bm_gym.guidance.routing import Route
    from bm_gym.guidance.sdf import ObstacleField

    for seed in range(6):
        goal, walls = passage_course(seed)
        assert passage_course(seed) == (goal, walls)
        assert len(walls) == (4 if seed % 2 else 2)
        gap = walls[1].y - walls[1].half_x - (walls[0].y + walls[0].half_x)  # wall segments lie along y
        assert (1.0 <= gap <= 1.3) if seed % 2 else (0.8 <= gap <= 1.2)
        route = Route(goal, ObstacleField(walls), start=(0.0, 0.0))
        assert route.reachable(np.zeros(2))


def test_scenario_courses_are_course_files_that_reproduce_the_scenario(tmp_path):
    from bm_gym.course import Course
    from bm_gym.eval.scenarios import obstacle_course, scenario_course

    for seed in range(3):
        path = scenario_course("obstacles", seed).save(tmp_path / f"obstacles-{seed}.json")
        course = Course.load(path)
        goal, obstacles = obstacle_course(seed)
        assert course.obstacles == tuple(obstacles) and (course.goals[0].x, course.goals[0].y) == goal
        assert course.seed == seed
    assert scenario_course("stay", 1).goals[0].yaw is not None


def test_a_course_with_two_goals_is_walked_in_order(backend):
    from bm_gym.controller import ControllerCfg, DiffusionController
    from bm_gym.course import Course, Goal
    from bm_gym.diffusion import SHIPPED_CHECKPOINT, DiffusionPolicy
    from bm_gym.eval.scenarios import run_course
    from bm_gym.guidance import GuidanceCfg

    controller = DiffusionController(DiffusionPolicy.load(SHIPPED_CHECKPOINT), ControllerCfg(seed=0))
    course = Course(goals=(Goal(1.2, 0.0), Goal(1.2, 1.2)), seed=0, name="two")
    result = run_course(backend, controller, course, GuidanceCfg(), timeout_s=12.0)
    assert result.success and result.extra["goals_reached"] == 2, result
    assert abs(backend.state().root_pos[1] - 1.2) < 0.4


def test_the_scripted_joystick_walk_heads_at_a_cylinder_then_curves_past_a_box():
    from bm_gym.eval.scenarios import JOYSTICK_OBSTACLES, scripted_command

    assert scripted_command(0.5) == (0.0, 0.0, 0.0)
    assert scripted_command(2.0) == (0.6, 0.0, 0.0)
    assert scripted_command(10.0) == (0.5, 0.0, -0.4)
    assert scripted_command(100.0) == (0.0, 0.0, 0.0)
    cylinder = JOYSTICK_OBSTACLES[0]
    assert isinstance(cylinder, Cylinder) and abs(cylinder.y) - cylinder.radius < 0.25  # in the straight path


class _StandingController:
    """Holds the default pose: exercises the scenario's bookkeeping, not the walking."""

    def reset(self, state, seed=None):
        pass

    def set_task(self, task, guidance=None):
        self.task = task

    def act(self, state):
        from bm_gym.robot import g1

        return np.asarray(g1.DEFAULT_JOINT_POS)


def test_joystick_obstacles_counts_the_steps_touching_an_obstacle(backend, monkeypatch):
    from bm_gym.eval import scenarios
    from bm_gym.guidance import GuidanceCfg

    monkeypatch.setattr(scenarios, "JOYSTICK_OBSTACLES", (Cylinder(x=0.2, y=0.0, radius=0.2, height=1.2),))
    result = scenarios.run_joystick_obstacles(backend, _StandingController(), 0, GuidanceCfg(), seconds=0.2)
    assert not result.success and not result.fell and result.collisions == 10, result
    monkeypatch.setattr(scenarios, "JOYSTICK_OBSTACLES", (Cylinder(x=3.0, y=0.0, radius=0.2, height=1.2),))
    result = scenarios.run_joystick_obstacles(backend, _StandingController(), 0, GuidanceCfg(), seconds=0.2)
    assert result.success and result.collisions == 0, result
