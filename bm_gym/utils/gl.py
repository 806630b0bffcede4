"""Choose MuJoCo's offscreen GL backend before MuJoCo is imported: EGL where it can make a context, else OSMesa.

MuJoCo binds its GL backend once, at import, from ``MUJOCO_GL``, and PyOpenGL cannot switch platform later, so
the choice is made here with a plain ctypes probe of libEGL (tens of milliseconds) instead of by trying MuJoCo's
EGL context and failing over. EGL renders on a GPU where there is one (and through Mesa's software device where
there is not); OSMesa is the fallback that works on any Linux machine with ``libosmesa6``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# EGL enums (EGL 1.5 and EGL_EXT_platform_device)
_RED, _GREEN, _BLUE, _ALPHA, _DEPTH, _SURFACE, _RENDERABLE, _NONE = (0x3024, 0x3023, 0x3022, 0x3021, 0x3025, 0x3033,
                                                                     0x3040, 0x3038)  # fmt: skip
_PBUFFER_BIT, _OPENGL_BIT, _OPENGL_API, _PLATFORM_DEVICE = 0x0001, 0x0008, 0x30A2, 0x313F


def egl_can_render() -> bool:
    """True when some EGL device initializes and gives an OpenGL context with MuJoCo's buffer attributes."""
    name = ctypes.util.find_library("EGL")
    if name is None:
        return False
    try:
        egl = ctypes.CDLL(name)
    except OSError:
        return False
    vp, uint, cint = ctypes.c_void_p, ctypes.c_uint, ctypes.c_int
    egl.eglGetProcAddress.restype, egl.eglGetProcAddress.argtypes = vp, [ctypes.c_char_p]
    query_addr = egl.eglGetProcAddress(b"eglQueryDevicesEXT")
    display_addr = egl.eglGetProcAddress(b"eglGetPlatformDisplayEXT")
    if not query_addr or not display_addr:
        return False
    query_devices = ctypes.CFUNCTYPE(uint, cint, ctypes.POINTER(vp), ctypes.POINTER(cint))(query_addr)
    get_display = ctypes.CFUNCTYPE(vp, uint, vp, ctypes.POINTER(cint))(display_addr)
    egl.eglInitialize.argtypes = [vp, ctypes.POINTER(cint), ctypes.POINTER(cint)]
    egl.eglBindAPI.argtypes = [uint]
    egl.eglChooseConfig.argtypes = [vp, ctypes.POINTER(cint), ctypes.POINTER(vp), cint, ctypes.POINTER(cint)]
    egl.eglCreateContext.restype, egl.eglCreateContext.argtypes = vp, [vp, vp, vp, ctypes.POINTER(cint)]
    egl.eglDestroyContext.argtypes = [vp, vp]
    devices, count = (vp * 16)(), cint(0)
    if not query_devices(16, devices, ctypes.byref(count)):
        return False
    attributes = (cint * 15)(_RED, 8, _GREEN, 8, _BLUE, 8, _ALPHA, 8, _DEPTH, 24, _SURFACE, _PBUFFER_BIT,
                             _RENDERABLE, _OPENGL_BIT, _NONE)  # fmt: skip
    # Displays stay initialized: a device's display is one per process, shared with MuJoCo's EGL contexts, and
    # eglTerminate (not reference-counted) would pull it from under a renderer made before this probe ran.
    for k in range(count.value):
        display = get_display(_PLATFORM_DEVICE, devices[k], None)
        if not display or not egl.eglInitialize(display, None, None):
            continue
        config, matches = vp(), cint(0)
        if not egl.eglBindAPI(_OPENGL_API):
            continue
        if not egl.eglChooseConfig(display, attributes, ctypes.byref(config), 1, ctypes.byref(matches)):
            continue
        context = egl.eglCreateContext(display, config, None, None) if matches.value else None
        if context:
            egl.eglDestroyContext(display, context)
            return True
    return False


def select_mujoco_gl() -> str | None:
    """Set ``MUJOCO_GL`` on Linux unless the user did: "egl" when it works here, else "osmesa". Returns the value.

    A ``PYOPENGL_PLATFORM`` of egl or osmesa already in the environment (MuJoCo's EGL backend sets it, and child
    processes inherit it) decides instead: PyOpenGL can only load that platform. The result goes into the
    environment, so worker processes inherit it without probing again.
    """
    if not sys.platform.startswith("linux"):
        return os.environ.get("MUJOCO_GL")
    if "MUJOCO_GL" not in os.environ:
        platform = os.environ.get("PYOPENGL_PLATFORM", "").lower()
        if platform in ("egl", "osmesa"):
            os.environ["MUJOCO_GL"] = platform
        else:
            os.environ["MUJOCO_GL"] = "egl" if egl_can_render() else "osmesa"
    return os.environ["MUJOCO_GL"]
