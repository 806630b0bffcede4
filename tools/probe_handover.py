"""Does the student keep a gait it is handed? The expert walks on a command, the student goes on.

    python -m tools.probe_handover [--checkpoint C] --command 0 0.5 0 [--unguided] [--seeds 0 1 2]
    python -m tools.probe_handover --controller expert --command 0 0.5 0     # the reference

The Stage 1 expert walks ``--lead-s`` (3 s) on the command; its last steps become the diffusion controller's
history, and the controller drives ``--after-s`` (5 s) more, guided on the same command with the checkpoint's
guidance settings (or unguided). Printed per seed: the mean heading-frame velocity (forward, left, m/s) and
yaw rate (rad/s) over each second after the hand-over. A student whose prior lets gaits fade slows within a
second or two (docs/benchmarks.md, issue 15).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from bm_gym.controller import ControllerCfg, DiffusionController
from bm_gym.diffusion import SHIPPED_CHECKPOINT, CheckpointError, DiffusionPolicy
from bm_gym.eval.protocols import run_handover
from bm_gym.robot import g1
from bm_gym.sim import process_backend
from bm_gym.stage1 import Stage1Policy
from tools.paths import VELOCITY_POLICY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--controller", choices=["diffusion", "expert"], default="diffusion")
    parser.add_argument("--expert", default=str(VELOCITY_POLICY), help="the Stage 1 velocity policy that leads")
    parser.add_argument("--command", type=float, nargs=3, required=True, metavar=("VX", "VY", "WZ"))
    parser.add_argument("--unguided", action="store_true", help="the student samples its prior, no joystick cost")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--lead-s", type=float, default=3.0)
    parser.add_argument("--after-s", type=float, default=5.0)
    args = parser.parse_args(argv)
    if not (np.all(np.isfinite(args.command)) and args.lead_s > 0 and args.after_s >= 1):
        print("error: --command must be finite, --lead-s > 0 and --after-s >= 1", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    try:
        expert = Stage1Policy.load(args.expert)
        controller = guidance = None
        if args.controller == "diffusion":
            policy = DiffusionPolicy.load(args.checkpoint, robot_joints=g1.JOINT_NAMES)
            controller = DiffusionController(policy, ControllerCfg())
            guidance = None if args.unguided else policy.guidance
    except (CheckpointError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    backend = process_backend("mujoco", None)
    who = "expert" if controller is None else f"{args.checkpoint}, {'unguided' if args.unguided else 'guided'}"
    print(f"hand-over after {args.lead_s:g} s on (vx, vy, wz) = {tuple(args.command)}; then {who}")
    print("per second after the hand-over: (forward m/s, left m/s, yaw rate rad/s)")
    for seed in args.seeds:
        result = run_handover(backend, expert, controller, seed, tuple(args.command), guidance, args.lead_s,
                              args.after_s)  # fmt: skip
        seconds = "  ".join(f"({v[0]:+.2f}, {v[1]:+.2f}, {v[2]:+.2f})" for v in result.extra["per_second"])
        print(f"seed {seed}: {seconds}" + (f"  FELL at {result.seconds:.1f} s" if result.fell else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
