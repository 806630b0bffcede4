"""How a checkpoint's model stops: walk it forward at each speed, tell it to stop (the zero joystick command that goal
tasks give on arrival), and measure how far it goes on; fit the stopping distance d = v x delay + v^2 / (2 a).

python -m tools.calibrate_stop --checkpoint bm_gym/checkpoints/g1_velocity_omni
python -m tools.calibrate_stop --checkpoint C --record      # also write it into C (GuidanceCfg.stop_delay, ...)

Goal tasks (:class:`~bm_gym.guidance.tasks.ArrivalCfg`) tell a robot to stop when the point where it would come
to rest is at the goal; that point depends on how the model brakes, which differs between models (the larger
option brakes in half the default model's distance and came to rest at the edge of the goal). The runs use
seeds from 1000, outside the evaluations' seed ranges.
"""

from __future__ import annotations

import argparse
import json
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bm_gym.diffusion import SHIPPED_CHECKPOINT, DiffusionPolicy
from bm_gym.diffusion.policy import CheckpointError, save_guidance
from bm_gym.guidance.costs import JoystickCost

#: Seeds of the calibration runs: outside every evaluation's (0-99).
FIRST_SEED = 1000


@dataclass(frozen=True)
class HoldStill:
    """What goal tasks ask of a robot told to stop (:meth:`ArrivalCfg.hold`): no motion, unramped (a
    :class:`VelocityTask` of zeros would be ramped down by the checkpoint's ``velocity_ramp``)."""

    def cost(self, state) -> JoystickCost:
        return JoystickCost(0.0, 0.0, 0.0)


def stop_run(checkpoint: str, speed: float, seed: int, walk_s: float, settle_s: float) -> dict:
    """Walk forward at ``speed`` for ``walk_s`` s, then stop; the speed when told and the distance gone on along
    the walking direction after ``settle_s`` s (it stands by then)."""
    import torch

    from bm_gym.controller import ControllerCfg, DiffusionController
    from bm_gym.guidance.tasks import VelocityTask
    from bm_gym.robot import g1
    from bm_gym.sim import has_fallen, make_backend

    torch.set_num_threads(1)
    policy = DiffusionPolicy.load(checkpoint, robot_joints=g1.JOINT_NAMES)
    sim = make_backend("mujoco")
    controller = DiffusionController(policy, ControllerCfg(seed=seed))
    state = sim.reset(seed=seed)
    controller.reset(state, seed=seed)
    controller.set_task(VelocityTask(speed, 0.0, 0.0))
    for _ in range(round(walk_s / sim.control_dt)):
        state = sim.step(controller.act(state))
    velocity = np.asarray(state.root_lin_vel_w[:2], dtype=float)
    told_at, told_speed = state.root_pos[:2].copy(), float(np.hypot(*velocity))
    controller.set_task(HoldStill())
    fell = has_fallen(state)
    for _ in range(round(settle_s / sim.control_dt)):
        state = sim.step(controller.act(state))
        fell = fell or has_fallen(state)
    direction = velocity / told_speed if told_speed > 0 else np.zeros(2)
    gone_on = float((state.root_pos[:2] - told_at) @ direction)
    return {"commanded": speed, "seed": seed, "speed": told_speed, "distance": gone_on, "fell": bool(fell)}


def fit(runs: list[dict]) -> tuple[float, float]:
    """Least-squares (delay s, deceleration m/s^2) of d = v x delay + v^2 / (2 a), delay >= 0."""
    v = np.array([r["speed"] for r in runs])
    d = np.array([r["distance"] for r in runs])
    (delay, half_inverse), *_ = np.linalg.lstsq(np.stack([v, v**2], axis=1), d, rcond=None)
    if delay < 0:  # a robot cannot stop before it is told: fit the braking term alone
        delay, half_inverse = 0.0, float(v**2 @ d / (v**2 @ v**2))
    if half_inverse <= 0:
        raise ValueError(f"the runs do not fit a stopping distance (distances {np.round(d, 3).tolist()} m)")
    return float(delay), float(1.0 / (2.0 * half_inverse))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT)
    parser.add_argument("--speeds", type=float, nargs="+", default=[0.4, 0.6, 0.8, 1.0], help="m/s, forward")
    parser.add_argument("--seeds", type=int, default=3, help="runs per speed")
    parser.add_argument("--walk-s", type=float, default=4.0, help="s of walking before the stop")
    parser.add_argument("--settle-s", type=float, default=2.0, help="s after the stop command when it is measured")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--record", action="store_true", help="write the fit into the checkpoint's guidance settings")
    parser.add_argument("--out", type=Path, help="also write the runs and the fit here (JSON)")
    args = parser.parse_args()
    try:
        policy = DiffusionPolicy.load(args.checkpoint)
    except CheckpointError as err:
        parser.error(str(err))
    bad = [s for s in args.speeds if not (math.isfinite(s) and 0 < s <= 1.5)]
    if bad or args.seeds < 1 or args.walk_s < 1 or args.settle_s <= 0 or args.workers < 1:
        parser.error(f"--speeds must be in (0, 1.5] m/s (got {bad or args.speeds}); --seeds, --workers >= 1; "
                     "--walk-s >= 1; --settle-s > 0")  # fmt: skip
    jobs = [(str(args.checkpoint), speed, FIRST_SEED + k, args.walk_s, args.settle_s)
            for speed in args.speeds for k in range(args.seeds)]  # fmt: skip
    with ProcessPoolExecutor(args.workers) as pool:
        runs = list(pool.map(stop_run, *zip(*jobs, strict=True)))
    for r in runs:
        print(
            f"commanded {r['commanded']:.1f} m/s, seed {r['seed']}: told to stop at {r['speed']:.2f} m/s, "
            f"went on {r['distance']:.3f} m{' (fell)' if r['fell'] else ''}"
        )
    upright = [r for r in runs if not r["fell"]]
    if len(upright) < 2:
        raise SystemExit(f"error: {len(runs) - len(upright)} of {len(runs)} runs fell; nothing to fit")
    delay, deceleration = fit(upright)
    print(f"stopping distance: speed x {delay:.3f} s + speed^2 / (2 x {deceleration:.2f} m/s^2)"
          f" (fit on {len(upright)} runs; the goal tasks' own: 0.1 s, 1.0 m/s^2)")  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"checkpoint": str(args.checkpoint), "runs": runs, "stop_delay": delay,
                                        "stop_deceleration": deceleration}, indent=1))  # fmt: skip
    if args.record:
        policy.guidance = policy.guidance.overridden(
            stop_delay=round(delay, 3), stop_deceleration=round(deceleration, 2)
        )
        save_guidance(args.checkpoint, policy.guidance)
        print(f"recorded in {args.checkpoint / 'config.json'}")


if __name__ == "__main__":
    main()
