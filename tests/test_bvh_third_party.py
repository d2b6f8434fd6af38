"""BVH import on real mocap that a package on the index ships, not on files this project wrote:
the two sample files in bvhtoolbox 0.1.3's sdist, fetched by ``python tests/third_party_data.py``
(never committed; these tests skip without them).

* test_mocapbank.bvh: a person stands, sits down on a seat, sits and stands up again (15 s);
  joints named after anatomical joints (map 'anatomical'); cm, Y-up, 455 frames at 30 fps.
* test_freebvh.bvh: a Mixamo rig ('mixamorig:' prefixed names, map 'common') walking about
  1 m and back (2.3 s); cm, Y-up, 69 frames at 30 fps.

Each clip is checked against facts the importer does not compute: the BVH's forward kinematics
by a reader written here (scipy rotations), the character's bones and foot boxes from the MJCF
through MuJoCo, and the clip as the project's loader reads it back. Negative controls show the
checks fail for maps that put the arms a bone off or mirror the limbs, and for a wrong up-axis.
"""
import os
from typing import Dict, List

import mujoco
import numpy as np
import pytest
import yaml
from scipy.spatial.transform import Rotation

from poselib_utils.bvh_import import bvh_to_clip
from poselib_utils.data_loader import DataFormatError, load_motion
from poselib_utils.poselib_interop import Character
from poselib_utils.retarget import clip_to_qpos
from poselib_utils.retarget import hinge_joint_names
from third_party_data import BVH_DIR, present  # tests/ is on sys.path under pytest

FPS = 30.0
MOCAPBANK = {"root": "Hips", "chest": "Chest2", "neck": "Neck",
             "right_hip": "RightHip", "right_knee": "RightKnee", "right_ankle": "RightAnkle",
             "left_hip": "LeftHip", "left_knee": "LeftKnee", "left_ankle": "LeftAnkle",
             "right_shoulder": "RightShoulder", "right_elbow": "RightElbow", "right_wrist": "RightWrist",
             "left_shoulder": "LeftShoulder", "left_elbow": "LeftElbow", "left_wrist": "LeftWrist"}
MIXAMO = {k: "mixamorig:" + v for k, v in {
    "root": "Hips", "chest": "Spine2", "neck": "Neck",
    "right_hip": "RightUpLeg", "right_knee": "RightLeg", "right_ankle": "RightFoot",
    "left_hip": "LeftUpLeg", "left_knee": "LeftLeg", "left_ankle": "LeftFoot",
    "right_shoulder": "RightArm", "right_elbow": "RightForeArm", "right_wrist": "RightHand",
    "left_shoulder": "LeftArm", "left_elbow": "LeftForeArm", "left_wrist": "LeftHand"}.items()}
# file, shipped map, the BVH joint each body is (anatomically), frames in the file (at 30 fps)
CASES = {"mocapbank": ("test_mocapbank.bvh", "anatomical", MOCAPBANK, 455),
         "mixamo": ("test_freebvh.bvh", "common", MIXAMO, 69)}
ARMS = {"{}_{}".format(s, j) for s in ("right", "left") for j in ("shoulder", "elbow", "wrist")}
LEGS = {"{}_{}".format(s, j) for s in ("right", "left") for j in ("hip", "knee", "ankle")}


def mixamo_map(**changes):
    """A joint map for test_freebvh.bvh: the right one (bare names) with ``changes``."""
    return dict({k: v.split(":")[1] for k, v in MIXAMO.items()}, **changes)


# Wrong maps and the bodies whose error checks they must fail (and no other check).
# Mixamo's LeftShoulder is the clavicle: taken for the upper arm (as 'anatomical' means it), the
# whole arm is a bone off. Mirrored, every limb is on the wrong side, which the importer's own
# report cannot see (it measures against its own, mirrored, targets).
WRONG_MAPS = {
    "arms a bone off": (mixamo_map(**{s.lower() + "_" + j: s + b for s in ("Right", "Left") for j, b in
                                      (("shoulder", "Shoulder"), ("elbow", "Arm"), ("wrist", "ForeArm"))}), ARMS),
    "left and right swapped": ({k: v.replace("Left", "@").replace("Right", "Left").replace("@", "Right")
                                for k, v in mixamo_map().items()}, ARMS | LEGS),
}


