"""Train the state-action diffusion model on an expert dataset; rerun the same command to resume.

    python -m tools.train --data data/velocity_1h.h5 --out runs/cpu --preset cpu --steps 20000
    python -m tools.train --data data/velocity_1h.h5 --out runs/paper --preset paper --device cuda   # on a GPU

Writes runs/<name>/checkpoint/ (safetensors + config.json), train_state.pt (resume), tb/ (tensorboard).
"""

from __future__ import annotations

import argparse
import sys

from bm_gym.data import DatasetError
from bm_gym.diffusion.policy import CheckpointError
from bm_gym.diffusion.training import TrainCfg, Trainer, TrainingError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = TrainCfg(data="", out="")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--preset", default=defaults.preset, choices=["cpu", "paper"])
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--ema-decay", type=float, default=defaults.ema_decay, help="0 disables EMA")
    parser.add_argument("--checkpoint-every-s", type=float, default=defaults.checkpoint_every_s)
    parser.add_argument("--val-every", type=int, default=defaults.val_every)
    parser.add_argument("--device", default=defaults.device)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    try:
        return _train(args)
    except (ValueError, DatasetError, CheckpointError, TrainingError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _train(args: argparse.Namespace) -> int:
    cfg = TrainCfg(
        data=args.data, out=args.out, preset=args.preset, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        ema_decay=args.ema_decay, checkpoint_every_s=args.checkpoint_every_s, val_every=args.val_every,
        device=args.device, threads=args.threads, seed=args.seed,
    )  # fmt: skip
    trainer = Trainer(cfg)
    if trainer.step:
        print(f"resuming {cfg.out} from step {trainer.step}", flush=True)
    checkpoint = trainer.run()
    print(f"checkpoint: {checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
