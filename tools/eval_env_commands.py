"""How closely ``BeyondMimicGuided-G1-v0`` walks the omnidirectional protocol's commands when an agent sends
them as env actions, with the joystick holds (``GuidedEnvCfg.heading_hold``/``speed_hold``) and without.

    python -m tools.eval_env_commands --checkpoint bm_gym/checkpoints/g1_velocity_omni --seeds 0 1 2

Each of :data:`bm_gym.eval.protocols.OMNI_COMMANDS` is held for ``--duration-s`` from a fresh reset (env steps
of 0.2 s); the speed along it is the mean heading-frame velocity of the observation after ``--settle-s``, as in
``tools.eval_guidance --scenario omni``, which drives the controller directly. One JSON line per run; a summary
(mean speed per command and setting) at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import gymnasium as gym
import numpy as np

import bm_gym  # noqa: F401 - registers the env
from bm_gym.diffusion.policy import SHIPPED_CHECKPOINT
from bm_gym.envs import ENV_ID
from bm_gym.eval.protocols import OMNI_COMMANDS
from bm_gym.guidance.tasks import HeadingHoldCfg, SpeedHoldCfg

SETTINGS = {"raw": {}, "holds": {"heading_hold": HeadingHoldCfg(), "speed_hold": SpeedHoldCfg()}}


def run(env: gym.Env, seed: int, vx: float, vy: float, duration_s: float, settle_s: float) -> dict:
    """One command from a fresh reset: mean speed along it after ``settle_s`` and whether the robot fell."""
    env.reset(seed=seed)
    axis = np.array([vx, vy]) / math.hypot(vx, vy)
    dt = env.unwrapped.cfg.control_steps * env.unwrapped.backend.control_dt
    speeds = []
    for step in range(round(duration_s / dt)):
        obs, _, terminated, _, _ = env.step(np.array([vx, vy, 0.0], np.float32))
        if terminated:
            return {"fell": True, "speed": None}
        if (step + 1) * dt > settle_s:
            speeds.append(float(obs["robot"][4:6] @ axis))
    return {"fell": False, "speed": float(np.mean(speeds))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=["raw", "holds"])
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--settle-s", type=float, default=2.0)
    args = parser.parse_args(argv)
    if not 0.0 <= args.settle_s < args.duration_s:
        parser.error(f"--settle-s ({args.settle_s}) must be at least 0 and less than --duration-s ({args.duration_s})")
    speeds: dict[tuple[str, str], list[float]] = {}
    for setting in args.settings:
        env = gym.make(ENV_ID, checkpoint=args.checkpoint, **SETTINGS[setting])
        for name, vx, vy in OMNI_COMMANDS:
            for seed in args.seeds:
                result = {"setting": setting, "command": name, "seed": seed,
                          **run(env, seed, vx, vy, args.duration_s, args.settle_s)}  # fmt: skip
                print(json.dumps(result), flush=True)
                speeds.setdefault((setting, name), []).append(result["speed"])
        env.close()
    print("setting  command        mean speed (m/s)  falls")
    for (setting, name), values in speeds.items():
        walked = [v for v in values if v is not None]
        mean = f"{np.mean(walked):.2f}" if walked else "-"
        print(f"{setting:8s} {name:14s} {mean:>16s}  {len(values) - len(walked)} / {len(values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
