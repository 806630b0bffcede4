"""Train the state-action diffusion model on an expert dataset; rerun the same command to resume.

    python -m tools.train --data data/velocity_1h.h5 --out runs/cpu --preset cpu --steps 20000
    python -m tools.train --data data/velocity_1h.h5 --out runs/paper --preset paper --device cuda --amp bf16
    torchrun --standalone --nproc-per-node 2 -m tools.train --data data/mixed.h5 --out runs/mixed   # data-parallel
    python -m tools.train --data data/mixed.h5 --out runs/mixed --source-weights velocity=1 dance=1
    python -m tools.train --data data/mixed.h5 --out runs/mid --preset paper --d-model 256 --layers 4 --time-limit-s 600
    python -m tools.train --data data/mine.h5 --out runs/tuned --init bm_gym/checkpoints/g1_velocity_cpu --lr 1e-4

Writes runs/<name>/checkpoint/ (safetensors + config.json), train_state.pt (resume), tb/ (tensorboard).
"""

from __future__ import annotations

import argparse
import sys
import time

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
    parser.add_argument("--keep-every", type=int, default=defaults.keep_every,
                        help="also keep the checkpoint of every N steps (checkpoints/step_N), to choose one by a "
                        "closed-loop evaluation (tools.eval_suite); 0: only the latest")  # fmt: skip
    parser.add_argument("--val-every", type=int, default=defaults.val_every)
    parser.add_argument("--device", default=defaults.device)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--amp", default=defaults.amp, choices=["", "bf16"], help="bf16 autocast (GPUs)")
    parser.add_argument("--log-every", type=int, default=defaults.log_every, help="steps between loss logs")
    parser.add_argument("--loader-workers", type=int, default=defaults.loader_workers,
                        help="processes cutting training windows ahead of the model (0: none)")  # fmt: skip
    parser.add_argument("--sources", nargs="+", default=[], help="train on these manifest sources only")
    parser.add_argument("--source-weights", nargs="+", default=[], metavar="NAME=W",
                        help="sample sources in these proportions (default: by their size)")  # fmt: skip
    parser.add_argument(
        "--keep-push-futures",
        action="store_true",
        help="also train on windows with a push in their future (files that record pushes leave "
        "them out: a planner trained on them samples kicks that never come)",
    )
    parser.add_argument("--fall-margin-s", type=float, default=None,
                        help="keep windows of fallen episodes that end this long before the fall")  # fmt: skip
    parser.add_argument("--mirror", action="store_true", help="add left-right mirrored training windows")
    parser.add_argument(
        "--action-loss-horizon",
        type=int,
        default=None,
        metavar="K",
        help="only the first K future actions carry the action loss (paper: 8; default: the preset's)",
    )
    parser.add_argument(
        "--action-rate-weight",
        type=float,
        default=None,
        metavar="W",
        help="weight of the squared change between consecutive predicted actions (paper's code: 0.1)",
    )
    parser.add_argument(
        "--tokens",
        choices=["joint", "split"],
        default=None,
        help="token layout: joint (one per step) or split (the paper's; default: the preset's)",
    )
    parser.add_argument("--d-model", type=int, default=None, help="width (default: the preset's)")
    parser.add_argument("--layers", type=int, default=None, help="transformer layers (default: the preset's)")
    parser.add_argument("--heads", type=int, default=None, help="attention heads (default: the preset's)")
    parser.add_argument("--action-lookahead", type=int, default=None, metavar="K",
                        help="split tokens: each action a_k attends to the planned states up to s_k+K (>= the "
                             "horizon: all of them; default: the preset's, 1)")  # fmt: skip
    parser.add_argument("--init", default=None, metavar="CHECKPOINT",
                        help="fine-tune: start from this checkpoint folder's weights and normalization (its model "
                             "and state layout must be the run's)")  # fmt: skip
    parser.add_argument("--time-limit-s", type=float, default=None,
                        help="stop after this many seconds, saving a checkpoint; the same command goes on")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        return _train(args)
    except (ValueError, DatasetError, CheckpointError, TrainingError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _train(args: argparse.Namespace) -> int:
    cfg = TrainCfg(
        data=args.data, out=args.out, preset=args.preset, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        ema_decay=args.ema_decay, checkpoint_every_s=args.checkpoint_every_s, keep_every=args.keep_every,
        val_every=args.val_every,
        device=args.device, threads=args.threads, seed=args.seed, amp=args.amp, log_every=args.log_every,
        loader_workers=args.loader_workers,
        sources=tuple(args.sources), source_weights=_weights(args.source_weights), fall_margin_s=args.fall_margin_s,
        keep_push_futures=args.keep_push_futures,
        mirror=args.mirror, action_loss_horizon=args.action_loss_horizon, action_rate_weight=args.action_rate_weight,
        tokens=args.tokens, d_model=args.d_model, layers=args.layers, heads=args.heads, time_limit_s=args.time_limit_s,
        action_lookahead=args.action_lookahead, init=args.init,
    )  # fmt: skip
    trainer = Trainer(cfg)
    main_process = trainer.dist.main
    if trainer.step and main_process:
        print(f"resuming {cfg.out} from step {trainer.step}", flush=True)
    if main_process:
        params = sum(p.numel() for p in trainer.model.parameters())
        print(f"{len(trainer.train_set)} training windows, {params / 1e6:.2f} M parameters on {cfg.device}; set up "
              f"in {time.monotonic() - trainer.created:.1f} s", flush=True)  # fmt: skip
    checkpoint = trainer.run()
    if main_process:
        print(f"checkpoint: {checkpoint}")
    # stopped by a signal: say so in the exit status (128 + signal, as the shell does), the checkpoint is saved
    return 0 if trainer.stop_signal is None else 128 + trainer.stop_signal


def _weights(pairs: list[str]) -> tuple[tuple[str, float], ...]:
    out = []
    for pair in pairs:
        name, _, weight = pair.partition("=")
        try:
            out.append((name, float(weight)))
        except ValueError:
            raise ValueError(f"--source-weights takes NAME=WEIGHT pairs, got {pair!r}") from None
    return tuple(out)


if __name__ == "__main__":
    sys.exit(main())
