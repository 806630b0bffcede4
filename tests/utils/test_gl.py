"""MuJoCo's GL backend is chosen before MuJoCo loads: EGL where a context can be made, else OSMesa; a user's
MUJOCO_GL is kept. Each case runs in a fresh interpreter, since the choice is made once per process."""

import os
import subprocess
import sys

import pytest

PROBE = (
    "import os, bm_gym; from bm_gym.sim import MujocoBackend; b = MujocoBackend(); b.reset(seed=0); "
    "print(os.environ['MUJOCO_GL'], float(b.render(64, 48).std()))"
)


def run_probe(**env: str) -> tuple[str, float]:
    base = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()  # fmt: skip
    return out[0], float(out[1])


def test_without_a_usable_egl_device_rendering_falls_back_to_osmesa():
    backend, std = run_probe(__EGL_VENDOR_LIBRARY_FILENAMES="/nonexistent/egl_vendor.json")  # no EGL driver
    assert backend == "osmesa" and std > 1.0


def test_egl_is_tried_first_and_renders_when_it_works():
    from bm_gym.utils.gl import egl_can_render

    backend, std = run_probe()
    assert backend == ("egl" if egl_can_render() else "osmesa") and std > 1.0


@pytest.mark.parametrize("choice", ["osmesa", "egl"])
def test_a_users_choice_is_kept(choice):
    from bm_gym.utils.gl import egl_can_render

    if choice == "egl" and not egl_can_render():
        pytest.skip("no EGL device on this machine")
    assert run_probe(MUJOCO_GL=choice)[0] == choice


def test_an_opengl_platform_already_chosen_decides():
    """MuJoCo's EGL backend sets PYOPENGL_PLATFORM=egl in the process, and children inherit it."""
    assert run_probe(PYOPENGL_PLATFORM="osmesa")[0] == "osmesa"
