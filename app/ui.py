"""The teleop app's window (Dear PyGui): live 3D view, obstacle map, plots, controls and status bar.

Dear PyGui runs callbacks on a worker thread unless told otherwise; with ``manual_callback_management``
they run here, on the UI thread, between frames. The simulation and the 3D view have their own threads.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np

from app.scene_view import SceneView
from app.simulation import Simulation, SimulationCfg, Snapshot
from app.virtual_stick import VirtualStick
from bm_gym.course import Course, CourseError, Goal
from bm_gym.devices import CommandScript, Se2Device, Se2Gamepad, Se2Keyboard, Se2Script, parse_device
from bm_gym.obstacles import Box, Cylinder, Obstacle


@dataclass(frozen=True)
class AppCfg:
    sim: SimulationCfg = field(default_factory=SimulationCfg)
    width: int = 1300
    height: int = 860
    view_size: tuple[int, int] = (640, 400)
    view_fps: float = 20.0  # cap on the offscreen 3D view; software GL competes with planning for the CPU
    map_px: int = 440
    map_span_m: float = 10.0  # width of the map in metres
    plot_seconds: float = 10.0
    max_ui_fps: float = 20.0  # the UI yields the rest of each frame to the simulation thread
    record_dir: Path = Path("runs/recordings")
    record_video: bool = True  # Record also writes the 3D view to an mp4 beside the HDF5 session
    # Input: "gamepad" (a pad when one is connected, else the virtual stick and the keyboard), "keyboard"
    # (the virtual stick and the keyboard), or "script:FILE" (a command script on simulation time, alone).
    device: str = "gamepad"
    course_file: Path = Path("runs/courses/scene.yaml")  # where Save / Load course point at first


class TeleopApp:
    def __init__(self, cfg: AppCfg | None = None) -> None:
        self.cfg = cfg = cfg or AppCfg()
        self.sim = Simulation(cfg.sim)
        self.view = SceneView(self.sim, *cfg.view_size, fps=cfg.view_fps)
        kind, script = parse_device(cfg.device)  # a bad spelling or script file fails here, before any window
        self.stick = VirtualStick()
        self.gamepad = Se2Gamepad() if kind == "gamepad" else None
        self.devices: list[Se2Device]  # in priority order: the first that is not idle drives
        if script is not None:
            clock = lambda: self.sim.snapshot().time  # noqa: E731 - simulation time, so replays are exact
            self.devices = [Se2Script(script, clock, name=Path(cfg.device.partition(":")[2]).name)]
        else:
            self.devices = [d for d in (self.gamepad, self.stick, Se2Keyboard(_dpg_key_down)) if d is not None]
        if self.gamepad is not None:
            self.gamepad.add_callback("START", self.reset)
            self.gamepad.add_callback("BACK", self._on_pause)
        self.active_device: Se2Device | None = None
        self._command_log: list[tuple[float, tuple[float, float, float]]] | None = None  # while recording
        self._recording_stem: Path | None = None
        self.obstacles: dict[int, Obstacle] = {}  # what the operator drew, by id (the simulation mirrors it)
        self.selected: int | None = None
        self.map_center = np.zeros(2)
        self.frames = 0
        self._next_uid = 0
        self._drag_offset: np.ndarray | None = None
        self._history: deque[tuple[float, ...]] = deque(maxlen=int(cfg.plot_seconds * 50))
        self._frame_times: deque[float] = deque(maxlen=60)

    # -- obstacle editing (map tool "draw") ------------------------------------------------------------

    def add_obstacle(self, obstacle: Obstacle) -> int:
        uid, self._next_uid = self._next_uid, self._next_uid + 1
        self.obstacles[uid] = obstacle
        self.sim.put_obstacle(uid, obstacle)
        return uid

    def update_obstacle(self, uid: int, obstacle: Obstacle) -> None:
        self.obstacles[uid] = obstacle
        self.sim.put_obstacle(uid, obstacle)

    def delete_obstacle(self, uid: int) -> None:
        self.obstacles.pop(uid, None)
        self.sim.remove_obstacle(uid)
        self.selected = None if self.selected == uid else self.selected

    def obstacle_at(self, xy: np.ndarray) -> int | None:
        for uid, o in reversed(self.obstacles.items()):
            reach = o.radius if isinstance(o, Cylinder) else o.bounding_radius
            if math.hypot(xy[0] - o.x, xy[1] - o.y) <= max(reach, 0.2):
                return uid
        return None

    # -- courses (bm_gym.course: the format the env and the evaluation read) ---------------------------------

    def course(self) -> Course:
        """The scene as a course: the drawn obstacles, the waypoint as its goal, the robot's pose as its start."""
        snap = self.sim.snapshot()
        waypoint = self.sim.waypoint
        return Course(tuple(self.obstacles.values()), () if waypoint is None else (Goal(*waypoint),),
                      start=(float(snap.root_xy[0]), float(snap.root_xy[1]), float(snap.yaw)), name="app")  # fmt: skip

    def save_course(self, path: str | Path) -> Path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return self.course().save(path)

    def load_course(self, path: str | Path) -> Course:
        """Replace the scene with a course file's: obstacles, waypoint (its first goal), the robot at its start."""
        course = Course.load(path)  # read and checked before anything changes
        self._on_clear()
        for obstacle in course.obstacles:
            self.add_obstacle(obstacle)
        self.sim.set_waypoint(None if not course.goals else (course.goals[0].x, course.goals[0].y))
        self.reset(course.start)
        self.map_center = np.array(course.start[:2])
        return course

    def reset(self, start: tuple[float, float, float] | None = None) -> None:
        """Put the robot back at the start (or ``start``); input devices start over too (a script from its top)."""
        self.sim.reset(start)
        for device in self.devices:
            device.reset()

    # -- recording ------------------------------------------------------------------------------------------

    @property
    def recording(self) -> bool:
        return self._recording_stem is not None

    def start_recording(self) -> Path:
        """Record the session: states and actions (HDF5), the 3D view (mp4), the commands (a replayable script)
        and the scene (course file), all under one name in ``record_dir``."""
        self.cfg.record_dir.mkdir(parents=True, exist_ok=True)
        stem = self.cfg.record_dir / time.strftime("session-%Y%m%d-%H%M%S")
        self.sim.start_recording(stem.with_suffix(".h5"))
        if self.cfg.record_video:
            self.view.start_video(stem.with_suffix(".mp4"))
        self.course().save(stem.with_suffix(".course.yaml"))
        self._recording_stem, self._command_log = stem, []
        return stem

    def stop_recording(self) -> None:
        self.sim.stop_recording()
        self.view.stop_video()
        if self._command_log:
            CommandScript.from_samples(self._command_log).save(self._recording_stem.with_suffix(".commands.csv"))
        self._recording_stem, self._command_log = None, None

    # -- map geometry -------------------------------------------------------------------------------------

    @property
    def px_per_m(self) -> float:
        return self.cfg.map_px / self.cfg.map_span_m

    def to_map(self, xy) -> list[float]:
        """World (x forward/east, y left/north) to drawlist pixels, +x to the right, +y up."""
        c = self.cfg.map_px / 2
        return [c + (xy[0] - self.map_center[0]) * self.px_per_m, c - (xy[1] - self.map_center[1]) * self.px_per_m]

    def to_world(self, px) -> np.ndarray:
        c = self.cfg.map_px / 2
        return np.array([self.map_center[0] + (px[0] - c) / self.px_per_m,
                         self.map_center[1] - (px[1] - c) / self.px_per_m])  # fmt: skip

    def map_origin(self) -> tuple[float, float]:
        """Top-left corner of the map in window pixels."""
        left, top = dpg.get_item_rect_min("map")
        return left, top

    def map_mouse(self) -> np.ndarray | None:
        """Mouse position in world coordinates when it is over the map, else None."""
        if not dpg.is_item_hovered("map"):
            return None
        (mx, my), (left, top) = dpg.get_mouse_pos(local=False), self.map_origin()
        return self.to_world((mx - left, my - top))

    def screenshot(self, path: str | Path) -> None:
        """Save the whole window as PNG once the current frame is drawn."""
        dpg.output_frame_buffer(file=str(path))

    # -- building the window ------------------------------------------------------------------------------

    def build(self) -> None:
        cfg = self.cfg
        dpg.create_context()
        dpg.configure_app(manual_callback_management=True)
        dpg.create_viewport(title="bm_gym teleop: guided diffusion G1", width=cfg.width, height=cfg.height,
                            x_pos=0, y_pos=0)  # fmt: skip
        w, h = cfg.view_size
        with dpg.texture_registry():
            dpg.add_raw_texture(w, h, np.zeros(w * h * 4, dtype=np.float32), format=dpg.mvFormat_Float_rgba,
                                tag="scene_texture")  # fmt: skip
        with dpg.window(tag="main", no_title_bar=True):
            with dpg.group(horizontal=True):
                with dpg.group():
                    dpg.add_image("scene_texture")
                    self._build_plots(w)
                with dpg.group():
                    dpg.add_text("Map (draw: click adds, drag moves, wheel resizes, right-click deletes)")
                    dpg.add_drawlist(cfg.map_px, cfg.map_px, tag="map")
                    self._build_controls()
                if not isinstance(self.devices[0], Se2Script):
                    with dpg.group():
                        dpg.add_text("Virtual stick")
                        self.stick.build()
                        dpg.add_text("drag a knob\nwith the mouse", color=(170, 170, 170))
            dpg.add_separator()
            dpg.add_text("", tag="status")
        with dpg.handler_registry():
            dpg.add_mouse_click_handler(button=dpg.mvMouseButton_Left, callback=self._on_left_click)
            dpg.add_mouse_click_handler(button=dpg.mvMouseButton_Right, callback=self._on_right_click)
            dpg.add_mouse_drag_handler(button=dpg.mvMouseButton_Left, callback=self._on_drag)
            dpg.add_mouse_release_handler(button=dpg.mvMouseButton_Left, callback=self._on_release)
            dpg.add_mouse_wheel_handler(callback=self._on_wheel)
        dpg.set_primary_window("main", True)
        dpg.setup_dearpygui()
        dpg.show_viewport()

    def _build_plots(self, width: int) -> None:
        for title, tag, series in (
            ("velocity: commanded vs actual", "vel", ("cmd vx", "vx", "cmd wz", "wz")),
            ("plan latency (ms)", "lat", ("plan ms",)),
            ("task cost", "cost", ("cost",)),
        ):
            with dpg.plot(label=title, height=130 if tag == "vel" else 95, width=width, tag=f"plot_{tag}"):
                dpg.add_plot_legend()
                dpg.add_plot_axis(dpg.mvXAxis, tag=f"{tag}_x", no_tick_labels=tag != "cost")
                with dpg.plot_axis(dpg.mvYAxis, tag=f"{tag}_y"):
                    for name in series:
                        dpg.add_line_series([], [], label=name, tag=f"series_{name}")

    def _build_controls(self) -> None:
        g = self.sim.controller.cfg.guidance
        dpg.add_text("Drive")
        dpg.add_radio_button(("joystick", "waypoint"), tag="drive", horizontal=True,
                             callback=lambda _, v: self.sim.set_mode(v))  # fmt: skip
        dpg.add_text("Map tool")
        dpg.add_radio_button(("set waypoint", "draw obstacles"), tag="tool", default_value="draw obstacles",
                             horizontal=True)  # fmt: skip
        dpg.add_radio_button(("circle", "box"), tag="shape", default_value="circle", horizontal=True)
        dpg.add_slider_float(label="guidance scale", tag="scale", default_value=g.scale, min_value=0.0,
                             max_value=100.0, width=220, callback=self._on_guidance)  # fmt: skip
        dpg.add_slider_float(label="obstacle weight", tag="obstacle_weight", default_value=self.cfg.sim.obstacle_weight,
                             min_value=0.0, max_value=5.0, width=220, callback=self._on_guidance)  # fmt: skip
        with dpg.group(horizontal=True):
            dpg.add_button(label="Reset", callback=lambda: self.reset())
            dpg.add_button(label="Pause", tag="pause", callback=self._on_pause)
            dpg.add_button(label="Record", tag="record", callback=self._on_record)
            dpg.add_button(label="Clear obstacles", callback=self._on_clear)
        with dpg.group(horizontal=True):
            dpg.add_input_text(tag="course_path", default_value=str(self.cfg.course_file), width=250)
            dpg.add_button(label="Save course", tag="save_course", callback=lambda: self._on_course("save"))
            dpg.add_button(label="Load course", tag="load_course", callback=lambda: self._on_course("load"))
        dpg.add_text("", tag="course_message", color=(170, 170, 170))
        dpg.add_text("Keyboard: W/S forward/back, A/D sideways, Q/E turn", color=(170, 170, 170))

    # -- callbacks (run on this thread by run_callbacks) -----------------------------------------------------

    def _on_guidance(self) -> None:
        self.sim.set_guidance(dpg.get_value("scale"), dpg.get_value("obstacle_weight"))

    def _on_pause(self) -> None:
        paused = dpg.get_item_label("pause") == "Pause"
        self.sim.pause(paused)
        dpg.set_item_label("pause", "Resume" if paused else "Pause")

    def _on_record(self) -> None:
        self.stop_recording() if self.recording else self.start_recording()
        dpg.set_item_label("record", "Stop recording" if self.recording else "Record")

    def _on_course(self, action: str) -> None:
        path = Path(dpg.get_value("course_path"))
        try:
            self.save_course(path) if action == "save" else self.load_course(path)
            dpg.set_value("course_message", f"{'saved' if action == 'save' else 'loaded'} {path}")
        except (OSError, CourseError) as err:  # a bad file is reported; the scene stays as it was
            dpg.set_value("course_message", f"{action} failed: {err}")

    def _on_clear(self) -> None:
        for uid in list(self.obstacles):
            self.delete_obstacle(uid)

    def _on_left_click(self) -> None:
        xy = self.map_mouse()
        if xy is None:
            return
        if dpg.get_value("tool") == "set waypoint":
            self.sim.set_waypoint(tuple(xy))
            self.sim.set_mode("waypoint")
            dpg.set_value("drive", "waypoint")
            return
        hit = self.obstacle_at(xy)
        if hit is None:
            shape = dpg.get_value("shape")
            obstacle = Cylinder(*xy, radius=0.3) if shape == "circle" else Box(*xy, half_x=0.3, half_y=0.3)
            hit = self.add_obstacle(obstacle)
        self.selected = hit
        o = self.obstacles[hit]
        self._drag_offset = np.array([o.x, o.y]) - xy

    def _on_drag(self) -> None:
        xy = self.map_mouse()
        dragging = self.selected is not None and self._drag_offset is not None
        if xy is None or not dragging or dpg.get_value("tool") != "draw obstacles":
            return
        o = self.obstacles[self.selected]
        x, y = xy + self._drag_offset
        self.update_obstacle(self.selected, _moved(o, x, y))

    def _on_release(self) -> None:
        self._drag_offset = None

    def _on_right_click(self) -> None:
        xy = self.map_mouse()
        if xy is not None and (hit := self.obstacle_at(xy)) is not None:
            self.delete_obstacle(hit)

    def _on_wheel(self, _sender, delta) -> None:
        xy = self.map_mouse()
        if xy is None or (hit := self.obstacle_at(xy)) is None:
            return
        self.update_obstacle(hit, _resized(self.obstacles[hit], 1.1 if delta > 0 else 1 / 1.1))

    # -- per frame ------------------------------------------------------------------------------------------

    def _poll_input(self) -> None:
        """Every device is polled (buttons, hot-plug, releases); the first that is not idle drives, else stop."""
        commands = [device.advance() for device in self.devices]
        active = next((k for k, c in enumerate(commands) if c is not None), None)
        self.active_device = None if active is None else self.devices[active]
        command = (0.0, 0.0, 0.0) if active is None else tuple(float(c) for c in commands[active])
        self.sim.set_command(*command)
        if self._command_log is not None:
            self._command_log.append((self.sim.snapshot().time, command))

    def _update(self) -> None:
        snap = self.sim.snapshot()
        dpg.set_value("scene_texture", self.view.latest().ravel())
        self._history.append((snap.time, *snap.command[::2], snap.velocity[0], snap.velocity[2], snap.plan_ms,
                              snap.cost))  # fmt: skip
        self._update_plots()
        self._draw_map(snap)
        if dpg.does_item_exist(self.stick.tag):
            self.stick.draw()
        now = time.perf_counter()
        self._frame_times.append(now)
        ui_fps = (len(self._frame_times) - 1) / max(now - self._frame_times[0], 1e-6)
        device = self.active_device.description if self.active_device else "idle"
        if self.gamepad is not None and self.active_device is not self.gamepad:
            device += f"; {self.gamepad.description}"
        flags = " | PAUSED" * snap.paused + " | FELL (press Reset)" * snap.fell + " | REC" * snap.recording
        flags += f" | ERROR: {snap.error}" if snap.error else ""
        warning = "NO ROUTE to the waypoint: standing still | " * snap.no_route  # first: the line may be clipped
        dpg.set_item_label("pause", "Resume" if snap.paused else "Pause")  # the simulation pauses itself on errors
        dpg.set_value(
            "status",
            f"{warning}control {snap.control_hz:4.1f} Hz (target {self.cfg.sim.control_hz:.0f}) | plan "
            f"{snap.plan_ms:5.1f} ms | 3D view {self.view.frames_rendered} frames | UI {ui_fps:4.1f} fps | sim t "
            f"{snap.time:6.1f} s | mode {snap.mode} | input: {device} | obstacles {len(snap.obstacles)}{flags}",
        )

    def _update_plots(self) -> None:
        if len(self._history) < 2:
            return
        t, cmd_vx, cmd_wz, vx, wz, plan_ms, cost = (list(c) for c in zip(*self._history, strict=True))
        for name, values in (("cmd vx", cmd_vx), ("vx", vx), ("cmd wz", cmd_wz), ("wz", wz), ("plan ms", plan_ms),
                             ("cost", cost)):  # fmt: skip
            dpg.set_value(f"series_{name}", [t, values])
        for tag in ("vel", "lat", "cost"):
            dpg.set_axis_limits(f"{tag}_x", t[-1] - self.cfg.plot_seconds, t[-1])
            dpg.fit_axis_data(f"{tag}_y")

    def _draw_map(self, snap: Snapshot) -> None:
        span = self.cfg.map_span_m
        if np.max(np.abs(snap.root_xy - self.map_center)) > 0.35 * span:  # keep the robot in view
            self.map_center = np.round(snap.root_xy)
        dpg.delete_item("map", children_only=True)
        px = self.cfg.map_px
        dpg.draw_rectangle((0, 0), (px, px), fill=(32, 36, 42), color=(90, 90, 90), parent="map")
        first = np.floor(self.map_center - span / 2)
        for k in range(int(span) + 2):
            x0, y0 = self.to_map((first[0] + k, 0))[0], self.to_map((0, first[1] + k))[1]
            dpg.draw_line((x0, 0), (x0, px), color=(55, 60, 68), parent="map")
            dpg.draw_line((0, y0), (px, y0), color=(55, 60, 68), parent="map")
        for uid, o in self.obstacles.items():
            live = uid in snap.obstacles
            fill = (220, 115, 50, 200) if live else (220, 115, 50, 80)
            edge = (255, 255, 255) if uid == self.selected else (240, 160, 90)
            if isinstance(o, Cylinder):
                dpg.draw_circle(self.to_map((o.x, o.y)), o.radius * self.px_per_m, fill=fill, color=edge, parent="map")
            else:
                dpg.draw_polygon([self.to_map(p) for p in _box_corners(o)], fill=fill, color=edge, parent="map")
        if len(snap.plan_xy):
            dpg.draw_polyline([self.to_map(p) for p in snap.plan_xy], color=(60, 210, 255), thickness=2, parent="map")
        if snap.waypoint is not None:
            dpg.draw_circle(self.to_map(snap.waypoint), 0.3 * self.px_per_m, color=(80, 255, 110), thickness=2,
                            parent="map")  # fmt: skip
        c, s = math.cos(snap.yaw), math.sin(snap.yaw)
        body = [(0.35, 0.0), (-0.2, 0.2), (-0.2, -0.2)]
        points = [self.to_map(snap.root_xy + np.array([c * x - s * y, s * x + c * y])) for x, y in body]
        dpg.draw_triangle(*points, fill=(240, 240, 240), color=(20, 20, 20), parent="map")

    # -- main loop ------------------------------------------------------------------------------------------

    def run(self, until: Callable[[TeleopApp], bool] | None = None) -> None:
        """Show the window until it is closed or ``until(app)`` returns True (checked every frame)."""
        self.build()
        self.sim.start()
        self.view.start()
        try:
            frame_s = 1.0 / self.cfg.max_ui_fps
            while dpg.is_dearpygui_running():
                started = time.perf_counter()
                dpg.run_callbacks(dpg.get_callback_queue())
                self._poll_input()
                self._update()
                dpg.render_dearpygui_frame()
                self.frames += 1
                if until is not None and until(self):
                    break
                time.sleep(max(0.0, frame_s - (time.perf_counter() - started)))
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        if self.recording:
            self.stop_recording()
        self.sim.stop()
        self.view.stop()
        self.sim.join(timeout=5)
        self.view.join(timeout=5)
        if not self.sim.is_alive() and not self.view.is_alive():  # both use the backend
            self.sim.close()
        for device in self.devices:
            device.close()
        dpg.destroy_context()


