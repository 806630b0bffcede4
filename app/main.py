"""Command line of the teleop app."""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import logging
import os
import sys
from pathlib import Path

from app.simulation import SimulationCfg
from app.ui import AppCfg, TeleopApp
from bm_gym.course import Course, CourseError
from bm_gym.devices import parse_device
from bm_gym.diffusion import SHIPPED_CHECKPOINT, DiffusionPolicy
from bm_gym.guidance.tasks import HeadingHoldCfg, ObstacleSteerCfg, SpeedHoldCfg
from bm_gym.sim import BACKENDS, backend_problem


def display_problem() -> str | None:
    """Why no window can open here (GLFW would abort the process), or None when a display is reachable."""
    if sys.platform != "linux":
        return None
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return "no display: DISPLAY and WAYLAND_DISPLAY are unset"
    if os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        try:
            xlib = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
        except OSError:
            return None  # cannot check without Xlib; GLFW will say more
        xlib.XOpenDisplay.restype = ctypes.c_void_p
        handle = xlib.XOpenDisplay(None)
        if not handle:
            return f"cannot connect to the X display {os.environ['DISPLAY']!r}"
        xlib.XCloseDisplay(ctypes.c_void_p(handle))
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT)
    parser.add_argument("--scale", type=float, help="initial guidance scale (default: the checkpoint's)")
    parser.add_argument("--record-dir", type=Path, default=Path("runs/recordings"))
    parser.add_argument("--actions-per-plan", type=int, default=SimulationCfg().actions_per_plan,
                        help="planned actions executed per plan (1: replan at 50 Hz on fast machines)")  # fmt: skip
    parser.add_argument("--view-fps", type=float, default=AppCfg().view_fps, help="cap on the 3D view's frame rate")
    parser.add_argument("--device", default=AppCfg().device,
                        help="gamepad (falls back to the virtual stick and the keyboard), keyboard, or script:FILE "
                        "(a CSV of time, vx, vy, wz rows played on simulation time)")  # fmt: skip
    parser.add_argument("--course", type=Path, help="start in this course file (obstacles, waypoint, start pose)")
    parser.add_argument("--no-record-video", action="store_true", help="Record writes no mp4 of the 3D view")
    parser.add_argument("--no-heading-hold", action="store_true",
                        help="joystick mode passes the stick's commands raw (default: a straight walk, or a "
                        "stand, holds its heading while the turn stick is centred)")  # fmt: skip
    parser.add_argument("--no-speed-hold", action="store_true",
                        help="joystick mode asks for the stick's speed as it is (default: a walk or a turn is asked "
                        "for more while it is slower than the stick, SpeedHold)")  # fmt: skip
    parser.add_argument("--no-steer", action="store_true",
                        help="joystick mode does not turn a walk round obstacles ahead (default: it turns towards "
                        "the nearest clear line, AvoidObstaclesTask.steer)")  # fmt: skip
    parser.add_argument("--backend", choices=BACKENDS, default="mujoco",
                        help="simulator; isaaclab: an Isaac Lab 3 scene (run with .venv-isaaclab/bin/python, made "
                        "by bash scripts/setup.sh --isaaclab)")  # fmt: skip
    args = parser.parse_args()
    if backend_problem(args.backend):
        parser.error(backend_problem(args.backend))
    try:  # bad input is reported before any window opens
        parse_device(args.device)
        if args.course is not None:
            Course.load(args.course)
        guidance = DiffusionPolicy.load(args.checkpoint).guidance.overridden(args.scale)  # the model's, else given
    except (ValueError, CourseError) as err:
        parser.error(str(err))
    problem = display_problem()
    if problem:
        print(f"error: the teleop app needs a display ({problem}). On a machine without a screen run it under "
              "Xvfb: xvfb-run -a python -m app", file=sys.stderr)  # fmt: skip
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    hold = None if args.no_heading_hold else HeadingHoldCfg()
    sim = SimulationCfg(checkpoint=args.checkpoint, guidance=guidance, actions_per_plan=args.actions_per_plan,
                        backend=args.backend, heading_hold=hold,
                        speed_hold=None if args.no_speed_hold else SpeedHoldCfg(),
                        steer=None if args.no_steer else ObstacleSteerCfg())  # fmt: skip
    teleop = TeleopApp(AppCfg(sim=sim, record_dir=args.record_dir, view_fps=args.view_fps, device=args.device,
                              record_video=not args.no_record_video))  # fmt: skip
    if args.course is not None:
        teleop.load_course(args.course)
    teleop.run()
    return 0
