"""Convert a DeepMimic character (+ PD controller file) into an MJCF model.

Conventions (shared by every engine, the motion retargeter and the task):

* World is Z-up, X forward. DeepMimic is Y-up with the character facing +X and its right side
  on +Z, so a DeepMimic vector ``(x, y, z)`` becomes ``(x, -z, y)``: the rotation ``Y_UP_TO_Z_UP``
  (+90 degrees about X). Body frames are rotated the same way, so every body's rest frame is
  axis-aligned with the world and a limb hangs along -Z.
* A spherical joint becomes three hinges about the body's x, z and y axes, in that order
  (intrinsic XZY Euler angles). The middle hinge is the twist about the limb; hip and shoulder
  flexion and abduction reach 150-180 degrees in DeepMimic's clips, so they must not sit in the
  middle, where Euler angles lock at 90 degrees.
* A revolute joint (DeepMimic rotates those about the joint's z axis) becomes one hinge about
  the Z-up image of that axis, ``(0, -1, 0)``, so its angle equals the clip's number.
* Only revolute joint limits are enforced, as in DeepMimic (see ``_range_attrs``).
* Fixed joints weld their body to the parent.
* PD gains become position actuators (kp, kv) with DeepMimic's torque limit as force range.
* Characters never collide with themselves, only with the ground the engine adds.

Run as a script to regenerate ``assets/mjcf/humanoid3d.xml``.
"""
import argparse
import os
import xml.etree.ElementTree as ET
from typing import List, Optional

import numpy as np
from scipy.spatial.transform import Rotation

from poselib_utils.data_loader import CharacterDef, ControllerDef, load_character, load_controller

Y_UP_TO_Z_UP = Rotation.from_euler("x", 90, degrees=True)
SPHERICAL_AXIS_ORDER = "xzy"
REVOLUTE_AXIS = np.array([0.0, -1.0, 0.0])
# Joint armature per unit of PD stiffness (s^2): armature = kp * ARMATURE_PER_KP. An explicit
# spring of stiffness kp on inertia I is stable for dt < 2 sqrt(I / kp); this keeps every joint
# about 6x inside that bound at 120 Hz even for the lightest links (with 1e-5 per kp, random PD
# targets blow the humanoid up within 2 s; with 5e-5, 2 of 30 runs).
ARMATURE_PER_KP = 1.0e-4
FRICTION = 0.9  # DeepMimic's default contact friction
ROOT_START_HEIGHT = 1.0


def hinge_names(joint_name: str, joint_type: str) -> List[str]:
    """Names of the MJCF hinges that model a DeepMimic joint, in MJCF order."""
    if joint_type == "spherical":
        return ["{}_{}".format(joint_name, axis) for axis in SPHERICAL_AXIS_ORDER]
    if joint_type == "revolute":
        return [joint_name]
    return []


def _to_z_up(v: np.ndarray) -> np.ndarray:
    return Y_UP_TO_Z_UP.apply(v)


def _theta_rotation(theta: np.ndarray) -> Rotation:
    """DeepMimic's shape/joint AttachTheta angles; every shipped file sets at most one axis."""
    return Rotation.from_euler("xyz", theta)


def _conjugated(rot: Rotation) -> Rotation:
    return Y_UP_TO_Z_UP * rot * Y_UP_TO_Z_UP.inv()


def _fmt(values) -> str:
    return " ".join("{:.6g}".format(round(float(v), 9) + 0.0) for v in np.atleast_1d(values))


def _quat_attr(rot: Rotation) -> Optional[str]:
    x, y, z, w = rot.as_quat()
    if abs(w) > 1 - 1e-12:
        return None
    return _fmt([w, x, y, z])


def _spherical_limits(low: np.ndarray, high: np.ndarray):
    """Per-hinge ranges from DeepMimic's limits about its own x, y, z axes."""
    by_axis = {"x": (low[0], high[0]), "z": (low[1], high[1]), "y": (-high[2], -low[2])}
    return [by_axis[a] for a in SPHERICAL_AXIS_ORDER]


def _armature(controller: ControllerDef, joint_name: str) -> str:
    return _fmt(ARMATURE_PER_KP * controller.gains[joint_name].kp)


def _range_attrs(lo: float, hi: float, enforced: bool) -> dict:
    """DeepMimic marks an unlimited axis with LimLow > LimHigh. Like DeepMimic, only revolute
    limits are enforced; a spherical joint's ranges are kept (they scale actions) but not
    enforced, since the clips themselves leave them (backflip's hips by 1.1 rad)."""
    if lo > hi:
        return {"limited": "false"}
    return {"range": _fmt([lo, hi]), "limited": "true" if enforced else "false"}


def _add_geom(body_el: ET.Element, body_def, name: str) -> None:
    rot = _conjugated(_theta_rotation(body_def.attach_theta))
    centre = _to_z_up(body_def.attach_pos)
    attrs = {"name": name, "type": body_def.shape, "mass": _fmt(body_def.mass), "rgba": _fmt(body_def.color)}
    size = body_def.size
    if body_def.shape == "sphere":
        attrs.update(pos=_fmt(centre), size=_fmt(0.5 * size[0]))
    elif body_def.shape == "capsule":
        # DeepMimic/Bullet capsule: diameter Param0, distance between the cap centres Param1,
        # along the shape's y axis.
        axis = rot.apply([0.0, 0.0, 1.0])
        half = 0.5 * size[1] * axis
        attrs.update(fromto=_fmt(np.concatenate([centre - half, centre + half])), size=_fmt(0.5 * size[0]))
    else:
        attrs.update(pos=_fmt(centre), size=_fmt(0.5 * np.array([size[0], size[2], size[1]])))
        quat = _quat_attr(rot)
        if quat:
            attrs["quat"] = quat
    ET.SubElement(body_el, "geom", attrs)



