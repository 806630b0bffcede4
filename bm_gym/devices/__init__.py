"""Operator input as SE(2) base-velocity commands (vx, vy, wz), in the style of Isaac Lab's ``Se2Gamepad``.

Each device has a small config dataclass (sensitivities, dead zone), ``advance()`` returning the current
command (or None when it has nothing to say, so the next device in line takes over), ``reset()``, and
``add_callback(name, func)`` for buttons and keys. ``parse_device`` reads the command-line spelling the app
accepts (``gamepad``, ``keyboard``, ``script:FILE``).
"""

from bm_gym.devices.gamepad import Se2Gamepad, Se2GamepadCfg, radial_dead_zone
from bm_gym.devices.keyboard import Se2Keyboard, Se2KeyboardCfg
from bm_gym.devices.script import CommandScript, ScriptError, Se2Script
from bm_gym.devices.se2 import Se2Device

__all__ = ["parse_device", "CommandScript", "ScriptError", "Se2Device", "Se2Gamepad", "Se2GamepadCfg", "Se2Keyboard",
           "Se2KeyboardCfg", "Se2Script", "radial_dead_zone"]  # fmt: skip


def parse_device(spec: str) -> tuple[str, CommandScript | None]:
    """``"gamepad"``, ``"keyboard"`` or ``"script:FILE"`` to (kind, script); a script file is read and checked here,
    so a bad one is reported before anything starts."""
    kind, _, argument = spec.partition(":")
    if kind in ("gamepad", "keyboard") and not argument:
        return kind, None
    if kind == "script":
        if not argument:
            raise ValueError("--device script:FILE needs a file: script:path/to/commands.csv")
        return kind, CommandScript.load(argument)
    raise ValueError(f"unknown device {spec!r}: expected gamepad, keyboard or script:FILE")
