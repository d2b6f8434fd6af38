"""Readers for DeepMimic's data files: motion clips, characters and PD controllers.

Files are read the way DeepMimic's C++ core reads them (anim/Motion.cpp, anim/KinTree.cpp,
sim/SimCharacter.cpp): frames are ``[dt, root pos (3), root quat wxyz (4), joint params...]``
with 4 numbers per spherical joint, 1 per revolute joint and none for fixed joints; quaternions
are normalised on load; the clip is shifted so that its first frame's root starts above the
origin. Every malformed input raises :class:`DataFormatError` naming the file, the place in it
(frame, joint, body) and the field.
"""
import json
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from poselib_utils.repository import REPO_ROOT

JOINT_PARAM_WIDTH = {"none": 7, "spherical": 4, "revolute": 1, "fixed": 0}
BODY_SHAPES = ("sphere", "capsule", "box")
LOOP_MODES = {"wrap": True, "none": False}
# DeepMimic normalises every quaternion on load; its own clips carry norms from 0.58 to 1.12.
# A norm outside this band is a corrupt frame, not rounding.
QUAT_NORM_BOUNDS = (0.5, 1.5)
# Finite but absurd clip values are refused: a keyframe held longer than this (DeepMimic's clips use
# 1/60 to 1/16 s), a root further than this from its first frame (float32 keeps 0.1 mm there), a
# revolute joint turned further than this (rad) either way.
MAX_FRAME_DURATION_S = 10.0
MAX_ROOT_DISTANCE_M = 1000.0
MAX_REVOLUTE_ANGLE = 2.0 * np.pi


class DataFormatError(ValueError):
    """A DeepMimic data file that cannot be read; the message names file, place and field."""

    def __init__(self, path: str, where: str, message: str):
        self.path = path
        self.where = where
        super().__init__("{}: {}: {}".format(path, where, message) if where else "{}: {}".format(path, message))


@dataclass(frozen=True)
class JointDef:
    name: str
    joint_type: str  # "none" (root), "spherical", "revolute" or "fixed"
    parent: int
    attach_pos: np.ndarray  # offset from the parent joint, parent frame, Y-up (m)
    attach_theta: np.ndarray  # XYZ Euler angles of the joint frame (rad)
    lim_low: np.ndarray  # per rotation axis (rad); empty for root/fixed
    lim_high: np.ndarray  # LimLow > LimHigh on an axis means unlimited, as in DeepMimic
    torque_limit: float  # N m; 0 for root and fixed joints
    is_end_effector: bool
    diff_weight: float

    @property
    def param_width(self) -> int:
        return JOINT_PARAM_WIDTH[self.joint_type]


@dataclass(frozen=True)
class BodyDef:
    name: str
    shape: str  # "sphere", "capsule" or "box"
    mass: float  # kg
    attach_pos: np.ndarray  # shape centre in the joint frame, Y-up (m)
    attach_theta: np.ndarray  # XYZ Euler angles of the shape (rad)
    size: np.ndarray  # Param0..2: diameters / full extents (m), DeepMimic's convention
    color: np.ndarray  # RGBA
    enable_fall_contact: bool


@dataclass(frozen=True)
class SkeletonJoint:
    """What a motion clip and the imitation reward need to know of a joint."""

    name: str
    joint_type: str
    parent: int
    diff_weight: float
    is_end_effector: bool

    @property
    def param_width(self) -> int:
        return JOINT_PARAM_WIDTH[self.joint_type]


@dataclass(frozen=True)
class Skeleton:
    """A character's joint layout in DeepMimic's order; ``source`` names the file it came from."""

    source: str
    joints: Tuple[SkeletonJoint, ...]

    @property
    def joint_names(self) -> List[str]:
        return [j.name for j in self.joints]

    @property
    def frame_width(self) -> int:
        """Numbers in one motion frame: the duration plus every joint's parameters."""
        return 1 + sum(j.param_width for j in self.joints)

    def param_offsets(self) -> List[int]:
        """Column of each joint's first parameter in a motion frame (after the duration)."""
        offsets, col = [], 1
        for joint in self.joints:
            offsets.append(col)
            col += joint.param_width
        return offsets


@dataclass(frozen=True)
class CharacterDef:
    path: str
    joints: Tuple[JointDef, ...]
    bodies: Tuple[BodyDef, ...]  # one per joint, same order

    @property
    def skeleton(self) -> Skeleton:
        return Skeleton(self.path, tuple(SkeletonJoint(j.name, j.joint_type, j.parent, j.diff_weight,
                                                        j.is_end_effector) for j in self.joints))


@dataclass(frozen=True)
class PDGains:
    kp: float
    kd: float


@dataclass(frozen=True)
class ControllerDef:
    path: str
    update_rate: float  # Hz, the policy rate
    gains: Dict[str, PDGains]


