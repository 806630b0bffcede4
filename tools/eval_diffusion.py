"""Closed-loop evaluation: the diffusion model alone drives the G1 (no Stage 1 policy, no guidance).

    python -m tools.eval_diffusion --episodes 20 --seconds 60
    python -m tools.eval_diffusion --randomize          # domain randomization on
    python -m tools.eval_diffusion --checkpoint runs/mixed/checkpoint --data data/mixed.h5 --source dance
    python -m tools.eval_diffusion --checkpoint runs/mixed/checkpoint --data data/mixed.h5 --source velocity

Prints how many seeded episodes survive without falling, the mean episode length, distance walked
and plan latency. ``--source`` evaluates one source of a manifest dataset: a tracking source starts the model
inside its motion (history from the Stage 1 expert at a random frame) and scores how it continues it, unguided,
for ``--seconds`` (mean joint error against the reference, falls; the expert from the same starts as a
reference); a velocity source adds the joystick profile's speed and yaw-rate errors to the survival run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bm_gym.controller import ControllerCfg, DiffusionController
from bm_gym.data.manifest import recorded_source
from bm_gym.diffusion import SHIPPED_CHECKPOINT, DiffusionPolicy
from bm_gym.eval.protocols import DiffusionDriver, run_joystick_profile
from bm_gym.eval.tracking import run_continuation
from bm_gym.robot import g1
from bm_gym.sim import BACKENDS, DomainRandomizationCfg, backend_problem, has_fallen, process_backend
from bm_gym.stage1 import Stage1Policy


@dataclass(frozen=True)
class EvalArgs:
    checkpoint: str
    seconds: float
    randomize: bool
    actions_per_plan: int
    use_ema: bool
    sample_steps: int | None
    kind: str = "survival"  # "survival", "tracking" or "joystick"
    policy: str = ""  # the source's Stage 1 policy (tracking: the expert giving the lead-in and the reference)
    motion: str | None = None
    motion_fps: float | None = None
    backend: str = "mujoco"


def run_episode(args: EvalArgs, seed: int) -> dict[str, float]:
    import torch

    torch.set_num_threads(1)
    policy = DiffusionPolicy.load(args.checkpoint, use_ema=args.use_ema, robot_joints=g1.JOINT_NAMES)
    if args.sample_steps is not None:
        policy.set_sample_steps(args.sample_steps)
    backend = process_backend(args.backend, DomainRandomizationCfg() if args.randomize else None)
    controller = DiffusionController(policy, ControllerCfg(actions_per_plan=args.actions_per_plan, seed=seed))
    if args.kind == "tracking":
        expert = Stage1Policy.load(args.policy, motion=args.motion, motion_fps=args.motion_fps)
        expert.apply_gains(backend)  # the gains the source's data was collected with
        student = run_continuation(backend, expert, controller, seed, args.seconds)
        floor = run_continuation(backend, expert, None, seed, args.seconds)
        return {"seed": seed, "survived": not student.fell, "seconds": student.seconds, "frame": student.start_frame,
                "joint_error": student.joint_error, "expert_joint_error": floor.joint_error,
                "expert_fell": floor.fell, "plan_ms_median": float(np.median(controller.plan_ms))}  # fmt: skip
    if args.kind == "joystick":
        result = run_joystick_profile(backend, DiffusionDriver(controller, controller.cfg.guidance), seed)
        return {"seed": seed, "survived": not result.fell, "seconds": result.seconds, **result.extra,
                "plan_ms_median": float(np.median(controller.plan_ms))}  # fmt: skip
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


def source_args(data: Path, name: str) -> tuple[str, str, str | None, float | None]:
    """(kind, policy, motion, motion_fps) of source ``name`` of a manifest dataset (tracking or velocity)."""
    try:
        source = recorded_source(data, name)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    kind = "joystick" if source.motion is None else "tracking"
    return kind, str(source.policy), None if source.motion is None else str(source.motion), source.motion_fps


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
    parser.add_argument("--backend", choices=BACKENDS, default="mujoco",
                        help="simulator (isaaclab: in the Isaac Lab venv, scripts/setup.sh --isaaclab)")  # fmt: skip
    parser.add_argument("--data", type=Path, help="manifest dataset naming the sources (with --source)")
    parser.add_argument("--source", help="evaluate on this source of --data: tracking continuation or joystick")
    parser.add_argument("--max-joint-error", type=float, default=0.2, help="tracking: rad, for the success count")
    parser.add_argument("--out", type=Path, default=None, help="write per-episode results as JSON")
    args = parser.parse_args()
    if backend_problem(args.backend):
        parser.error(backend_problem(args.backend))
    if args.sample_steps is not None:
        try:  # checked before the workers start
            DiffusionPolicy.load(args.checkpoint).set_sample_steps(args.sample_steps)
        except ValueError as err:
            parser.error(f"--sample-steps: {err}")
    kind, policy, motion, motion_fps = "survival", "", None, None
    if args.source:
        if args.data is None:
            parser.error("--source needs --data (the manifest dataset that names the source's policy and motion)")
        kind, policy, motion, motion_fps = source_args(args.data, args.source)
    eval_args = EvalArgs(args.checkpoint, args.seconds, args.randomize, args.actions_per_plan, not args.no_ema,
                         args.sample_steps, kind, policy, motion, motion_fps, args.backend)  # fmt: skip
    jobs = [(eval_args, seed) for seed in range(args.episodes)]
    with mp.get_context("spawn").Pool(args.workers) as pool:
        results = []
        for r in pool.imap_unordered(_run, jobs):
            results.append(r)
            status = "ok  " if r["survived"] else "FELL"
            detail = (f"joint error {r['joint_error']:.3f} rad (expert {r['expert_joint_error']:.3f}) from frame "
                      f"{r['frame']}" if kind == "tracking" else
                      f"speed error {r.get('speed_error', float('nan')):.3f} m/s, yaw-rate error "
                      f"{r.get('yaw_rate_error', float('nan')):.3f} rad/s" if kind == "joystick" else
                      f"walked {r['path_m']:5.1f} m")  # fmt: skip
            print(f"seed {r['seed']:3d} {status} {r['seconds']:5.1f} s, {detail}", flush=True)
    results.sort(key=lambda r: r["seed"])
    survived = sum(r["survived"] for r in results)
    if kind == "tracking":
        good = sum(r["survived"] and r["joint_error"] <= args.max_joint_error for r in results)
        print(f"\n{good}/{len(results)} starts continued {args.seconds:.0f} s without falling with mean joint error <= "
              f"{args.max_joint_error} rad ({survived} without falling); mean joint error "
              f"{np.mean([r['joint_error'] for r in results]):.3f} rad, expert from the same starts "
              f"{np.mean([r['expert_joint_error'] for r in results]):.3f} rad")  # fmt: skip
    elif kind == "joystick":
        done = [r for r in results if r["survived"]]
        print(f"\njoystick profile: {survived}/{len(results)} without falling; mean speed error "
              f"{np.mean([r['speed_error'] for r in done]) if done else float('nan'):.3f} m/s, yaw-rate error "
              f"{np.mean([r['yaw_rate_error'] for r in done]) if done else float('nan'):.3f} rad/s")  # fmt: skip
    else:
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
