"""Gamepad through pygame's SDL GameController API: named axes (any pad SDL has a mapping for), hot-plug.

Left stick: forward/sideways velocity; right stick x: yaw rate. Pads can come and go at any time; with none
connected ``advance()`` returns None and the next device (or a stop) takes over.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import numpy as np

from bm_gym.devices.se2 import Se2Device, command

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402
from pygame._sdl2 import controller  # noqa: E402

log = logging.getLogger(__name__)

AXIS_FULL_SCALE = 32767.0
BUTTONS = {"A": pygame.CONTROLLER_BUTTON_A, "B": pygame.CONTROLLER_BUTTON_B, "X": pygame.CONTROLLER_BUTTON_X,
           "Y": pygame.CONTROLLER_BUTTON_Y, "BACK": pygame.CONTROLLER_BUTTON_BACK,
           "START": pygame.CONTROLLER_BUTTON_START}  # fmt: skip


@dataclass(frozen=True)
class Se2GamepadCfg:
    v_x_sensitivity: float = 1.0  # m/s at full forward deflection
    v_y_sensitivity: float = 0.5  # m/s at full sideways deflection
    omega_z_sensitivity: float = 1.0  # rad/s at full deflection of the right stick
    backward_scale: float = 0.5  # backward is slower than forward, as the Stage 1 velocity policy was trained
    dead_zone: float = 0.15  # radial, as a fraction of full deflection


def radial_dead_zone(x: float, y: float, dead_zone: float) -> tuple[float, float]:
    """Zero inside the circle of radius ``dead_zone``, rescaled so the output still reaches 1 at the rim."""
    magnitude = math.hypot(x, y)
    if magnitude <= dead_zone:
        return 0.0, 0.0
    scale = min(1.0, (magnitude - dead_zone) / (1.0 - dead_zone)) / magnitude
    return x * scale, y * scale


class Se2Gamepad(Se2Device):
    """Tracks connected game controllers from SDL events and turns the sticks into a velocity command.

    Needs pygame's video subsystem for its event queue. Where another toolkit owns the window (the app),
    ``SDL_VIDEODRIVER=dummy`` keeps pygame from opening one; it is set here unless pygame's display is
    already initialized.
    """

    def __init__(self, cfg: Se2GamepadCfg | None = None) -> None:
        super().__init__()
        self.cfg = cfg or Se2GamepadCfg()
        if not pygame.display.get_init():
            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
            pygame.display.init()
        controller.init()
        self._pads: dict[int, controller.Controller] = {}  # by SDL instance id
        self._axes: dict[int, dict[int, float]] = {}

    @property
    def buttons(self) -> tuple[str, ...]:
        return tuple(BUTTONS)

    @property
    def connected(self) -> bool:
        return bool(self._pads)

    @property
    def names(self) -> list[str]:
        return [pad.name for pad in self._pads.values()]

    @property
    def description(self) -> str:
        return f"gamepad ({', '.join(self.names)})" if self._pads else "gamepad (none connected)"

    def poll(self) -> None:
        """Handle all pending controller events (device added/removed, axis motion, button presses)."""
        for event in pygame.event.get((pygame.CONTROLLERDEVICEADDED, pygame.CONTROLLERDEVICEREMOVED,
                                       pygame.CONTROLLERAXISMOTION, pygame.CONTROLLERBUTTONDOWN)):  # fmt: skip
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
        elif event.type == pygame.CONTROLLERBUTTONDOWN and event.instance_id == self._first():
            for name, button in BUTTONS.items():
                if event.button == button:
                    self._pressed(name)

    def advance(self) -> np.ndarray | None:
        """(vx, vy, wz) from the first connected pad, or None when no pad is connected."""
        self.poll()
        first = self._first()
        if first is None:
            return None
        axes, cfg = self._axes[first], self.cfg
        # SDL: stick up is negative y, stick left is negative x; the robot's +y and +yaw are to the left.
        lx, ly = radial_dead_zone(axes.get(pygame.CONTROLLER_AXIS_LEFTX, 0.0),
                                  axes.get(pygame.CONTROLLER_AXIS_LEFTY, 0.0), cfg.dead_zone)  # fmt: skip
        rx, _ = radial_dead_zone(axes.get(pygame.CONTROLLER_AXIS_RIGHTX, 0.0), 0.0, cfg.dead_zone)
        forward = -ly
        vx = forward * cfg.v_x_sensitivity * (1.0 if forward >= 0 else cfg.backward_scale)
        return command(vx, -lx * cfg.v_y_sensitivity, -rx * cfg.omega_z_sensitivity)

    def reset(self) -> None:
        for axes in self._axes.values():
            axes.clear()

    def close(self) -> None:
        for pad in self._pads.values():
            pad.quit()
        self._pads.clear()
        controller.quit()

    def _first(self) -> int | None:
        return next(iter(self._pads), None)