@dataclass(frozen=True)
class MotionClip:
    """A clip as DeepMimic holds it after loading: Y-up, normalised quaternions, origin-centred."""

    path: str
    loop: bool
    frame_durations: np.ndarray  # [F]; the last entry is unused by DeepMimic
    frames: np.ndarray  # [F, frame_width - 1]: root pos, root quat wxyz, joint params

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def frame_times(self) -> np.ndarray:
        return np.concatenate([[0.0], np.cumsum(self.frame_durations[:-1])])

    @property
    def duration(self) -> float:
        return float(self.frame_durations[:-1].sum())


def _read_json(path: str) -> dict:
    if not os.path.isfile(path):
        raise DataFormatError(path, "", "file not found")
    try:
        with open(path, "r") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise DataFormatError(path, "line {} column {}".format(err.lineno, err.colno), "invalid JSON: " + err.msg)
    except (OSError, UnicodeDecodeError) as err:
        raise DataFormatError(path, "", "unreadable: {}".format(err))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integral(value) -> int:
    if not _is_number(value) or float(value) != int(value):
        raise TypeError
    return int(value)


def _field(path: str, where: str, record: dict, key: str, kind=float, default=None):
    """``record[key]`` as ``kind``: float and int fields must be JSON numbers (ints integral)."""
    if not isinstance(record, dict):
        raise DataFormatError(path, where, "expected an object, got {}".format(type(record).__name__))
    if key not in record:
        if default is not None:
            return default
        raise DataFormatError(path, where, "missing field '{}'".format(key))
    value = record[key]
    try:
        if kind is float and not _is_number(value):
            raise TypeError
        if kind is int:
            kind = _integral
        result = kind(value)
    except (TypeError, ValueError):
        raise DataFormatError(path, where, "field '{}' has invalid value {!r}".format(key, value))
    if kind is float and not np.isfinite(result):
        raise DataFormatError(path, where, "field '{}' is not finite".format(key))
    return result


def _vec(path: str, where: str, record: dict, keys: Sequence[str]) -> np.ndarray:
    return np.array([_field(path, where, record, k) for k in keys], dtype=np.float64)


def _list_field(path: str, where: str, record: dict, key: str) -> list:
    value = _field(path, where, record, key, kind=lambda v: v)
    if not isinstance(value, list) or not value:
        raise DataFormatError(path, where, "field '{}' must be a non-empty list".format(key))
    return value


def load_character(path: str) -> CharacterDef:
    """Read a DeepMimic character file (``Skeleton.Joints`` and ``BodyDefs``)."""
    root = _read_json(path)
    skeleton = _field(path, "top level", root, "Skeleton", kind=lambda v: v)
    joint_records = _list_field(path, "Skeleton", skeleton, "Joints")
    body_records = _list_field(path, "top level", root, "BodyDefs")

    joints = []
    names = set()
    for index, rec in enumerate(joint_records):
        where = "Skeleton.Joints[{}]".format(index)
        name = _field(path, where, rec, "Name", kind=str)
        where = "joint '{}'".format(name)
        if name in names:
            raise DataFormatError(path, where, "duplicate joint name")
        names.add(name)
        joint_type = _field(path, where, rec, "Type", kind=str)
        if joint_type not in JOINT_PARAM_WIDTH:
            raise DataFormatError(path, where, "field 'Type' is '{}', expected one of {}".format(
                joint_type, sorted(JOINT_PARAM_WIDTH)))
        parent = _field(path, where, rec, "Parent", kind=int)
        if (index == 0) != (parent == -1) or parent >= index:
            raise DataFormatError(path, where, "field 'Parent' is {}: the first joint must be the root "
                                  "(Parent -1) and every other joint must follow its parent".format(parent))
        if (index == 0) != (joint_type == "none"):
            raise DataFormatError(path, where, "field 'Type': only the first joint is the root ('none')")
        num_axes = {"spherical": 3, "revolute": 1}.get(joint_type, 0)
        joints.append(JointDef(
            name=name,
            joint_type=joint_type,
            parent=parent,
            attach_pos=_vec(path, where, rec, ("AttachX", "AttachY", "AttachZ")),
            attach_theta=_vec(path, where, rec, ("AttachThetaX", "AttachThetaY", "AttachThetaZ")),
            lim_low=_vec(path, where, rec, ["LimLow{}".format(a) for a in range(num_axes)]),
            lim_high=_vec(path, where, rec, ["LimHigh{}".format(a) for a in range(num_axes)]),
            torque_limit=_field(path, where, rec, "TorqueLim", default=0.0) if joint_type in ("none", "fixed")
            else _field(path, where, rec, "TorqueLim"),
            is_end_effector=bool(_field(path, where, rec, "IsEndEffector", kind=int)),
            diff_weight=_field(path, where, rec, "DiffWeight"),
        ))

    bodies_by_name = {}
    for index, rec in enumerate(body_records):
        name = _field(path, "BodyDefs[{}]".format(index), rec, "Name", kind=str)
        where = "body '{}'".format(name)
        shape = _field(path, where, rec, "Shape", kind=str)
        if shape not in BODY_SHAPES:
            raise DataFormatError(path, where, "field 'Shape' is '{}', expected one of {}".format(shape, BODY_SHAPES))
        mass = _field(path, where, rec, "Mass")
        if mass <= 0:
            raise DataFormatError(path, where, "field 'Mass' must be positive, got {}".format(mass))
        size = _vec(path, where, rec, ("Param0", "Param1", "Param2"))
        if np.any(size <= 0):
            raise DataFormatError(path, where, "fields 'Param0..2' must be positive, got {}".format(size.tolist()))
        bodies_by_name[name] = BodyDef(
            name=name,
            shape=shape,
            mass=mass,
            attach_pos=_vec(path, where, rec, ("AttachX", "AttachY", "AttachZ")),
            attach_theta=_vec(path, where, rec, ("AttachThetaX", "AttachThetaY", "AttachThetaZ")),
            size=size,
            color=np.array([_field(path, where, rec, k, default=0.6) for k in ("ColorR", "ColorG", "ColorB")]
                           + [_field(path, where, rec, "ColorA", default=1.0)]),
            enable_fall_contact=bool(_field(path, where, rec, "EnableFallContact", kind=int, default=0)),
        )
    for joint in joints:
        if joint.name not in bodies_by_name:
            raise DataFormatError(path, "BodyDefs", "missing body for joint '{}'".format(joint.name))
    extra = sorted(set(bodies_by_name) - names)
    if extra:
        raise DataFormatError(path, "BodyDefs", "bodies {} have no joint in Skeleton.Joints".format(extra))
    return CharacterDef(path=path, joints=tuple(joints), bodies=tuple(bodies_by_name[j.name] for j in joints))


