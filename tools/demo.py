"""Main job on the embedded default: the shipped diffusion checkpoint drives the G1 in MuJoCo.

Part 1: a joystick script (walk, curve, turn in place, walk, stop), each walk turned round obstacles ahead as
the app's joystick mode turns it, while guidance keeps it clear of them. Part 2: a wall appears between the
robot and a goal 3.5 m ahead, and the robot walks round it to the goal (``NavigateTask``). The run is saved
as a video (``demo.mp4``, simulation time, 25 fps) and a frame sheet (``demo.png``, one frame every 1.5 s).

    python -m tools.demo [--checkpoint DIR] [--seconds 30] [--navigate-seconds 30] [--out runs/demo]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from bm_gym.controller import ControllerCfg, DiffusionController
from bm_gym.diffusion import SHIPPED_CHECKPOINT, DiffusionPolicy
from bm_gym.eval.scenarios import JOYSTICK_OBSTACLES, scripted_command
from bm_gym.guidance.tasks import AvoidObstaclesTask, CombinedTask, NavigateTask, VelocityTask
from bm_gym.obstacles import Box
from bm_gym.robot import g1
from bm_gym.sim import MujocoBackend, RobotState, has_fallen
from bm_gym.utils.video import Mp4Writer

SHEET_EVERY_S = 1.5
VIDEO_SIZE = (480, 360)


def wall_and_goal(state: RobotState) -> tuple[Box, tuple[float, float]]:
    """A 1.2 m wall 1.75 m ahead of the robot, across its path, and a goal 3.5 m ahead behind it."""
    heading = np.array([np.cos(state.yaw), np.sin(state.yaw)])
    wall_xy, goal = state.root_pos[:2] + 1.75 * heading, state.root_pos[:2] + 3.5 * heading
    wall = Box(float(wall_xy[0]), float(wall_xy[1]), half_x=0.15, half_y=0.6, yaw=float(state.yaw), height=1.2)
    return wall, (float(goal[0]), float(goal[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT)
    parser.add_argument("--seconds", type=float, default=30.0, help="joystick part")
    parser.add_argument("--navigate-seconds", type=float, default=30.0, help="time limit of the wall part")
    parser.add_argument("--scale", type=float, help="guidance scale (default: the checkpoint's)")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--video-fps", type=float, default=25.0, help="frame rate of demo.mp4 (0: no video)")
    args = parser.parse_args()
    if args.video_fps < 0:
        parser.error("--video-fps must be 0 (no video) or positive")

    policy = DiffusionPolicy.load(args.checkpoint, robot_joints=g1.JOINT_NAMES)
    backend = MujocoBackend()
    for obstacle in JOYSTICK_OBSTACLES:
        backend.add_obstacle(obstacle)
    controller = DiffusionController(policy, ControllerCfg(guidance=policy.guidance.overridden(args.scale)))
    state = backend.reset(seed=0)
    controller.reset(state)
    avoid = AvoidObstaclesTask(JOYSTICK_OBSTACLES)
    frames, path, contacts, fell = [], 0.0, 0, False
    args.out.mkdir(parents=True, exist_ok=True)
    video = Mp4Writer(args.out / "demo.mp4", args.video_fps) if args.video_fps else None
    video_every = max(1, round(1.0 / (args.video_fps * backend.control_dt))) if video else 0
    sheet_every = round(SHEET_EVERY_S / backend.control_dt)
    steps = 0

    def step() -> None:
        nonlocal state, path, contacts, fell, steps
        previous = state.root_pos[:2].copy()
        state = backend.step(controller.act(state))
        path += float(np.linalg.norm(state.root_pos[:2] - previous))
        contacts += state.obstacle_contact
        if video is not None and steps % video_every == 0:
            video.append(backend.render(*VIDEO_SIZE))
        if steps % sheet_every == 0:
            frames.append(backend.render(320, 240))
        steps += 1
        fell = bool(has_fallen(state))

    try:
        for _ in range(round(args.seconds / backend.control_dt)):
            command = avoid.steer(state, scripted_command(state.time))  # as the app's joystick mode steers
            controller.set_task(CombinedTask(((1.0, VelocityTask(*command)), (1.0, avoid))))
            step()
            if fell:
                break
        joystick_line = f"joystick part: walked {path:.1f} m, {contacts} control steps touching an obstacle"
        reached_after = None
        if not fell:
            wall, goal = wall_and_goal(state)
            backend.add_obstacle(wall)  # live: the robot is not reset
            controller.set_task(NavigateTask(*goal, obstacles=(*JOYSTICK_OBSTACLES, wall)))
            start = state.time
            for _ in range(round(args.navigate_seconds / backend.control_dt)):
                step()
                if fell or np.hypot(goal[0] - state.root_pos[0], goal[1] - state.root_pos[1]) < 0.3:
                    reached_after = None if fell else state.time - start
                    break
            frames.append(backend.render(320, 240))
    finally:  # an interrupted demo still leaves a playable video of what ran
        if video is not None:
            video.close()
        backend.close()  # its GL context now, not at interpreter exit, where EGL is already shut down
    video_line = ""
    if video is not None and video.frames:
        size_mb = video.path.stat().st_size / 1e6
        video_line = f"; video: {video.path} ({video.seconds:.1f} s, {size_mb:.1f} MB)"
    per_row = min(5, len(frames))
    frames += [np.zeros_like(frames[0])] * (-len(frames) % per_row)  # blank tiles complete the last row
    rows = [np.concatenate(frames[r : r + per_row], axis=1) for r in range(0, len(frames), per_row)]
    sheet = args.out / "demo.png"
    Image.fromarray(np.concatenate(rows, axis=0)).save(sheet)
    wall_line = "fell" if fell else (
        f"reached the goal behind the wall in {reached_after:.1f} s" if reached_after is not None
        else f"did not reach the goal behind the wall in {args.navigate_seconds:.0f} s"
    )  # fmt: skip
    print(
        f"{state.time:.0f} s simulated. {joystick_line}. Wall part: {wall_line}; {contacts} control steps touching "
        f"an obstacle in all. Median plan {np.median(controller.plan_ms):.1f} ms; frames: {sheet}{video_line}"
    )


if __name__ == "__main__":
    main()
