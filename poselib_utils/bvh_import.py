"""Retarget a BVH clip onto the MJCF character and write a DeepMimic motion clip.

    python -m poselib_utils.bvh_import in.bvh --map cmu -o motions/my_clip.txt

Steps: read the BVH; turn its world into ours (``--up y``: BVH's usual Y-up, a vector (x, y, z)
becomes (x, -z, y), as for DeepMimic's data; ``--up z``: already Z-up); resample to ``--fps``
(slerp of local rotations, lerp of positions); scale by leg length (the character's hip-knee-ankle
length over the BVH's, which also converts cm or inches to metres); then pose the character so
that its bones point where the BVH's mapped bones point:

* a joint with several mapped children (root, chest) takes the rotation that best aligns its
  rest bone directions with the BVH's current ones;
* a limb (hip or shoulder whose child is a 1-DOF knee or elbow) aims its upper bone exactly at
  the BVH's and turns about it so that the knee/elbow hinge bends in the BVH limb's plane; the
  hinge angle is the BVH's bend angle, signed by the joint's range (3-DOF -> 1-DOF);
* a leaf joint (ankle, wrist, neck) turns with its BVH joint relative to the rest pose.

The BVH's rest pose (all channels zero: T-pose, A-pose or anything else) is aligned with the
character's by bone directions, so the two need not match. Finally the clip is shifted so that
the lowest point of the feet over the clip touches the floor, and a report gives each body's
position error against the scaled BVH joint it follows.

A joint map's BVH names match ignoring case and a namespace prefix: ``Hips`` matches
``mixamorig:Hips`` (Mixamo) and ``Armature|Hips``.
"""
import argparse
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import yaml
from scipy.spatial.transform import Rotation, Slerp

from poselib_utils.bvh import BvhMotion, load_bvh
from poselib_utils.data_loader import DataFormatError, MotionClip, load_motion
from poselib_utils.mjcf_converter import REVOLUTE_AXIS, Y_UP_TO_Z_UP
from poselib_utils.poselib_interop import DEFAULT_MJCF, Character, frames_from_local_rotations, write_deepmimic_motion

MAPS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "maps")
DEFAULT_FEET = ("right_ankle", "left_ankle")


def load_joint_map(name_or_path: str, character: Character) -> Dict[str, List[str]]:
    """Character joint -> BVH joint candidates, from a shipped map name or a YAML file."""
    path = name_or_path
    if not os.path.isfile(path):
        path = os.path.join(MAPS_DIR, name_or_path + ".yaml")
        if not os.path.isfile(path):
            shipped = sorted(f[:-5] for f in os.listdir(MAPS_DIR) if f.endswith(".yaml"))
            raise DataFormatError(name_or_path, "", "no such joint map file, nor a shipped map (shipped: {})".format(
                shipped))
    with open(path) as f:
        try:
            raw = yaml.safe_load(f)
        except yaml.YAMLError as err:
            raise DataFormatError(path, "", "invalid YAML: {}".format(err))
    if not isinstance(raw, dict):
        raise DataFormatError(path, "top level", "expected 'character joint: BVH joint' entries")
    unknown = [k for k in raw if k not in character.names]
    if unknown:
        raise DataFormatError(path, "joint '{}'".format(unknown[0]), "unknown character joint; the character "
                              "has {}".format(character.names))
    missing = [n for n in character.names if character.types[character.index(n)] != "fixed" and n not in raw]
    if missing:
        raise DataFormatError(path, "top level", "character joints {} are not mapped".format(missing))
    return {k: [str(v)] if isinstance(v, str) else [str(x) for x in v] for k, v in raw.items()}


def _bare(name: str) -> str:
    return name.split(":")[-1].split("|")[-1].lower()


def resolve_joint_map(joint_map: Dict[str, List[str]], bvh: BvhMotion, map_name: str) -> Dict[str, int]:
    by_name = {}
    for i, n in enumerate(bvh.names):
        by_name.setdefault(_bare(n), i)
    out = {}
    for target, candidates in joint_map.items():
        hit = [by_name[_bare(c)] for c in candidates if _bare(c) in by_name]
        if not hit:
            raise DataFormatError(bvh.path, "joint map '{}'".format(map_name), "character joint '{}' maps to {}, "
                                  "none of which is in the BVH (its joints: {})".format(target, candidates, bvh.names))
        out[target] = hit[0]
    return out


