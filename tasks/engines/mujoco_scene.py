"""The MuJoCo scene every MuJoCo-based part simulates or draws: the character's MJCF on a floor.

Both MuJoCo engines compile it (the CPU one with the readout sensors, MuJoCo-Warp without), the
renderer draws it and the feasibility tool collides clips against it, so the floor's name and
the checks on the character live here once.
"""
import os
import xml.etree.ElementTree as ET
from typing import List, Tuple

import mujoco
import numpy as np

FLOOR_NAME = "floor"


def build_scene_xml(mjcf_path: str, with_sensors: bool = True) -> str:
    """The character's MJCF plus a floor, a light and the readout sensors, as XML text."""
    tree = ET.parse(mjcf_path)
    root = tree.getroot()
    compiler = root.find("compiler")
    if compiler is None:
        compiler = ET.SubElement(root, "compiler")
    compiler.set("meshdir", os.path.dirname(os.path.abspath(mjcf_path)))
    world = root.find("worldbody")
    ET.SubElement(world, "light", {"name": "sun", "pos": "0 0 4", "dir": "0 0 -1", "directional": "true"})
    ET.SubElement(world, "geom", {"name": FLOOR_NAME, "type": "plane", "size": "0 0 1", "contype": "0",
                                  "conaffinity": "1", "rgba": "0.8 0.8 0.8 1"})
    if with_sensors:
        bodies = [b.get("name") for b in world.iter("body")]
        sensors = ET.SubElement(root, "sensor")
        for name in bodies:
            for kind in ("framepos", "framequat", "framelinvel", "frameangvel"):  # tasks/body_state.py order
                ET.SubElement(sensors, kind, {"objtype": "xbody", "objname": name})
        ET.SubElement(sensors, "subtreelinvel", {"body": bodies[0]})
        for name in bodies:
            # MuJoCo reports the force the first object exerts on the second: floor first, so the
            # reading is the ground's force on the body (+z when standing on it).
            ET.SubElement(sensors, "contact", {"geom1": FLOOR_NAME, "body2": name, "data": "force",
                                               "reduce": "netforce", "num": "1"})
    return ET.tostring(root, encoding="unicode")


def compile_scene_xml(xml: str, mjcf_path: str) -> mujoco.MjModel:
    """A scene built around ``mjcf_path``, compiled; MuJoCo's complaint names that file."""
    try:
        return mujoco.MjModel.from_xml_string(xml)
    except ValueError as err:
        raise ValueError("{}: MuJoCo rejects it: {}".format(mjcf_path, " ".join(str(err).split())))


def compile_scene(mjcf_path: str, sim_dt: float, with_sensors: bool = True) -> mujoco.MjModel:
    """The scene of ``build_scene_xml`` compiled at physics step ``sim_dt``, checked to be the
    character every engine expects: a free root, then hinges, each driven by its own actuator."""
    m = compile_scene_xml(build_scene_xml(mjcf_path, with_sensors), mjcf_path)
    m.opt.timestep = sim_dt
    if m.njnt < 1 or m.jnt_type[0] != mujoco.mjtJoint.mjJNT_FREE:
        raise ValueError("{}: the first joint must be the root's free joint".format(mjcf_path))
    if np.any(m.jnt_type[1:] != mujoco.mjtJoint.mjJNT_HINGE):
        raise ValueError("{}: every joint after the root must be a hinge".format(mjcf_path))
    if m.nu != m.njnt - 1 or np.any(m.actuator_trnid[:, 0] != np.arange(1, m.njnt)):
        raise ValueError("{}: needs one position actuator per hinge, in joint order".format(mjcf_path))
    return m


def character_description(m: mujoco.MjModel) -> Tuple[List[str], List[str], np.ndarray]:
    """The character's body names (MJCF order, world excluded), hinge names and hinge ranges [D, 2] (rad)."""
    return ([m.body(b).name for b in range(1, m.nbody)], [m.joint(j).name for j in range(1, m.njnt)],
            m.jnt_range[1:].copy())
