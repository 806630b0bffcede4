"""Latency of one plan (batch 1): unguided and guided (x0 gradient, and through the denoiser).

python -m tools.bench_plan --threads 2                           # the shipped checkpoint
python -m tools.bench_plan --preset paper --device cuda          # untrained paper-size model on a GPU
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from bm_gym.data.state import StateLayout
from bm_gym.diffusion import PRESETS, SHIPPED_CHECKPOINT, DiffusionPolicy, Normalizer, TrajectoryDenoiser
from bm_gym.guidance import GuidanceCfg, JoystickCost, ObstacleField, WaypointCost, WeightedSum
from bm_gym.guidance.costs import ObstacleCost
from bm_gym.obstacles import Box, Cylinder

OBSTACLES = [Cylinder(1.5, 0.5, 0.3), Box(2.5, -0.5, 0.3, 0.4, yaw=0.3)]


def load(args) -> DiffusionPolicy:
    if args.preset is None:
        return DiffusionPolicy.load(args.checkpoint)
    layout, cfg = StateLayout(), PRESETS[args.preset]
    norm = Normalizer(np.zeros(layout.dim), np.ones(layout.dim), np.zeros(29), np.ones(29))
    return DiffusionPolicy(cfg, layout, norm, TrajectoryDenoiser(cfg.denoiser, layout.dim, layout.action_dim))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--preset", default=None, help="time an untrained model of this preset instead")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--guided-steps", type=int, default=GuidanceCfg().guided_steps, help="0: guide all steps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    policy = load(args)
    policy.model.to(args.device)
    policy._mean, policy._std = policy._mean.to(args.device), policy._std.to(args.device)
    layout = policy.layout
    history = torch.zeros(5, layout.dim + layout.action_dim, device=args.device)
    barrier = ObstacleCost(ObstacleField(OBSTACLES))
    cost = WeightedSum([(1.0, WaypointCost(3.0, 1.0)), (1.0, barrier)])
    navigate = WeightedSum([(1.0, JoystickCost(0.6, 0.0, 0.3)), (1.0, barrier)])  # what NavigateTask builds
    k = args.guided_steps or None
    cases = {
        "unguided": None,
        "guided, joystick + 2 obstacles (x0 gradient)": policy.guide(navigate, GuidanceCfg(guided_steps=k)),
        "guided, waypoint + 2 obstacles (x0 gradient)": policy.guide(cost, GuidanceCfg(guided_steps=k)),
        "guided, waypoint + 2 obstacles (through denoiser)": policy.guide(
            cost, GuidanceCfg(guided_steps=k, through_model=True)
        ),
    }
    steps = len(policy.diffusion.sample_scheduler.timesteps)
    d = policy.cfg.denoiser
    print(f"model {d.layers}x{d.heads}x{d.d_model}, {steps} DDIM steps ({k or steps} guided), device {args.device}, "
          f"threads {args.threads}")  # fmt: skip
    print("| plan | denoiser runtime | median ms | p90 ms |\n|---|---|---|---|")
    runtimes = ["torch", "onnxruntime"] if args.device == "cpu" else ["torch"]
    for runtime in runtimes:
        policy.fast_forward = None
        if runtime == "onnxruntime":
            policy.use_onnxruntime(args.threads)
        for name, guide in cases.items():
            times = []
            for i in range(args.repeats + 10):
                start = time.perf_counter()
                policy.plan(history, None, guide)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                if i >= 10:
                    times.append((time.perf_counter() - start) * 1000)
            times.sort()
            print(f"| {name} | {runtime} | {statistics.median(times):.2f} | {times[int(0.9 * len(times))]:.2f} |")


if __name__ == "__main__":
    main()
