"""An on-screen stick for machines without a gamepad: drag the knob with the mouse; let go and the robot stops.

Round pad: forward (up) and sideways (left is +vy); bar below it: yaw rate (left turns left). It is an
``Se2Device`` like the gamepad, polled once per UI frame; idle (None) while the mouse does not hold it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import dearpygui.dearpygui as dpg
import numpy as np

from bm_gym.devices.se2 import Se2Device, command

PAD_RADIUS, KNOB_RADIUS, MARGIN, BAR_GAP = 46.0, 11.0, 12.0, 24.0
BAR_HALF = PAD_RADIUS
WIDTH, HEIGHT = 2 * (PAD_RADIUS + MARGIN), 2 * (PAD_RADIUS + MARGIN) + BAR_GAP + KNOB_RADIUS + MARGIN


@dataclass(frozen=True)
class VirtualStickCfg:
    v_x_sensitivity: float = 1.0  # m/s with the knob at the top rim
    v_y_sensitivity: float = 0.5
    omega_z_sensitivity: float = 1.0
    backward_scale: float = 0.5


class VirtualStick(Se2Device):
    def __init__(self, tag: str = "virtual_stick", cfg: VirtualStickCfg | None = None) -> None:
        super().__init__()
        self.tag, self.cfg = tag, cfg or VirtualStickCfg()
        self.pad = np.zeros(2)  # knob offset in the pad, unit disc: (right, up)
        self.bar = 0.0  # knob offset on the bar, -1 (left) .. 1 (right)
        self._held: str | None = None  # "pad" or "bar" while the left button holds the knob

    @property
    def buttons(self) -> tuple[str, ...]:
        return ()

    @property
    def description(self) -> str:
        return "virtual stick"

    @property
    def pad_center(self) -> tuple[float, float]:
        return MARGIN + PAD_RADIUS, MARGIN + PAD_RADIUS

    @property
    def bar_center(self) -> tuple[float, float]:
        return MARGIN + PAD_RADIUS, 2 * (MARGIN + PAD_RADIUS) + BAR_GAP

    def build(self) -> None:
        """Add the drawlist to the current Dear PyGui container."""
        dpg.add_drawlist(int(WIDTH), int(HEIGHT), tag=self.tag)

    def advance(self) -> np.ndarray | None:
        local = self._mouse_local()
        if not dpg.is_mouse_button_down(dpg.mvMouseButton_Left):
            self._held = None
        elif self._held is None and local is not None and dpg.is_item_hovered(self.tag):
            self._held = self._part_at(local)
        if self._held is None or local is None:
            self.pad[:], self.bar = 0.0, 0.0
            return None
        if self._held == "pad":
            offset = (np.array(local) - self.pad_center) * np.array([1.0, -1.0]) / PAD_RADIUS
            norm = float(np.linalg.norm(offset))
            self.pad = offset / norm if norm > 1.0 else offset
        else:
            self.bar = float(np.clip((local[0] - self.bar_center[0]) / BAR_HALF, -1.0, 1.0))
        cfg, (right, up) = self.cfg, self.pad
        vx = up * cfg.v_x_sensitivity * (1.0 if up >= 0 else cfg.backward_scale)
        return command(vx, -right * cfg.v_y_sensitivity, -self.bar * cfg.omega_z_sensitivity)

    def draw(self) -> None:
        dpg.delete_item(self.tag, children_only=True)
        (px, py), (bx, by) = self.pad_center, self.bar_center
        active = (90, 200, 255) if self._held else (150, 150, 150)
        dpg.draw_circle((px, py), PAD_RADIUS, color=active, fill=(40, 44, 52), parent=self.tag)
        dpg.draw_text((0, 0), "move", color=(150, 150, 150), parent=self.tag, size=12)
        knob = (px + self.pad[0] * PAD_RADIUS, py - self.pad[1] * PAD_RADIUS)
        dpg.draw_circle(knob, KNOB_RADIUS, color=(20, 20, 20), fill=active, parent=self.tag)
        dpg.draw_rectangle((bx - BAR_HALF, by - 9), (bx + BAR_HALF, by + 9), color=active, fill=(40, 44, 52),
                           parent=self.tag)  # fmt: skip
        dpg.draw_text((0, by - 26), "turn", color=(150, 150, 150), parent=self.tag, size=12)
        dpg.draw_circle((bx + self.bar * BAR_HALF, by), KNOB_RADIUS, color=(20, 20, 20), fill=active, parent=self.tag)

    def screen_point(self, part: str, x: float, y: float = 0.0) -> tuple[float, float]:
        """Window pixel of a knob position (``part`` "pad": x right, y up in the unit disc; "bar": x in -1..1)."""
        left, top = dpg.get_item_rect_min(self.tag)
        if part == "pad":
            cx, cy = self.pad_center
            return left + cx + x * PAD_RADIUS, top + cy - y * PAD_RADIUS
        cx, cy = self.bar_center
        return left + cx + x * BAR_HALF, top + cy

    def _mouse_local(self) -> tuple[float, float] | None:
        if not dpg.does_item_exist(self.tag):
            return None
        (mx, my), (left, top) = dpg.get_mouse_pos(local=False), dpg.get_item_rect_min(self.tag)
        return mx - left, my - top

    def _part_at(self, local: tuple[float, float]) -> str | None:
        (px, py), (bx, by) = self.pad_center, self.bar_center
        if math.hypot(local[0] - px, local[1] - py) <= PAD_RADIUS + KNOB_RADIUS:
            return "pad"
        if abs(local[0] - bx) <= BAR_HALF + KNOB_RADIUS and abs(local[1] - by) <= 2 * KNOB_RADIUS:
            return "bar"
        return None
