"""poselib_utils.retarget.clip_to_qpos, checked by forward kinematics in MuJoCo against the clip's
own pose computed here, independently of poselib_utils:

* joint world orientations: the clip's local rotations chained along DeepMimic's parents with
  scipy (root quaternion, spherical quaternions, revolute angles about DeepMimic's local z axis,
  fixed joints = identity), then conjugated into Z-up: G_zup = R G R^-1, R = +90 deg about x;
* joint world positions: pos_child = pos_parent + G_parent.apply(Attach offset) in Y-up, then R.

Both use the raw clip JSON; the root is shifted so that its first frame starts at x = z = 0, as
DeepMimic (and the loader) does.
"""
import glob
import json
import os

import mujoco
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from poselib_utils.data_loader import load_character, load_motion
from poselib_utils.retarget import clip_to_qpos
from poselib_utils.repository import REPO_ROOT

CLIP_PATHS = sorted(glob.glob(os.path.join(REPO_ROOT, "motions", "humanoid3d_*.txt")))
CLIP_IDS = [os.path.basename(p)[len("humanoid3d_"):-len(".txt")] for p in CLIP_PATHS]
R_Y_UP_TO_Z_UP = Rotation.from_euler("x", 90, degrees=True)
MAX_TWIST_DEG = 89.0


def _read(path):
    with open(path) as f:
        return json.load(f)


def _wxyz(q):
    return Rotation.from_quat(np.asarray(q)[..., [1, 2, 3, 0]])


@pytest.fixture(scope="module")
def model(committed_mjcf_path):
    return mujoco.MjModel.from_xml_path(committed_mjcf_path)


@pytest.fixture(scope="module")
def char_json(humanoid_char_path):
    char = _read(humanoid_char_path)
    for rec in char["Skeleton"]["Joints"]:
        # the chain below ignores joint frame rotations; humanoid3d has none
        assert [rec["AttachThetaX"], rec["AttachThetaY"], rec["AttachThetaZ"]] == [0, 0, 0]
    return char


@pytest.fixture(scope="module")
def skeleton(humanoid_char_path):
    return load_character(humanoid_char_path).skeleton


def _hinge_order(model):
    return [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(1, model.njnt)]


def _reference_pose(char_json, raw):
    """Per joint name: (world rotation [F] in Z-up, world position [F, 3] in Z-up)."""
    joints = char_json["Skeleton"]["Joints"]
    rots, poss = [], []
    col = 1
    root_pos = raw[:, 1:4].copy()
    root_pos[:, 0] -= root_pos[0, 0]
    root_pos[:, 2] -= root_pos[0, 2]
    for rec in joints:
        if rec["Type"] == "none":
            local = _wxyz(raw[:, col + 3:col + 7])
            col += 7
        elif rec["Type"] == "spherical":
            local = _wxyz(raw[:, col:col + 4])
            col += 4
        elif rec["Type"] == "revolute":
            local = Rotation.from_rotvec(raw[:, col, None] * np.array([0.0, 0.0, 1.0]))
            col += 1
        else:
            assert rec["Type"] == "fixed"
            local = Rotation.identity(raw.shape[0])
        if rec["Parent"] < 0:
            rots.append(local)
            poss.append(root_pos)
        else:
            parent_rot, parent_pos = rots[rec["Parent"]], poss[rec["Parent"]]
            rots.append(parent_rot * local)
            poss.append(parent_pos + parent_rot.apply([rec["AttachX"], rec["AttachY"], rec["AttachZ"]]))
    assert col == raw.shape[1] == 44
    r = R_Y_UP_TO_Z_UP
    return {rec["Name"]: (r * g * r.inv(), r.apply(p)) for rec, g, p in zip(joints, rots, poss)}


def _run_fk(model, qpos):
    data = mujoco.MjData(model)
    xquat = np.empty((len(qpos), model.nbody, 4))
    xpos = np.empty((len(qpos), model.nbody, 3))
    for f, q in enumerate(qpos):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        xquat[f] = data.xquat
        xpos[f] = data.xpos
    return xquat, xpos


