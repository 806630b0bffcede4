"""Teleop desktop app (Dear PyGui): gamepad or keyboard driving, live obstacle drawing, plots, recording."""
