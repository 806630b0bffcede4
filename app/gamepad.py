"""Gamepad teleop through pygame's SDL GameController API: named axes, a radial dead zone, hot-plug.

Left stick: forward/sideways velocity; right stick x: yaw rate. Pads can come and go at any time; when the
last one disappears the command is None and the app stops the robot.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame only reads input here; Dear PyGui owns the window
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402
from pygame._sdl2 import controller  # noqa: E402

log = logging.getLogger(__name__)

AXIS_FULL_SCALE = 32767.0


@dataclass(frozen=True)
class GamepadCfg:
    dead_zone: float = 0.15  # radial, as a fraction of full deflection
    max_vx: float = 1.0  # m/s at full forward deflection (backward is limited to half)
    max_vy: float = 0.5
    max_wz: float = 1.0  # rad/s


def radial_dead_zone(x: float, y: float, dead_zone: float) -> tuple[float, float]:
    """Zero inside the circle of radius ``dead_zone``, rescaled so the output still reaches 1 at the rim."""
    magnitude = math.hypot(x, y)
    if magnitude <= dead_zone:
        return 0.0, 0.0
    scale = min(1.0, (magnitude - dead_zone) / (1.0 - dead_zone)) / magnitude
    return x * scale, y * scale


class Gamepad:
    """Tracks connected game controllers from SDL events and turns the sticks into a velocity command."""

    def __init__(self, cfg: GamepadCfg | None = None) -> None:
        self.cfg = cfg or GamepadCfg()
        pygame.display.init()  # the event queue needs the (dummy) video subsystem
        controller.init()
        self._pads: dict[int, controller.Controller] = {}  # by SDL instance id
        self._axes: dict[int, dict[int, float]] = {}

    @property
    def connected(self) -> bool:
        return bool(self._pads)

    @property
    def names(self) -> list[str]:
        return [pad.name for pad in self._pads.values()]

    def poll(self) -> None:
        """Handle all pending controller events (device added/removed, axis motion)."""
        for event in pygame.event.get((pygame.CONTROLLERDEVICEADDED, pygame.CONTROLLERDEVICEREMOVED,
                                       pygame.CONTROLLERAXISMOTION)):  # fmt: skip
            self.handle(event)
        pygame.event.pump()

    def handle(self, event: pygame.event.Event) -> None:
        if event.type == pygame.CONTROLLERDEVICEADDED:
            try:
                pad = controller.Controller(event.device_index)
            except pygame.error as err:  # unplugged again before we got to it, or no mapping
                log.warning("cannot open game controller %s: %s", event.device_index, err)
                return
            instance = pad.as_joystick().get_instance_id()
            self._pads[instance], self._axes[instance] = pad, {}
            log.info("game controller connected: %s", pad.name)
        elif event.type == pygame.CONTROLLERDEVICEREMOVED:
            pad = self._pads.pop(event.instance_id, None)
            self._axes.pop(event.instance_id, None)
            if pad is not None:
                log.info("game controller disconnected: %s", pad.name)
        elif event.type == pygame.CONTROLLERAXISMOTION and event.instance_id in self._axes:
            self._axes[event.instance_id][event.axis] = max(-1.0, event.value / AXIS_FULL_SCALE)

    def command(self) -> tuple[float, float, float] | None:
        """(vx, vy, wz) from the first connected pad, or None when no pad is connected."""
        if not self._pads:
            return None
        axes = self._axes[next(iter(self._pads))]
        # SDL: stick up is negative y, stick left is negative x; the robot's +y and +yaw are to the left.
        lx, ly = radial_dead_zone(axes.get(pygame.CONTROLLER_AXIS_LEFTX, 0.0),
                                  axes.get(pygame.CONTROLLER_AXIS_LEFTY, 0.0), self.cfg.dead_zone)  # fmt: skip
        rx, _ = radial_dead_zone(axes.get(pygame.CONTROLLER_AXIS_RIGHTX, 0.0), 0.0, self.cfg.dead_zone)
        forward = -ly
        vx = forward * (self.cfg.max_vx if forward >= 0 else 0.5 * self.cfg.max_vx)
        return vx, -lx * self.cfg.max_vy, -rx * self.cfg.max_wz

    def close(self) -> None:
        for pad in self._pads.values():
            pad.quit()
        self._pads.clear()
        controller.quit()
