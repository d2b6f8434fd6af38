"""A display-only MuJoCo scene of the character and its reference "ghost", and an offscreen renderer.

The scene is the character's MJCF twice on a checkered floor: the simulated character as is,
and a ghost copy whose names carry the prefix ``ghost_``, drawn translucent orange in geom group
3, with collisions off. Nothing is simulated in it: callers write both characters' ``qpos``
(root position, root quaternion wxyz, hinge angles: the engine contract's order) and run
forward kinematics. Any engine can feed it (the task copies env 0's state to the host).
"""
import copy
import xml.etree.ElementTree as ET
from typing import Optional, Sequence, Tuple

import mujoco
import numpy as np

from tasks.engines.mujoco_scene import FLOOR_NAME, build_scene_xml, compile_scene_xml
from tasks.display.gl_backend import create_gl_context

GHOST_PREFIX = "ghost_"
GHOST_GROUP = 3
GHOST_RGBA = (1.0, 0.55, 0.1, 0.35)
MAX_OFFSCREEN = (1920, 1088)


def build_ghost_scene_xml(mjcf_path: str, ghost: bool = True, ghost_rgba: Sequence[float] = GHOST_RGBA) -> str:
    """The character, optionally its ghost copy, a checkered floor, a skybox and shadows, as XML."""
    root = ET.fromstring(build_scene_xml(mjcf_path, with_sensors=False))
    for tag in ("actuator", "sensor", "keyframe", "contact", "equality"):
        for elem in root.findall(tag):
            root.remove(elem)
    world = root.find("worldbody")
    character = world.find("body")
    if ghost:
        twin = copy.deepcopy(character)
        for elem in twin.iter():
            if elem.get("name") is not None:
                elem.set("name", GHOST_PREFIX + elem.get("name"))
            if elem.tag == "geom":
                elem.set("contype", "0")
                elem.set("conaffinity", "0")
                elem.set("group", str(GHOST_GROUP))
                elem.set("rgba", " ".join(str(float(c)) for c in ghost_rgba))
        world.insert(list(world).index(character) + 1, twin)

    asset = root.find("asset")
    if asset is None:
        asset = ET.SubElement(root, "asset")
    ET.SubElement(asset, "texture", {"name": "viewer_grid", "type": "2d", "builtin": "checker", "width": "512",
                                     "height": "512", "rgb1": "0.32 0.34 0.38", "rgb2": "0.42 0.44 0.48"})
    ET.SubElement(asset, "material", {"name": "viewer_floor", "texture": "viewer_grid", "texrepeat": "1 1",
                                      "texuniform": "true"})
    ET.SubElement(asset, "texture", {"name": "viewer_sky", "type": "skybox", "builtin": "gradient",
                                     "rgb1": "0.6 0.75 0.9", "rgb2": "0.1 0.15 0.25", "width": "256",
                                     "height": "256"})
    for geom in world.findall("geom"):
        if geom.get("name") == FLOOR_NAME:
            geom.set("material", "viewer_floor")
            geom.attrib.pop("rgba", None)
    for light in world.findall("light"):
        light.set("castshadow", "false")
        light.set("diffuse", "0.5 0.5 0.5")
    # a spotlight that follows the character, so its shadow map stays sharp wherever it walks
    character.insert(0, ET.Element("light", {"name": "viewer_spot", "mode": "trackcom", "pos": "-1 1 4",
                                             "dir": "0.25 -0.25 -1", "cutoff": "45", "diffuse": "0.6 0.6 0.6",
                                             "castshadow": "true"}))
    visual = root.find("visual")
    if visual is None:
        visual = ET.SubElement(root, "visual")
    ET.SubElement(visual, "global", {"offwidth": str(MAX_OFFSCREEN[0]), "offheight": str(MAX_OFFSCREEN[1])})
    ET.SubElement(visual, "quality", {"shadowsize": "4096"})
    ET.SubElement(visual, "headlight", {"ambient": "0.35 0.35 0.35", "diffuse": "0.45 0.45 0.45"})
    return ET.tostring(root, encoding="unicode")


