"""The character's MJCF as IsaacGym's importer needs it, derived at start-up from the one MJCF.

IsaacGym reads an MJCF its own way, unlike MuJoCo:

* A body's three hinges become one spherical joint whose three DOFs are an exponential map
  (IsaacGymEnvs' HumanoidAMP and MimicKit write ``quat_to_exp_map`` of the joint rotation there).
  Both list those hinges x, y, z; which exp-map component each DOF carries for the x, z, y order
  of our MJCF is not documented, so the copy lists every such body's hinges x, y, z, and
  ``tasks/engines/spherical_joints.py`` converts to and from our hinge angles.
* Geom masses come from ``density`` (default 1000 kg/m^3); a geom's ``mass`` is not read, so the
  character would weigh what water of its shape weighs. The copy gives each geom the density that
  makes its volume weigh the MJCF's mass (IsaacGymEnvs' and MimicKit's humanoids give densities).
* Actuators are set from the MJCF by the engine itself (DOF drive properties), so the copy has none;
  nor sensors, nor the ``<custom>`` fields only this project reads.

Torch-free: nothing here needs IsaacGym either, so its rules are tested on any machine.
"""
import math
import os
import xml.etree.ElementTree as ET
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

UNIT_AXES = {(1.0, 0.0, 0.0): 0, (0.0, 1.0, 0.0): 1, (0.0, 0.0, 1.0): 2}  # axis -> its place in x, y, z
DROPPED = ("actuator", "sensor", "custom")


def _floats(text: Optional[str], default: str) -> List[float]:
    return [float(v) for v in (text or default).split()]


def parse_mjcf(mjcf_path: str) -> Dict[str, Any]:
    """Bodies (MJCF order, with parent index, offset and hinges), hinge order, each hinge's armature
    and whether it is limited, and the position actuators' kp / kv / forcerange, read with ElementTree."""
    root = ET.parse(mjcf_path).getroot()
    world = root.find("worldbody")
    if world is None:
        raise ValueError("{}: no worldbody".format(mjcf_path))
    bodies = []  # type: List[Dict[str, Any]]
    armature = {}  # type: Dict[str, float]
    limited = {}  # type: Dict[str, bool]

    def visit(elem: ET.Element, parent: int) -> None:
        for child in elem.findall("body"):
            if child.get("quat") or child.get("euler") or child.get("axisangle"):
                raise ValueError("{}: body {} is rotated; only offsets are supported".format(
                    mjcf_path, child.get("name")))
            hinges = []
            for joint in child.findall("joint"):
                if joint.get("type", "hinge") != "hinge":
                    raise ValueError("{}: joint {} is not a hinge".format(mjcf_path, joint.get("name")))
                if any(abs(v) > 0 for v in _floats(joint.get("pos"), "0 0 0")):
                    raise ValueError("{}: joint {} is off its body origin".format(mjcf_path, joint.get("name")))
                hinges.append((joint.get("name"), _floats(joint.get("axis"), "0 0 1")))
                armature[joint.get("name", "")] = float(joint.get("armature", "0"))
                limited[joint.get("name", "")] = joint.get("limited", "true") == "true"
            bodies.append({"name": child.get("name"), "parent": parent, "pos": _floats(child.get("pos"), "0 0 0"),
                           "hinges": hinges})
            visit(child, len(bodies) - 1)

    visit(world, -1)
    dof_names = [name for body in bodies for name, _ in body["hinges"]]
    actuators = {}  # type: Dict[str, Tuple[float, float, float]]
    actuator_root = root.find("actuator")
    for act in (actuator_root.findall("position") if actuator_root is not None else []):
        force = _floats(act.get("forcerange"), "0 0")
        actuators[act.get("joint", "")] = (float(act.get("kp", "1")), float(act.get("kv", "0")),
                                           max(abs(force[0]), abs(force[1])))
    missing = [d for d in dof_names if d not in actuators]
    if missing:
        raise ValueError("{}: hinges {} have no position actuator".format(mjcf_path, missing))
    return {"bodies": bodies, "dof_names": dof_names, "actuators": actuators, "armature": armature, "limited": limited,
            "dof_ranges": [_floats(j.get("range"), "0 0") for j in world.iter("joint")
                           if j.get("type", "hinge") == "hinge" and j.get("name") in actuators]}


