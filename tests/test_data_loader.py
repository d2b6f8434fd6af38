"""poselib_utils.data_loader against DeepMimic's own files and deliberately broken copies of them.

Expected values come from the raw JSON (read here with ``json``), from DeepMimic's documented
frame layout ([dt, root pos 3, root quat wxyz 4, 4 per spherical joint, 1 per revolute joint]) and
from numbers known from the DeepMimic release (humanoid3d: 15 joints, 44 numbers per frame).
"""
import copy
import glob
import json
import os
import re

import numpy as np
import pytest

from poselib_utils.data_loader import DataFormatError, PDGains, load_character, load_controller, load_motion
from poselib_utils.mjcf_character import load_skeleton_from_mjcf
from poselib_utils.repository import REPO_ROOT

CLIP_PATHS = sorted(glob.glob(os.path.join(REPO_ROOT, "motions", "humanoid3d_*.txt")))
WALK = os.path.join(REPO_ROOT, "motions", "humanoid3d_walk.txt")

HUMANOID_JOINTS = [  # (name, type, parent) as listed in DeepMimic's data/characters/humanoid3d.txt
    ("root", "none", -1), ("chest", "spherical", 0), ("neck", "spherical", 1),
    ("right_hip", "spherical", 0), ("right_knee", "revolute", 3), ("right_ankle", "spherical", 4),
    ("right_shoulder", "spherical", 1), ("right_elbow", "revolute", 6), ("right_wrist", "fixed", 7),
    ("left_hip", "spherical", 0), ("left_knee", "revolute", 9), ("left_ankle", "spherical", 10),
    ("left_shoulder", "spherical", 1), ("left_elbow", "revolute", 12), ("left_wrist", "fixed", 13),
]


def _read(path):
    with open(path) as f:
        return json.load(f)


def _write(tmp_path, name, obj):
    path = str(tmp_path / name)
    with open(path, "w") as f:
        json.dump(obj, f)
    return path


def _columns(char_json):
    """Frame columns (0 = dt) of every quaternion (root's and each spherical joint's) and of every
    revolute angle, from DeepMimic's layout [dt, root pos 3, root quat 4, 4 per spherical, 1 per
    revolute, none for fixed]."""
    quats, revolutes, col = {}, {}, 1
    for joint in char_json["Skeleton"]["Joints"]:
        if joint["Type"] == "none":
            quats[joint["Name"]] = col + 3
            col += 7
        elif joint["Type"] == "spherical":
            quats[joint["Name"]] = col
            col += 4
        elif joint["Type"] == "revolute":
            revolutes[joint["Name"]] = col
            col += 1
    return quats, revolutes


def _quat_columns(char_json):
    return _columns(char_json)[0]


@pytest.fixture(scope="module")
def character(humanoid_char_path):
    return load_character(humanoid_char_path)


@pytest.fixture(scope="module")
def char_json(humanoid_char_path):
    return _read(humanoid_char_path)


@pytest.fixture(scope="module")
def ctrl_json(humanoid_ctrl_path):
    return _read(humanoid_ctrl_path)


@pytest.fixture(scope="module")
def walk_json():
    return _read(WALK)


# ----------------------------------------------------------------------------- well-formed files

def test_project_ships_deepmimics_20_humanoid_and_4_dog_clips():
    assert len(CLIP_PATHS) == 20
    assert len(glob.glob(os.path.join(REPO_ROOT, "motions", "dog3d_*.txt"))) == 4


def test_shipped_clips_are_deepmimics_files():
    """Byte for byte DeepMimic's data/motions, where a copy sits beside the repository; the spinkick is
    pybullet's take of it (motions/README.md)."""
    originals = os.path.join(REPO_ROOT, "..", "shared", "deepmimic_data", "motions")
    if not os.path.isdir(originals):
        pytest.skip("no copy of DeepMimic's data/ beside the repository to compare with")
    shipped = sorted(glob.glob(os.path.join(REPO_ROOT, "motions", "*3d_*.txt")))
    differ = []
    for path in shipped:
        with open(path, "rb") as a, open(os.path.join(originals, os.path.basename(path)), "rb") as b:
            if a.read() != b.read():
                differ.append(os.path.basename(path))
    assert len(shipped) == 24 and differ == ["humanoid3d_spinkick.txt"]


