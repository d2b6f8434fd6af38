"""DeepMimic clips <-> IsaacGymEnvs poselib ``SkeletonMotion`` files (``.npy``).

A poselib motion file is ``np.save`` of a dict (poselib's ``SkeletonMotion.to_dict()`` plus
``"__name__"``), read back with ``np.load(path, allow_pickle=True).item()``::

    rotation                {"arr": [F, J, 4] float32, xyzw, "context": {"dtype": "float32"}}
    root_translation        {"arr": [F, 3], ...}
    global_velocity         {"arr": [F, J, 3], ...}     world frame, m/s
    global_angular_velocity {"arr": [F, J, 3], ...}     world frame, rad/s
    skeleton_tree           {"node_names": [J str], "parent_indices": {"arr": [J] int64, ...},
                             "local_translation": {"arr": [J, 3], ...}}
    is_local                True: ``rotation`` is each node's rotation relative to its parent
    fps                     frames per second
    __name__                "SkeletonMotion"

The skeleton written here is our MJCF character: nodes are the DeepMimic joints (= MJCF bodies)
in DeepMimic order, Z-up, each node's rest frame axis-aligned with the world (as in the MJCF),
``local_translation`` the MJCF body offsets. A node's world pose is its parent's pose times
(local rotation, local translation), so poselib's forward kinematics gives the MJCF bodies'
positions. A ``"deepmimic"`` entry ({"loop", "frame_durations"}) makes the way back exact;
poselib ignores keys it does not know.

The file is pickled so that NumPy 1.x and 2.x both load it: arrays are stored as
``numpy.ndarray(shape, dtype string, bytes)`` and the outer object array as ``numpy.array``, so
no reference to NumPy 2's private ``numpy._core`` module is written.

Command line: ``python -m poselib_utils.poselib_interop in.txt -o out.npy`` (and back with
``in.npy -o out.txt``).
"""
import argparse
import io
import os
import pickle
import warnings
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from poselib_utils.data_loader import (DataFormatError, MotionClip, Skeleton, clip_from_frames, find_data_file,
                                       load_motion)
from poselib_utils.mjcf_character import compile_mjcf, load_skeleton_from_mjcf
from poselib_utils.mjcf_converter import REVOLUTE_AXIS, Y_UP_TO_Z_UP
from poselib_utils.repository import DEFAULT_MJCF, character_mjcf_of_clip
from poselib_utils.retarget import clip_root_pose, rotation_to_wxyz, wxyz_to_rotation
from poselib_utils.skeleton_maps import (NodeLayout, SkeletonMap, closest_skeleton_map, find_skeleton_map,
                                         known_skeleton_maps, skeleton_map_named)

NPY_MAGIC = b"\x93NUMPY\x01\x00"
POSELIB_VELOCITY_SIGMA = 2.0  # frames: poselib's smoothing of the velocities it stores


# ----------------------------------------------------------------------------------------------
# The character and DeepMimic frames in the Z-up world


class Character:
    """The MJCF character as a kinematic tree in DeepMimic joint order (Z-up, metres)."""

    def __init__(self, mjcf_path: str = DEFAULT_MJCF):
        self.mjcf_path = mjcf_path
        self.skeleton: Skeleton = load_skeleton_from_mjcf(mjcf_path)
        self.model = compile_mjcf(mjcf_path)
        self.names = self.skeleton.joint_names
        self.parents = np.array([j.parent for j in self.skeleton.joints], dtype=np.int64)
        self.types = [j.joint_type for j in self.skeleton.joints]
        self.offsets = np.stack([self.model.body(n).pos.copy() for n in self.names])  # [J, 3]
        if np.any(np.abs(self.model.body_quat[1:] - [1.0, 0.0, 0.0, 0.0]) > 1e-9):
            raise DataFormatError(mjcf_path, "<worldbody>", "body frames must be world-aligned at rest")

    def index(self, name: str) -> int:
        return self.names.index(name)

    def children(self, j: int) -> List[int]:
        return [c for c in range(len(self.names)) if self.parents[c] == j]

    def hinge_range(self, name: str) -> Tuple[float, float]:
        jnt = self.model.joint(name)
        return (float(jnt.range[0]), float(jnt.range[1])) if self.model.jnt_limited[jnt.id] else (1.0, -1.0)


def _conj(rot: Rotation) -> Rotation:
    return Y_UP_TO_Z_UP * rot * Y_UP_TO_Z_UP.inv()


def _unconj(rot: Rotation) -> Rotation:
    return Y_UP_TO_Z_UP.inv() * rot * Y_UP_TO_Z_UP