@pytest.fixture(scope="module")
def bvh_dir():
    if not present():
        pytest.skip("third-party BVH files absent from {}: run 'python tests/third_party_data.py' (downloads "
                    "bvhtoolbox 0.1.3's sdist from the package index)".format(BVH_DIR))
    return BVH_DIR


@pytest.fixture(scope="module")
def character():
    return Character()


def read_bvh(path):
    """Joint names, parents, rest offsets, channels, frame time and values: this test's own reader."""
    with open(path) as f:
        head, motion = f.read().split("MOTION")
    toks = head.replace("{", " { ").replace("}", " } ").split()
    names, parents, offsets, channels, stack = [], [], [], [], []
    pending, i = None, 1
    while i < len(toks):
        t = toks[i]
        if t in ("ROOT", "JOINT"):
            pending, i = toks[i + 1], i + 2
            continue
        if t == "{":
            if pending is not None:
                names.append(pending)
                parents.append(stack[-1] if stack else -1)
            stack.append(len(names) - 1 if pending is not None else None)  # None: an End Site
            pending = None
        elif t == "}":
            stack.pop()
        elif t == "OFFSET":
            if stack[-1] is not None:
                offsets.append([float(x) for x in toks[i + 1:i + 4]])
            i += 4
            continue
        elif t == "CHANNELS":
            n = int(toks[i + 1])
            channels.append(toks[i + 2:i + 2 + n])
            i += 2 + n
            continue
        i += 1
    rows = [r for r in motion.strip().splitlines() if r.strip()]
    frame_time = float(rows[1].split(":")[1])
    values = np.array([[float(x) for x in r.split()] for r in rows[2:]])
    assert len(values) == int(rows[0].split(":")[1])
    return names, parents, np.array(offsets), channels, frame_time, values


def bvh_world_positions(path):
    """Names, rest offsets, frame time and every joint's world position [F, J, 3] in the Z-up world."""
    names, parents, offsets, channels, frame_time, values = read_bvh(path)
    pos: List[np.ndarray] = []
    glob: List[Rotation] = []
    col = 0
    for j, ch in enumerate(channels):
        v = values[:, col:col + len(ch)]
        col += len(ch)
        t = np.repeat(offsets[j][None], len(values), axis=0)
        rot_cols = [k for k, c in enumerate(ch) if c.endswith("rotation")]
        for k, c in enumerate(ch):
            if c.endswith("position"):
                t[:, "XYZ".index(c[0])] = v[:, k]
        # 'Zrotation Xrotation Yrotation': R = Rz Rx Ry, intrinsic (scipy's upper-case order)
        local = Rotation.from_euler("".join(ch[k][0] for k in rot_cols), v[:, rot_cols], degrees=True)
        if parents[j] < 0:
            pos.append(t)
            glob.append(local)
        else:
            pos.append(pos[parents[j]] + glob[parents[j]].apply(t))
            glob.append(glob[parents[j]] * local)
    p = np.stack(pos, axis=1)
    return names, offsets, frame_time, np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)  # (x, y, z) -> (x, -z, y)


def leg_scale(character, names, offsets, reference):
    """The character's hip-knee-ankle length over the BVH's at rest (the README's scaling rule)."""
    bones = [s + j for s in ("right", "left") for j in ("_knee", "_ankle")]
    ours = sum(np.linalg.norm(character.model.body(b).pos) for b in bones)
    return ours / sum(np.linalg.norm(offsets[names.index(reference[b])]) for b in bones)


