"""Main job on the embedded default: the shipped diffusion checkpoint drives the G1 in MuJoCo, guided to
waypoints around obstacles, and the run is saved as a frame sheet.

    python -m tools.demo [--checkpoint DIR] [--seconds 30] [--out runs/demo]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from bm_gym.controller import ControllerCfg, DiffusionController
from bm_gym.data.state import StateLayout
from bm_gym.diffusion import SHIPPED_CHECKPOINT, DiffusionPolicy
from bm_gym.guidance import GuidanceCfg
from bm_gym.guidance.tasks import AvoidObstaclesTask, CombinedTask, WaypointTask
from bm_gym.obstacles import Box, Cylinder
from bm_gym.sim import MujocoBackend, has_fallen

WAYPOINTS = [(3.0, 0.0), (3.0, 2.5), (0.0, 2.5)]
OBSTACLES = (Cylinder(x=1.6, y=0.05, radius=0.25, height=1.2), Box(x=3.2, y=1.3, half_x=0.3, half_y=0.2, yaw=0.4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--scale", type=float, default=GuidanceCfg().scale, help="guidance scale")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    args = parser.parse_args()

    policy = DiffusionPolicy.load(args.checkpoint, expected_layout=StateLayout())
    backend = MujocoBackend()
    for obstacle in OBSTACLES:
        backend.add_obstacle(obstacle)
    controller = DiffusionController(policy, ControllerCfg(guidance=GuidanceCfg(scale=args.scale)))
    state = backend.reset(seed=0)
    controller.reset(state)
    avoid = AvoidObstaclesTask(OBSTACLES)
    reached, frames = 0, []
    for i in range(round(args.seconds / backend.control_dt)):
        if reached < len(WAYPOINTS):
            goal = WaypointTask(*WAYPOINTS[reached])
            controller.set_task(CombinedTask(((1.0, goal), (1.0, avoid))))
            if goal.distance(state) < 0.3:
                reached += 1
        state = backend.step(controller.act(state))
        if i % 75 == 0:
            frames.append(backend.render(320, 240))
        if has_fallen(state):
            print(f"fell after {state.time:.1f} s")
            break
    args.out.mkdir(parents=True, exist_ok=True)
    per_row = min(5, len(frames))
    usable = len(frames) - len(frames) % per_row
    rows = [np.concatenate(frames[r : r + per_row], axis=1) for r in range(0, usable, per_row)]
    sheet = args.out / "demo.png"
    Image.fromarray(np.concatenate(rows, axis=0)).save(sheet)
    print(
        f"{state.time:.0f} s simulated: {reached}/{len(WAYPOINTS)} waypoints reached, root at "
        f"({state.root_pos[0]:.2f}, {state.root_pos[1]:.2f}) m, median plan {np.median(controller.plan_ms):.1f} ms; "
        f"frames: {sheet}"
    )


if __name__ == "__main__":
    main()
