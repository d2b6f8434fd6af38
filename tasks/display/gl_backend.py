"""Offscreen OpenGL backend for MuJoCo rendering: EGL where it works, else OSMesa.

MuJoCo reads ``MUJOCO_GL`` once, when ``mujoco`` is first imported, and PyOpenGL fixes its
platform when ``OpenGL`` is first imported, so a process can use only one offscreen backend.
``select_gl_backend`` decides which: ``MUJOCO_GL`` when the user set it, else EGL if an EGL
context can be created (NVIDIA's EGL on GPU machines, Mesa's software EGL on CPU machines with
libegl-mesa0), else OSMesa (Debian: ``apt-get install -y libosmesa6``). EGL is probed in a
child process, because a failed EGL start in this process would leave PyOpenGL bound to EGL.

``create_gl_context`` makes a context of the chosen backend directly (mujoco.egl / mujoco.osmesa),
so rendering works even where ``mujoco`` was imported before the choice was made, as long as
PyOpenGL has not been bound to another platform.
"""
import importlib
import os
import subprocess
import sys
from typing import Optional

OFFSCREEN_BACKENDS = ("egl", "osmesa")
_PROBE = """
import os
os.environ["MUJOCO_GL"] = "{backend}"
os.environ["PYOPENGL_PLATFORM"] = "{backend}"
from mujoco.{backend} import GLContext
ctx = GLContext(16, 16)
ctx.make_current()
from OpenGL import GL
print(GL.glGetString(GL.GL_RENDERER).decode())
ctx.free()
"""
_chosen = None  # type: Optional[str]


class NoOffscreenBackendError(RuntimeError):
    pass


def probe_backend(backend: str, timeout: float = 60.0) -> Optional[str]:
    """The GL renderer's name if an offscreen ``backend`` context works on this machine, else None."""
    env = dict(os.environ)
    env.pop("PYOPENGL_PLATFORM", None)
    try:
        out = subprocess.run([sys.executable, "-c", _PROBE.format(backend=backend)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    lines = out.stdout.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else "unknown"


def select_gl_backend(verbose: bool = False) -> str:
    """Choose the offscreen backend once per process and export it as ``MUJOCO_GL``.

    Call it before anything imports ``mujoco`` where possible (train.py and the preview command
    do). Raises NoOffscreenBackendError, saying what to install, when neither EGL nor OSMesa works.
    """
    global _chosen
    if _chosen is not None:
        return _chosen
    requested = os.environ.get("MUJOCO_GL", "").lower().strip()
    if requested in OFFSCREEN_BACKENDS:
        _chosen = requested
        return _chosen
    if requested == "glfw" and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        _chosen = "glfw"
        return _chosen
    for backend in OFFSCREEN_BACKENDS:
        renderer = probe_backend(backend)
        if renderer is not None:
            if verbose:
                print("offscreen rendering: MUJOCO_GL={} ({})".format(backend, renderer))
            _chosen = backend
            if "mujoco" not in sys.modules:
                os.environ["MUJOCO_GL"] = backend
            return _chosen
    raise NoOffscreenBackendError(
        "no offscreen OpenGL backend works here: EGL failed (install libegl1 and libegl-mesa0, or a GPU "
        "driver's EGL) and OSMesa failed (install libosmesa6: apt-get install -y libosmesa6)")


def create_gl_context(width: int, height: int):
    """A current offscreen GL context of the selected backend, ``width`` x ``height`` pixels."""
    backend = select_gl_backend()
    if backend == "glfw":
        from mujoco.glfw import GLContext
    else:
        platform = os.environ.get("PYOPENGL_PLATFORM")
        if platform and platform.lower() != backend:
            raise NoOffscreenBackendError(
                "PyOpenGL is bound to PYOPENGL_PLATFORM={} but the offscreen backend is {}; set MUJOCO_GL={} "
                "before starting Python".format(platform, backend, platform))
        GLContext = importlib.import_module("mujoco." + backend).GLContext
    ctx = GLContext(width, height)
    ctx.make_current()
    return ctx
