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
        time.sleep(4.0)  # 4 s of real-time control
        snap = sim.snapshot()
        assert isinstance(sim.controller.task, NavigateTask)
        assert sim.controller.task.obstacles == (Cylinder(1.5, 0.0, 0.3),)
        assert snap.obstacles == {1: Cylinder(1.5, 0.0, 0.3)} and not snap.fell
        assert np.linalg.norm(snap.root_xy) > 0.3, "the robot set off"
        assert abs(snap.root_xy[1]) > 0.1 or snap.root_xy[0] < 1.0, "not straight into the obstacle"
        with pytest.raises(ValueError, match="finite"):
            sim.set_waypoint((float("nan"), 0.0))
        assert sim.snapshot().waypoint == (3.0, 0.0)  # the bad waypoint changed nothing
    finally:
        sim.stop()
        sim.join(timeout=5)
