"""Benchmark: training throughput of the diffusion model, one process against data-parallel processes.

    python -m tools.bench_train --data data/velocity.h5 --preset cpu --steps 300 --procs 1 2
    python -m tools.bench_train --data data/mixed.h5 --preset paper --device cuda --amp bf16 --procs 1
    python -m tools.bench_train --data data/velocity.h5 --data-only      # the data path alone, in this process

Each configuration is a real ``tools.train`` run (``torchrun --standalone`` for more than one process) with the
same global batch; the rate is read from the run's ``losses.csv`` (training seconds at each logged step), so
process start-up, data loading at start and the final checkpoint are not counted in the rate; the time
before the first step (data loading, loader workers starting) is printed beside it. Threads per process:
``--threads`` or the machine's cores shared evenly. ``--data-only`` times what every step waits for when no
loader worker works ahead: one process's global batches of windows and their noise (``StepBatches``), no model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def run(args: argparse.Namespace, procs: int, out: Path) -> tuple[float, float, float]:
    """(steps/s, final logged loss, seconds before the first step) of one run."""
    threads = args.threads or max(1, (os.cpu_count() or 1) // procs)
    train = [
        "-m",
        "tools.train",
        "--data",
        str(args.data),
        "--out",
        str(out),
        "--preset",
        args.preset,
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--device",
        args.device,
        "--threads",
        str(threads),
        "--log-every",
        str(args.log_every),
        "--val-every",
        str(10 * args.steps),
        "--checkpoint-every-s",
        "100000",
        "--loader-workers",
        str(args.loader_workers),
    ]
    train += ["--amp", args.amp] if args.amp else []
    launcher = [sys.executable] if procs == 1 else [shutil.which("torchrun") or str(Path(sys.executable).with_name(
        "torchrun")), "--standalone", "--nproc-per-node", str(procs)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    result = subprocess.run([*launcher, *train], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"error: {procs}-process run failed:\n{result.stderr[-3000:]}")
    log = np.loadtxt(out / "losses.csv", delimiter=",", ndmin=2)
    rate = (log[-1, 0] - log[0, 0]) / (log[-1, 4] - log[0, 4])
    # The time column counts from the trainer's start: what the first logged step took beyond the steady rate is
    # the start before training (data loading, loader workers).
    return float(rate), float(log[-1, 1]), float(log[0, 4] - log[0, 0] / rate)


def data_only(args: argparse.Namespace) -> None:
    """Windows/s of the training data path: global batches drawn and cut as the trainer does, one process."""
    from bm_gym.data.dataset import ExpertWindowDataset
    from bm_gym.diffusion.config import PRESETS
    from bm_gym.diffusion.distributed import DistributedContext, GlobalBatches, StepBatches, StepNoise
    from bm_gym.diffusion.process import TrajectoryDiffusion

    d = PRESETS[args.preset].denoiser
    windows = ExpertWindowDataset(args.data, d.history, d.horizon, split="train", mirror=args.mirror)
    shape = (d.horizon, windows.layout.dim + windows.layout.action_dim)
    level_shape = TrajectoryDiffusion.level_shape(d, args.batch_size)[1:]
    noise = StepNoise(0, args.batch_size, shape, PRESETS[args.preset].diffusion.train_timesteps, level_shape)
    batches = GlobalBatches(len(windows), args.batch_size, 0)
    steps = StepBatches(windows, batches, noise, DistributedContext(), 0, args.steps)
    steps[0]  # warm-up
    times = []
    for k in range(1, args.steps):
        start = time.perf_counter()
        steps[k]
        times.append(time.perf_counter() - start)
    ms = 1e3 * np.median(times)
    print(f"{len(windows)} windows{' (mirrored half included)' if args.mirror else ''}, batch {args.batch_size}: "
          f"median {ms:.2f} ms per batch = {args.batch_size / ms * 1e3:,.0f} windows/s over {args.steps - 1} "
          f"batches")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--preset", default="cpu", choices=["cpu", "paper"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=0, help="per process (0: cores / processes)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="", choices=["", "bf16"])
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--loader-workers", type=int, default=0, help="per process, cutting windows ahead")
    parser.add_argument("--data-only", action="store_true", help="time cutting the batches alone, no model")
    parser.add_argument("--mirror", action="store_true", help="--data-only: with mirrored windows")
    args = parser.parse_args()
    if args.data_only:
        data_only(args)
        return
    print(f"preset {args.preset}, batch {args.batch_size}, device {args.device}{' bf16' if args.amp else ''}, "
          f"{os.cpu_count()} cores, {args.loader_workers} loader workers per process")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        base = None
        for procs in args.procs:
            rate, loss, start = run(args, procs, Path(tmp) / f"p{procs}")
            base = base or rate
            print(f"{procs} process(es): {rate:6.1f} steps/s = {rate * args.batch_size:8.0f} windows/s "
                  f"({rate / base:.2f}x), loss at step {args.steps}: {loss:.4f}; {start:.1f} s before the first "
                  "step", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
