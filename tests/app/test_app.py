"""The teleop app under Xvfb, driven as a person would: a gamepad (SDL events), the keyboard and the mouse (xdotool).

The app runs in a spawned process, as it does for a user: its GL contexts (GLFW for the window, OSMesa for
the 3D view) never share a process with the rest of the suite.
"""

from __future__ import annotations

import importlib.util
import math
import multiprocessing
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pygame
import pytest
from PIL import Image

import bm_gym.devices.gamepad as gamepad_module
from app.ui import TeleopApp
from bm_gym.obstacles import Cylinder

AXIS_MAX = 32767
PAD_INSTANCE = 7


class FakeController:
    """Stands in for SDL's controller handle (no pad in CI); the app still learns of it through SDL events."""

    name = "Test Pad"

    def __init__(self, device_index: int) -> None:
        self.device_index = device_index

    def as_joystick(self):
        return self

    def get_instance_id(self) -> int:
        return PAD_INSTANCE

    def quit(self) -> None:
        pass


@pytest.fixture(scope="module")
def xvfb():
    for tool in ("Xvfb", "xdotool"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is required for the GUI tests (scripts/setup.sh installs it)")
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1400x900x24", "-nolisten", "tcp"],
                              pass_fds=(write,), stderr=subprocess.DEVNULL)  # fmt: skip
    os.close(write)
    with os.fdopen(read) as f:
        display = f":{f.readline().strip()}"
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = display
    yield display
    server.terminate()
    server.wait()
    if old is None:
        os.environ.pop("DISPLAY", None)
    else:
        os.environ["DISPLAY"] = old


def xdotool(display: str, *args: str) -> None:
    subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display}, check=True, timeout=10)


def click_item(display: str, tag: str) -> None:
    """A real mouse click (xdotool) in the middle of a Dear PyGui item."""
    import dearpygui.dearpygui as dpg

    (left, top), (width, height) = dpg.get_item_rect_min(tag), dpg.get_item_rect_size(tag)
    xdotool(display, "mousemove", str(int(left + width / 2)), str(int(top + height / 2)))
    xdotool(display, "click", "1")


def click_on_map(display: str, teleop: TeleopApp, xy, center=None, settle_frames: int = 30):
    """A real mouse click (xdotool) on the map at world point ``xy``, the map first centred on ``center``; then
    ``settle_frames`` UI frames for the edit to reach the simulation. A generator: ``yield from`` it in a script."""
    if center is not None:
        teleop.map_center = np.asarray(center, dtype=float)
        yield
    x0, y0 = teleop.to_map(xy)
    left, top = teleop.map_origin()
    xdotool(display, "mousemove", str(int(left + x0)), str(int(top + y0)))
    yield
    yield
    xdotool(display, "click", "1")
    for _ in range(settle_frames):
        yield


def post(event_type: int, **fields) -> None:
    pygame.event.post(pygame.event.Event(event_type, **fields))


def run_script(teleop: TeleopApp, script, max_frames: int = 20_000) -> None:
    """Run the app; ``script`` is a generator advanced once per UI frame, ending the run when it returns."""
    steps = script(teleop)

    def until(_app: TeleopApp) -> bool:
        if _app.frames > max_frames:
            raise AssertionError("script did not finish")
        try:
            next(steps)
        except StopIteration:
            return True
        return False

    teleop.run(until)


def wait_sim_time(teleop: TeleopApp, seconds: float):
    start = teleop.sim.snapshot().time
    while teleop.sim.snapshot().time < start + seconds:
        yield


def drive_the_app(display: str, screenshot: str, results) -> None:
    """Runs in a child process: plug in a pad, drive, draw, unplug, type; report what was seen."""
    os.environ["DISPLAY"] = display
    gamepad_module.controller.Controller = FakeController  # no pad in CI; the app still learns of it via SDL events
    teleop = TeleopApp()
    seen: dict[str, object] = {}

    def script(t: TeleopApp):
        while t.sim.snapshot().time < 0.5:  # the simulation thread is running
            yield
        post(pygame.CONTROLLERDEVICEADDED, device_index=0)
        post(pygame.CONTROLLERAXISMOTION, instance_id=PAD_INSTANCE, axis=pygame.CONTROLLER_AXIS_LEFTY, value=-AXIS_MAX)
        start = t.sim.snapshot().root_xy.copy()
        yield from wait_sim_time(t, 5.0)
        snap = t.sim.snapshot()
        seen["pad_command"], seen["moved"] = snap.command, snap.root_xy - start
        seen["pad_names"] = t.gamepad.names

        # Mouse: click on the map 1.5 m ahead and 1.2 m left of the robot ("draw obstacles" tool, circle).
        target = snap.root_xy + np.array([1.5, 1.2])
        yield from click_on_map(display, t, target, center=np.round(snap.root_xy))
        seen["target"], seen["sim_obstacles"] = target, list(t.sim.backend.obstacles().values())
        yield from wait_sim_time(t, 1.0)
        t.screenshot(screenshot)
        for _ in range(5):
            yield

        # Unplugging the pad stops the robot; the keyboard then takes over.
        post(pygame.CONTROLLERDEVICEREMOVED, instance_id=PAD_INSTANCE)
        for _ in range(5):
            yield
        seen["unplugged_command"] = t.sim.snapshot().command
        xdotool(display, "keydown", "w")
        for _ in range(10):
            yield
        seen["keyboard_command"] = t.sim.snapshot().command
        xdotool(display, "keyup", "w")

    run_script(teleop, script)
    results.put({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in seen.items()})