def geom_volume(geom: ET.Element) -> float:
    """Volume (m^3) of a sphere, capsule or box geom as MJCF sizes them."""
    kind = geom.get("type", "sphere")
    size = [float(v) for v in geom.get("size", "0").split()]
    if kind == "sphere":
        return 4.0 / 3.0 * math.pi * size[0] ** 3
    if kind == "capsule":
        if geom.get("fromto"):
            ends = np.array([float(v) for v in geom.get("fromto", "").split()]).reshape(2, 3)
            length = float(np.linalg.norm(ends[1] - ends[0]))
        else:
            length = 2.0 * size[1]
        return math.pi * size[0] ** 2 * length + 4.0 / 3.0 * math.pi * size[0] ** 3
    if kind == "box":
        return 8.0 * size[0] * size[1] * size[2]
    raise ValueError("geom '{}' is a {}: only spheres, capsules and boxes get densities".format(geom.get("name"), kind))


def _hinges_in_xyz_order(body: ET.Element, mjcf_path: str) -> None:
    hinges = [j for j in body.findall("joint") if j.get("type", "hinge") == "hinge"]
    if len(hinges) < 2:
        return
    places = []
    for joint in hinges:
        axis = tuple(float(v) for v in joint.get("axis", "0 0 1").split())
        if axis not in UNIT_AXES:
            raise ValueError("{}: body '{}' has hinge '{}' about {}; a spherical joint needs hinges about x, y "
                             "and z".format(mjcf_path, body.get("name"), joint.get("name"), axis))
        places.append(UNIT_AXES[axis])
    if sorted(places) != list(range(len(hinges))) or len(hinges) != 3:
        raise ValueError("{}: body '{}' has hinges about {}: IsaacGym makes three hinges about x, y and z one "
                         "spherical joint, and nothing else".format(mjcf_path, body.get("name"), places))
    first = list(body).index(hinges[0])
    for joint in hinges:
        body.remove(joint)
    for offset, joint in enumerate(sorted(hinges, key=lambda j: places[hinges.index(j)])):
        body.insert(first + offset, joint)


def isaacgym_mjcf(mjcf_path: str, out_dir: str) -> str:
    """Write the IsaacGym copy of ``mjcf_path`` into ``out_dir``; returns its path."""
    tree = ET.parse(mjcf_path)
    root = tree.getroot()
    for name in DROPPED:
        for element in root.findall(name):
            root.remove(element)
    world = root.find("worldbody")
    if world is None:
        raise ValueError("{}: no worldbody".format(mjcf_path))
    for body in world.iter("body"):
        _hinges_in_xyz_order(body, mjcf_path)
        for geom in body.findall("geom"):
            if geom.get("mass") is not None:
                geom.set("density", repr(float(geom.get("mass", "0")) / geom_volume(geom)))
                del geom.attrib["mass"]
    path = os.path.join(out_dir, os.path.splitext(os.path.basename(mjcf_path))[0] + "_isaacgym.xml")
    tree.write(path)
    return path


def spherical_hinge_groups(dof_names: List[str], bodies: List[dict]) -> Tuple[List[List[int]], List[List[List[float]]]]:
    """For each body with three hinges, in MJCF order: their indices in ``dof_names``, and their axes."""
    spherical = [body["hinges"] for body in bodies if len(body["hinges"]) == 3]
    return ([[dof_names.index(name) for name, _ in hinges] for hinges in spherical],
            [[axis for _, axis in hinges] for hinges in spherical])
