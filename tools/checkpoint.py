"""Inspect a diffusion checkpoint, and record the guidance settings measured for it.

python -m tools.checkpoint show C
python -m tools.checkpoint set-guidance C --scale 60 [--guided-steps 5] [--recovery-guided-steps 5]
    [--velocity-ramp 0.3] [--sample-steps 25] [--stop-delay 0.05 --stop-deceleration 2]
python -m tools.checkpoint slim C OUT     # the weights a controller loads (the EMA's) alone: half the size

A checkpoint's guidance settings (``guidance`` in its config.json) and its DDIM step count
(``model.diffusion.sample_steps``) are what controllers, the env, the app and the evaluations use unless told
otherwise: how hard a cost must push, and over how many steps, depends on the model's prior, so the settings
chosen by evaluating a model belong with its weights. Only the named settings change.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from bm_gym.diffusion import DiffusionPolicy
from bm_gym.diffusion.policy import CheckpointError, save_guidance

#: config.json keys that ``DiffusionPolicy.save`` writes itself; the others (the training record) are copied.
_SAVED_KEYS = ("format_version", "model", "state_layout", "normalization", "guidance", "sha256")


def describe(policy: DiffusionPolicy) -> dict:
    """What a checkpoint is: its model, state and guidance settings."""
    return {
        "model": dataclasses.asdict(policy.cfg),
        "state": {
            "dim": policy.layout.dim,
            "action_dim": policy.layout.action_dim,
            "fields": list(policy.layout.fields),
        },  # fmt: skip
        "guidance": dataclasses.asdict(policy.guidance),
    }


def write_slim(policy: DiffusionPolicy, checkpoint: Path, out: Path) -> None:
    """Save ``policy`` (loaded with its EMA weights) to ``out`` without the raw training weights: what a
    controller loads, at half the size, for transport and shipping. The training record travels along."""
    if out.exists():
        raise CheckpointError(f"{out} exists: slim writes a new checkpoint folder")
    extra = {k: v for k, v in json.loads((checkpoint / "config.json").read_text()).items() if k not in _SAVED_KEYS}
    policy.save(out, extra={**extra, "slim_of": str(checkpoint)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("show", help="print the model, state and guidance settings")
    show.add_argument("checkpoint", type=Path)
    edit = commands.add_parser("set-guidance", help="record guidance settings in the checkpoint's config.json")
    edit.add_argument("checkpoint", type=Path)
    edit.add_argument("--scale", type=float)
    edit.add_argument("--guided-steps", type=int, help="guide the last K denoising steps; 0: all")
    edit.add_argument("--max-grad-norm", type=float)
    edit.add_argument(
        "--recovery-guided-steps",
        type=int,
        help="after a kick, guide only the last K steps for a while (0: not at all; -1: never ease)",
    )
    edit.add_argument(
        "--velocity-ramp", type=float, help="m/s a joystick target may lead the present velocity, per axis (-1: off)"
    )
    edit.add_argument("--sample-steps", type=int, help="DDIM steps per plan (a divisor of the training steps)")
    edit.add_argument("--stop-delay", type=float,
                      help="s: the model's stopping distance is speed x this + speed^2 / (2 deceleration) "
                           "(tools.calibrate_stop measures it; -1: the goal tasks' own)")  # fmt: skip
    edit.add_argument("--stop-deceleration", type=float, help="m/s^2, as --stop-delay (-1: the goal tasks' own)")
    edit.add_argument("--recentre-radius", type=float,
                      help="m: pull a robot holding a goal back once it has crept this far (-1: off)")  # fmt: skip
    slim = commands.add_parser(
        "slim", help="write a copy holding only the weights a controller loads (the EMA's, where there are any)"
    )
    slim.add_argument("checkpoint", type=Path)
    slim.add_argument("out", type=Path, help="new checkpoint folder (must not exist)")
    args = parser.parse_args()
    try:
        policy = DiffusionPolicy.load(args.checkpoint)
        if args.command == "slim":
            write_slim(policy, args.checkpoint, args.out)
        if args.command == "set-guidance":
            given = (args.scale, args.guided_steps, args.max_grad_norm, args.recovery_guided_steps,
                     args.velocity_ramp, args.sample_steps, args.stop_delay, args.stop_deceleration,
                     args.recentre_radius)  # fmt: skip
            if all(value is None for value in given):
                parser.error("set-guidance needs at least one of --scale, --guided-steps, --max-grad-norm, "
                             "--recovery-guided-steps, --velocity-ramp, --sample-steps, --stop-delay, "
                             "--stop-deceleration, --recentre-radius")  # fmt: skip
            policy.guidance = policy.guidance.overridden(
                args.scale, args.guided_steps, max_grad_norm=args.max_grad_norm,
                recovery_guided_steps=args.recovery_guided_steps, velocity_ramp=args.velocity_ramp,
                stop_delay=args.stop_delay, stop_deceleration=args.stop_deceleration,
                recentre_radius=args.recentre_radius)  # fmt: skip
            if args.sample_steps is not None:
                policy.set_sample_steps(args.sample_steps)
            save_guidance(args.checkpoint, policy.guidance, args.sample_steps)
    except (CheckpointError, ValueError) as err:
        parser.error(str(err))
    print(json.dumps(describe(policy), indent=1))


if __name__ == "__main__":
    main()
