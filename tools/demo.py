"""Main job on the embedded default: the shipped diffusion checkpoint drives the G1 in MuJoCo through a
joystick script (walk, curve, turn in place, walk, stop) while guidance keeps it clear of obstacles; the run
is saved as a frame sheet.

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
from bm_gym.guidance.tasks import AvoidObstaclesTask, CombinedTask, VelocityTask
from bm_gym.obstacles import Box, Cylinder
from bm_gym.sim import MujocoBackend, has_fallen

#: (start time s, vx, vy, wz): stand, walk, curve right, turn in place, walk, stop.
SCRIPT = [(0.0, 0.0, 0.0, 0.0), (1.0, 0.6, 0.0, 0.0), (8.0, 0.5, 0.0, -0.4), (13.0, 0.0, 0.0, -0.8),
          (16.0, 0.6, 0.0, 0.0), (26.0, 0.0, 0.0, 0.0)]  # fmt: skip
OBSTACLES = (Cylinder(x=2.5, y=0.35, radius=0.25, height=1.2), Box(x=5.0, y=-0.6, half_x=0.3, half_y=0.2, yaw=0.4))


def command_at(t: float) -> tuple[float, float, float]:
    return next((vx, vy, wz) for start, vx, vy, wz in reversed(SCRIPT) if t >= start)


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
    frames, path, contacts = [], 0.0, 0
    for i in range(round(args.seconds / backend.control_dt)):
        controller.set_task(CombinedTask(((1.0, VelocityTask(*command_at(state.time))), (1.0, avoid))))
        previous = state.root_pos[:2].copy()
        state = backend.step(controller.act(state))
        path += float(np.linalg.norm(state.root_pos[:2] - previous))
        contacts += state.obstacle_contact
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
        f"{state.time:.0f} s simulated: walked {path:.1f} m, ended at ({state.root_pos[0]:.2f}, "
        f"{state.root_pos[1]:.2f}) m, {contacts} control steps touching an obstacle, median plan "
        f"{np.median(controller.plan_ms):.1f} ms; frames: {sheet}"
    )


if __name__ == "__main__":
    main()
