"""Main job on the embedded default: drive the simulated G1 in MuJoCo through a command script and save frames.

    python -m tools.demo [--policy DIR] [--seconds 20] [--out runs/demo]

Today the controller is the Stage 1 velocity policy from ../shared/stage1; the guided diffusion controller
replaces it once a shipped checkpoint exists (see docs/roadmap in README).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from bm_gym.obstacles import Box, Cylinder
from bm_gym.sim import MujocoBackend
from bm_gym.stage1 import Stage1Policy
from tools.paths import VELOCITY_POLICY

#: (start time s, vx, vy, wz): stand, walk, turn while walking, turn in place, stop.
SCRIPT = [(0.0, 0.0, 0.0, 0.0), (2.0, 0.8, 0.0, 0.0), (7.0, 0.6, 0.0, 0.5), (11.0, 0.0, 0.0, -0.8), (15.0, 0, 0, 0)]


def command_at(t: float) -> tuple[float, float, float]:
    return next((vx, vy, wz) for start, vx, vy, wz in reversed(SCRIPT) if t >= start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", type=Path, default=VELOCITY_POLICY)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    args = parser.parse_args()

    backend = MujocoBackend()
    policy = Stage1Policy.load(args.policy)
    policy.apply_gains(backend)
    backend.add_obstacle(Cylinder(x=2.5, y=1.2, radius=0.3, height=1.2))
    backend.add_obstacle(Box(x=4.5, y=-1.5, half_x=0.4, half_y=0.25, yaw=0.5, height=0.8))
    state = backend.reset(seed=0)
    policy.reset()
    frames, steps = [], round(args.seconds / backend.control_dt)
    for i in range(steps):
        state = backend.step(policy.act(state, command_at(i * backend.control_dt)))
        if i % 100 == 0:
            frames.append(backend.render(320, 240))
    args.out.mkdir(parents=True, exist_ok=True)
    per_row = min(5, len(frames))
    rows = [
        np.concatenate(frames[r : r + per_row], axis=1) for r in range(0, len(frames) - len(frames) % per_row, per_row)
    ]
    sheet = args.out / "demo.png"
    Image.fromarray(np.concatenate(rows, axis=0)).save(sheet)
    print(
        f"{args.seconds:.0f} s simulated: root at x={state.root_pos[0]:.2f} m, y={state.root_pos[1]:.2f} m, "
        f"height {state.root_pos[2]:.2f} m, heading {np.degrees(state.yaw):.0f} deg; frames: {sheet}"
    )


if __name__ == "__main__":
    main()