@pytest.mark.parametrize("name", ["characters/humanoid3d.txt", "characters/dog3d.txt",
                                  "controllers/humanoid3d_ctrl.txt", "controllers/dog3d_ctrl.txt",
                                  "controllers/dog3d_phase_ctrl.txt", "controllers/dog3d_phase_rot_ctrl.txt"]
                         + sorted("args/" + os.path.basename(p) for p in glob.glob(
                             os.path.join(REPO_ROOT, "tests", "data", "deepmimic", "args", "train_*_args.txt"))))
def test_shipped_test_data_are_deepmimics_files(deepmimic_data, name):
    """tests/data/deepmimic holds unchanged copies: byte for byte DeepMimic's release, where a copy of
    it sits beside the repository."""
    original = os.path.join(REPO_ROOT, "..", "shared", "deepmimic_data", name)
    if not os.path.isfile(original):
        pytest.skip("no copy of DeepMimic's data/ beside the repository to compare with")
    with open(original, "rb") as a, open(os.path.join(deepmimic_data, name), "rb") as b:
        assert a.read() == b.read()


def test_humanoid_character_layout(character, char_json):
    skeleton = character.skeleton
    assert len(skeleton.joints) == 15
    assert skeleton.frame_width == 44  # DeepMimic humanoid3d clips have 44 numbers per frame
    assert [(j.name, j.joint_type, j.parent) for j in skeleton.joints] == HUMANOID_JOINTS
    # ... and the same as the file itself says, field by field
    records = char_json["Skeleton"]["Joints"]
    assert [(r["Name"], r["Type"], r["Parent"]) for r in records] == HUMANOID_JOINTS
    for joint, rec in zip(character.joints, records):
        np.testing.assert_array_equal(joint.attach_pos, [rec["AttachX"], rec["AttachY"], rec["AttachZ"]])
        assert joint.diff_weight == rec["DiffWeight"]
        assert joint.is_end_effector == bool(rec["IsEndEffector"])
    bodies = {b["Name"]: b for b in char_json["BodyDefs"]}
    for body in character.bodies:
        assert body.mass == bodies[body.name]["Mass"]
        assert body.shape == bodies[body.name]["Shape"]
    assert sum(b.mass for b in character.bodies) == pytest.approx(45.0)


def test_frame_width_matches_joint_types(character, char_json):
    types = [r["Type"] for r in char_json["Skeleton"]["Joints"]]
    expected = 1 + 7 + 4 * types.count("spherical") + types.count("revolute")
    assert character.skeleton.frame_width == expected == 44
    for path in CLIP_PATHS:
        assert {len(frame) for frame in _read(path)["Frames"]} == {44}, path


def test_controller_gains(character, ctrl_json, humanoid_ctrl_path):
    ctrl = load_controller(humanoid_ctrl_path, character)
    assert ctrl.gains["chest"] == PDGains(kp=1000.0, kd=100.0)
    assert ctrl.gains["neck"] == PDGains(kp=100.0, kd=10.0)
    assert ctrl.gains["right_knee"] == PDGains(kp=500.0, kd=50.0)
    assert ctrl.gains["left_elbow"] == PDGains(kp=300.0, kd=30.0)
    assert ctrl.update_rate == 30.0
    for rec in ctrl_json["PDControllers"]:
        assert ctrl.gains[rec["Name"]] == PDGains(kp=float(rec["Kp"]), kd=float(rec["Kd"]))


@pytest.mark.parametrize("path", CLIP_PATHS, ids=[os.path.basename(p) for p in CLIP_PATHS])
def test_clip_loads_as_deepmimic_does(path, character, char_json):
    raw = np.array(_read(path)["Frames"], dtype=np.float64)
    clip = load_motion(path, character.skeleton)
    assert clip.num_frames == raw.shape[0]
    assert clip.loop == (_read(path)["Loop"] == "wrap")
    # the last frame's dt is unused
    assert clip.duration == pytest.approx(raw[:-1, 0].sum(), abs=1e-12)
    np.testing.assert_allclose(clip.frame_times, np.concatenate([[0.0], np.cumsum(raw[:-1, 0])]), atol=1e-12)
    # first root at x = z = 0 (DeepMimic Y-up), height and the whole trajectory's shape kept
    np.testing.assert_allclose(clip.frames[0, [0, 2]], 0.0, atol=1e-15)
    np.testing.assert_allclose(clip.frames[:, 1], raw[:, 2])
    np.testing.assert_allclose(clip.frames[:, 0], raw[:, 1] - raw[0, 1], atol=1e-12)
    np.testing.assert_allclose(clip.frames[:, 2], raw[:, 3] - raw[0, 3], atol=1e-12)
    # quaternions: unit norm and the same direction as in the file
    for name, col in _quat_columns(char_json).items():
        q_raw = raw[:, col:col + 4]
        q = clip.frames[:, col - 1:col + 3]
        np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(q, q_raw / np.linalg.norm(q_raw, axis=1, keepdims=True), atol=1e-12,
                                   err_msg=name)
    # revolute angles are copied unchanged
    revolutes = _columns(char_json)[1]
    assert sorted(revolutes.values()) == [20, 29, 34, 43]
    for name, col in revolutes.items():
        np.testing.assert_array_equal(clip.frames[:, col - 1], raw[:, col], err_msg=name)