def _source_rate(frame_time: float) -> float:
    """The BVH's frame rate. Frame times are printed rounded (0.033333 for 1/30 s), which would make
    a 30 fps clip a hair shorter than a whole number of 30 fps frames and lose its last frame: a
    rate within 0.01 % of a whole number is that number (NTSC's 29.97 is 0.1 % off 30 and stays)."""
    rate = 1.0 / frame_time
    return float(round(rate)) if abs(rate - round(rate)) < 1e-4 * rate else rate


def _resample(bvh: BvhMotion, fps: float):
    """BVH local translations [T][F', 3] and rotations at ``fps``."""
    trans, rots = bvh.local_transforms()
    src_t = np.arange(bvh.num_frames) / _source_rate(bvh.frame_time)
    n = int(np.floor(src_t[-1] * fps + 1e-6)) + 1
    if n < 2:
        raise DataFormatError(bvh.path, "MOTION", "zero-length clip: {:.4f} s is shorter than one frame at {} fps"
                              .format(src_t[-1], fps))
    new_t = np.minimum(np.arange(n) / fps, src_t[-1])
    trans = [np.stack([np.interp(new_t, src_t, t[:, k]) for k in range(3)], axis=1) for t in trans]
    rots = [Slerp(src_t, r)(new_t) for r in rots]
    return trans, rots


def _fk(parents, trans, rots):
    pos, glob = [], []
    for j in range(len(parents)):
        if parents[j] < 0:
            glob.append(rots[j])
            pos.append(trans[j])
        else:
            p = parents[j]
            glob.append(glob[p] * rots[j])
            pos.append(pos[p] + glob[p].apply(trans[j]))
    return pos, glob


def _unit(v):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _min_rotation(a, b) -> Rotation:
    """Smallest rotation taking direction a onto direction b (one frame)."""
    a, b = _unit(a), _unit(b)
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(np.dot(a, b))
    if s < 1e-9:
        if c > 0:
            return Rotation.identity()
        perp = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        return Rotation.from_rotvec(np.pi * _unit(perp))
    return Rotation.from_rotvec(axis / s * np.arctan2(s, c))


def retarget_bvh(bvh: BvhMotion, joint_map: Dict[str, List[str]], character: Character, fps: float = 30.0,
                 up: str = "y", map_name: str = "map"):
    """The character following ``bvh`` at ``fps``, as four values: root positions [F, 3], local
    rotations [F, J, 4] (xyzw, Z-up), the scaled BVH joint positions [F, J, 3] they follow (for the
    error report), and the scale applied to the BVH (the character's leg length over the BVH's)."""
    if up not in ("y", "z"):
        raise ValueError("up must be 'y' or 'z', got {!r}".format(up))
    src = resolve_joint_map(joint_map, bvh, map_name)
    axes = Y_UP_TO_Z_UP if up == "y" else Rotation.identity()
    pos, glob, rest_pos = _bvh_world_pose(bvh, fps, axes)
    scale = _leg_length_scale(bvh, character, src, rest_pos, map_name)
    names = character.names
    target_pos = np.stack([scale * pos[src[n]] for n in names], axis=1)  # [F, J, 3]
    rest_src = np.stack([scale * rest_pos[src[n]] for n in names])
    poser = _CharacterPoser(character)
    rest = poser.rest_alignment(rest_src, axes)
    local = np.zeros((len(target_pos), len(names), 4))
    for f in range(len(target_pos)):
        g_src = [glob[src[n]][f] for n in names]
        g, hinge = poser.pose_frame(target_pos[f], g_src, rest)
        local[f] = _local_rotations(character, g, hinge)
    return target_pos[:, 0].copy(), local, target_pos, scale


def _bvh_world_pose(bvh: BvhMotion, fps: float, axes: Rotation):
    """The BVH resampled to ``fps`` in our world (``axes`` turns its up axis to z): per BVH joint,
    positions [F, 3] and global rotations, and its rest-pose (all channels zero) positions [3]."""
    trans, rots = _resample(bvh, fps)
    pos, glob = _fk(bvh.parents, trans, rots)
    pos = [axes.apply(p) for p in pos]
    glob = [axes * g for g in glob]
    rest_pos, _ = _fk(bvh.parents, [o[None] for o in bvh.offsets], [Rotation.identity(1)] * len(bvh.names))
    rest_pos = [axes.apply(p)[0] for p in rest_pos]
    return pos, glob, rest_pos


