"""Benchmark: 50 Hz control steps/s with a Stage 1 policy in the loop vs MuJoCo's raw stepping, 1..N processes.

    python -m tools.bench_sim --policy ../shared/stage1/unitree_g1_velocity --steps 3000 --procs 1 2

"Raw MuJoCo" replays the exact states the policy loop visited and times only the 4 ``mj_step`` calls
of each control step, so both figures cover the same contacts and configurations.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path

import mujoco
import numpy as np

from bm_gym.sim import MujocoBackend
from bm_gym.stage1 import Stage1Policy
from tools.paths import VELOCITY_POLICY

COMMANDS = [(1.0, 0.0, 0.0), (0.5, 0.0, 0.5), (0.0, 0.0, -0.8), (0.0, 0.0, 0.0)]


def _worker(args: tuple[str, int, int]) -> dict[str, float]:
    policy_dir, steps, seed = args
    backend = MujocoBackend()
    policy = Stage1Policy.load(policy_dir)
    policy.apply_gains(backend)
    state = backend.reset(seed=seed)
    policy.reset()
    m, d = backend.model, backend.data
    qpos, qvel, ctrl = np.empty((steps, m.nq)), np.empty((steps, m.nv)), np.empty((steps, m.nu))
    start = time.perf_counter()
    for i in range(steps):
        command = COMMANDS[(i // 250) % len(COMMANDS)]
        targets = policy.act(state, command)
        qpos[i], qvel[i] = d.qpos, d.qvel
        state = backend.step(targets)
        ctrl[i] = d.ctrl
    loop_s = time.perf_counter() - start
    physics_s = 0.0
    for i in range(steps):
        d.qpos[:], d.qvel[:], d.ctrl[:] = qpos[i], qvel[i], ctrl[i]
        t0 = time.perf_counter()
        for _ in range(backend.cfg.decimation):
            mujoco.mj_step(m, d)
        physics_s += time.perf_counter() - t0
    return {"loop_s": loop_s, "physics_s": physics_s, "steps": steps}


def run(policy_dir: str, steps: int, procs: int) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    start = time.perf_counter()
    with ctx.Pool(procs) as pool:
        results = pool.map(_worker, [(policy_dir, steps, seed) for seed in range(procs)])
    wall = time.perf_counter() - start
    total = sum(r["steps"] for r in results)
    loop_rate = sum(r["steps"] / r["loop_s"] for r in results)
    raw_rate = sum(r["steps"] / r["physics_s"] for r in results)
    return {
        "procs": procs,
        "control_steps_per_s": loop_rate,
        "raw_mujoco_control_steps_per_s": raw_rate,
        "ratio": loop_rate / raw_rate,
        "realtime_factor": loop_rate * 0.02,
        "wall_s_including_startup": wall,
        "total_steps": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default=str(VELOCITY_POLICY))
    parser.add_argument("--steps", type=int, default=3000, help="control steps per process")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_sim.json"))
    args = parser.parse_args()
    rows = [run(args.policy, args.steps, p) for p in args.procs]
    print("| processes | policy-in-loop control steps/s | raw MuJoCo control steps/s | ratio | x real time |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['procs']} | {r['control_steps_per_s']:.0f} | {r['raw_mujoco_control_steps_per_s']:.0f} "
            f"| {r['ratio']:.0%} | {r['realtime_factor']:.1f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
