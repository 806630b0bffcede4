"""Offscreen 3D view of the simulation, rendered on its own thread from the latest snapshot.

The goal and the planned root path are added to MuJoCo's scene as decor geoms, so they are drawn into
the same image as the robot and the obstacles. While a video is being recorded, frames go to an mp4 on
simulation time: a frame rendered late is repeated and frames rendered during a pause are dropped, so the
video plays at the simulation's speed whatever the view's frame rate was.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import mujoco
import numpy as np

from app.simulation import Simulation, Snapshot
from bm_gym.utils.video import Mp4Writer

PLAN_RGBA = np.array([0.2, 0.85, 1.0, 0.9], dtype=np.float32)
GOAL_RGBA = np.array([0.2, 1.0, 0.3, 0.8], dtype=np.float32)


class SceneView(threading.Thread):
    """Renders ``width`` x ``height`` RGBA float frames (what a Dear PyGui texture takes) at up to ``fps``."""

    def __init__(self, sim: Simulation, width: int = 640, height: int = 400, fps: float = 20.0) -> None:
        super().__init__(name="scene-view", daemon=True)
        self.sim, self.width, self.height, self.period = sim, width, height, 1.0 / fps
        self.model = sim.backend.model  # shared read-only; obstacle sizes edited by the sim thread show up too
        self.data = mujoco.MjData(self.model)
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self.camera.distance, self.camera.elevation, self.camera.azimuth = 4.0, -25.0, 135.0
        self._frame = np.zeros((height, width, 4), dtype=np.float32)
        self._frames = 0
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._video: Mp4Writer | None = None
        self._video_requests: list[Path | None] = []  # start (path) or stop (None), taken by the render thread
        self._video_origin = 0.0  # simulation time of the video's first frame

    def start_video(self, path: str | Path) -> None:
        with self._lock:
            self._video_requests.append(Path(path))

    def stop_video(self) -> None:
        with self._lock:
            self._video_requests.append(None)

    @property
    def frames_rendered(self) -> int:
        return self._frames

    def latest(self) -> np.ndarray:
        with self._lock:
            return self._frame

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        renderer = mujoco.Renderer(self.model, height=self.height, width=self.width)  # GL context of this thread
        alpha = np.ones((self.height, self.width, 1), dtype=np.float32)
        while not self._halt.is_set():
            start = time.perf_counter()
            snap = self.sim.snapshot()
            rgb = self._render(renderer, snap)
            frame = np.concatenate([rgb.astype(np.float32) / 255.0, alpha], axis=2)
            with self._lock:
                self._frame = frame
                self._frames += 1
                requests, self._video_requests = self._video_requests, []
            for request in requests:
                self._switch_video(request, snap.time)
            if self._video is not None:
                self._write_video(rgb, snap.time)
            self._halt.wait(max(0.0, self.period - (time.perf_counter() - start)))
        renderer.close()
        self._switch_video(None, 0.0)

    def _switch_video(self, path: Path | None, now: float) -> None:
        if self._video is not None:
            self._video.close()
            self._video = None
        if path is not None:
            self._video, self._video_origin = Mp4Writer(path, fps=1.0 / self.period), now

    def _write_video(self, rgb: np.ndarray, now: float) -> None:
        video = self._video
        if now < self._video_origin + (video.frames - 1) / video.fps:  # the simulation was reset: time went back
            self._video_origin = now - video.frames / video.fps
        due = int((now - self._video_origin) * video.fps) + 1  # frames the video should hold by now
        for _ in range(min(due - video.frames, int(video.fps))):  # at most a second of repeats at once
            video.append(rgb)

    def _render(self, renderer: mujoco.Renderer, snap: Snapshot) -> np.ndarray:
        self.data.qpos[:], self.data.mocap_pos[:], self.data.mocap_quat[:] = snap.qpos, snap.mocap_pos, snap.mocap_quat
        mujoco.mj_kinematics(self.model, self.data)
        self.camera.lookat[:] = [snap.root_xy[0], snap.root_xy[1], 0.6]
        renderer.update_scene(self.data, camera=self.camera)
        scene = renderer.scene
        for x, y in snap.plan_xy[::2]:
            _add_sphere(scene, (x, y, 0.03), 0.035, PLAN_RGBA)
        if snap.waypoint is not None:
            _add_sphere(scene, (*snap.waypoint, 0.05), 0.12, GOAL_RGBA)
        return renderer.render()


def _add_sphere(scene: mujoco.MjvScene, pos, radius: float, rgba: np.ndarray) -> None:
    if scene.ngeom >= scene.maxgeom:
        return
    mujoco.mjv_initGeom(scene.geoms[scene.ngeom], mujoco.mjtGeom.mjGEOM_SPHERE, np.array([radius, 0, 0]),
                        np.asarray(pos, dtype=np.float64), np.eye(3).ravel(), rgba)  # fmt: skip
    scene.ngeom += 1