def _indent(elem: ET.Element, space: str, level: int = 0) -> None:
    """``ET.indent`` (Python 3.9+) for Python 3.8: same text/tail whitespace, in place."""
    if not len(elem):
        return
    inner = "\n" + (level + 1) * space
    if not elem.text or not elem.text.strip():
        elem.text = inner
    child = elem
    for child in elem:
        _indent(child, space, level + 1)
        if not child.tail or not child.tail.strip():
            child.tail = inner
    if not child.tail.strip():
        child.tail = "\n" + level * space

def build_mjcf(character: CharacterDef, controller: ControllerDef, model_name: str) -> str:
    """Return the MJCF text of ``character`` driven by ``controller``'s PD gains."""
    root_el = ET.Element("mujoco", {"model": model_name})
    ET.SubElement(root_el, "compiler", {"angle": "radian", "autolimits": "true"})
    ET.SubElement(root_el, "option", {"timestep": _fmt(1.0 / 120.0), "integrator": "implicitfast"})
    default = ET.SubElement(root_el, "default")
    ET.SubElement(default, "joint", {"damping": "0"})
    ET.SubElement(default, "geom", {"contype": "1", "conaffinity": "0", "condim": "3",
                                    "friction": _fmt([FRICTION, 0.005, 0.0001])})
    world = ET.SubElement(root_el, "worldbody")
    actuators = ET.SubElement(root_el, "actuator")

    elements = []
    actuator_attrs = {}
    for index, joint in enumerate(character.joints):
        parent_el = world if joint.parent < 0 else elements[joint.parent]
        attrs = {"name": joint.name}
        if joint.parent < 0:
            attrs["pos"] = _fmt([0.0, 0.0, ROOT_START_HEIGHT])
        else:
            attrs["pos"] = _fmt(_to_z_up(joint.attach_pos))
            quat = _quat_attr(_conjugated(_theta_rotation(joint.attach_theta)))
            if quat:
                attrs["quat"] = quat
        body_el = ET.SubElement(parent_el, "body", attrs)
        elements.append(body_el)

        if joint.joint_type == "none":
            ET.SubElement(body_el, "freejoint", {"name": joint.name})
        elif joint.joint_type == "spherical":
            names = hinge_names(joint.name, joint.joint_type)
            for name, axis, (lo, hi) in zip(names, SPHERICAL_AXIS_ORDER,
                                             _spherical_limits(joint.lim_low, joint.lim_high)):
                ET.SubElement(body_el, "joint", dict(name=name, type="hinge", axis=_fmt(np.eye(3)["xyz".index(axis)]),
                                                     armature=_armature(controller, joint.name),
                                                     **_range_attrs(lo, hi, enforced=False)))
        elif joint.joint_type == "revolute":
            ET.SubElement(body_el, "joint", dict(name=joint.name, type="hinge", axis=_fmt(REVOLUTE_AXIS),
                                                 armature=_armature(controller, joint.name),
                                                 **_range_attrs(joint.lim_low[0], joint.lim_high[0], enforced=True)))
        _add_geom(body_el, character.bodies[index], joint.name)

        gains = controller.gains.get(joint.name)
        for name in hinge_names(joint.name, joint.joint_type):
            actuator_attrs[name] = {"name": name, "joint": name, "kp": _fmt(gains.kp), "kv": _fmt(gains.kd),
                                    "forcerange": _fmt([-joint.torque_limit, joint.torque_limit])}

    # Actuators in the model's joint order, so ctrl[i] drives the i-th hinge.
    for joint_el in world.iter("joint"):
        ET.SubElement(actuators, "position", actuator_attrs[joint_el.get("name")])

    # The DeepMimic joint layout travels with the model: motion clips and the imitation reward
    # need it, and the character file itself is not shipped.
    custom = ET.Element("custom")
    root_el.insert(list(root_el).index(world), custom)
    skeleton = character.skeleton
    for name, data in (("deepmimic_joints", " ".join("{}:{}".format(j.name, j.joint_type) for j in skeleton.joints)),
                       ("deepmimic_parents", " ".join(str(j.parent) for j in skeleton.joints)),
                       ("deepmimic_diff_weights", _fmt([j.diff_weight for j in skeleton.joints])),
                       ("deepmimic_end_effectors", " ".join(str(int(j.is_end_effector)) for j in skeleton.joints)),
                       ("deepmimic_fall_contacts", " ".join(str(int(character.bodies[i].enable_fall_contact))
                                                            for i in range(len(skeleton.joints))))):
        ET.SubElement(custom, "text", {"name": name, "data": data})
    _indent(root_el, "  ")
    header = ("<!-- Generated by poselib_utils/mjcf_converter.py from DeepMimic's {} and {}\n"
              "     (MIT, Copyright (c) 2018 Xue Bin Peng). Do not edit by hand. -->\n").format(
        os.path.basename(character.path), os.path.basename(controller.path))
    return header + ET.tostring(root_el, encoding="unicode") + "\n"


def convert_files(character_path: str, controller_path: str, model_name: Optional[str] = None) -> str:
    character = load_character(character_path)
    controller = load_controller(controller_path, character)
    name = model_name or os.path.splitext(os.path.basename(character_path))[0]
    return build_mjcf(character, controller, name)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("character", help="DeepMimic character file, e.g. data/characters/humanoid3d.txt")
    parser.add_argument("controller", help="DeepMimic controller file, e.g. data/controllers/humanoid3d_ctrl.txt")
    parser.add_argument("-o", "--output", required=True, help="MJCF file to write")
    args = parser.parse_args(argv)
    text = convert_files(args.character, args.controller)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(text)
    print("wrote {}".format(args.output))


if __name__ == "__main__":
    main()
