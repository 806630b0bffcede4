import time

import numpy as np
import pytest

from app.simulation import Simulation
from bm_gym.guidance.tasks import NavigateTask
from bm_gym.obstacles import Cylinder


def test_waypoint_behind_a_drawn_obstacle_is_routed_round_it_while_running():
    sim = Simulation()
    sim.start()
    try:
        sim.put_obstacle(1, Cylinder(1.5, 0.0, 0.3))
        sim.set_waypoint((3.0, 0.0))
        sim.set_mode("waypoint")
        snap = _wait_for(sim, lambda s: s.time >= 4.0, timeout=120.0)  # 4 s of control, however slow the machine
        assert isinstance(sim.controller.task, NavigateTask)
        assert sim.controller.task.obstacles == (Cylinder(1.5, 0.0, 0.3),)
        assert snap.obstacles == {1: Cylinder(1.5, 0.0, 0.3)} and not snap.fell
        assert np.linalg.norm(snap.root_xy) > 0.3, "the robot set off"
        assert abs(snap.root_xy[1]) > 0.1 or snap.root_xy[0] < 1.0, "not straight into the obstacle"
        with pytest.raises(ValueError, match="finite"):
            sim.set_waypoint((float("nan"), 0.0))
        assert sim.snapshot().waypoint == (3.0, 0.0)  # the bad waypoint changed nothing
        with pytest.raises(RuntimeError, match="join"):
            sim.close()  # the loop still steps the backend
    finally:
        sim.stop()
        sim.join(timeout=5)
    sim.close()


def _wait_for(sim, condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = sim.snapshot()
        if condition(snap):
            return snap
        time.sleep(0.05)
    return sim.snapshot()


def test_the_simulation_thread_survives_failing_user_actions_and_reset_recovers(monkeypatch):
    sim = Simulation()
    sim.start()
    try:
        for uid in range(26):  # the pool holds 24 cylinders
            sim.put_obstacle(uid, Cylinder(3.0 + 0.5 * uid, 3.0, 0.2))
        time.sleep(1.0)
        snap = sim.snapshot()
        assert snap.error is not None and "24 cylinder obstacle slots are in use" in snap.error
        assert len(snap.obstacles) == 24
        t0 = snap.time
        assert _wait_for(sim, lambda s: s.time > t0 + 0.2).time > t0 + 0.2, "still stepping after the failed edit"

        fail_once = {"left": 1}
        real_act = sim.controller.act

        def act(state):
            if fail_once["left"]:
                fail_once["left"] -= 1
                raise FloatingPointError("the diffusion policy produced non-finite joint targets")
            return real_act(state)

        monkeypatch.setattr(sim.controller, "act", act)
        snap = _wait_for(sim, lambda s: s.paused)
        assert snap.paused and "control step failed: the diffusion policy produced non-finite" in snap.error
        sim.reset()
        snap = _wait_for(sim, lambda s: not s.paused and s.time > 0.5)
        assert snap.error is None
    finally:
        sim.stop()
        sim.join(timeout=5)
    assert not sim.is_alive()


def test_plan_latencies_are_a_bounded_window(monkeypatch):
    import bm_gym.controller.diffusion_controller as module
    from bm_gym.controller import DiffusionController
    from bm_gym.diffusion import SHIPPED_CHECKPOINT, DiffusionPolicy
    from bm_gym.sim import MujocoBackend

    monkeypatch.setattr(module, "PLAN_MS_WINDOW", 5)
    controller = DiffusionController(DiffusionPolicy.load(SHIPPED_CHECKPOINT))
    backend = MujocoBackend()
    state = backend.reset(seed=0)
    controller.reset(state)
    for _ in range(8):
        state = backend.step(controller.act(state))
    assert controller.plans == 8 and len(controller.plan_ms) == 5


def test_the_app_says_it_needs_a_display_instead_of_aborting():
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([sys.executable, "-m", "app"], cwd=Path(__file__).resolve().parents[2], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert "needs a display" in result.stderr and "xvfb-run" in result.stderr


def test_joystick_mode_holds_the_heading_of_a_straight_walk():
    """The stick's straight walk keeps its start heading (the same HeadingHold as the evaluation's protocols); a
    mode change lets go, and SimulationCfg(heading_hold=None) passes the stick raw."""
    import dataclasses

    from app.simulation import SimulationCfg
    from bm_gym.guidance.tasks import VelocityTask
    from bm_gym.utils.math import quat_from_yaw

    sim = Simulation()
    sim.set_command(0.8, 0.0, 0.0)
    start_yaw = sim._state.yaw
    assert sim._task() == VelocityTask(0.8, 0.0, 0.0)
    sim._state = dataclasses.replace(sim._state, root_quat=np.asarray(quat_from_yaw(start_yaw + 0.1)))
    held = sim._task()
    assert held.vx == 0.8 and held.wz == pytest.approx(-0.15, abs=1e-6)  # turned back at 1.5 (rad/s)/rad
    sim.set_mode("waypoint")
    sim._task()
    sim.set_mode("joystick")
    assert sim._task() == VelocityTask(0.8, 0.0, 0.0)  # a new walk holds the heading it has now
    raw = Simulation(SimulationCfg(heading_hold=None))
    raw.set_command(0.8, 0.0, 0.0)
    raw._state = dataclasses.replace(raw._state, root_quat=np.asarray(quat_from_yaw(0.5)))
    assert raw._task() == VelocityTask(0.8, 0.0, 0.0)


def test_joystick_mode_asks_a_walk_slower_than_the_stick_for_more():
    """The stick's walk gets the integral of its speed error (the same SpeedHold as the evaluation's protocols);
    SimulationCfg(speed_hold=None) passes the stick raw."""
    import dataclasses

    from app.simulation import SimulationCfg
    from bm_gym.guidance.tasks import VelocityTask

    held, raw = SimulationCfg(heading_hold=None), SimulationCfg(heading_hold=None, speed_hold=None)
    for cfg, expected in ((held, -0.7), (raw, -0.4)):
        sim = Simulation(cfg)
        sim.set_command(-0.4, 0.0, 0.0)
        assert sim._task() == VelocityTask(-0.4, 0.0, 0.0)  # the walk starts
        sim._state = dataclasses.replace(sim._state, time=sim._state.time + 2.0)  # 2 s on, and not moving
        assert sim._task().vx == pytest.approx(expected, abs=0.02)  # settled after 1 s: then 0.3 m/s for 1 s


def test_joystick_mode_turns_a_walk_at_a_drawn_obstacle_towards_the_clear_side():
    """A walk straight at a cylinder just left of the line turns right (the hold lets go of it); without
    obstacles, or with SimulationCfg(steer=None), the stick passes as it was."""
    from app.simulation import SimulationCfg
    from bm_gym.guidance.tasks import CombinedTask, VelocityTask

    sim = Simulation()
    sim.set_command(0.6, 0.0, 0.0)
    assert sim._task() == VelocityTask(0.6, 0.0, 0.0)
    sim.put_obstacle(1, Cylinder(1.0, 0.25, 0.25))
    sim._apply_edits()
    task = sim._task()
    assert isinstance(task, CombinedTask)
    joystick = task.terms[0][1]
    assert joystick.vx == 0.6 and joystick.wz < -0.1 and sim._holds.heading.heading is None
    raw = Simulation(SimulationCfg(steer=None))
    raw.set_command(0.6, 0.0, 0.0)
    raw.put_obstacle(1, Cylinder(1.0, 0.25, 0.25))
    raw._apply_edits()
    assert raw._task().terms[0][1] == VelocityTask(0.6, 0.0, 0.0)
