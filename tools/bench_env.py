"""Env steps/s of BeyondMimicGuided-G1-v0 (guided controller inside): one env, Gymnasium / SB3 vectors of single
envs across the cores, and the batched vector env (one plan for all N robots) at several N.

    python -m tools.bench_env --steps 100 --envs 2 --vector-envs 2 4 8 16
    python -m tools.bench_env --steps 30 --breakdown 16     # where a control step of 16 batched envs goes

Each env step runs ``--control-steps`` 50 Hz control steps (default 10 = 0.2 s) with a velocity command and
two obstacles in the guidance cost. Reports env steps/s and the simulated-time rate (x real time).
``--breakdown N`` times the parts of the batched vector env's control step instead: the fused plan's ONNX
Runtime call, the controller's own work (history windows, task costs), the simulation workers' round trip (and
the same round trip alone, with warm caches), and the rest of the env step.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import bm_gym  # noqa: F401 - registers the env
from bm_gym.envs import ENV_ID
from bm_gym.obstacles import Box, Cylinder
from bm_gym.robot import g1

OPTIONS = {"obstacles": [Cylinder(2.0, 0.4, 0.3), Box(3.0, -0.8, 0.3, 0.4)], "goal": (5.0, 0.0)}
COMMAND = np.array([0.6, 0.0, 0.1], dtype=np.float32)


def make(control_steps: int, actions_per_plan: int):
    return lambda: gym.make(ENV_ID, control_steps=control_steps, actions_per_plan=actions_per_plan)


def timed(step, reset, steps: int) -> float:
    reset()
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def breakdown(n: int, steps: int, control_steps: int, actions_per_plan: int) -> None:
    """Milliseconds per control step of the batched vector env with ``n`` envs, by part (see the docstring)."""
    vec = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point", control_steps=control_steps,
                       actions_per_plan=actions_per_plan)  # fmt: skip
    env = vec.unwrapped
    seconds = dict.fromkeys(("act", "plan", "sample", "simulate"), 0.0)

    def timing(owner, name: str, key: str) -> None:  # wraps owner.name to add its wall time to seconds[key]
        inner = getattr(owner, name)

        def timed_call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                seconds[key] += time.perf_counter() - start

        setattr(owner, name, timed_call)

    timing(env.controller, "act_batch", "act")
    timing(env.controller.policy, "plan", "plan")
    timing(env.controller.policy.fused, "sample", "sample")
    timing(env, "_call", "simulate")
    batch = np.repeat(COMMAND[None], n, axis=0)
    timed(lambda: vec.step(batch), lambda: vec.reset(seed=0, options=OPTIONS), 3)  # warm-up
    seconds.update(dict.fromkeys(seconds, 0.0))
    start = time.perf_counter()
    for _ in range(steps):
        vec.step(batch)
    wall = time.perf_counter() - start
    loop = dict(seconds)  # the round trips below add to ``seconds``
    rate, per = steps * n / wall, 1000 / (steps * control_steps)  # env steps/s; ms per control step per second
    standing = {i: np.asarray(g1.DEFAULT_JOINT_POS) for i in range(n)}
    alone = []
    for _ in range(100):  # the workers' round trip with nothing in between: caches stay warm
        begin = time.perf_counter()
        env._call("step", standing)
        alone.append(time.perf_counter() - begin)
    vec.close()
    print(f"batched vector env, {n} envs: {rate:.1f} env steps/s, {wall * per:.2f} ms per control step "
          f"({control_steps} control steps per env step, actions_per_plan {actions_per_plan})")  # fmt: skip
    print("| part of a control step | ms |\n|---|---|")
    print(f"| plan: the fused sampler (its inputs, the ONNX Runtime calls) | {loop['sample'] * per:.2f} |")
    around = loop["plan"] - loop["sample"]
    print(f"| plan: the policy's work around it (noise, normalization) | {around * per:.2f} |")
    print(f"| controller: history windows, task costs | {(loop['act'] - loop['plan']) * per:.2f} |")
    print(f"| simulation: the workers' round trip | {loop['simulate'] * per:.2f} |")
    print(f"| (the same round trip alone, warm caches: median) | ({1000 * float(np.median(alone)):.2f}) |")
    print(f"| env: actions, tasks, observations, infos | {(wall - loop['act'] - loop['simulate']) * per:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--envs", type=int, default=2)
    parser.add_argument("--control-steps", type=int, default=10)
    parser.add_argument("--actions-per-plan", type=int, default=1)
    parser.add_argument(
        "--vector-envs", type=int, nargs="*", default=[2, 4, 8, 16], help="N for the batched vector env"
    )
    parser.add_argument("--breakdown", type=int, default=0, metavar="N",
                        help="only time the parts of the batched vector env's control step with N envs")  # fmt: skip
    args = parser.parse_args()
    if args.breakdown:
        breakdown(args.breakdown, args.steps, args.control_steps, args.actions_per_plan)
        return
    env_dt = args.control_steps * 0.02
    rows = []

    env = make(args.control_steps, args.actions_per_plan)()
    rows.append(("single env", 1, timed(lambda: env.step(COMMAND), lambda: env.reset(seed=0, options=OPTIONS),
                                        args.steps)))  # fmt: skip
    env.close()

    n = args.envs
    vec = gym.vector.AsyncVectorEnv([make(args.control_steps, args.actions_per_plan)] * n, context="spawn")
    batch = np.repeat(COMMAND[None], n, axis=0)
    rate = timed(lambda: vec.step(batch), lambda: vec.reset(seed=list(range(n)), options=OPTIONS), args.steps)
    rows.append(("gymnasium AsyncVectorEnv", n, rate * n))
    vec.close()

    from stable_baselines3.common.vec_env import SubprocVecEnv

    from bm_gym.envs.navigation import make_navigation_env

    sb3 = SubprocVecEnv([lambda: make_navigation_env(control_steps=args.control_steps)] * n, start_method="spawn")
    actions = np.zeros((n, 3), dtype=np.float32)
    rate = timed(lambda: sb3.step(actions), sb3.reset, args.steps)
    rows.append(("SB3 SubprocVecEnv (navigation wrappers)", n, rate * n))
    sb3.close()

    for n in args.vector_envs:
        vec = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point",
                           control_steps=args.control_steps, actions_per_plan=args.actions_per_plan)  # fmt: skip
        batch = np.repeat(COMMAND[None], n, axis=0)
        rate = timed(lambda v=vec, b=batch: v.step(b), lambda v=vec: v.reset(seed=0, options=OPTIONS), args.steps)
        rows.append(("batched vector env (make_vec, vector_entry_point)", n, rate * n))
        vec.close()

    print(f"{args.control_steps} control steps per env step ({env_dt:.2f} s), actions_per_plan {args.actions_per_plan}")
    print("| setup | envs | env steps/s | sim time / real time |\n|---|---|---|---|")
    for name, envs, steps_per_s in rows:
        print(f"| {name} | {envs} | {steps_per_s:.1f} | {steps_per_s * env_dt:.2f}x |")


if __name__ == "__main__":
    main()  # (spawned workers import this module: keep the guard)