def error_bound(character, target):
    """[F, J]: how far each body can be from its BVH joint ``target`` [F, J, 3] when the character's
    rigid bones, proportioned unlike the actor's, follow the BVH: the root sits on its joint; a
    joint with one child aims the bone along the BVH's, so the child is off by its parent's error
    plus the two bones' length difference; a joint with several children (pelvis, chest) can at
    best take the least-squares rotation of its child offsets onto the BVH's (Kabsch, by SVD
    here), leaving each child its residual. Errors add down the chain (triangle inequality)."""
    parents, offsets = character.parents, character.offsets
    link = np.zeros(target.shape[:2])
    for j in range(len(parents)):
        kids = [c for c in range(len(parents)) if parents[c] == j]
        bones = target[:, kids] - target[:, [j]]  # [F, K, 3]
        if len(kids) == 1:
            link[:, kids[0]] = np.abs(np.linalg.norm(offsets[kids[0]]) - np.linalg.norm(bones[:, 0], axis=-1))
        elif kids:
            u, _, vt = np.linalg.svd(np.einsum("fki,kj->fij", bones, offsets[kids]))
            flip = np.ones((len(u), 3))
            flip[:, 2] = np.sign(np.linalg.det(u @ vt))
            rot = u @ (flip[:, :, None] * vt)
            link[:, kids] = np.linalg.norm(np.einsum("fij,kj->fki", rot, offsets[kids]) - bones, axis=-1)
    bound = np.zeros_like(link)
    for j in range(len(parents)):
        bound[:, j] = link[:, j] + (bound[:, parents[j]] if parents[j] >= 0 else 0.0)
    return bound


def lowest_foot_point(model, data):
    """Height of the lowest corner of the foot boxes in MuJoCo's current pose."""
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float)
    feet = [g for g in range(model.ngeom) if model.body(model.geom_bodyid[g]).name in ("right_ankle", "left_ankle")]
    assert feet and all(model.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX for g in feet)
    return min((data.geom_xpos[g] + (corners * model.geom_size[g]) @ data.geom_xmat[g].reshape(3, 3).T)[:, 2].min()
               for g in feet)


def standing_root_height(character):
    """The root's height above the soles in the rest pose (straight legs), by MuJoCo."""
    model, data = character.model, mujoco.MjData(character.model)
    data.qpos[:] = 0.0
    data.qpos[3] = 1.0  # root quaternion wxyz: identity; root at z = 0
    mujoco.mj_kinematics(model, data)
    return -lowest_foot_point(model, data)


def body_and_foot_heights(character, clip):
    """Body world positions [F, J, 3] and the lowest foot point per frame, by MuJoCo."""
    model, data = character.model, mujoco.MjData(character.model)
    ids = [model.body(n).id for n in character.names]
    pos, low = [], []
    for q in clip_to_qpos(clip, character.skeleton, hinge_joint_names(model)):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        pos.append(data.xpos[ids].copy())
        low.append(lowest_foot_point(model, data))
    return np.stack(pos), np.array(low)


