"""Command line of the teleop app."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from app.simulation import SimulationCfg
from app.ui import AppCfg, TeleopApp
from bm_gym.diffusion import SHIPPED_CHECKPOINT
from bm_gym.guidance import GuidanceCfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT)
    parser.add_argument("--scale", type=float, default=GuidanceCfg().scale, help="initial guidance scale")
    parser.add_argument("--record-dir", type=Path, default=Path("runs/recordings"))
    parser.add_argument("--actions-per-plan", type=int, default=SimulationCfg().actions_per_plan,
                        help="planned actions executed per plan (1: replan at 50 Hz on fast machines)")  # fmt: skip
    parser.add_argument("--view-fps", type=float, default=AppCfg().view_fps, help="cap on the 3D view's frame rate")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sim = SimulationCfg(checkpoint=args.checkpoint, guidance=GuidanceCfg(scale=args.scale),
                        actions_per_plan=args.actions_per_plan)  # fmt: skip
    TeleopApp(AppCfg(sim=sim, record_dir=args.record_dir, view_fps=args.view_fps)).run()