@pytest.mark.parametrize("path", CLIP_PATHS, ids=CLIP_IDS)
def test_forward_kinematics_matches_clip(path, model, char_json, skeleton, record_property):
    clip = load_motion(path, skeleton)
    raw = np.array(_read(path)["Frames"], dtype=np.float64)
    qpos = clip_to_qpos(clip, skeleton, _hinge_order(model))
    assert qpos.shape == (raw.shape[0], model.nq)
    assert np.all(np.isfinite(qpos))
    xquat, xpos = _run_fk(model, qpos)

    reference = _reference_pose(char_json, raw)
    angle_err, pos_err = [], []
    for name, (rot, pos) in reference.items():
        b = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
        assert b > 0, name
        angle_err.append((rot.inv() * _wxyz(xquat[:, b])).magnitude())
        pos_err.append(np.linalg.norm(xpos[:, b] - pos, axis=1))
    angle_err = np.degrees(np.concatenate(angle_err))
    pos_err = np.concatenate(pos_err) * 1000.0  # mm
    summary = ("{}: {} frames, orientation error mean {:.2e} deg max {:.2e} deg, position error mean {:.2e} mm "
               "max {:.2e} mm").format(os.path.basename(path), raw.shape[0], angle_err.mean(), angle_err.max(),
                                       pos_err.mean(), pos_err.max())
    print(summary)
    for key, value in (("angle_mean_deg", angle_err.mean()), ("angle_max_deg", angle_err.max()),
                       ("pos_mean_mm", pos_err.mean()), ("pos_max_mm", pos_err.max())):
        record_property(key, float(value))
    assert angle_err.mean() < 1.0, summary
    assert pos_err.mean() < 1.0, summary
    # the retarget is exact, so no single frame may be far off either
    assert angle_err.max() < 1.0 and pos_err.max() < 1.0, summary


def test_reference_pose_is_not_trivial(model, char_json, skeleton):
    """Guards the FK test: a wrong retarget (e.g. no Y-up -> Z-up conjugation) is caught."""
    path = os.path.join(REPO_ROOT, "motions", "humanoid3d_walk.txt")
    clip = load_motion(path, skeleton)
    raw = np.array(_read(path)["Frames"], dtype=np.float64)
    qpos = clip_to_qpos(clip, skeleton, _hinge_order(model))
    qpos[:, 7:] = 0.0  # every hinge at rest
    xquat, _ = _run_fk(model, qpos)
    reference = _reference_pose(char_json, raw)
    b = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "right_knee")
    err = np.degrees((reference["right_knee"][0].inv() * _wxyz(xquat[:, b])).magnitude())
    assert err.mean() > 5.0


@pytest.mark.parametrize("path", CLIP_PATHS, ids=CLIP_IDS)
def test_hinge_angles(path, model, char_json, skeleton):
    clip = load_motion(path, skeleton)
    raw = np.array(_read(path)["Frames"], dtype=np.float64)
    qpos = clip_to_qpos(clip, skeleton, _hinge_order(model))

    # root: Z-up image of the shifted Y-up root position, first frame above the origin
    root = raw[:, 1:4] - np.array([raw[0, 1], 0.0, raw[0, 3]])
    np.testing.assert_allclose(qpos[:, 0:3], R_Y_UP_TO_Z_UP.apply(root), atol=1e-9)
    np.testing.assert_allclose(qpos[0, 0:2], 0.0, atol=1e-12)

    col = 1
    twist_max = 0.0
    for rec in char_json["Skeleton"]["Joints"]:
        b = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, rec["Name"])
        hinges = [j for j in range(model.njnt) if model.jnt_bodyid[j] == b]
        if rec["Type"] == "none":
            col += 7
        elif rec["Type"] == "spherical":
            assert len(hinges) == 3
            twist = hinges[1]  # the middle hinge, about the limb (body z)
            assert mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, twist) == rec["Name"] + "_z"
            np.testing.assert_allclose(model.jnt_axis[twist], [0, 0, 1])
            angles = np.degrees(qpos[:, model.jnt_qposadr[twist]])
            twist_max = max(twist_max, np.abs(angles).max())
            assert np.all(np.abs(angles) <= MAX_TWIST_DEG), "{} twist reaches {:.1f} deg".format(
                rec["Name"], np.abs(angles).max())
            col += 4
        elif rec["Type"] == "revolute":
            assert len(hinges) == 1
            # the hinge angle is the clip's number itself
            np.testing.assert_array_equal(qpos[:, model.jnt_qposadr[hinges[0]]], raw[:, col], err_msg=rec["Name"])
            col += 1
        else:
            assert hinges == []
    assert col == 44
    print("{}: largest twist {:.1f} deg".format(os.path.basename(path), twist_max))


def test_hinge_order_mismatch_is_reported(model, skeleton):
    clip = load_motion(CLIP_PATHS[0], skeleton)
    with pytest.raises(ValueError):
        clip_to_qpos(clip, skeleton, _hinge_order(model)[:-1])
