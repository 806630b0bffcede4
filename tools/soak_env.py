"""Soak test: step ``BeyondMimicGuided-G1-v0`` for a long time with resets and obstacle changes; watch memory.

    python -m tools.soak_env --seconds 3600 --csv runs/soak/rss.csv

Episodes of ``--episode-s`` on random obstacle courses (new obstacles every reset and, mid-episode, every
``--obstacle-every`` env steps), waypoint commands towards the goal; resident memory (VmRSS) is sampled every
``--sample-every-s``. Growth is measured from the first sample after ``--warmup-s`` (allocator pools,
caches and compiled kernels settle first) to the last. Exit status 1 when growth exceeds ``--max-growth``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import bm_gym  # noqa: F401  (registers the env)
from bm_gym.envs import ENV_ID
from bm_gym.envs.wrappers import sample_course


def rss_mib() -> float:
    """This process's resident set size (VmRSS) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3600.0, help="wall-clock duration")
    parser.add_argument("--warmup-s", type=float, default=300.0)
    parser.add_argument("--episode-s", type=float, default=12.0)
    parser.add_argument("--obstacle-every", type=int, default=20, help="env steps between obstacle changes")
    parser.add_argument("--sample-every-s", type=float, default=30.0)
    parser.add_argument("--max-growth", type=float, default=0.05, help="allowed relative RSS growth")
    parser.add_argument("--csv", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    env = gym.make(ENV_ID, command="waypoint", waypoint_frame="world", waypoint_range=8.0, max_episode_s=args.episode_s)
    rng = np.random.default_rng(args.seed)
    start = last_sample = time.perf_counter()
    samples: list[tuple[float, int, int, float]] = [(0.0, 0, 0, rss_mib())]
    steps = episodes = 0
    while time.perf_counter() - start < args.seconds:
        goal, obstacles = sample_course(rng)
        env.reset(seed=int(rng.integers(2**31)), options={"goal": goal, "obstacles": obstacles})
        episodes += 1
        done, k = False, 0
        while not done:
            _, _, terminated, truncated, _ = env.step(np.asarray(goal, dtype=np.float32))
            done, k, steps = terminated or truncated, k + 1, steps + 1
            if k % args.obstacle_every == 0:
                env.unwrapped.set_obstacles(sample_course(rng)[1])
            now = time.perf_counter()
            if now - last_sample >= args.sample_every_s:
                samples.append((now - start, steps, episodes, rss_mib()))
                last_sample = now
                print(f"{now - start:7.0f} s  {steps:6d} steps  {episodes:4d} episodes  RSS {samples[-1][3]:.1f} MiB",
                      flush=True)  # fmt: skip
    env.close()
    samples.append((time.perf_counter() - start, steps, episodes, rss_mib()))
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        args.csv.write_text("wall_s,steps,episodes,rss_mib\n" + "".join(f"{t:.1f},{s},{e},{r:.2f}\n"
                                                                        for t, s, e, r in samples))  # fmt: skip
    after = [s for s in samples if s[0] >= args.warmup_s] or samples[-1:]
    base, final = after[0][3], samples[-1][3]
    growth = (final - base) / base
    print(f"{samples[-1][0]:.0f} s, {steps} env steps, {episodes} episodes: RSS {samples[0][3]:.1f} MiB at start, "
          f"{base:.1f} MiB after warm-up ({after[0][0]:.0f} s), {final:.1f} MiB at the end: growth {growth:+.1%} "
          f"(peak {max(s[3] for s in samples):.1f} MiB)")  # fmt: skip
    return 0 if growth <= args.max_growth else 1


if __name__ == "__main__":
    sys.exit(main())