def import_problems(tmp_path, character, bvh_path, map_name, reference, num_frames, up="y") -> Dict[str, str]:
    """Import ``bvh_path`` and check the clip; returns the failed checks (none: a good clip)."""
    out = str(tmp_path / (os.path.basename(bvh_path) + ".txt"))
    report = bvh_to_clip(bvh_path, map_name, out, fps=FPS, up=up)
    clip = load_motion(out, character.skeleton)  # a valid DeepMimic clip, or this raises
    names, offsets, frame_time, world = bvh_world_positions(bvh_path)
    scale = leg_scale(character, names, offsets, reference)
    target = scale * world[:, [names.index(reference[n]) for n in character.names]]
    body, foot_low = body_and_foot_heights(character, clip)
    problems = {}

    if clip.num_frames != num_frames or not np.allclose(clip.frame_durations, 1.0 / FPS) or clip.loop:
        problems["frames"] = "{} frames, durations {}..{}, loop {}; expected {} frames of 1/30 s, no loop".format(
            clip.num_frames, clip.frame_durations.min(), clip.frame_durations.max(), clip.loop, num_frames)
    elif abs(clip.duration - (num_frames - 1) * frame_time) > 1e-4 * clip.duration:  # frame times print rounded
        problems["frames"] = "lasts {} s, the BVH {} s".format(clip.duration, (num_frames - 1) * frame_time)
    if clip.num_frames != len(world):
        return problems  # the checks below compare frame by frame
    if abs(report["scale"] - scale) > 1e-9 * scale:
        problems["scale"] = "importer's {}, leg lengths give {}".format(report["scale"], scale)
    # The loader puts the clip's start over the origin and the importer puts the feet on the floor:
    # the root's path is the scaled BVH root's, moved once.
    shift = body[:, 0] - target[:, 0]
    if np.ptp(shift, axis=0).max() > 1e-6:
        problems["root path"] = "not the scaled BVH root's moved once (spread {} m)".format(np.ptp(shift, axis=0))
    target = target + shift[0]

    # The lowest point of the feet over the clip touches the floor, and as neither clip has a flight
    # phase, the lower foot is on the floor (within 3 cm) in most frames.
    if abs(foot_low.min()) > 1e-6 or np.median(foot_low) > 0.03:
        problems["floor"] = "lowest foot point {:.4f} m, median per frame {:.4f} m".format(foot_low.min(),
                                                                                         np.median(foot_low))
    # Both clips start standing; standing, the root is as high as in the rest pose (straight legs,
    # 0.88 m): the highest root is that within 10 % (knees, heels and posture).
    standing = standing_root_height(character)
    if abs(body[:, 0, 2].max() - standing) > 0.1 * standing:
        problems["root height"] = "highest root {:.3f} m, a standing character's {:.3f} m".format(
            body[:, 0, 2].max(), standing)

    # Per body: the measured error stays within the proportions' bound (1 mm for rounding and the
    # knee/elbow's hinge plane, which the importer fits with soft weights), and the importer's own
    # report says what is measured here.
    err = np.linalg.norm(body - target, axis=-1)
    bound = error_bound(character, target)
    for j, n in enumerate(character.names):
        rep = report["bodies"][n]["max"]
        if (err[:, j] - bound[:, j]).max() > 1e-3 or abs(rep - err[:, j].max()) > 1e-3:
            problems["error " + n] = "max {:.4f} m, reported {:.4f} m, bound {:.4f} m (worst frame over by {:.4f})" \
                .format(err[:, j].max(), rep, bound[:, j].max(), (err[:, j] - bound[:, j]).max())
    return problems


@pytest.mark.parametrize("case", sorted(CASES))
def test_real_bvh_imports_as_a_plausible_clip(tmp_path, bvh_dir, character, case):
    name, map_name, reference, num_frames = CASES[case]
    problems = import_problems(tmp_path, character, os.path.join(bvh_dir, name), map_name, reference, num_frames)
    assert problems == {}


@pytest.mark.parametrize("wrong", sorted(WRONG_MAPS))
def test_wrong_maps_fail_the_error_check(tmp_path, bvh_dir, character, wrong):
    joint_map, bodies = WRONG_MAPS[wrong]
    path = str(tmp_path / "wrong.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(joint_map, f)
    problems = import_problems(tmp_path, character, os.path.join(bvh_dir, "test_freebvh.bvh"), path, MIXAMO, 69)
    assert set(problems) == {"error " + n for n in bodies}, problems


def test_wrong_up_axis_fails(tmp_path, bvh_dir, character):
    """Read as Z-up, the Y-up walk lies on its side. The importer's own report cannot see that (it
    follows its own targets); the independent checks do."""
    problems = import_problems(tmp_path, character, os.path.join(bvh_dir, "test_freebvh.bvh"), "common", MIXAMO, 69,
                               up="z")
    assert {"root path", "floor", "root height", "error root"} <= set(problems), problems


def test_the_other_naming_map_is_refused_naming_the_joint(bvh_dir, tmp_path):
    """'common' and 'anatomical' disagree on LeftShoulder; used on the other's file, each stops at
    the first joint it cannot find, and says which."""
    with pytest.raises(DataFormatError, match=r"character joint 'right_hip' maps to \['RightUpLeg'"):
        bvh_to_clip(os.path.join(bvh_dir, "test_mocapbank.bvh"), "common", str(tmp_path / "o.txt"))
    with pytest.raises(DataFormatError, match=r"character joint 'chest' maps to \['Chest2', 'Chest'\], none of which"):
        bvh_to_clip(os.path.join(bvh_dir, "test_freebvh.bvh"), "anatomical", str(tmp_path / "o.txt"))