def run_in_child(target, display: str, screenshot: Path) -> dict:
    """Run ``target(display, screenshot, results)`` in a fresh process (one Dear PyGui context each); its report."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=target, args=(display, str(screenshot), results))
    child.start()
    seen = results.get(timeout=240)
    child.join(timeout=60)
    assert child.exitcode == 0
    return seen


def test_gamepad_drives_mouse_draws_obstacle_keyboard_fallback(xvfb, tmp_path):
    seen = run_in_child(drive_the_app, xvfb, tmp_path / "app.png")
    seen["moved"] = np.array(seen["moved"])
    assert seen["pad_names"] == ["Test Pad"]
    assert seen["pad_command"][0] == pytest.approx(1.0)
    assert seen["moved"][0] > 0.8, f"the robot walked forward under gamepad control: {seen['moved']}"
    obstacles = seen["sim_obstacles"]
    assert len(obstacles) == 1, "the clicked obstacle exists in the simulation"
    assert isinstance(obstacles[0], Cylinder), "the shape tool starts on circle, as it is drawn"
    assert math.hypot(obstacles[0].x - seen["target"][0], obstacles[0].y - seen["target"][1]) < 0.1
    assert tuple(seen["unplugged_command"]) == (0.0, 0.0, 0.0), "the robot is told to stop when the pad disappears"
    assert seen["keyboard_command"][0] == pytest.approx(0.8)
    shot = np.asarray(Image.open(tmp_path / "app.png").convert("RGB"))
    assert shot.shape[0] > 600 and shot.shape[1] > 1000 and shot.std() > 10


def walled_in_waypoint(display: str, screenshot: str, results) -> None:
    """Runs in a child process: wall in a spot, send the robot there, read the status bar."""
    import dearpygui.dearpygui as dpg

    from bm_gym.eval.scenarios import walled_in_course

    os.environ["DISPLAY"] = display
    teleop = TeleopApp()
    seen: dict[str, object] = {}

    def script(t: TeleopApp):
        while t.sim.snapshot().time < 0.5:
            yield
        for wall in walled_in_course((2.5, 0.0), half=0.7):
            t.add_obstacle(wall)
        t.map_center = np.array([1.5, 0.0])
        t.sim.set_mode("waypoint")
        t.sim.set_waypoint((2.5, 0.0))
        start = t.sim.snapshot().root_xy.copy()
        yield from wait_sim_time(t, 2.0)
        seen["no_route"], seen["status"] = t.sim.snapshot().no_route, dpg.get_value("status")
        seen["moved"] = float(np.linalg.norm(t.sim.snapshot().root_xy - start))
        t.screenshot(screenshot)
        for _ in range(5):
            yield

    run_script(teleop, script)
    results.put(seen)


def test_a_walled_in_waypoint_shows_no_route_and_the_robot_stands(xvfb, tmp_path):
    seen = run_in_child(walled_in_waypoint, xvfb, tmp_path / "no_route.png")
    assert seen["no_route"] and "NO ROUTE" in seen["status"], seen["status"]
    assert seen["moved"] < 0.2, "the robot stands instead of pressing into the wall"
    assert np.asarray(Image.open(tmp_path / "no_route.png").convert("RGB")).std() > 10


def save_and_load_a_course(display: str, screenshot: str, results) -> None:
    """Runs in a child process: draw an obstacle with the mouse, set a waypoint, press Save course; then load a
    course file with the Load course button."""
    import dearpygui.dearpygui as dpg

    from bm_gym.course import Course, Goal
    from bm_gym.obstacles import Cylinder

    os.environ["DISPLAY"] = display
    teleop = TeleopApp()
    folder = Path(screenshot).parent
    seen: dict[str, object] = {}

    def script(t: TeleopApp):
        while t.sim.snapshot().time < 0.5:
            yield
        x0, y0 = t.to_map((2.0, 1.0))  # draw a circle 2 m ahead, 1 m left
        left, top = t.map_origin()
        xdotool(display, "mousemove", str(int(left + x0)), str(int(top + y0)))
        yield
        xdotool(display, "click", "1")
        for _ in range(10):
            yield
        t.sim.set_waypoint((4.0, 0.5))
        dpg.set_value("course_path", str(folder / "drawn.yaml"))
        yield
        click_item(display, "save_course")
        for _ in range(10):
            yield
        seen["drawn"] = [list(map(float, (o.x, o.y))) for o in t.obstacles.values()]
        seen["saved_message"] = dpg.get_value("course_message")
        Course((Cylinder(3.0, -1.0, 0.4),), (Goal(5.0, 0.0),), start=(1.0, 1.0, 0.5)).save(folder / "given.json")
        dpg.set_value("course_path", str(folder / "given.json"))
        yield
        click_item(display, "load_course")
        yield from wait_sim_time(t, 0.5)
        snap = t.sim.snapshot()
        seen["loaded"] = [list(map(float, (o.x, o.y))) for o in t.obstacles.values()]
        seen["sim_obstacles"] = len(t.sim.backend.obstacles())
        seen["waypoint"], seen["root_xy"] = list(t.sim.waypoint), snap.root_xy.tolist()
        (folder / "broken.json").write_text("{")
        dpg.set_value("course_path", str(folder / "broken.json"))
        yield
        click_item(display, "load_course")
        for _ in range(5):
            yield
        seen["broken_message"], seen["after_broken"] = dpg.get_value("course_message"), len(t.obstacles)
        t.screenshot(screenshot)
        for _ in range(5):
            yield

    run_script(teleop, script)
    results.put(seen)


def test_a_course_saved_from_the_app_reloads_in_the_env_and_the_evaluation(xvfb, tmp_path):
    import gymnasium as gym

    import bm_gym  # noqa: F401 - registers the env
    from bm_gym.course import Course
    from bm_gym.envs import ENV_ID

    seen = run_in_child(save_and_load_a_course, xvfb, tmp_path / "course.png")
    assert "saved" in seen["saved_message"] and len(seen["drawn"]) == 1
    assert math.hypot(seen["drawn"][0][0] - 2.0, seen["drawn"][0][1] - 1.0) < 0.1
    course = Course.load(tmp_path / "drawn.yaml")  # what the evaluation tool reads (--scenario course)
    assert [[o.x, o.y] for o in course.obstacles] == seen["drawn"]
    assert (course.goals[0].x, course.goals[0].y) == (4.0, 0.5)
    env = gym.make(ENV_ID, control_steps=2)
    env.reset(seed=0, options={"course": str(tmp_path / "drawn.yaml")})
    assert [[o.x, o.y] for o in env.unwrapped.obstacles] == seen["drawn"] and env.unwrapped.goal == (4.0, 0.5)
    env.close()
    assert seen["loaded"] == [[3.0, -1.0]] and seen["sim_obstacles"] == 1 and seen["waypoint"] == [5.0, 0.0]
    assert math.hypot(seen["root_xy"][0] - 1.0, seen["root_xy"][1] - 1.0) < 0.2, "the robot stands at the start"
    assert "load failed" in seen["broken_message"] and "broken.json" in seen["broken_message"]
    assert seen["after_broken"] == 1, "a bad file leaves the scene as it was"


def scripted_recorded_course(display: str, screenshot: str, results) -> None:
    """Runs in a child process: a course file and a command script (``--device script:FILE``) drive the app while
    the Record button (clicked with xdotool) writes the session: HDF5, mp4, commands and course."""
    import dearpygui.dearpygui as dpg

    from app.ui import AppCfg

    os.environ["DISPLAY"] = display
    folder = Path(screenshot).parent
    teleop = TeleopApp(AppCfg(device=f"script:{folder / 'drive.csv'}", record_dir=folder / "recordings"))
    teleop.load_course(folder / "course.yaml")
    seen: dict[str, object] = {"start": teleop.sim.snapshot().root_xy.tolist()}

    def script(t: TeleopApp):
        for _ in range(3):
            yield
        click_item(display, "record")
        seen["commands"] = []  # (simulation time, command the simulation was given) each frame
        while not t.devices[0].finished:
            snap = t.sim.snapshot()
            seen["commands"].append((snap.time, list(snap.command)))
            yield
        yield from wait_sim_time(t, 1.0)
        seen["status"], seen["recording"] = dpg.get_value("status"), t.recording
        t.screenshot(screenshot)
        yield
        click_item(display, "record")
        for _ in range(3):
            yield
        snap = t.sim.snapshot()
        seen["end"], seen["fell"] = snap.root_xy.tolist(), snap.fell

    run_script(teleop, script)
    results.put(seen)


def test_a_command_script_drives_the_app_through_a_course_and_record_writes_video_commands_and_course(xvfb, tmp_path):
    from bm_gym.course import Course
    from bm_gym.data.hdf5 import validate
    from bm_gym.devices import CommandScript
    from bm_gym.obstacles import Cylinder
    from bm_gym.utils.video import read_video, video_info

    Course((Cylinder(2.5, 1.0, 0.3), Cylinder(4.0, -1.0, 0.3)), start=(0.0, 0.0, 0.0)).save(tmp_path / "course.yaml")
    drive = CommandScript((0.0, 0.5, 4.5, 6.5), ((0.0, 0.0, 0.0), (0.6, 0.0, 0.0), (0.5, 0.0, -0.5), (0.0, 0.0, 0.0)))
    drive.save(tmp_path / "drive.csv")
    seen = run_in_child(scripted_recorded_course, xvfb, tmp_path / "script.png")
    assert not seen["fell"] and seen["recording"] and "input: script drive.csv" in seen["status"], seen["status"]
    # The simulation was given the script's command at every frame, on simulation time (one UI frame of slack).
    off = [(t, c) for t, c in seen["commands"] if all(abs(t - s) > 0.15 for s in drive.times)
           and not np.allclose(c, drive.at(t), atol=1e-6)]  # fmt: skip
    assert len(seen["commands"]) > 50 and not off, off[:5]
    moved = np.subtract(seen["end"], seen["start"])
    assert moved[0] > 2.0, f"the robot walked forward as scripted: {moved}"

    (session,) = (tmp_path / "recordings").glob("session-*.h5")
    stem = session.with_suffix("")
    replay = CommandScript.load(stem.with_suffix(".commands.csv"))  # replayable with --device script:FILE
    first = drive.commands.index(replay.commands[0])  # recording began a few frames into the script
    assert replay.commands == drive.commands[first:] and first <= 1, replay
    assert replay.times[-1] - replay.times[-2] == pytest.approx(2.0, abs=0.15), "the script's timing is kept"
    assert [(o.x, o.y) for o in Course.load(stem.with_suffix(".course.yaml")).obstacles] == [(2.5, 1.0), (4.0, -1.0)]
    video = stem.with_suffix(".mp4")
    info, frames = video_info(video), list(read_video(video))
    assert info["size"] == (640, 400)
    summary = validate(session)
    recorded_s = summary.steps * summary.control_dt
    assert abs(len(frames) / info["fps"] - recorded_s) < 1.0, "the video runs on simulation time"
    moving = sum(np.abs(a.astype(int) - b.astype(int)).mean() > 0.05 for a, b in zip(frames, frames[1:], strict=False))
    # Frames rendered late are repeated to keep simulation time (the view renders 5-20 fps on 2 busy cores),
    # so only a share of neighbours differ; a frozen renderer buffer would give none.
    assert moving >= max(20, 0.2 * len(frames)), f"{moving} of {len(frames)} frames changed: a frozen video?"
    assert np.asarray(Image.open(tmp_path / "script.png").convert("RGB")).std() > 10


def drive_with_the_virtual_stick(display: str, screenshot: str, results) -> None:
    """Runs in a child process: no pad, no keys: the mouse alone drags the on-screen stick (xdotool)."""
    os.environ["DISPLAY"] = display
    teleop = TeleopApp()
    seen: dict[str, object] = {}

    def drag_to(part: str, x: float, y: float = 0.0):
        px, py = teleop.stick.screen_point(part, x, y)
        xdotool(display, "mousemove", str(int(px)), str(int(py)))
        for _ in range(3):
            yield

    def script(t: TeleopApp):
        while t.sim.snapshot().time < 0.5:
            yield
        yield from drag_to("pad", 0.0, 0.0)
        xdotool(display, "mousedown", "1")
        yield from drag_to("pad", 0.0, 0.4)
        yield from drag_to("pad", 0.0, 0.8)  # 80 % up: forward at 0.8 m/s
        start = t.sim.snapshot().root_xy.copy()
        yield from wait_sim_time(t, 3.0)
        seen["pad_command"], seen["device"] = t.sim.snapshot().command, t.active_device.description
        seen["moved"] = (t.sim.snapshot().root_xy - start).tolist()
        t.screenshot(screenshot)
        yield
        xdotool(display, "mouseup", "1")
        yield from wait_sim_time(t, 0.2)
        seen["released"] = t.sim.snapshot().command
        yield from drag_to("bar", 0.0)
        xdotool(display, "mousedown", "1")
        yield from drag_to("bar", -0.6)  # 60 % left: turn left at 0.6 rad/s
        yield from wait_sim_time(t, 0.2)  # the simulation thread takes the command at its next control steps
        seen["bar_command"] = t.sim.snapshot().command
        xdotool(display, "mouseup", "1")
        yield from wait_sim_time(t, 0.2)
        seen["released_bar"] = t.sim.snapshot().command

    run_script(teleop, script)
    results.put(seen)


def test_the_virtual_stick_drives_the_robot_with_the_mouse_alone(xvfb, tmp_path):
    seen = run_in_child(drive_with_the_virtual_stick, xvfb, tmp_path / "stick.png")
    assert seen["device"] == "virtual stick"
    assert seen["pad_command"] == pytest.approx((0.8, 0.0, 0.0), abs=0.03)
    assert seen["moved"][0] > 1.0, f"the robot walked forward: {seen['moved']}"
    assert tuple(seen["released"]) == (0.0, 0.0, 0.0), "letting go stops the robot"
    assert seen["bar_command"] == pytest.approx((0.0, 0.0, 0.6), abs=0.03)
    assert tuple(seen["released_bar"]) == (0.0, 0.0, 0.0)


def draw_into_the_isaaclab_scene(display: str, screenshot: str, results) -> None:
    """Runs in a child process: the app on the Isaac Lab backend; the keyboard walks the robot, a click on the map
    draws an obstacle into the Isaac Lab scene, and the robot, asked to walk into it, touches it there."""
    import dearpygui.dearpygui as dpg

    from app.simulation import SimulationCfg
    from app.ui import AppCfg

    os.environ["DISPLAY"] = display
    teleop = TeleopApp(AppCfg(sim=SimulationCfg(backend="isaaclab"), device="keyboard"))
    seen: dict[str, object] = {"backend": type(teleop.sim.backend).__name__}

    def script(t: TeleopApp):
        while t.sim.snapshot().time < 0.5:
            yield
        start = t.sim.snapshot().root_xy.copy()
        xdotool(display, "keydown", "w")
        yield from wait_sim_time(t, 4.0)
        xdotool(display, "keyup", "w")
        snap = t.sim.snapshot()
        seen["moved"] = (snap.root_xy - start).tolist()
        target = snap.root_xy + np.array([1.2, 0.0])  # a cylinder straight ahead
        yield from click_on_map(display, t, target, center=np.round(snap.root_xy))
        seen["target"] = target.tolist()
        seen["sim_obstacles"] = [(type(o).__name__, o.x, o.y) for o in t.sim.backend.obstacles().values()]
        seen["shape"] = dpg.get_value("shape")
        yield from wait_sim_time(t, 1.5)
        t.screenshot(screenshot)
        yield

    run_script(teleop, script)
    results.put(seen)


@pytest.mark.skipif(importlib.util.find_spec("isaaclab") is None,
                    reason="Isaac Lab 3 not importable here (bash scripts/setup.sh --isaaclab)")  # fmt: skip
def test_the_app_draws_obstacles_into_the_isaaclab_scene(xvfb, tmp_path):
    seen = run_in_child(draw_into_the_isaaclab_scene, xvfb, tmp_path / "isaaclab.png")
    assert seen["backend"] == "IsaacLabBackend"
    assert seen["moved"][0] > 0.8, f"the robot walked forward in Isaac Lab under keyboard control: {seen['moved']}"
    assert len(seen["sim_obstacles"]) == 1, "the clicked obstacle exists in the Isaac Lab scene"
    kind, x, y = seen["sim_obstacles"][0]
    assert kind == "Cylinder", seen
    assert math.hypot(x - seen["target"][0], y - seen["target"][1]) < 0.1
    shot = np.asarray(Image.open(tmp_path / "isaaclab.png").convert("RGB"))
    assert shot.shape[0] > 600 and shot.shape[1] > 1000 and shot.std() > 10
    if os.environ.get("BM_GYM_KEEP_SCREENSHOT"):  # how docs/isaaclab_app.png was made
        shutil.copy(tmp_path / "isaaclab.png", os.environ["BM_GYM_KEEP_SCREENSHOT"])