def clip_local_rotations(clip: MotionClip, character: Character) -> Tuple[np.ndarray, np.ndarray]:
    """Root position [F, 3] and every joint's local rotation [F, J, 4] (xyzw) in the Z-up world."""
    root_pos, root_quat = clip_root_pose(clip)
    rots = np.zeros((clip.num_frames, len(character.names), 4))
    for j, (joint, col) in enumerate(zip(character.skeleton.joints, character.skeleton.param_offsets())):
        col -= 1
        if joint.joint_type == "none":
            rot = wxyz_to_rotation(root_quat)
        elif joint.joint_type == "spherical":
            rot = _conj(wxyz_to_rotation(clip.frames[:, col:col + 4]))
        elif joint.joint_type == "revolute":
            rot = Rotation.from_rotvec(np.outer(clip.frames[:, col], REVOLUTE_AXIS))
        else:
            rot = Rotation.identity(clip.num_frames)
        rots[:, j] = rot.as_quat()
    return root_pos, rots


def hinge_angle(quat_xyzw: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Angle of the twist of ``quat`` about the unit ``axis`` (swing-twist decomposition)."""
    q = np.asarray(quat_xyzw)
    return 2.0 * np.arctan2(q[..., 0:3] @ axis, q[..., 3])


def frames_from_local_rotations(root_pos: np.ndarray, rots: np.ndarray, character: Character) -> np.ndarray:
    """DeepMimic frames [F, frame_width - 1] (Y-up) from Z-up root positions and local rotations."""
    num = root_pos.shape[0]
    cols = [Y_UP_TO_Z_UP.inv().apply(root_pos)]
    for j, joint_type in enumerate(character.types):
        rot = Rotation.from_quat(rots[:, j])
        if joint_type == "none":
            cols.append(rotation_to_wxyz(_unconj(rot)))
        elif joint_type == "spherical":
            cols.append(rotation_to_wxyz(_unconj(rot)))
        elif joint_type == "revolute":
            cols.append(np.unwrap(hinge_angle(rots[:, j], REVOLUTE_AXIS))[:, None])
    frames = np.concatenate([c.reshape(num, -1) for c in cols], axis=1)
    # Sign-continuous quaternions (q and -q are the same rotation) read better and interpolate right.
    for joint, col in zip(character.skeleton.joints, character.skeleton.param_offsets()):
        if joint.joint_type in ("none", "spherical"):
            c = col - 1 + (3 if joint.joint_type == "none" else 0)
            q = frames[:, c:c + 4]
            q[q[:, 0] < 0] *= -1.0
    return frames


def forward_kinematics(parents: np.ndarray, local_translation: np.ndarray, root_pos: np.ndarray,
                       rots: np.ndarray) -> Tuple[np.ndarray, List[Rotation]]:
    """World positions [F, J, 3] and rotations of a tree: node = parent * (local rot, local offset)."""
    num, joints = rots.shape[:2]
    pos = np.zeros((num, joints, 3))
    glob: List[Rotation] = []
    for j in range(joints):
        local = Rotation.from_quat(rots[:, j])
        if parents[j] < 0:
            glob.append(local)
            pos[:, j] = root_pos
        else:
            p = int(parents[j])
            glob.append(glob[p] * local)
            pos[:, j] = pos[:, p] + glob[p].apply(local_translation[j])
    return pos, glob


def write_deepmimic_motion(path: str, frames: np.ndarray, frame_durations: np.ndarray, loop: bool) -> None:
    """Write a DeepMimic motion file: ``{"Loop": ..., "Frames": [[dt, root pos, root quat, joints]]}``."""
    if frames.shape[0] < 2:
        raise DataFormatError(path, "Frames", "a clip needs at least 2 frames, got {}".format(frames.shape[0]))
    rows = np.concatenate([np.asarray(frame_durations).reshape(-1, 1), frames], axis=1)
    lines = ["[" + ", ".join("{:.10f}".format(v) for v in row) + "]" for row in rows]
    with open(path, "w") as f:
        f.write('{{\n"Loop": "{}",\n"Frames":\n[\n{}\n]\n}}\n'.format("wrap" if loop else "none", ",\n".join(lines)))


# ----------------------------------------------------------------------------------------------
# poselib dicts


def _tensor_dict(arr: np.ndarray) -> Dict:
    arr = np.ascontiguousarray(arr)
    return {"arr": arr, "context": {"dtype": arr.dtype.name}}


def poselib_velocities(pos: np.ndarray, glob: List[Rotation], frame_dt: float) -> Tuple[np.ndarray, np.ndarray]:
    """World velocities [F, J, 3] and angular velocities as poselib's ``SkeletonMotion`` computes them
    (what HumanoidAMP reads): central differences of positions, forward differences of rotations
    (zero at the last frame), each smoothed by a Gaussian of 2 frames (edges held)."""
    ang = np.zeros_like(pos)
    for j, g in enumerate(glob):
        ang[:-1, j] = (g[1:] * g[:-1].inv()).as_rotvec()
    def per_second_smoothed(step: np.ndarray) -> np.ndarray:
        return gaussian_filter1d(step, POSELIB_VELOCITY_SIGMA, axis=0, mode="nearest") / frame_dt

    return per_second_smoothed(np.gradient(pos, axis=0)), per_second_smoothed(ang)


def clip_to_poselib(clip: MotionClip, character: Character,
                    skeleton_map: Optional[SkeletonMap] = None) -> "OrderedDict":
    """The clip as poselib's ``SkeletonMotion.to_dict()`` (plus ``__name__`` and ``deepmimic``), on
    our character's skeleton or, with ``skeleton_map``, on that one (its node names, order, rest frames)."""
    root_pos, rots = clip_local_rotations(clip, character)
    dt = clip.frame_durations[:-1]
    fps = 1.0 / float(np.mean(dt))
    fps = int(round(fps)) if abs(fps - round(fps)) < 1e-2 else fps
    pos, glob = forward_kinematics(character.parents, character.offsets, root_pos, rots)
    vel, ang = poselib_velocities(pos, glob, 1.0 / fps)
    layout = NodeLayout(character.names, character.parents, skeleton_map)
    tree = OrderedDict([
        ("node_names", list(layout.node_names)),
        ("parent_indices", _tensor_dict(layout.node_parents.astype(np.int64))),
        ("local_translation", _tensor_dict(layout.offsets_to_nodes(character.offsets).astype(np.float32))),
    ])
    return OrderedDict([
        ("rotation", _tensor_dict(layout.rotations_to_nodes(rots).astype(np.float32))),
        ("root_translation", _tensor_dict(root_pos.astype(np.float32))),
        ("global_velocity", _tensor_dict(layout.values_to_nodes(vel).astype(np.float32))),
        ("global_angular_velocity", _tensor_dict(layout.values_to_nodes(ang).astype(np.float32))),
        ("skeleton_tree", tree),
        ("is_local", True),
        ("fps", fps),
        ("__name__", "SkeletonMotion"),
        ("deepmimic", {"loop": bool(clip.loop), "frame_durations": np.asarray(clip.frame_durations, np.float64)}),
    ])


class _PortablePickler(pickle.Pickler):
    """Pickles arrays through public NumPy names only, so NumPy 1.x can read NumPy 2's output."""

    def reducer_override(self, obj):
        if type(obj) is np.ndarray:
            if obj.dtype.hasobject:
                if obj.ndim != 0:
                    raise TypeError("only 0-d object arrays are supported")
                return np.array, (obj.item(), "O")
            arr = np.ascontiguousarray(obj)
            if arr.size == 0:
                return np.zeros, (arr.shape, arr.dtype.str)
            return np.ndarray, (arr.shape, arr.dtype.str, arr.tobytes())
        if isinstance(obj, np.generic):
            return type(obj.item()), (obj.item(),)
        return NotImplemented


def save_poselib_npy(path: str, motion: Dict) -> None:
    """``np.save(path, motion)`` (a 0-d object array), pickled portably (protocol 3, as np.save)."""
    buf = io.BytesIO()
    _PortablePickler(buf, protocol=3).dump(np.array(dict(motion), dtype=object))
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (), }"
    header = header + " " * (63 - (len(NPY_MAGIC) + 2 + len(header)) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(NPY_MAGIC + len(header).to_bytes(2, "little") + header.encode("latin1") + buf.getvalue())


def _arr(path: str, motion: Dict, key: str, shape_tail: Tuple, container: Optional[Dict] = None) -> np.ndarray:
    src = motion if container is None else container
    entry = src.get(key)
    if not isinstance(entry, dict) or "arr" not in entry:
        raise DataFormatError(path, "field '{}'".format(key), "missing, or not poselib's {'arr', 'context'} dict")
    arr = np.asarray(entry["arr"], dtype=np.float64)
    if arr.shape[arr.ndim - len(shape_tail):] != shape_tail and shape_tail:
        raise DataFormatError(path, "field '{}'".format(key), "has shape {}, expected (..., {})".format(
            arr.shape, ", ".join(str(s) for s in shape_tail)))
    return arr


def load_poselib_npy(path: str) -> Dict:
    if not os.path.isfile(path):
        raise DataFormatError(path, "", "file not found")
    try:
        motion = np.load(path, allow_pickle=True).item()
    except Exception as err:  # a truncated or foreign file: say so, naming it
        raise DataFormatError(path, "", "not a poselib .npy motion: {}".format(err))
    if not isinstance(motion, dict) or motion.get("__name__", "SkeletonMotion") != "SkeletonMotion":
        raise DataFormatError(path, "__name__", "not a poselib SkeletonMotion")
    return motion


def node_layout(names: List[str], character: Character, path: str, skeleton: Optional[str] = None) -> NodeLayout:
    """How the file's nodes ``names`` sit on ``character``: the skeleton named (``skeleton``: a map in
    poselib_utils/skeletons/, or 'character' for the character's own), else the one they match."""
    if skeleton == "character" or (skeleton is None and names == character.names):
        found = None
    elif skeleton is not None:
        found = skeleton_map_named(skeleton)
    else:
        found = find_skeleton_map(names, character.mjcf_path)
        if found is None:
            closest = closest_skeleton_map(names)
            if closest is None or len(set(closest.nodes) & set(names)) <= len(set(character.names) & set(names)):
                against, expected = "the character", character.names
            else:
                against, expected = closest.name, list(closest.nodes)
            extra = [n for n in names if n not in expected]
            missing = [n for n in expected if n not in names]
            raise DataFormatError(path, "skeleton_tree.node_names", "skeleton matches neither character {} nor a known "
                                  "skeleton ({}); against {}: nodes {} are unknown, {} are missing{}".format(
                                      os.path.basename(character.mjcf_path), ", ".join(sorted(known_skeleton_maps())),
                                      against, extra, missing, "" if extra or missing else " (same names, other order)"))
    if found is not None and not os.path.samefile(found.character, character.mjcf_path):
        raise DataFormatError(path, "--skeleton", "skeleton '{}' maps onto {}, not {}".format(
            found.name, found.character, character.mjcf_path))
    expected = list(found.nodes) if found is not None else character.names
    if names != expected:
        raise DataFormatError(path, "skeleton_tree.node_names", "nodes {} are not skeleton '{}' ({})".format(
            names, found.name if found is not None else "character", expected))
    return NodeLayout(character.names, character.parents, found)


def _check_tree(motion: Dict, tree: Dict, layout: NodeLayout, character: Character, path: str) -> None:
    parents = np.asarray(_arr(path, motion, "parent_indices", (), tree), dtype=np.int64)
    if parents.tolist() != layout.node_parents.tolist():
        raise DataFormatError(path, "skeleton_tree.parent_indices", "parents {} differ from the character's {} "
                              "in this skeleton's order".format(parents.tolist(), layout.node_parents.tolist()))
    offsets = layout.offsets_to_joints(_arr(path, motion, "local_translation", (3,), tree))
    err = np.linalg.norm(offsets[1:] - character.offsets[1:], axis=1)
    if err.size and err.max() > 1e-3:
        j = int(np.argmax(err)) + 1
        raise DataFormatError(path, "skeleton_tree.local_translation", "node '{}' is offset {} from its parent, "
                              "the character's '{}' {} ({:.3f} m apart): a different body, or other rest frames (name "
                              "their skeleton map with --skeleton)".format(
                                  layout.node_names[layout.order[j]], np.round(offsets[j], 4).tolist(),
                                  character.names[j], np.round(character.offsets[j], 4).tolist(), err.max()))


def poselib_to_frames(motion: Dict, character: Character, path: str = "<poselib motion>",
                      skeleton: Optional[str] = None):
    """DeepMimic frames, frame durations and loop flag of a poselib motion on our character; its
    skeleton is ``skeleton`` (node_layout) or found from its node names."""
    tree = motion.get("skeleton_tree")
    if not isinstance(tree, dict) or "node_names" not in tree:
        raise DataFormatError(path, "field 'skeleton_tree'", "missing")
    names = [str(n) for n in tree["node_names"]]
    layout = node_layout(names, character, path, skeleton)
    _check_tree(motion, tree, layout, character, path)
    rots = _arr(path, motion, "rotation", (len(names), 4))
    root = _arr(path, motion, "root_translation", (3,))
    if rots.ndim != 3 or rots.shape[0] < 2 or root.shape[0] != rots.shape[0]:
        raise DataFormatError(path, "field 'rotation'", "needs [frames >= 2, {}, 4] with one root translation per "
                              "frame, got {} and {}".format(len(names), rots.shape, root.shape))
    rots = rots / np.linalg.norm(rots, axis=-1, keepdims=True)
    extra = motion.get("deepmimic") or {}
    durations = extra.get("frame_durations")
    if durations is None or len(durations) != rots.shape[0]:
        frame_dt = 1.0 / _frame_rate(motion.get("fps"), path)
        if every_frame_twice(rots, root):
            warnings.warn("{}: every frame is stored twice (as in IsaacGymEnvs' 60 fps clips): read at half that "
                          "rate, {:g} fps, one keyframe per pair".format(path, 0.5 / frame_dt))
            rots, root, frame_dt = rots[::2], root[::2], 2.0 * frame_dt
        durations = np.append(np.full(rots.shape[0] - 1, frame_dt), 0.0)  # DeepMimic's last frame lasts 0
    if not bool(motion.get("is_local", True)):
        parents = layout.node_parents
        glob = [Rotation.from_quat(rots[:, n]) for n in range(len(names))]
        rots = np.stack([(glob[n] if parents[n] < 0 else glob[parents[n]].inv() * glob[n]).as_quat()
                         for n in range(len(names))], axis=1)
    frames = frames_from_local_rotations(root, layout.rotations_to_joints(rots), character)
    return frames, np.asarray(durations, np.float64), bool(extra.get("loop", False))


def every_frame_twice(rots: np.ndarray, root: np.ndarray) -> bool:
    """Frame 2k+1 repeats frame 2k throughout: a clip written at twice its real frame rate, which
    played as stored would stop and jump every other frame."""
    if rots.shape[0] < 4:
        return False
    pairs = rots.shape[0] // 2 * 2
    return bool(np.array_equal(rots[0:pairs:2], rots[1:pairs:2]) and np.array_equal(root[0:pairs:2], root[1:pairs:2]))


def _frame_rate(value, path: str) -> float:
    """poselib's ``fps``: a number or (IsaacGymEnvs' walk and run) a 0-d integer array."""
    arr = np.asarray(value)
    if arr.shape != () or arr.dtype.kind not in "iuf" or not 0 < float(arr) < np.inf:
        raise DataFormatError(path, "field 'fps'", "must be a positive number, got {!r}".format(value))
    return float(arr)


def load_poselib_clip(path: str, character: Character, skeleton: Optional[str] = None) -> MotionClip:
    """A poselib .npy motion as the DeepMimic clip it is, read and checked as the .txt would be."""
    frames, durations, loop = poselib_to_frames(load_poselib_npy(path), character, path, skeleton)
    return clip_from_frames(path, frames, durations, loop, character.skeleton)


def convert(src: str, dst: str, mjcf_path: str = DEFAULT_MJCF, loop: Optional[bool] = None,
            skeleton: Optional[str] = None) -> None:
    """.npy -> .txt (``skeleton``: the file's, found from its node names when not given) or
    .txt -> .npy (``skeleton``: the one to write, the character's own when not given)."""
    character = Character(mjcf_path)
    if src.endswith(".npy"):
        frames, durations, clip_loop = poselib_to_frames(load_poselib_npy(src), character, src, skeleton)
        write_deepmimic_motion(dst, frames, durations, clip_loop if loop is None else loop)
        load_motion(dst, character.skeleton)  # what we wrote reads back
    else:
        skeleton_map = skeleton_map_named(skeleton) if skeleton not in (None, "character") else None
        save_poselib_npy(dst, clip_to_poselib(load_motion(src, character.skeleton), character, skeleton_map))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="DeepMimic clip (.txt) <-> poselib SkeletonMotion (.npy)")
    parser.add_argument("input")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--mjcf", help="the character (default: the .txt clip's character by name, e.g. "
                        "dog3d_trot.txt: assets/mjcf/dog3d.xml; humanoid3d otherwise)")
    parser.add_argument("--skeleton", help="the .npy's skeleton: 'character' (the MJCF's own), or a map in "
                        "poselib_utils/skeletons/ ({}); reading, found from the file's node names when not given; "
                        "writing, 'character' when not given".format(", ".join(sorted(known_skeleton_maps()))))
    parser.add_argument("--loop", choices=("wrap", "none"), help="the .txt's Loop (default: the .npy's record of it "
                        "if it has one, else none)")
    args = parser.parse_args(argv)
    mjcf = args.mjcf or character_mjcf_of_clip(args.input if args.input.endswith(".txt") else args.output)
    try:
        convert(find_data_file(args.input), args.output, mjcf, None if args.loop is None else args.loop == "wrap",
                args.skeleton)
    except DataFormatError as err:
        raise SystemExit(str(err))
    print("wrote {}".format(args.output))


if __name__ == "__main__":
    main()
