"""Evaluate the Stage 1 policies in our G1: walking distance, standing drift, turn rates, tracking error.

python -m tools.eval_stage1 [--stage1 ../shared/stage1] [--randomize] [--backend mujoco|isaaclab]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bm_gym.sim import BACKENDS, DomainRandomizationCfg, SimBackend, backend_problem, make_backend
from bm_gym.stage1 import Stage1Policy
from tools.paths import SHARED_STAGE1

VELOCITY_CASES = [  # (name, (vx, vy, wz), seconds)
    ("forward vx=1.0", (1.0, 0.0, 0.0), 10.0),
    ("stand", (0.0, 0.0, 0.0), 30.0),
    ("turn wz=+0.8", (0.0, 0.0, 0.8), 10.0),
    ("turn wz=-0.8", (0.0, 0.0, -0.8), 10.0),
    ("turn wz=+1.0", (0.0, 0.0, 1.0), 10.0),
    ("walk+turn vx=0.5 wz=0.8", (0.5, 0.0, 0.8), 10.0),
    ("sideways vy=0.5", (0.0, 0.5, 0.0), 10.0),
    ("backward vx=-0.5", (-0.5, 0.0, 0.0), 10.0),
]


def velocity_rows(policy: Stage1Policy, backend: SimBackend) -> list[str]:
    rows = []
    for name, command, seconds in VELOCITY_CASES:
        state = backend.reset(seed=0)
        policy.reset()
        start, yaw, low = state.root_pos.copy(), 0.0, np.inf
        for _ in range(round(seconds / backend.control_dt)):
            state = backend.step(policy.act(state, command))
            yaw += state.root_ang_vel_b[2] * backend.control_dt
            low = min(low, state.root_pos[2])
        dx, dy = state.root_pos[:2] - start[:2]
        rows.append(f"| {name} | {seconds:.0f} | {dx:+.2f} | {dy:+.2f} | {yaw:+.2f} | {low:.2f} |")
    return rows


def tracking_row(policy: Stage1Policy, backend: SimBackend) -> str:
    root, q, dq = policy.initial_state(0)
    state = backend.reset(root, q, dq, seed=0)
    policy.reset(0)
    errors, fell_at = [], None
    motion = policy.motion
    while not policy.motion_finished:
        state = backend.step(policy.act(state))
        frame = min(policy.frame, motion.num_frames - 1)
        errors.append(np.abs(state.joint_pos - motion.joint_pos[frame]).mean())
        if fell_at is None and state.root_pos[2] < motion.root_pos[frame, 2] - 0.25:
            fell_at = frame
    fell = "no" if fell_at is None else f"at frame {fell_at}"
    return f"| {motion.duration:.1f} s clip | {np.mean(errors):.3f} | {np.max(errors):.3f} | {fell} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage1", type=Path, default=SHARED_STAGE1)
    parser.add_argument("--randomize", action="store_true", help="domain randomization on (seed 0)")
    parser.add_argument("--backend", choices=BACKENDS, default="mujoco", help="simulator (isaaclab: its own venv)")
    args = parser.parse_args()
    if backend_problem(args.backend):
        parser.error(backend_problem(args.backend))
    randomization = DomainRandomizationCfg() if args.randomize else None
    backend = make_backend(args.backend, randomization=randomization)

    velocity = Stage1Policy.load(args.stage1 / "unitree_g1_velocity")
    velocity.apply_gains(backend)
    print("| velocity policy case | s | dx m | dy m | yaw rad | min height m |\n|---|---|---|---|---|---|")
    print("\n".join(velocity_rows(velocity, backend)))

    tracking = Stage1Policy.load(args.stage1 / "unitree_g1_mimic_dance", motion_fps=30)
    tracking.apply_gains(backend)
    print("\n| tracking policy | mean joint error rad | max joint error rad | fell |\n|---|---|---|---|")
    print(tracking_row(tracking, backend))


if __name__ == "__main__":
    main()