def test_root_shift_of_an_offset_clip(tmp_path, character, walk_json):
    moved = copy.deepcopy(walk_json)
    for frame in moved["Frames"]:
        frame[1] += 3.25
        frame[3] -= 1.5
    path = _write(tmp_path, "moved.txt", moved)
    np.testing.assert_allclose(load_motion(path, character.skeleton).frames,
                               load_motion(WALK, character.skeleton).frames, atol=1e-12)


def test_unnormalised_quaternion_is_normalised(tmp_path, character, walk_json):
    # DeepMimic normalises quaternions on load (its own clips have norms well away from 1)
    clip = copy.deepcopy(walk_json)
    clip["Frames"][4][8:12] = [1.2 * v for v in clip["Frames"][4][8:12]]  # chest
    clip["Frames"][5][4:8] = [0.8 * v for v in clip["Frames"][5][4:8]]  # root
    frames = load_motion(_write(tmp_path, "scaled.txt", clip), character.skeleton).frames
    reference = load_motion(WALK, character.skeleton).frames
    np.testing.assert_allclose(frames, reference, atol=1e-12)


def test_zero_last_duration_is_allowed(tmp_path, character, walk_json):
    clip = copy.deepcopy(walk_json)
    clip["Frames"][-1][0] = 0.0
    loaded = load_motion(_write(tmp_path, "last0.txt", clip), character.skeleton)
    assert loaded.duration == pytest.approx(sum(f[0] for f in walk_json["Frames"][:-1]))


# ----------------------------------------------------------------------------- malformed files

def _expect_error(load, path, *fragments):
    with pytest.raises(DataFormatError) as info:
        load()
    message = str(info.value)
    assert path in message, message
    for fragment in fragments:
        assert fragment in message, "{!r} not in {!r}".format(fragment, message)
    return message


def test_file_not_found(tmp_path, character):
    path = str(tmp_path / "no_such_clip.txt")
    _expect_error(lambda: load_motion(path, character.skeleton), path, "not found")
    _expect_error(lambda: load_character(path), path, "not found")
    _expect_error(lambda: load_controller(path, character), path, "not found")


def test_bad_json(tmp_path, character):
    with open(WALK) as f:
        lines = f.read().split("\n")
    assert lines[7].startswith("[")  # line 8 holds frame 3
    lines[7] = lines[7].replace(",", ",,", 1)
    path = str(tmp_path / "bad.txt")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    _expect_error(lambda: load_motion(path, character.skeleton), path, "line 8", "JSON")


@pytest.mark.parametrize("mutation", ["short", "long"])
def test_wrong_frame_width(tmp_path, character, walk_json, mutation):
    clip = copy.deepcopy(walk_json)
    if mutation == "short":
        clip["Frames"][3].pop()
    else:
        clip["Frames"][3].append(0.5)
    path = _write(tmp_path, "width.txt", clip)
    got = "43" if mutation == "short" else "45"
    _expect_error(lambda: load_motion(path, character.skeleton), path, "frame 3", got, "44")


@pytest.mark.parametrize("joint,col,quat", [
    ("chest", 8, [0.0, 0.0, 0.0, 0.0]),
    ("chest", 8, [100.0, 0.0, 0.0, 0.0]),
    ("root", 4, [0.0, 0.0, 0.0, 0.0]),
    ("left_shoulder", 39, [0.0, 30.0, 40.0, 0.0]),
], ids=["zero", "huge", "root-zero", "left_shoulder-huge"])
def test_bad_quaternion_norm(tmp_path, character, char_json, walk_json, joint, col, quat):
    assert _quat_columns(char_json)[joint] == col
    clip = copy.deepcopy(walk_json)
    clip["Frames"][3][col:col + 4] = quat
    path = _write(tmp_path, "quat.txt", clip)
    _expect_error(lambda: load_motion(path, character.skeleton), path, "frame 3", joint, "quaternion")


