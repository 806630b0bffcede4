"""The fused sampler (one ONNX Runtime call per plan, closed-form cost gradients) against the autograd reference."""

import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from bm_gym.diffusion import SHIPPED_CHECKPOINT, DiffusionPolicy
from bm_gym.guidance import (
    GuidanceCfg,
    JoystickCost,
    ObstacleCost,
    ObstacleField,
    Trajectory,
    WaypointCost,
    WeightedSum,
)
from bm_gym.guidance.costs import body_margins
from bm_gym.guidance.fused import Terms, _empty_obstacles, cost_gradient, pack_cost
from bm_gym.guidance.sdf import OccupancyGrid
from bm_gym.obstacles import Box, Cylinder

OBSTACLES = [Cylinder(0.6, 0.2, 0.3), Box(0.8, -0.3, 0.3, 0.2, yaw=0.3), Box(-0.4, 0.5, 0.2, 0.4, yaw=-1.0)]
COSTS = {
    "joystick": JoystickCost(0.6, 0.1, 0.3),
    "waypoint ahead": WaypointCost(3.0, 1.0),
    "waypoint behind": WaypointCost(-2.0, 0.5, power=2.0),
    "waypoint braking": WaypointCost(0.4, 0.1, brake_weight=20.0, brake_deceleration=0.3),
    "barrier": ObstacleCost(ObstacleField(OBSTACLES)),
    "barrier, one margin": ObstacleCost(ObstacleField(OBSTACLES), margin=0.25),
    "navigate": WeightedSum([(1.0, JoystickCost(0.6, 0.0, 0.3)), (1.5, ObstacleCost(ObstacleField(OBSTACLES)))]),
    "waypoint + barrier": WeightedSum([(1.0, WaypointCost(3.0, 1.0)), (0.7, ObstacleCost(ObstacleField(OBSTACLES)))]),
}
TOLERANCE = 2e-5  # plans agree to float32 round-off (observed 3-4e-6, in units of the state and action)


@pytest.fixture(scope="module")
def policy():
    return DiffusionPolicy.load(SHIPPED_CHECKPOINT)


@pytest.fixture(scope="module")
def fused_policy():
    return DiffusionPolicy.load(SHIPPED_CHECKPOINT).use_fused()


@pytest.fixture(scope="module")
def histories(policy):
    rng = np.random.default_rng(0)
    normalized = torch.from_numpy(rng.normal(size=(3, 5, policy.layout.dim + 29)).astype(np.float32) * 0.3)
    return policy.denormalize(normalized).numpy()


@pytest.mark.parametrize("name", COSTS)
def test_closed_form_gradient_equals_autograd(policy, histories, name):
    cost = COSTS[name]
    x = torch.as_tensor(policy.plan(histories, torch.Generator().manual_seed(1)), dtype=torch.float32)
    x_in = x.clone().requires_grad_(True)
    expected = torch.autograd.grad(cost(Trajectory(policy.layout, x_in)).sum(), x_in)[0]
    packed = pack_cost(cost)
    circles, boxes = _empty_obstacles(3, 4)
    circles[:, : len(packed.circles)], boxes[:, : len(packed.boxes)] = packed.circles, packed.boxes
    params = torch.from_numpy(np.repeat(packed.values[None], 3, 0))
    margins = torch.from_numpy(np.repeat(body_margins(packed.margin, policy.layout.body_names)[None], 3, 0))
    got = cost_gradient(x, params, torch.from_numpy(circles), torch.from_numpy(boxes), margins, policy.layout, 0.02,
                        Terms.of([packed]))  # fmt: skip
    assert expected.abs().max() > 1e-3, "the cost must be active on these plans"
    torch.testing.assert_close(got, expected, atol=2e-6 * max(1.0, float(expected.abs().max())), rtol=1e-4)


def test_braking_curve_gradient_equals_autograd(policy, histories):
    """The braking term acts on fast plans near the goal: the shipped model's plans from these histories stand,
    so they are sped up to 0.8 m/s forward first."""
    x = torch.as_tensor(policy.plan(histories, torch.Generator().manual_seed(1)), dtype=torch.float32)
    x[..., policy.layout.fields["lin_vel_h"].start] += 0.8
    cost, coasting = COSTS["waypoint braking"], WaypointCost(0.4, 0.1, brake_weight=0.0)
    traj = Trajectory(policy.layout, x)
    assert (cost(traj) - coasting(traj)).min() > 1e-2, "the braking term must be active"
    x_in = x.clone().requires_grad_(True)
    expected = torch.autograd.grad(cost(Trajectory(policy.layout, x_in)).sum(), x_in)[0]
    packed = pack_cost(cost)
    circles, boxes = _empty_obstacles(3, 1)
    params = torch.from_numpy(np.repeat(packed.values[None], 3, 0))
    margins = torch.from_numpy(np.repeat(body_margins(None, policy.layout.body_names)[None], 3, 0))
    got = cost_gradient(x, params, torch.from_numpy(circles), torch.from_numpy(boxes), margins, policy.layout, 0.02,
                        Terms.of([packed]))  # fmt: skip
    torch.testing.assert_close(got, expected, atol=2e-6 * max(1.0, float(expected.abs().max())), rtol=1e-4)