def _moved(o: Obstacle, x: float, y: float) -> Obstacle:
    if isinstance(o, Cylinder):
        return Cylinder(x, y, o.radius, o.height)
    return Box(x, y, o.half_x, o.half_y, o.yaw, o.height)


def _resized(o: Obstacle, factor: float) -> Obstacle:
    if isinstance(o, Cylinder):
        return Cylinder(o.x, o.y, float(np.clip(o.radius * factor, 0.05, 2.0)), o.height)
    return Box(o.x, o.y, float(np.clip(o.half_x * factor, 0.05, 2.0)), float(np.clip(o.half_y * factor, 0.05, 2.0)),
               o.yaw, o.height)  # fmt: skip


def _box_corners(o: Box) -> list[np.ndarray]:
    c, s = math.cos(o.yaw), math.sin(o.yaw)
    local = [(o.half_x, o.half_y), (-o.half_x, o.half_y), (-o.half_x, -o.half_y), (o.half_x, -o.half_y)]
    return [np.array([o.x + c * x - s * y, o.y + s * x + c * y]) for x, y in local]


_DPG_KEYS = {"SPACE": "mvKey_Spacebar", "ESCAPE": "mvKey_Escape"}


def _dpg_key_down(name: str) -> bool:
    """Key state for ``Se2Keyboard`` from Dear PyGui, which owns the window."""
    return dpg.is_key_down(getattr(dpg, _DPG_KEYS.get(name, f"mvKey_{name}")))