@pytest.mark.parametrize("dt", [0.0, -0.1])
def test_non_positive_duration(tmp_path, character, walk_json, dt):
    clip = copy.deepcopy(walk_json)
    clip["Frames"][3][0] = dt
    path = _write(tmp_path, "dt.txt", clip)
    _expect_error(lambda: load_motion(path, character.skeleton), path, "frame 3", "duration")


def test_negative_last_duration(tmp_path, character, walk_json):
    clip = copy.deepcopy(walk_json)
    clip["Frames"][-1][0] = -1.0
    path = _write(tmp_path, "dtlast.txt", clip)
    last = len(clip["Frames"]) - 1
    _expect_error(lambda: load_motion(path, character.skeleton), path, "frame {}".format(last), "duration")


@pytest.mark.parametrize("loop", ["mirror", "Wrap", True])
def test_unknown_loop(tmp_path, character, walk_json, loop):
    clip = dict(walk_json, Loop=loop)
    path = _write(tmp_path, "loop.txt", clip)
    _expect_error(lambda: load_motion(path, character.skeleton), path, "top level", "Loop", str(loop))


@pytest.mark.parametrize("field", ["Loop", "Frames"])
def test_missing_clip_field(tmp_path, character, walk_json, field):
    clip = {k: v for k, v in walk_json.items() if k != field}
    path = _write(tmp_path, "nofield.txt", clip)
    _expect_error(lambda: load_motion(path, character.skeleton), path, "top level", field)


@pytest.mark.parametrize("value", ["abc", None, [1.0]])
def test_non_numeric_frame_value(tmp_path, character, walk_json, value):
    clip = copy.deepcopy(walk_json)
    clip["Frames"][3][5] = value
    path = _write(tmp_path, "nan.txt", clip)
    _expect_error(lambda: load_motion(path, character.skeleton), path, "frame 3")


def test_numeric_string_in_frame_is_rejected(tmp_path, character, walk_json):
    clip = copy.deepcopy(walk_json)
    clip["Frames"][3][5] = "0.5"
    path = _write(tmp_path, "strnum.txt", clip)
    _expect_error(lambda: load_motion(path, character.skeleton), path, "frame 3")


def test_non_numeric_frame_value_names_column(tmp_path, character, walk_json):
    clip = copy.deepcopy(walk_json)
    clip["Frames"][3][5] = "abc"
    path = _write(tmp_path, "nan.txt", clip)
    _expect_error(lambda: load_motion(path, character.skeleton), path, "frame 3", "column 5")


def test_non_finite_frame_value(tmp_path, character, walk_json):
    clip = copy.deepcopy(walk_json)
    clip["Frames"][3][6] = float("nan")  # json writes and reads the bare NaN literal
    path = _write(tmp_path, "nan.txt", clip)
    _expect_error(lambda: load_motion(path, character.skeleton), path, "frame 3", "column 6")


def test_missing_joint_in_controller(tmp_path, character, ctrl_json):
    ctrl = copy.deepcopy(ctrl_json)
    ctrl["PDControllers"] = [r for r in ctrl["PDControllers"] if r["Name"] != "left_knee"]
    path = _write(tmp_path, "ctrl.txt", ctrl)
    _expect_error(lambda: load_controller(path, character), path, "PDControllers", "left_knee")


def test_non_numeric_gain(tmp_path, character, ctrl_json):
    ctrl = copy.deepcopy(ctrl_json)
    ctrl["PDControllers"][1]["Kp"] = "stiff"
    path = _write(tmp_path, "ctrl.txt", ctrl)
    _expect_error(lambda: load_controller(path, character), path, "chest", "Kp")


def test_missing_body_for_joint(tmp_path, char_json):
    char = copy.deepcopy(char_json)
    char["BodyDefs"] = [b for b in char["BodyDefs"] if b["Name"] != "right_ankle"]
    path = _write(tmp_path, "char.txt", char)
    _expect_error(lambda: load_character(path), path, "BodyDefs", "right_ankle")


@pytest.mark.parametrize("index,field", [(1, "Parent"), (4, "AttachY"), (6, "Type"), (3, "DiffWeight")])
def test_missing_joint_field(tmp_path, char_json, index, field):
    char = copy.deepcopy(char_json)
    rec = char["Skeleton"]["Joints"][index]
    del rec[field]
    path = _write(tmp_path, "char.txt", char)
    _expect_error(lambda: load_character(path), path, rec["Name"], field)


