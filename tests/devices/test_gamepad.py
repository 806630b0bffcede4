import pygame
import pytest

import bm_gym.devices.gamepad as gamepad_module
from bm_gym.devices import Se2Gamepad, Se2GamepadCfg, radial_dead_zone


class FakeController:
    name = "Fake Pad"

    def __init__(self, device_index: int) -> None:
        self.instance = 40 + device_index

    def as_joystick(self):
        return self

    def get_instance_id(self) -> int:
        return self.instance

    def quit(self) -> None:
        pass


def test_radial_dead_zone_is_round_and_rescaled():
    assert radial_dead_zone(0.1, 0.1, 0.15) == (0.0, 0.0)  # |(0.1, 0.1)| = 0.14 inside the circle
    x, y = radial_dead_zone(0.0, -1.0, 0.15)
    assert (x, y) == pytest.approx((0.0, -1.0))  # full deflection still reaches 1
    x, y = radial_dead_zone(0.3, 0.4, 0.15)  # magnitude 0.5 -> (0.5 - 0.15) / 0.85, same direction
    assert (x**2 + y**2) ** 0.5 == pytest.approx(0.35 / 0.85) and x / y == pytest.approx(0.75)


def test_hot_plug_named_axes_sensitivities_and_buttons(monkeypatch):
    monkeypatch.setattr(gamepad_module.controller, "Controller", FakeController)
    pad = Se2Gamepad(Se2GamepadCfg(v_x_sensitivity=0.8, omega_z_sensitivity=0.6))
    presses = []
    pad.add_callback("START", lambda: presses.append("START"))
    assert pad.advance() is None  # no pad: idle (the app falls back to the virtual stick and the keyboard)
    pad.handle(pygame.event.Event(pygame.CONTROLLERDEVICEADDED, device_index=2))
    assert pad.names == ["Fake Pad"] and pad.advance().tolist() == [0.0, 0.0, 0.0]
    axis = pygame.CONTROLLERAXISMOTION
    pad.handle(pygame.event.Event(axis, instance_id=42, axis=pygame.CONTROLLER_AXIS_LEFTY, value=-32768))
    pad.handle(pygame.event.Event(axis, instance_id=42, axis=pygame.CONTROLLER_AXIS_RIGHTX, value=32767))
    pad.handle(pygame.event.Event(axis, instance_id=99, axis=pygame.CONTROLLER_AXIS_LEFTX, value=32767))  # unknown
    vx, vy, wz = pad.advance()
    assert vx == pytest.approx(0.8) and vy == 0.0 and wz == pytest.approx(-0.6)  # stick right turns right
    pad.handle(pygame.event.Event(axis, instance_id=42, axis=pygame.CONTROLLER_AXIS_LEFTY, value=32767))
    assert pad.advance()[0] == pytest.approx(-0.4), "backward at half the forward sensitivity"
    pad.handle(pygame.event.Event(pygame.CONTROLLERBUTTONDOWN, instance_id=42, button=pygame.CONTROLLER_BUTTON_START))
    assert presses == ["START"]
    with pytest.raises(ValueError, match="no button 'Z'"):
        pad.add_callback("Z", print)
    pad.handle(pygame.event.Event(pygame.CONTROLLERDEVICEREMOVED, instance_id=42))
    assert pad.advance() is None and not pad.connected
    pad.handle(pygame.event.Event(pygame.CONTROLLERDEVICEREMOVED, instance_id=42))  # twice: harmless
    pad.close()


def test_a_pad_that_cannot_be_opened_is_ignored(monkeypatch):
    def broken(index):
        raise pygame.error("Controller is not connected")

    monkeypatch.setattr(gamepad_module.controller, "Controller", broken)
    pad = Se2Gamepad()
    pad.handle(pygame.event.Event(pygame.CONTROLLERDEVICEADDED, device_index=0))
    assert pad.advance() is None
    pad.close()