def load_controller(path: str, character: CharacterDef) -> ControllerDef:
    """Read a DeepMimic PD controller file; every actuated joint of ``character`` needs gains."""
    root = _read_json(path)
    records = _list_field(path, "top level", root, "PDControllers")
    gains = {}
    for index, rec in enumerate(records):
        name = _field(path, "PDControllers[{}]".format(index), rec, "Name", kind=str)
        where = "PDControllers joint '{}'".format(name)
        kp, kd = _field(path, where, rec, "Kp"), _field(path, where, rec, "Kd")
        if kp < 0 or kd < 0:
            raise DataFormatError(path, where, "fields 'Kp'/'Kd' must be non-negative")
        gains[name] = PDGains(kp=kp, kd=kd)
    for joint in character.joints:
        if joint.joint_type in ("spherical", "revolute") and joint.name not in gains:
            raise DataFormatError(path, "PDControllers", "missing joint '{}' of character {}".format(
                joint.name, character.path))
    update_rate = _field(path, "top level", root, "UpdateRate", default=30.0)
    if update_rate <= 0:
        raise DataFormatError(path, "top level", "field 'UpdateRate' must be positive")
    return ControllerDef(path=path, update_rate=update_rate, gains=gains)


def load_motion(path: str, skeleton: Skeleton) -> MotionClip:
    """Read a DeepMimic motion clip for a character with joint layout ``skeleton``."""
    root = _read_json(path)
    if not isinstance(root, dict):
        raise DataFormatError(path, "top level", "expected an object with 'Loop' and 'Frames'")
    loop_str = _field(path, "top level", root, "Loop", kind=str)
    if loop_str not in LOOP_MODES:
        raise DataFormatError(path, "top level", "field 'Loop' is '{}', expected one of {}".format(
            loop_str, sorted(LOOP_MODES)))
    records = _list_field(path, "top level", root, "Frames")
    if len(records) < 2:
        raise DataFormatError(path, "Frames", "a clip needs at least 2 frames, got {}".format(len(records)))

    width = skeleton.frame_width
    rows = []
    for f, rec in enumerate(records):
        if not isinstance(rec, list) or len(rec) != width:
            got = len(rec) if isinstance(rec, list) else type(rec).__name__
            raise DataFormatError(path, "frame {}".format(f), "has {} numbers, character {} needs {} "
                                  "(dt + root 7 + joints)".format(got, os.path.basename(skeleton.source), width))
        for col, value in enumerate(rec):
            if not _is_number(value):
                raise DataFormatError(path, "frame {}".format(f), "column {} is {!r}, not a number".format(col, value))
        row = np.array(rec, dtype=np.float64)
        if not np.all(np.isfinite(row)):
            col = int(np.argmin(np.isfinite(row)))
            raise DataFormatError(path, "frame {}".format(f), "column {} is not finite".format(col))
        rows.append(row)
    data = np.stack(rows)
    return clip_from_frames(path, data[:, 1:], data[:, 0], LOOP_MODES[loop_str], skeleton)