def test_missing_body_field(tmp_path, char_json):
    char = copy.deepcopy(char_json)
    del char["BodyDefs"][2]["Mass"]
    path = _write(tmp_path, "char.txt", char)
    _expect_error(lambda: load_character(path), path, "neck", "Mass")


@pytest.mark.parametrize("index,field,value", [
    (1, "AttachY", "abc"), (1, "Parent", "abc"), (4, "LimLow0", None), (5, "TorqueLim", [90]),
])
def test_non_numeric_joint_field(tmp_path, char_json, index, field, value):
    char = copy.deepcopy(char_json)
    rec = char["Skeleton"]["Joints"][index]
    rec[field] = value
    path = _write(tmp_path, "char.txt", char)
    _expect_error(lambda: load_character(path), path, rec["Name"], field)


def test_non_numeric_body_mass(tmp_path, char_json):
    char = copy.deepcopy(char_json)
    char["BodyDefs"][3]["Mass"] = "heavy"
    path = _write(tmp_path, "char.txt", char)
    _expect_error(lambda: load_character(path), path, "right_hip", "Mass")


@pytest.mark.parametrize("where", ["root TorqueLim", "body ColorR", "body EnableFallContact", "UpdateRate"])
def test_non_numeric_optional_field(tmp_path, character, char_json, ctrl_json, where):
    if where == "UpdateRate":
        ctrl = dict(copy.deepcopy(ctrl_json), UpdateRate="fast")
        path = _write(tmp_path, "ctrl.txt", ctrl)
        _expect_error(lambda: load_controller(path, character), path, "UpdateRate")
        return
    char = copy.deepcopy(char_json)
    if where == "root TorqueLim":
        char["Skeleton"]["Joints"][0]["TorqueLim"] = "abc"
        fragments = ("root", "TorqueLim")
    else:
        field = where.split()[1]
        char["BodyDefs"][1][field] = "abc"
        fragments = ("chest", field)
    path = _write(tmp_path, "char.txt", char)
    _expect_error(lambda: load_character(path), path, *fragments)


def test_fractional_parent_is_rejected(tmp_path, char_json):
    char = copy.deepcopy(char_json)
    char["Skeleton"]["Joints"][2]["Parent"] = 1.7
    path = _write(tmp_path, "char.txt", char)
    _expect_error(lambda: load_character(path), path, "neck", "Parent")


# ----------------------------------------------------------------------------- MJCF skeleton

def test_skeleton_from_committed_mjcf(committed_mjcf_path, character):
    from_mjcf = load_skeleton_from_mjcf(committed_mjcf_path)
    assert from_mjcf.joints == character.skeleton.joints  # (source paths differ by design)
    assert from_mjcf.frame_width == 44
    assert from_mjcf.param_offsets() == character.skeleton.param_offsets()


def test_mjcf_without_custom(tmp_path, committed_mjcf_path):
    with open(committed_mjcf_path) as f:
        text = f.read()
    start, end = text.index("<custom>"), text.index("</custom>") + len("</custom>")
    path = str(tmp_path / "nocustom.xml")
    with open(path, "w") as f:
        f.write(text[:start] + text[end:])
    _expect_error(lambda: load_skeleton_from_mjcf(path), path, "<custom>", "deepmimic_joints")


@pytest.mark.parametrize("field, data, message", [
    ("deepmimic_parents", "-1 0 x 0 3 4 1 6 7 0 9 10 1 12 13", "expected whole numbers"),
    ("deepmimic_parents", "-1 0 1 0 3 4 1 6 7 0 9 10 1 12 14", "joint 14 has parent 14"),
    ("deepmimic_diff_weights", "1 0.5 0.3 0.5 heavy 0.2 0.3 0.2 0 0.5 0.3 0.2 0.3 0.2 0", "expected real numbers"),
    ("deepmimic_end_effectors", "0 0 0 0 0 0.5 0 0 1 0 0 1 0 0 1", "expected whole numbers"),
])
def test_mjcf_malformed_custom_field(tmp_path, committed_mjcf_path, field, data, message):
    with open(committed_mjcf_path) as f:
        text = f.read()
    original = re.search(r'<text name="{}" data="[^"]*" />'.format(field), text).group(0)
    path = str(tmp_path / "bad_custom.xml")
    with open(path, "w") as f:
        f.write(text.replace(original, '<text name="{}" data="{}" />'.format(field, data)))
    _expect_error(lambda: load_skeleton_from_mjcf(path), path, "<custom> " + field, message)