class GhostScene:
    """Model and data of the display scene; ``set_state`` places the character and the ghost."""

    def __init__(self, mjcf_path: str, ghost: bool = True):
        self.model = compile_scene_xml(build_ghost_scene_xml(mjcf_path, ghost=ghost), mjcf_path)
        self.data = mujoco.MjData(self.model)
        self.has_ghost = ghost
        self.character_nq = self.model.nq // 2 if ghost else self.model.nq
        self.root_body = 1
        self.ghost_offset = np.zeros(3)  # metres; e.g. (0, 1, 0) draws the ghost beside the character
        mujoco.mj_forward(self.model, self.data)

    def set_state(self, qpos: np.ndarray, ghost_qpos: Optional[np.ndarray] = None) -> None:
        """``qpos``: the character's [7 + D] (root pos, root quat wxyz, hinges); ``ghost_qpos`` likewise."""
        n = self.character_nq
        self.data.qpos[:n] = qpos
        if self.has_ghost:
            ghost = np.array(qpos if ghost_qpos is None else ghost_qpos, dtype=np.float64)
            ghost[0:3] += self.ghost_offset
            self.data.qpos[n:] = ghost
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)

    def root_pos(self) -> np.ndarray:
        return self.data.xpos[self.root_body].copy()


def follow_camera(cam: "mujoco.MjvCamera", lookat: np.ndarray, distance: float = 4.0, azimuth: float = 90.0,
                  elevation: float = -12.0) -> None:
    """A free camera looking at ``lookat`` from the character's side (it walks along +x)."""
    cam.type = mujoco.mjtCamera.mjCAMERA_FREE
    cam.lookat[:] = lookat
    cam.distance = distance
    cam.azimuth = azimuth
    cam.elevation = elevation


class OffscreenRenderer:
    """RGB frames of a model through an EGL or OSMesa context (tasks.display.gl_backend)."""

    def __init__(self, model: mujoco.MjModel, width: int = 640, height: int = 480):
        if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            raise ValueError("frame {}x{} is larger than the model's offscreen buffer {}x{}".format(
                width, height, model.vis.global_.offwidth, model.vis.global_.offheight))
        self.model, self.width, self.height = model, width, height
        self._gl = create_gl_context(width, height)
        self._con = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._con)
        self.scene = mujoco.MjvScene(model, maxgeom=2000)
        self.option = mujoco.MjvOption()
        self.camera = mujoco.MjvCamera()
        self._perturb = mujoco.MjvPerturb()
        self._viewport = mujoco.MjrRect(0, 0, width, height)
        self._rgb = np.zeros((height, width, 3), dtype=np.uint8)

    def render(self, data: mujoco.MjData, show_ghost: bool = True) -> np.ndarray:
        """An [H, W, 3] uint8 image of ``data`` seen through ``self.camera`` (a new array)."""
        self._gl.make_current()
        self.option.geomgroup[GHOST_GROUP] = 1 if show_ghost else 0
        mujoco.mjv_updateScene(self.model, data, self.option, self._perturb, self.camera,
                               mujoco.mjtCatBit.mjCAT_ALL, self.scene)
        mujoco.mjr_render(self._viewport, self.scene, self._con)
        mujoco.mjr_readPixels(self._rgb, None, self._viewport, self._con)
        return np.flipud(self._rgb).copy()

    def project(self, point: Sequence[float]) -> Tuple[float, float]:
        """Pixel (column, row) of a world point in the last rendered frame (row 0 at the top)."""
        cams = self.scene.camera
        pos = (np.asarray(cams[0].pos) + np.asarray(cams[1].pos)) / 2
        forward, up = np.asarray(cams[0].forward), np.asarray(cams[0].up)
        right = np.cross(forward, up)
        rel = np.asarray(point, dtype=np.float64) - pos
        depth = rel.dot(forward)
        near = cams[0].frustum_near
        half_h = (cams[0].frustum_top - cams[0].frustum_bottom) / 2
        centre_y = (cams[0].frustum_top + cams[0].frustum_bottom) / 2
        half_w = cams[0].frustum_width / 2 if cams[0].frustum_width > 0 else half_h * self.width / self.height
        x = rel.dot(right) * near / depth - cams[0].frustum_center
        y = rel.dot(up) * near / depth - centre_y
        return (x / half_w + 1) / 2 * self.width, (1 - (y / half_h + 1) / 2) * self.height

    def close(self) -> None:
        if self._gl is not None:
            self._con.free()
            self._gl.free()
            self._gl = None
