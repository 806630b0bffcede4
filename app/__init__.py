"""Teleop desktop app (Dear PyGui): gamepad or keyboard driving, live obstacle drawing, plots, recording."""

import bm_gym  # noqa: F401 - selects MuJoCo's offscreen GL backend before any app module imports mujoco
