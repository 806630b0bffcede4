"""Benchmark: 50 Hz control steps/s with a Stage 1 policy in the loop, per backend and solver path.

    python -m tools.bench_sim --policy ../shared/stage1/unitree_g1_velocity --steps 3000 --procs 1 2
    .venv-isaaclab/bin/python -m tools.bench_sim --backend isaaclab --solver mujoco_cpu mujoco_warp --steps 500
    .venv-isaaclab/bin/python -m tools.bench_sim --backend isaaclab --solver mujoco_warp --num-envs 1 4 16

MuJoCo: "raw MuJoCo" replays the exact states the policy loop visited and times only the 4 ``mj_step`` calls
of each control step, so both figures cover the same contacts and configurations; 1..N processes.
Isaac Lab: one process per solver path (its simulation is one per process), timing the scene build (USD
conversion, Newton model, solver), the first control step (MuJoCo-Warp compiles its kernels there unless
Warp's kernel cache has them: ``--cold-cache`` points Warp at an empty cache) and the policy loop.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import mujoco
import numpy as np

from bm_gym.sim import BACKENDS, MujocoBackend, backend_problem
from bm_gym.sim.isaaclab_backend import SOLVERS
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


def _isaaclab_worker(args: tuple[str, str, int, bool, int]) -> dict[str, float]:
    policy_dir, solver, steps, cold_cache, num_envs = args
    if cold_cache:
        import tempfile

        os.environ["WARP_CACHE_PATH"] = tempfile.mkdtemp(prefix="warp-cold-")
    from bm_gym.sim.isaaclab_backend import IsaacLabBackend, IsaacLabBackendCfg

    start = time.perf_counter()
    backend = IsaacLabBackend(IsaacLabBackendCfg(solver=solver, num_envs=num_envs))
    build_s = time.perf_counter() - start
    policies = [Stage1Policy.load(policy_dir) for _ in range(num_envs)]
    policies[0].apply_gains(backend)
    states = [backend.reset(seed=env, env=env) for env in range(num_envs)]
    for policy in policies:
        policy.reset()

    def act(i: int) -> np.ndarray:
        command = COMMANDS[(i // 250) % len(COMMANDS)]
        return np.stack([policy.act(state, command) for policy, state in zip(policies, states, strict=True)])

    start = time.perf_counter()
    states = backend.step_all(act(0))
    first_step_s = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(steps):
        states = backend.step_all(act(i))
    loop_s = time.perf_counter() - start
    hold = np.stack([state.joint_pos for state in states])
    start = time.perf_counter()
    for _ in range(steps):
        backend.step_all(hold)
    sim_s = time.perf_counter() - start
    backend.close()
    rate = steps * num_envs / loop_s
    return {"solver": solver, "num_envs": num_envs, "build_s": build_s, "first_step_s": first_step_s,
            "control_steps_per_s": rate, "sim_only_control_steps_per_s": steps * num_envs / sim_s,
            "realtime_factor": rate * 0.02, "cold_cache": cold_cache}  # fmt: skip


def run_isaaclab(policy_dir: str, solvers: list[str], steps: int, cold_cache: bool,
                 num_envs: list[int]) -> list[dict[str, float]]:  # fmt: skip
    ctx = mp.get_context("spawn")
    rows = []
    for solver in solvers:
        for count in num_envs if solver == "mujoco_warp" else [1]:
            with ctx.Pool(1) as pool:
                rows.append(pool.apply(_isaaclab_worker, ((policy_dir, solver, steps, cold_cache, count),)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default=str(VELOCITY_POLICY))
    parser.add_argument("--steps", type=int, default=3000, help="control steps per process")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_sim.json"))
    parser.add_argument("--backend", choices=BACKENDS, default="mujoco")
    parser.add_argument("--solver", nargs="+", choices=SOLVERS, default=["mujoco_cpu"], help="isaaclab: solver paths")
    parser.add_argument("--cold-cache", action="store_true", help="isaaclab: an empty Warp kernel cache")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1],
                        help="isaaclab, mujoco_warp: robots (Newton worlds) stepped together")  # fmt: skip
    args = parser.parse_args()
    if backend_problem(args.backend):
        parser.error(backend_problem(args.backend))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.backend == "isaaclab":
        rows = run_isaaclab(args.policy, args.solver, args.steps, args.cold_cache, args.num_envs)
        print("| Isaac Lab solver | worlds | scene build s | first control step s | robot control steps/s, policy in "
              "loop | simulation only | x real time, all robots |\n|---|---|---|---|---|---|---|")  # fmt: skip
        for r in rows:
            print(f"| {r['solver']} | {r['num_envs']} | {r['build_s']:.1f} | {r['first_step_s']:.2f} "
                  f"| {r['control_steps_per_s']:.0f} | {r['sim_only_control_steps_per_s']:.0f} "
                  f"| {r['realtime_factor']:.1f} |")  # fmt: skip
        args.out.write_text(json.dumps(rows, indent=2))
        return
    rows = [run(args.policy, args.steps, p) for p in args.procs]
    print("| processes | policy-in-loop control steps/s | raw MuJoCo control steps/s | ratio | x real time |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['procs']} | {r['control_steps_per_s']:.0f} | {r['raw_mujoco_control_steps_per_s']:.0f} "
            f"| {r['ratio']:.0%} | {r['realtime_factor']:.1f} |"
        )
    args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