@pytest.mark.parametrize("name", [None, *COSTS])
def test_fused_plan_equals_the_reference_plan(policy, fused_policy, histories, name):
    guide = None if name is None else policy.guide(COSTS[name])
    reference = policy.plan(histories[0], torch.Generator().manual_seed(5), guide)
    fused_guide = None if name is None else fused_policy.guide(COSTS[name])
    fused = fused_policy.plan(histories[0], torch.Generator().manual_seed(5), fused_guide)
    np.testing.assert_allclose(fused, reference, atol=TOLERANCE)
    assert name is None or np.abs(reference - policy.plan(histories[0], torch.Generator().manual_seed(5))).max() > 1e-2


def test_a_batch_plans_each_robot_as_it_would_alone(fused_policy, histories):
    """Three robots, three tasks, three generators: each plan equals that robot planned alone (batch 1)."""
    costs = [COSTS["navigate"], None, COSTS["waypoint ahead"]]
    guides = [
        None if c is None else fused_policy.guide(c, GuidanceCfg(scale=30.0 + 10 * i)) for i, c in enumerate(costs)
    ]
    batch = fused_policy.plan(histories, [torch.Generator().manual_seed(10 + i) for i in range(3)], guides)
    for i in range(3):
        alone = fused_policy.plan(histories[i], torch.Generator().manual_seed(10 + i), guides[i])
        np.testing.assert_allclose(batch[i], alone, atol=TOLERANCE)


def test_a_batch_split_across_threads_plans_as_one_part(fused_policy, histories):
    """threads=2 runs the batch as two parts (sizes 2 and 1) concurrently: the same plans as one part."""
    split = DiffusionPolicy.load(SHIPPED_CHECKPOINT).use_fused(threads=2)
    costs = [COSTS["navigate"], COSTS["waypoint + barrier"], None]
    plans = []
    for p in (fused_policy, split):
        guides = [None if c is None else p.guide(c) for c in costs]
        plans.append(p.plan(histories, [torch.Generator().manual_seed(20 + i) for i in range(3)], guides))
    np.testing.assert_allclose(plans[1], plans[0], atol=TOLERANCE)
    assert sorted(key[1] for key in split.fused._sessions) == [1, 2]  # two parts really ran


def test_costs_outside_the_library_take_the_reference_path(policy, fused_policy, histories):
    grid = OccupancyGrid(np.eye(8, dtype=bool), 0.25, origin=(0.5, -1.0))
    cost = ObstacleCost(ObstacleField(grids=[grid]))
    assert pack_cost(cost) is None
    reference = policy.plan(histories[0], torch.Generator().manual_seed(2), policy.guide(cost))
    fused = fused_policy.plan(histories[0], torch.Generator().manual_seed(2), fused_policy.guide(cost))
    np.testing.assert_allclose(fused, reference, atol=1e-6)
    assert pack_cost(WeightedSum([(1.0, JoystickCost()), (1.0, JoystickCost(0.5))])) is None  # a kind twice


def test_a_new_step_count_remakes_the_fused_sampler_and_it_still_equals_the_reference(histories):
    """set_sample_steps after use_fused: the fused graph follows the new schedule (25 steps), not the old one."""
    reference = DiffusionPolicy.load(SHIPPED_CHECKPOINT).set_sample_steps(25)
    fused = DiffusionPolicy.load(SHIPPED_CHECKPOINT).use_fused().set_sample_steps(25)
    assert fused.fused.timesteps == list(range(48, -1, -2))
    cost = COSTS["waypoint + barrier"]
    expected = reference.plan(histories[0], torch.Generator().manual_seed(5), reference.guide(cost))
    got = fused.plan(histories[0], torch.Generator().manual_seed(5), fused.guide(cost))
    np.testing.assert_allclose(got, expected, atol=TOLERANCE)
    reference.set_sample_steps(10)
    ten_steps = reference.plan(histories[0], torch.Generator().manual_seed(5), reference.guide(cost))
    assert np.abs(ten_steps - expected).max() > 1e-2  # the step count matters


EXPORT_THEN_EXIT = """
import multiprocessing, sys, time
from bm_gym.guidance.fused import _exporter

def export_forever():
    _exporter().submit(int).result()  # the exporter is up
    _exporter().submit(time.sleep, 600)  # stands in for an export still running when the process ends
    _exporter().submit(time.sleep, 600)  # and one waiting behind it
    time.sleep(0.5)

if __name__ == "__main__":
    if sys.argv[1] == "child":  # the app's case: the planner lives in a multiprocessing child
        child = multiprocessing.get_context("spawn").Process(target=export_forever)
        child.start()
        child.join(timeout=120)
        sys.exit("the child did not exit" if child.exitcode is None else child.exitcode)
    export_forever()
"""


@pytest.mark.parametrize("where", ["main", "child"])
def test_a_running_export_does_not_hold_up_the_exit(tmp_path, where):
    """Graphs export in a background process (the app's 50 Hz loop plans another way meanwhile); a process that
    ends while one is exporting ends at once, quietly, instead of waiting for a graph nobody will load."""
    script = tmp_path / "export_then_exit.py"
    script.write_text(EXPORT_THEN_EXIT)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(script), where], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert time.perf_counter() - started < 90, "the exit waited for the export"