def _leg_length_scale(bvh: BvhMotion, character: Character, src: Dict[str, int], rest_pos, map_name: str) -> float:
    """The character's hip-knee-ankle length over the BVH's rest one, averaged over the mapped legs:
    a ratio of lengths, so it also converts the BVH's units (cm, inches) to metres."""
    offsets = character.offsets
    jid = {n: i for i, n in enumerate(character.names)}
    legs = [("right_hip", "right_knee", "right_ankle"), ("left_hip", "left_knee", "left_ankle")]
    legs = [leg for leg in legs if all(n in src for n in leg)]
    if not legs:
        raise DataFormatError(bvh.path, "joint map '{}'".format(map_name),
                              "needs hip, knee and ankle to scale by leg length")
    tgt_len = np.mean([np.linalg.norm(offsets[jid[k]]) + np.linalg.norm(offsets[jid[a]]) for _, k, a in legs])
    src_len = np.mean([np.linalg.norm(rest_pos[src[k]] - rest_pos[src[h]])
                       + np.linalg.norm(rest_pos[src[a]] - rest_pos[src[k]]) for h, k, a in legs])
    if not src_len > 1e-9:
        raise DataFormatError(bvh.path, "HIERARCHY", "the mapped legs have zero length")
    return tgt_len / src_len


def _bend_angle(u, v):
    """The angle between u and v, by arctan2: accurate for a nearly straight limb, unlike arccos."""
    return np.arctan2(np.linalg.norm(np.cross(u, v), axis=-1), np.sum(u * v, axis=-1))


@dataclass
class _RestAlignment:
    """How the two rest poses line up: a BVH joint's global rotation times ``bvh_rest_inv`` times
    ``character_rest`` is the character joint's rotation that turns with it from the rest pose."""
    bvh_rest_inv: List[Rotation]  # per character joint: its BVH joint's rest global rotation, inverted
    character_rest: List[Rotation]  # per character joint: its global rotation in the BVH's rest pose


class _CharacterPoser:
    """Poses the character joint by joint so that its bones point where the mapped BVH bones point
    (the rules are in the module docstring)."""

    def __init__(self, character: Character):
        self.character = character
        self.names, self.parents, self.offsets = character.names, character.parents, character.offsets
        self.children = [character.children(j) for j in range(len(self.names))]

    def rest_alignment(self, rest_targets: np.ndarray, axes: Rotation) -> _RestAlignment:
        """The character posed as the BVH's rest pose (whose global rotations are the axis change
        alone), so that the two rest poses need not match."""
        rest_g, _ = self.pose_frame(rest_targets, [axes] * len(self.names), None)
        return _RestAlignment([axes.inv()] * len(self.names), rest_g)

    def limb(self, j):
        """(child, grandchild, sign) when j drives a 1-DOF knee/elbow with one child."""
        if len(self.children[j]) == 1:
            c = self.children[j][0]
            if self.character.types[c] == "revolute" and len(self.children[c]) == 1:
                lo, hi = self.character.hinge_range(self.names[c])
                sign = -1.0 if (lo <= hi and lo + hi < 0) else 1.0
                return c, self.children[c][0], sign
        return None

    def pose_frame(self, p, g_src, rest: Optional[_RestAlignment]):
        """Character global rotations for one frame (p: [J, 3] targets; g_src: BVH globals; rest:
        None while posing the rest pose itself) and the hinge angles of the limbs' knees/elbows."""
        offsets, children = self.offsets, self.children
        out: List[Optional[Rotation]] = [None] * len(self.names)
        hinge = {}
        for j in range(len(self.names)):
            if out[j] is not None:
                continue
            kids = children[j]
            twist_ref = g_src[j] * rest.bvh_rest_inv[j] * rest.character_rest[j] if rest is not None else None
            lm = self.limb(j)
            if len(kids) >= 2:
                out[j] = Rotation.align_vectors([p[c] - p[j] for c in kids], [offsets[c] for c in kids])[0]
            elif lm is not None:
                out[j], theta = self._aim_limb(j, lm, p, twist_ref)
                c = lm[0]
                hinge[c] = theta
                out[c] = out[j] * Rotation.from_rotvec(theta * REVOLUTE_AXIS)
            elif len(kids) == 1:
                c = kids[0]
                base = twist_ref if twist_ref is not None else Rotation.identity()
                out[j] = _min_rotation(base.apply(offsets[c]), p[c] - p[j]) * base
            elif rest is not None:
                out[j] = g_src[j] * rest.bvh_rest_inv[j] * rest.character_rest[self.parents[j]]
            else:
                out[j] = Rotation.identity()
        return out, hinge

    def _aim_limb(self, j, limb, p, twist_ref):
        """The upper joint's global rotation and the hinge angle. The upper bone is aimed exactly
        (weight 1e6); the lower bone fixes the turn about it in proportion to the bend (fully from
        0.3 rad), and the BVH's own twist takes over as the limb straightens and its plane vanishes."""
        offsets = self.offsets
        c, gc, sign = limb
        u, v = p[c] - p[j], p[gc] - p[c]
        theta = sign * float(_bend_angle(u, v))
        d2 = Rotation.from_rotvec(theta * REVOLUTE_AXIS).apply(offsets[gc])
        vecs, refs, w = [u, v], [offsets[c], d2], [1e6, min(1.0, (theta / 0.3) ** 2)]
        if twist_ref is not None:
            vecs.append(twist_ref.apply(REVOLUTE_AXIS))
            refs.append(REVOLUTE_AXIS)
            w.append(1e-3 + max(0.0, 1.0 - w[1]))
        if w[1] < 1e-6 and twist_ref is None:
            return _min_rotation(offsets[c], u), theta
        return Rotation.align_vectors(vecs, refs, weights=w)[0], theta


