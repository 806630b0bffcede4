"""Control rate the teleop app achieves while rendering: walk with obstacles in the scene for a while.

    xvfb-run -s "-screen 0 1400x900x24" python -m tools.bench_app --seconds 60

Runs the real app (simulation thread, 3D view thread, Dear PyGui UI); a scripted joystick command
(walk, turn) stands in for the operator. Reports the achieved control rate (target 50 Hz), plan
latency, UI frame rate and 3D view frame rate, measured after a warm-up.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from app.simulation import SimulationCfg
from app.ui import AppCfg, TeleopApp
from bm_gym.obstacles import Box, Cylinder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--screenshot", default=None, help="save the window as PNG at the end")
    parser.add_argument("--actions-per-plan", type=int, default=SimulationCfg().actions_per_plan)
    parser.add_argument("--view-fps", type=float, default=AppCfg().view_fps)
    parser.add_argument("--ui-fps", type=float, default=AppCfg().max_ui_fps)
    args = parser.parse_args()
    sim = SimulationCfg(actions_per_plan=args.actions_per_plan)
    teleop = TeleopApp(AppCfg(sim=sim, view_fps=args.view_fps, max_ui_fps=args.ui_fps))
    teleop.add_obstacle(Cylinder(2.5, 0.8, 0.35))
    teleop.add_obstacle(Box(3.5, -1.0, 0.3, 0.6, yaw=0.4))
    marks: dict[str, tuple[float, float, int, int, int]] = {}
    start = time.perf_counter()

    def until(app: TeleopApp) -> bool:
        elapsed = time.perf_counter() - start
        snap = app.sim.snapshot()
        if "start" not in marks and elapsed > args.warmup:
            marks["start"] = (time.perf_counter(), snap.time, app.sim.controller.plans, app.frames,
                              app.view.frames_rendered)  # fmt: skip
        if elapsed > args.warmup + args.seconds:
            if args.screenshot and "shot" not in marks:
                app.screenshot(args.screenshot)
                marks["shot"] = (0, 0, app.frames, 0, 0)
                return False
            marks["end"] = (time.perf_counter(), snap.time, app.sim.controller.plans, app.frames,
                            app.view.frames_rendered)  # fmt: skip
            return "shot" not in marks or app.frames > marks["shot"][2] + 3
        return False

    # A scripted stick stands in for the operator's pad; everything downstream is the real input path.
    teleop.gamepad.command = lambda: (0.6, 0.0, 0.3 * np.sin((time.perf_counter() - start) / 4))
    teleop.run(until)
    (t0, sim0, plans0, ui0, view0), (t1, sim1, plans1, ui1, view1) = marks["start"], marks["end"]
    wall = t1 - t0
    plan_ms = list(teleop.sim.controller.plan_ms)[-(plans1 - plans0) :]
    control_hz = (sim1 - sim0) / 0.02 / wall
    print(
        f"actions per plan {args.actions_per_plan}, over {wall:.0f} s wall: control {control_hz:.1f} Hz (target 50), "
        f"plans {(plans1 - plans0) / wall:.1f} Hz, plan median {np.median(plan_ms):.1f} ms / p90 "
        f"{np.percentile(plan_ms, 90):.1f} ms, UI {(ui1 - ui0) / wall:.1f} fps, "
        f"3D view {(view1 - view0) / wall:.1f} fps"
    )


if __name__ == "__main__":
    main()
