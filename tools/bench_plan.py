"""Latency of one plan: the reference path (per-step runtime calls, autograd costs) against the fused path (one
ONNX Runtime call per plan, closed-form cost gradients), batch 1 and batched, idle and under load.

python -m tools.bench_plan --threads 2                           # the shipped checkpoint
python -m tools.bench_plan --threads 2 --batch 16 --load         # + 16 robots in one plan, + a busy core
python -m tools.bench_plan --preset paper --device cuda          # untrained paper-size model on a GPU (reference)
python -m tools.bench_plan --preset cpu --tokens split --state body-pos --threads 1   # the paper's options, cpu size
python -m tools.bench_plan --preset cpu --d-model 192 --layers 4 --threads 1   # what a size would cost to plan
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from bm_gym.data.state import STATE_KINDS, StateLayout
from bm_gym.diffusion import PRESETS, SHIPPED_CHECKPOINT, DiffusionPolicy, Normalizer, TrajectoryDenoiser
from bm_gym.guidance import JoystickCost, ObstacleField, WaypointCost, WeightedSum
from bm_gym.guidance.costs import ObstacleCost
from bm_gym.obstacles import Box, Cylinder

OBSTACLES = [Cylinder(1.5, 0.5, 0.3), Box(2.5, -0.5, 0.3, 0.4, yaw=0.3)]


def load(args) -> DiffusionPolicy:
    if args.preset is None:
        return DiffusionPolicy.load(args.checkpoint)
    layout, cfg = StateLayout.named(args.state), PRESETS[args.preset]
    sizes = {"tokens": args.tokens, "d_model": args.d_model, "layers": args.layers}
    cfg = dataclasses.replace(cfg, denoiser=dataclasses.replace(cfg.denoiser, **{k: v for k, v in sizes.items() if v}))
    norm = Normalizer(np.zeros(layout.dim), np.ones(layout.dim), np.zeros(29), np.ones(29))
    return DiffusionPolicy(cfg, layout, norm, TrajectoryDenoiser(cfg.denoiser, layout.dim, layout.action_dim))


def timed(plan, repeats: int, device: str) -> tuple[float, float]:
    """Median and p90 (ms) of ``plan()`` after 10 warm-up calls."""
    times = []
    for i in range(repeats + 10):
        start = time.perf_counter()
        plan()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= 10:
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.9 * len(times))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--preset", default=None, help="time an untrained model of this preset instead")
    parser.add_argument("--state", choices=STATE_KINDS, default="joint", help="--preset: the model's state layout")
    parser.add_argument("--tokens", choices=("joint", "split"), default=None, help="--preset: the token layout")
    parser.add_argument("--d-model", type=int, help="--preset: the model's width, to weigh a size's plan cost")
    parser.add_argument("--layers", type=int, help="--preset: the model's depth")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--guided-steps", type=int, help="0: guide all steps (default: the checkpoint's setting)")
    parser.add_argument("--batch", type=int, default=0, help="also time this many robots in one fused plan")
    parser.add_argument("--load", action="store_true", help="also time the fused plan with a busy second process")
    args = parser.parse_args()
    if args.preset is None and (args.state != "joint" or args.tokens or args.d_model or args.layers):
        parser.error(
            "--state, --tokens, --d-model and --layers describe an untrained --preset model; a checkpoint has its own"
        )
    torch.set_num_threads(args.threads)
    policy = load(args)
    policy.model.to(args.device)
    policy._mean, policy._std = policy._mean.to(args.device), policy._std.to(args.device)
    layout = policy.layout
    history = np.zeros((5, layout.dim + layout.action_dim), np.float32)
    barrier = ObstacleCost(ObstacleField(OBSTACLES))
    waypoint = WeightedSum([(1.0, WaypointCost(3.0, 1.0)), (1.0, barrier)])
    navigate = WeightedSum([(1.0, JoystickCost(0.6, 0.0, 0.3)), (1.0, barrier)])  # what NavigateTask builds
    guidance = policy.guidance.overridden(guided_steps=args.guided_steps)  # the settings a controller would use
    k = guidance.guided_steps
    cases = {
        "unguided": None,
        "guided, joystick + 2 obstacles": policy.guide(navigate, guidance),
        "guided, waypoint + 2 obstacles": policy.guide(waypoint, guidance),
        "guided, waypoint + 2 obstacles, through denoiser": policy.guide(
            waypoint, guidance.overridden(through_model=True)
        ),
    }
    steps = len(policy.diffusion.sample_scheduler.timesteps)
    d = policy.cfg.denoiser
    print(f"model {d.layers}x{d.heads}x{d.d_model}, {steps} DDIM steps ({k or steps} guided), device {args.device}, "
          f"threads {args.threads}")  # fmt: skip
    print("| plan | path | median ms | p90 ms |\n|---|---|---|---|")
    paths = (
        ["reference (torch)"] if args.device != "cpu" else ["reference (torch)", "reference (ORT denoiser)", "fused"]
    )
    results: dict[tuple[str, str], tuple[float, float]] = {}
    for path in paths:
        policy.fast_forward, policy.fused = None, None
        if path == "reference (ORT denoiser)":
            policy.use_onnxruntime(args.threads)
        elif path == "fused":
            policy.use_fused(args.threads)
        for name, guide in cases.items():
            if path == "fused" and guide is not None and guide.cfg.through_model:
                continue  # not fusable: would time the reference path again
            results[name, path] = timed(lambda g=guide: policy.plan(history, None, g), args.repeats, args.device)
            print(f"| {name} | {path} | {results[name, path][0]:.2f} | {results[name, path][1]:.2f} |", flush=True)
    if args.device != "cpu":
        return
    nav = cases["guided, joystick + 2 obstacles"]
    for name in ("unguided", "guided, joystick + 2 obstacles", "guided, waypoint + 2 obstacles"):
        ref, fused = results[name, "reference (ORT denoiser)"][0], results[name, "fused"][0]
        print(f"speed-up, {name}: {ref / fused:.1f}x ({ref:.2f} -> {fused:.2f} ms)")
    if args.batch:
        one = results["guided, joystick + 2 obstacles", "fused"][0]
        batch = np.repeat(history[None], args.batch, axis=0)
        generators = [torch.Generator().manual_seed(i) for i in range(args.batch)]
        many, p90 = timed(lambda: policy.plan(batch, generators, [nav] * args.batch), max(20, args.repeats // 5), "cpu")
        print(f"batched, joystick + 2 obstacles: {args.batch} robots {many:.2f} ms (p90 {p90:.2f}) = {many / one:.1f}x "
              f"one robot ({one:.2f} ms), {many / args.batch:.2f} ms per robot")  # fmt: skip
    if args.load:
        idle = results["guided, joystick + 2 obstacles", "fused"][0]
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(1.0)
            loaded, p90 = timed(lambda: policy.plan(history, None, nav), args.repeats, "cpu")
        finally:
            busy.kill()
        print(f"under load (a second process spinning on one core), joystick + 2 obstacles: {loaded:.2f} ms "
              f"(p90 {p90:.2f}) = {loaded / idle:.1f}x idle ({idle:.2f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
