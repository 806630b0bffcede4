"""Closed-loop evaluation: the diffusion model alone drives the G1 (no Stage 1 policy, no guidance).

    python -m tools.eval_diffusion --episodes 20 --seconds 60
    python -m tools.eval_diffusion --randomize          # domain randomization on

Prints how many seeded episodes survive without falling, the mean episode length, distance walked
and plan latency.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bm_gym.controller import ControllerCfg, DiffusionController
from bm_gym.data.state import StateLayout
from bm_gym.diffusion import SHIPPED_CHECKPOINT, DiffusionPolicy
from bm_gym.sim import DomainRandomizationCfg, MujocoBackend, MujocoBackendCfg, has_fallen


@dataclass(frozen=True)
class EvalArgs:
    checkpoint: str
    seconds: float
    randomize: bool
    actions_per_plan: int
    use_ema: bool
    sample_steps: int | None


def run_episode(args: EvalArgs, seed: int) -> dict[str, float]:
    import torch

    torch.set_num_threads(1)
    policy = DiffusionPolicy.load(args.checkpoint, use_ema=args.use_ema, expected_layout=StateLayout())
    if args.sample_steps:
        policy.diffusion.sample_scheduler.set_timesteps(args.sample_steps)
    backend = MujocoBackend(MujocoBackendCfg(randomization=DomainRandomizationCfg() if args.randomize else None))
    controller = DiffusionController(policy, ControllerCfg(actions_per_plan=args.actions_per_plan, seed=seed))
    state = backend.reset(seed=seed)
    controller.reset(state, seed=seed)
    start = state.root_pos.copy()
    steps = round(args.seconds / backend.control_dt)
    path, survived_steps = 0.0, steps
    previous = start[:2]
    for t in range(steps):
        state = backend.step(controller.act(state))
        path += float(np.linalg.norm(state.root_pos[:2] - previous))
        previous = state.root_pos[:2].copy()
        if has_fallen(state):
            survived_steps = t + 1
            break
    return {
        "seed": seed,
        "survived": survived_steps == steps,
        "seconds": survived_steps * backend.control_dt,
        "path_m": path,
        "net_m": float(np.linalg.norm(state.root_pos[:2] - start[:2])),
        "plan_ms_median": float(np.median(controller.plan_ms)),
    }


def _run(job: tuple[EvalArgs, int]) -> dict[str, float]:
    return run_episode(*job)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--randomize", action="store_true")
    parser.add_argument("--actions-per-plan", type=int, default=1)
    parser.add_argument("--no-ema", action="store_true")
    parser.add_argument("--sample-steps", type=int, default=None, help="override the checkpoint's DDIM steps")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write per-episode results as JSON")
    args = parser.parse_args()
    eval_args = EvalArgs(args.checkpoint, args.seconds, args.randomize, args.actions_per_plan, not args.no_ema,
                         args.sample_steps)  # fmt: skip
    jobs = [(eval_args, seed) for seed in range(args.episodes)]
    with mp.get_context("spawn").Pool(args.workers) as pool:
        results = []
        for r in pool.imap_unordered(_run, jobs):
            results.append(r)
            status = "ok  " if r["survived"] else "FELL"
            print(f"seed {r['seed']:3d} {status} {r['seconds']:5.1f} s, walked {r['path_m']:5.1f} m", flush=True)
    results.sort(key=lambda r: r["seed"])
    survived = sum(r["survived"] for r in results)
    print(
        f"\n{survived}/{len(results)} episodes survived {args.seconds:.0f} s "
        f"(randomization {'on' if args.randomize else 'off'}, EMA {'off' if args.no_ema else 'on'}); "
        f"mean episode length {np.mean([r['seconds'] for r in results]):.1f} s, "
        f"mean path {np.mean([r['path_m'] for r in results]):.1f} m, "
        f"median plan {np.median([r['plan_ms_median'] for r in results]):.1f} ms"
    )
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