def _local_rotations(character: Character, g, hinge) -> np.ndarray:
    """Local rotations [J, 4] (xyzw) from one frame's global ones: a hinge turns about its axis only,
    by the angle the poser set, else by the twist of its relative rotation about the axis."""
    parents = character.parents
    local = np.zeros((len(character.names), 4))
    for j in range(len(character.names)):
        if character.types[j] == "revolute":
            theta = hinge.get(j)
            if theta is None:
                relative = (g[parents[j]].inv() * g[j]).as_quat()
                theta = float(np.squeeze(2.0 * np.arctan2(relative[:3] @ REVOLUTE_AXIS, relative[3])))
            local[j] = Rotation.from_rotvec(theta * REVOLUTE_AXIS).as_quat()
        elif character.types[j] == "fixed":
            local[j] = [0.0, 0.0, 0.0, 1.0]
        else:
            local[j] = (g[j] if parents[j] < 0 else g[parents[j]].inv() * g[j]).as_quat()
    return local


def _foot_bottom(character: Character, qpos: np.ndarray, feet: Sequence[str]) -> np.ndarray:
    """Lowest point (z) of the feet's geoms per frame."""
    import mujoco

    model = character.model
    data = mujoco.MjData(model)
    missing = [b for b in feet if b not in character.names]
    if missing:
        raise DataFormatError(character.mjcf_path, "--feet", "unknown bodies {}".format(missing))
    body_ids = {model.body(b).id for b in feet}
    geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] in body_ids]
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    low = np.zeros(len(qpos))
    for f, q in enumerate(qpos):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        best = np.inf
        for g in geoms:
            size, rot, centre = model.geom_size[g], data.geom_xmat[g].reshape(3, 3), data.geom_xpos[g]
            gtype = model.geom_type[g]
            if gtype == mujoco.mjtGeom.mjGEOM_BOX:
                z = (centre + (corners * size) @ rot.T)[:, 2].min()
            elif gtype == mujoco.mjtGeom.mjGEOM_CAPSULE:
                z = centre[2] - abs(rot[2, 2]) * size[1] - size[0]
            else:
                z = centre[2] - size[0]
            best = min(best, z)
        low[f] = best
    return low


