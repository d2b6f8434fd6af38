"""The character as its MJCF describes it: DeepMimic's joint layout and fall-contact bodies, which
mjcf_converter.py stores in the MJCF's ``<custom>`` fields, and the model MuJoCo compiles from it.
Every problem raises data_loader's DataFormatError naming the file and the field."""
import os
import xml.etree.ElementTree as ET
from typing import Dict, List, Sequence

from poselib_utils.data_loader import JOINT_PARAM_WIDTH, DataFormatError, Skeleton, SkeletonJoint


def _mjcf_custom_fields(path: str) -> Dict[str, str]:
    """The ``<custom>`` text fields of an MJCF, by name (mjcf_converter writes DeepMimic's there)."""
    if not os.path.isfile(path):
        raise DataFormatError(path, "", "file not found")
    try:
        custom = ET.parse(path).getroot().find("custom")
    except ET.ParseError as err:
        raise DataFormatError(path, "", "invalid XML: {}".format(err))
    return {} if custom is None else {el.get("name"): el.get("data", "") for el in custom}


def _custom_numbers(path: str, fields: Dict[str, str], key: str, kind) -> list:
    """A ``<custom>`` field's whitespace-separated numbers, as ``kind`` (int or float)."""
    try:
        values = [float(v) for v in fields[key].split()]
        if kind is int and not all(v.is_integer() for v in values):
            raise ValueError(key)
        return [kind(v) for v in values]
    except ValueError:
        raise DataFormatError(path, "<custom> " + key, "expected {} numbers, got '{}'".format(
            "whole" if kind is int else "real", fields[key]))


def _require_custom_fields(path: str, fields: Dict[str, str], keys: Sequence[str]) -> None:
    for key in keys:
        if key not in fields:
            raise DataFormatError(path, "<custom>", "missing field '{}': regenerate the file with "
                                  "poselib_utils/mjcf_converter.py".format(key))


def load_skeleton_from_mjcf(path: str) -> Skeleton:
    """Read the DeepMimic joint layout that mjcf_converter stores in an MJCF's ``<custom>``."""
    return _skeleton_from_custom_fields(path, _mjcf_custom_fields(path))


def _skeleton_from_custom_fields(path: str, fields: Dict[str, str]) -> Skeleton:
    _require_custom_fields(path, fields, ("deepmimic_joints", "deepmimic_parents", "deepmimic_diff_weights",
                                          "deepmimic_end_effectors"))
    joints = []
    entries = fields["deepmimic_joints"].split()
    parents = _custom_numbers(path, fields, "deepmimic_parents", int)
    weights = _custom_numbers(path, fields, "deepmimic_diff_weights", float)
    ends = [bool(v) for v in _custom_numbers(path, fields, "deepmimic_end_effectors", int)]
    if not (len(entries) == len(parents) == len(weights) == len(ends)):
        raise DataFormatError(path, "<custom>", "deepmimic_* fields have different lengths")
    for i, (entry, parent, weight, end) in enumerate(zip(entries, parents, weights, ends)):
        if not -1 <= parent < i:
            raise DataFormatError(path, "<custom> deepmimic_parents", "joint {} has parent {}: expected -1 (the "
                                  "root) or an earlier joint".format(i, parent))
        name, _, joint_type = entry.partition(":")
        if joint_type not in JOINT_PARAM_WIDTH:
            raise DataFormatError(path, "<custom> deepmimic_joints", "joint '{}' has unknown type '{}'".format(
                name, joint_type))
        joints.append(SkeletonJoint(name, joint_type, parent, weight, end))
    return Skeleton(path, tuple(joints))


def compile_mjcf(path: str):
    """The character's MJCF compiled by MuJoCo (a ``mujoco.MjModel``); DataFormatError naming the
    file when MuJoCo rejects it (an actuator on a missing joint, a negative mass, an unknown attribute)."""
    import mujoco

    if not os.path.isfile(path):
        raise DataFormatError(path, "", "file not found")
    try:
        return mujoco.MjModel.from_xml_path(path)
    except ValueError as err:
        raise DataFormatError(path, "", "MuJoCo rejects it: {}".format(" ".join(str(err).split())))


def load_fall_contact_bodies(path: str) -> List[str]:
    """Bodies whose ground contact ends a DeepMimic episode (the character file's EnableFallContact:
    root, chest and neck for humanoid3d), as mjcf_converter stores them in the MJCF's ``<custom>``."""
    fields = _mjcf_custom_fields(path)
    skeleton = _skeleton_from_custom_fields(path, fields)
    _require_custom_fields(path, fields, ("deepmimic_fall_contacts",))
    flags = fields["deepmimic_fall_contacts"].split()
    if len(flags) != len(skeleton.joints) or any(f not in ("0", "1") for f in flags):
        raise DataFormatError(path, "<custom> deepmimic_fall_contacts", "expected {} flags of 0 or 1, got '{}'".format(
            len(skeleton.joints), fields["deepmimic_fall_contacts"]))
    return [j.name for j, f in zip(skeleton.joints, flags) if f == "1"]


def allowed_contact_bodies(spec, mjcf_path: str, body_names: Sequence[str]) -> List[str]:
    """``task.env.contact_bodies`` as the bodies allowed to touch the ground: a list of body names,
    or 'character' for DeepMimic's rule (every body but the character's fall-contact bodies).
    ValueError naming the setting, the unknown names and the character's bodies otherwise."""
    if spec == "character":
        falls = load_fall_contact_bodies(mjcf_path)
        return [b for b in body_names if b not in falls]
    if not isinstance(spec, (list, tuple)) or not all(isinstance(b, str) for b in spec):
        raise ValueError("task.env.contact_bodies: a list of body names or 'character', got {!r}".format(spec))
    unknown = [b for b in spec if b not in body_names]
    if unknown:
        raise ValueError("task.env.contact_bodies: unknown bodies {}; {} has {}".format(
            unknown, os.path.basename(mjcf_path), list(body_names)))
    return list(spec)