def clip_from_frames(path: str, frames: np.ndarray, durations: np.ndarray, loop: bool,
                     skeleton: Skeleton) -> MotionClip:
    """A clip from its frames [F, frame_width - 1] (root, joints) and frame durations [F], checked as
    a clip file is (``path`` names it in errors): durations, magnitudes, unit quaternions."""
    if frames.ndim != 2 or frames.shape[1] != skeleton.frame_width - 1 or len(durations) != len(frames):
        raise DataFormatError(path, "Frames", "expected [frames, {}] numbers with one duration per frame, got {} "
                              "and {} durations".format(skeleton.frame_width - 1, frames.shape, len(durations)))
    durations = np.asarray(durations, dtype=np.float64)
    frames = np.array(frames, dtype=np.float64)
    if not (np.all(np.isfinite(frames)) and np.all(np.isfinite(durations))):
        raise DataFormatError(path, "Frames", "values are not finite")
    bad = np.nonzero(durations[:-1] <= 0)[0]
    if bad.size:
        raise DataFormatError(path, "frame {}".format(bad[0]), "field 'duration' (column 0) must be positive, "
                              "got {}".format(durations[bad[0]]))
    if durations[-1] < 0:
        raise DataFormatError(path, "frame {}".format(len(durations) - 1), "field 'duration' is negative")
    _check_magnitudes(path, durations, frames, skeleton)
    for joint, col in zip(skeleton.joints, skeleton.param_offsets()):
        if joint.joint_type not in ("none", "spherical"):
            continue
        q_col = col - 1 + (3 if joint.joint_type == "none" else 0)
        quat = frames[:, q_col:q_col + 4]
        norm = np.linalg.norm(quat, axis=1)
        bad = np.nonzero((norm < QUAT_NORM_BOUNDS[0]) | (norm > QUAT_NORM_BOUNDS[1]))[0]
        if bad.size:
            raise DataFormatError(path, "frame {} joint '{}'".format(bad[0], joint.name),
                                  "rotation quaternion has norm {:.4g}, not a unit quaternion".format(norm[bad[0]]))
        frames[:, q_col:q_col + 4] = quat / norm[:, None]
    # As DeepMimic does: the first frame's root starts above the origin (height kept).
    frames[:, 0] -= frames[0, 0]
    frames[:, 2] -= frames[0, 2]
    return MotionClip(path=path, loop=loop, frame_durations=durations, frames=frames)


def _check_magnitudes(path: str, durations: np.ndarray, frames: np.ndarray, skeleton: Skeleton) -> None:
    """Durations, root travel and revolute angles within the bounds above (a clip's frame, column
    0 its duration, then the root's position, quaternion and the joints' parameters)."""
    long = np.nonzero(durations > MAX_FRAME_DURATION_S)[0]
    if long.size:
        raise DataFormatError(path, "frame {}".format(long[0]), "field 'duration' (column 0) is {:g} s; a frame may "
                              "last at most {:g} s".format(durations[long[0]], MAX_FRAME_DURATION_S))
    travel = np.abs(frames[:, 0:3] - frames[0:1, 0:3] * np.array([1.0, 0.0, 1.0]))
    far = np.nonzero(travel.max(axis=1) > MAX_ROOT_DISTANCE_M)[0]
    if far.size:
        col = 1 + int(np.argmax(travel[far[0]]))
        raise DataFormatError(path, "frame {}".format(far[0]), "root position (column {}) is {:g} m from where the "
                              "clip starts (the ground below its first frame); at most {:g} m is allowed".format(
                                  col, travel[far[0]].max(), MAX_ROOT_DISTANCE_M))
    for joint, col in zip(skeleton.joints, skeleton.param_offsets()):
        if joint.joint_type != "revolute":
            continue
        angles = frames[:, col - 1]
        bad = np.nonzero(np.abs(angles) > MAX_REVOLUTE_ANGLE)[0]
        if bad.size:
            raise DataFormatError(path, "frame {} joint '{}'".format(bad[0], joint.name),
                                  "angle (column {}) is {:g} rad; a revolute joint's angle must be within "
                                  "+-2 pi".format(col, angles[bad[0]]))


def find_data_file(path: str, search_dirs: Optional[Sequence[str]] = None) -> str:
    """Resolve ``path`` as given, or relative to the repository root."""
    candidates = [path]
    candidates += [os.path.join(d, path) for d in (search_dirs or [REPO_ROOT])]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    raise DataFormatError(path, "", "file not found (looked in {})".format(", ".join(candidates)))