def body_positions(character: Character, qpos: np.ndarray) -> np.ndarray:
    import mujoco

    data = mujoco.MjData(character.model)
    ids = [character.model.body(n).id for n in character.names]
    out = np.zeros((len(qpos), len(ids), 3))
    for f, q in enumerate(qpos):
        data.qpos[:] = q
        mujoco.mj_kinematics(character.model, data)
        out[f] = data.xpos[ids]
    return out


def bvh_to_clip(bvh_path: str, map_name: str, out_path: str, mjcf_path: str = DEFAULT_MJCF, fps: float = 30.0,
                up: str = "y", loop: bool = False, feet: Sequence[str] = DEFAULT_FEET, ground: bool = True) -> Dict:
    """Retarget ``bvh_path`` and write ``out_path``; returns the per-body error report (metres)."""
    from poselib_utils.retarget import clip_to_qpos
    from poselib_utils.retarget import hinge_joint_names

    if not fps > 0:
        raise DataFormatError(bvh_path, "--fps", "must be positive, got {}".format(fps))
    character = Character(mjcf_path)
    joint_map = load_joint_map(map_name, character)
    bvh = load_bvh(bvh_path)
    root_pos, local, target_pos, scale = retarget_bvh(bvh, joint_map, character, fps, up, map_name)
    durations = np.full(len(root_pos), 1.0 / fps)
    frames = frames_from_local_rotations(root_pos, local, character)
    hinges = hinge_joint_names(character.model)
    qpos = clip_to_qpos(MotionClip(out_path, loop, durations, frames), character.skeleton, hinges)
    shift = -float(_foot_bottom(character, qpos, feet).min()) if ground else 0.0
    root_pos = root_pos + [0.0, 0.0, shift]
    target_pos = target_pos + [0.0, 0.0, shift]
    qpos[:, 2] += shift
    frames = frames_from_local_rotations(root_pos, local, character)
    write_deepmimic_motion(out_path, frames, durations, loop)
    load_motion(out_path, character.skeleton)  # what we wrote reads back
    err = np.linalg.norm(body_positions(character, qpos) - target_pos, axis=-1)  # [F, J]
    return {
        "frames": len(frames), "fps": fps, "scale": scale, "ground_shift": shift,
        "bodies": {n: {"mean": float(err[:, j].mean()), "max": float(err[:, j].max())}
                   for j, n in enumerate(character.names)},
        "mean": float(err.mean()), "max": float(err.max()),
    }


def format_report(report: Dict) -> str:
    lines = ["{} frames at {} fps, scale {:.5f}, raised {:+.4f} m to put the lowest foot on the floor".format(
        report["frames"], report["fps"], report["scale"], report["ground_shift"]),
        "per-body position error vs the scaled BVH joint (m):", "  {:<16} {:>8} {:>8}".format("body", "mean", "max")]
    for name, e in report["bodies"].items():
        lines.append("  {:<16} {:>8.4f} {:>8.4f}".format(name, e["mean"], e["max"]))
    lines.append("  {:<16} {:>8.4f} {:>8.4f}".format("all", report["mean"], report["max"]))
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Retarget a BVH clip onto the character; write a DeepMimic clip")
    parser.add_argument("bvh")
    parser.add_argument("--map", required=True, help="shipped map name ({}) or a YAML file".format(
        ", ".join(sorted(f[:-5] for f in os.listdir(MAPS_DIR) if f.endswith(".yaml")))))
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--fps", type=float, default=30.0, help="clip frame rate (default 30)")
    parser.add_argument("--up", choices=("y", "z"), default="y", help="the BVH's up axis (default y)")
    parser.add_argument("--loop", action="store_true", help="mark the clip as looping ('wrap')")
    parser.add_argument("--feet", default=",".join(DEFAULT_FEET), help="bodies put on the floor")
    parser.add_argument("--no-ground", action="store_true", help="keep the BVH's height")
    parser.add_argument("--mjcf", default=DEFAULT_MJCF)
    args = parser.parse_args(argv)
    try:
        report = bvh_to_clip(args.bvh, args.map, args.output, args.mjcf, args.fps, args.up, args.loop,
                             [b for b in args.feet.split(",") if b], not args.no_ground)
    except DataFormatError as err:
        raise SystemExit(str(err))
    print(format_report(report))
    print("wrote {}".format(args.output))


if __name__ == "__main__":
    main()
