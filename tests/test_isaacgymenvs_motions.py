"""IsaacGymEnvs' own motion files (``assets/amp/motions/amp_humanoid_*.npy``), read and written.

The files here are built the way IsaacGymEnvs' are, from MuJoCo's kinematics of DeepMimic's walk
and not from our writer: its ``amp_humanoid`` node names and order (taken from its backflip file),
float32 and float64 arrays, ``fps`` a 0-d int32 array (its walk, run) or a float (its backflip),
and NumPy 1's pickling, which names ``numpy.core.multiarray``. Where a local copy of IsaacGymEnvs'
assets is named by ``ISAACGYMENVS_ASSETS`` (never committed), its real files are checked too.
"""
import collections
import io
import os
import pickle
import re

import mujoco
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from poselib_utils import poselib_interop
from poselib_utils.data_loader import DataFormatError, load_motion
from poselib_utils.mjcf_character import compile_mjcf
from poselib_utils.motion_dataset import load_clip
from poselib_utils.poselib_interop import Character, load_poselib_clip, load_poselib_npy
from poselib_utils.repository import DEFAULT_MJCF, repo_path
from poselib_utils.retarget import clip_to_qpos, hinge_joint_names

WALK = repo_path("motions/humanoid3d_walk.txt")
# IsaacGymEnvs' amp_humanoid, as its backflip file lists it (node, its parent node)
AMP_NODES = [("pelvis", None), ("torso", "pelvis"), ("head", "torso"), ("right_upper_arm", "torso"),
             ("right_lower_arm", "right_upper_arm"), ("right_hand", "right_lower_arm"),
             ("left_upper_arm", "torso"), ("left_lower_arm", "left_upper_arm"), ("left_hand", "left_lower_arm"),
             ("right_thigh", "pelvis"), ("right_shin", "right_thigh"), ("right_foot", "right_shin"),
             ("left_thigh", "pelvis"), ("left_shin", "left_thigh"), ("left_foot", "left_shin")]
# the same bodies in our MJCF (their offsets agree, checked below)
OUR_BODY = dict(pelvis="root", torso="chest", head="neck", right_upper_arm="right_shoulder",
                right_lower_arm="right_elbow", right_hand="right_wrist", left_upper_arm="left_shoulder",
                left_lower_arm="left_elbow", left_hand="left_wrist", right_thigh="right_hip", right_shin="right_knee",
                right_foot="right_ankle", left_thigh="left_hip", left_shin="left_knee", left_foot="left_ankle")


def mujoco_bodies(clip_path=WALK, mjcf=DEFAULT_MJCF):
    """World positions [F, B, 3] and rotations (xyzw) [F, B, 4] of every MJCF body over the clip, by MuJoCo."""
    character = Character(mjcf)
    model = compile_mjcf(mjcf)
    data = mujoco.MjData(model)
    qpos = clip_to_qpos(load_motion(clip_path, character.skeleton), character.skeleton, hinge_joint_names(model))
    pos, quat = [], []
    for q in qpos:
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        pos.append(data.xpos.copy())
        quat.append(data.xquat[:, [1, 2, 3, 0]].copy())
    return model, np.array(pos), np.array(quat)


def isaacgymenvs_motion(fps_array: bool, dtype=np.float32) -> dict:
    """DeepMimic's walk (30 fps) as IsaacGymEnvs stores a motion: local rotations from MuJoCo's world
    rotations, global velocities by finite differences, on amp_humanoid's nodes."""
    model, pos, quat = mujoco_bodies()
    body = [model.body(OUR_BODY[n]).id for n, _ in AMP_NODES]
    names = [n for n, _ in AMP_NODES]
    parents = np.array([-1 if p is None else names.index(p) for _, p in AMP_NODES], dtype=np.int64)
    world = [Rotation.from_quat(quat[:, b]) for b in body]
    local = np.stack([(world[i] if parents[i] < 0 else world[parents[i]].inv() * world[i]).as_quat()
                      for i in range(len(names))], axis=1)
    offsets = np.array([model.body_pos[b] for b in body])
    # poselib's SkeletonMotion velocities: central differences of positions and forward differences
    # of world rotations (0 at the last frame), per second, smoothed by a Gaussian of 2 frames
    steps = [np.concatenate([(w[1:] * w[:-1].inv()).as_rotvec(), np.zeros((1, 3))]) for w in world]
    vel = gaussian_filter1d(np.gradient(pos[:, body], axis=0), 2.0, axis=0, mode="nearest") * 30.0
    ang = gaussian_filter1d(np.stack(steps, axis=1), 2.0, axis=0, mode="nearest") * 30.0

    def tensor(arr):
        arr = np.asarray(arr, dtype=dtype if arr.dtype.kind == "f" else arr.dtype)
        return {"arr": arr, "context": {"dtype": arr.dtype.name}}

    tree = collections.OrderedDict([("node_names", names), ("parent_indices", tensor(parents)),
                                    ("local_translation", tensor(offsets))])
    return collections.OrderedDict([
        ("rotation", tensor(local)), ("root_translation", tensor(pos[:, body[0]])),
        ("global_velocity", tensor(vel)), ("global_angular_velocity", tensor(ang)), ("skeleton_tree", tree),
        ("is_local", True), ("fps", np.array(30, dtype=np.int32) if fps_array else 30.0),
        ("__name__", "SkeletonMotion")])


def save_as_numpy1(path: str, motion: dict) -> None:
    """np.save of the dict as NumPy 1 writes it: protocol 3, arrays rebuilt by numpy.core.multiarray."""
    buf = io.BytesIO()
    pickle.dump(np.array(motion, dtype=object), buf, protocol=3)
    raw = buf.getvalue()
    assert b"cnumpy._core.multiarray\n" in raw
    raw = raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        f.write(raw)


@pytest.fixture(scope="module")
def character():
    return Character()


@pytest.mark.parametrize("fps_array, dtype", [(True, np.float32), (False, np.float64)])
def test_an_isaacgymenvs_file_reads_as_the_clip_it_was_made_from(tmp_path, character, fps_array, dtype):
    path = str(tmp_path / "amp_humanoid_walk.npy")
    save_as_numpy1(path, isaacgymenvs_motion(fps_array, dtype))
    with open(path, "rb") as f:
        assert b"numpy.core.multiarray" in f.read()
    clip = load_clip(path, character.skeleton)  # no skeleton named: found from the node names
    walk = load_motion(WALK, character.skeleton)
    assert clip.num_frames == walk.num_frames and not clip.loop  # IsaacGymEnvs' files do not say they loop
    np.testing.assert_allclose(clip.frame_durations, walk.frame_durations, atol=2e-6)  # the last: 0, as DeepMimic's
    # the body positions MuJoCo gives the clip read back equal those the file was made from
    _, pos, _ = mujoco_bodies()
    model = compile_mjcf(DEFAULT_MJCF)
    data = mujoco.MjData(model)
    tol = 2e-5 if dtype == np.float32 else 1e-9
    for f, q in enumerate(clip_to_qpos(clip, character.skeleton, hinge_joint_names(model))):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        np.testing.assert_allclose(data.xpos[1:] - data.xpos[1], pos[f, 1:] - pos[f, 1], atol=tol)


def test_a_file_storing_every_frame_twice_reads_at_its_real_rate(tmp_path, character):
    """IsaacGymEnvs' 60 fps walk, run, cartwheel, hop and dance repeat every frame (30 fps content):
    played as stored the reference would stop and jump every other frame. Read as 30 fps, it is the clip."""
    motion = isaacgymenvs_motion(True)
    for key in ("rotation", "root_translation", "global_velocity", "global_angular_velocity"):
        motion[key]["arr"] = np.repeat(motion[key]["arr"], 2, axis=0)
    motion["fps"] = np.array(60, dtype=np.int32)
    path = str(tmp_path / "doubled.npy")
    save_as_numpy1(path, motion)
    with pytest.warns(UserWarning, match="every frame is stored twice .* read at half that rate, 30 fps"):
        clip = load_clip(path, character.skeleton)
    walk = load_motion(WALK, character.skeleton)
    assert clip.num_frames == walk.num_frames
    np.testing.assert_allclose(clip.frame_durations, walk.frame_durations, atol=2e-6)
    np.testing.assert_allclose(clip.frames, walk.frames, atol=1e-5)


def test_writing_in_isaacgymenvs_layout_matches_its_file(tmp_path, character):
    """--skeleton amp_humanoid writes what IsaacGymEnvs would: its node names, order and parents, the
    same rotations, offsets and root path, float32; poselib's forward kinematics (node = parent *
    (local rotation, local translation)) of it gives MuJoCo's body positions."""
    ours = str(tmp_path / "ours.npy")
    poselib_interop.main([WALK, "-o", ours, "--skeleton", "amp_humanoid"])
    written = load_poselib_npy(ours)
    expected = isaacgymenvs_motion(True)
    tree = written["skeleton_tree"]
    assert tree["node_names"] == [n for n, _ in AMP_NODES]
    assert tree["parent_indices"]["arr"].tolist() == expected["skeleton_tree"]["parent_indices"]["arr"].tolist()
    for key in ("rotation", "root_translation", "global_velocity"):
        assert written[key]["arr"].dtype == np.float32 and written[key]["context"] == {"dtype": "float32"}
    np.testing.assert_allclose(tree["local_translation"]["arr"], expected["skeleton_tree"]["local_translation"]["arr"],
                               atol=1e-6)
    angle = (Rotation.from_quat(written["rotation"]["arr"].reshape(-1, 4))
             * Rotation.from_quat(expected["rotation"]["arr"].reshape(-1, 4)).inv()).magnitude()
    assert np.degrees(angle).max() < 1e-3
    for key in ("global_velocity", "global_angular_velocity"):
        np.testing.assert_allclose(written[key]["arr"], expected[key]["arr"], atol=2e-3, err_msg=key)
    _, pos, _ = mujoco_bodies()
    model = compile_mjcf(DEFAULT_MJCF)
    body = [model.body(OUR_BODY[n]).id for n, _ in AMP_NODES]
    fk, _ = poselib_interop.forward_kinematics(tree["parent_indices"]["arr"], tree["local_translation"]["arr"],
                                               written["root_translation"]["arr"], written["rotation"]["arr"])
    np.testing.assert_allclose(fk, pos[:, body], atol=2e-5)
    back = str(tmp_path / "back.txt")
    poselib_interop.main([ours, "-o", back])
    np.testing.assert_allclose(load_motion(back, character.skeleton).frames,
                               load_motion(WALK, character.skeleton).frames, atol=1e-6)


def test_a_skeleton_with_other_rest_frames_maps_through_them(tmp_path, character):
    """A map whose nodes' rest frames are turned against our bodies': the file's node rotations are
    MuJoCo's body rotations times that rest rotation, its positions MuJoCo's, and it reads back."""
    rest = {"pelvis": Rotation.from_euler("z", 90, degrees=True),
            "right_thigh": Rotation.from_euler("xy", [30, -45], degrees=True),
            "left_lower_arm": Rotation.from_euler("y", 180, degrees=True)}
    lines = ["character: assets/mjcf/humanoid3d.xml", "nodes:"] + ["  - {}: {}".format(n, OUR_BODY[n])
                                                                   for n, _ in AMP_NODES]
    lines += ["rest_rotations:"] + ["  {}: [{}]".format(n, ", ".join(repr(float(v)) for v in r.as_quat()))
                                    for n, r in rest.items()]
    map_path = tmp_path / "turned.yaml"
    map_path.write_text("\n".join(lines) + "\n")
    out = str(tmp_path / "turned.npy")
    poselib_interop.main([WALK, "-o", out, "--skeleton", str(map_path)])
    written = load_poselib_npy(out)
    tree = written["skeleton_tree"]
    fk, world = poselib_interop.forward_kinematics(tree["parent_indices"]["arr"], tree["local_translation"]["arr"],
                                                   written["root_translation"]["arr"], written["rotation"]["arr"])
    model, pos, quat = mujoco_bodies()
    for i, (node, _) in enumerate(AMP_NODES):
        b = model.body(OUR_BODY[node]).id
        np.testing.assert_allclose(fk[:, i], pos[:, b], atol=2e-5)
        expected = Rotation.from_quat(quat[:, b]) * rest.get(node, Rotation.identity())
        assert np.degrees((world[i] * expected.inv()).magnitude()).max() < 1e-3, node
    with pytest.raises(DataFormatError, match="node 'left_hand' is offset .* a different body, or other rest frames"):
        load_poselib_clip(out, character)  # read as amp_humanoid (same names): turned.yaml must be named
    back = str(tmp_path / "back.txt")
    poselib_interop.main([out, "-o", back, "--skeleton", str(map_path)])
    np.testing.assert_allclose(load_motion(back, character.skeleton).frames,
                               load_motion(WALK, character.skeleton).frames, atol=1e-5)


def test_an_unknown_skeleton_names_the_closest_and_what_differs(tmp_path, character):
    motion = isaacgymenvs_motion(True)
    motion["skeleton_tree"]["node_names"] = [n.replace("head", "skull") for n in motion["skeleton_tree"]["node_names"]]
    path = str(tmp_path / "skull.npy")
    save_as_numpy1(path, motion)
    with pytest.raises(SystemExit) as err:
        poselib_interop.main([path, "-o", str(tmp_path / "x.txt")])
    assert "skull.npy: skeleton_tree.node_names: skeleton matches neither character humanoid3d.xml nor a known " \
           "skeleton (amp_humanoid); against amp_humanoid: nodes ['skull'] are unknown, ['head'] are missing" \
           in str(err.value.code)
    with pytest.raises(SystemExit, match="unknown skeleton 'amp_humanoidd'; known: amp_humanoid"):
        poselib_interop.main([WALK, "-o", str(tmp_path / "x.npy"), "--skeleton", "amp_humanoidd"])


@pytest.mark.parametrize("text, words", [
    ("character: assets/mjcf/humanoid3d.xml\nnodes: []\n", "nodes: a skeleton map needs a non-empty 'nodes' list"),
    ("character: assets/mjcf/humanoid3d.xml\nnodes:\n  - a: root\n  - b: root\n", "joints ['root'] appear more than once"),
    ("character: assets/mjcf/humanoid3d.xml\nnodes:\n  - a: root\nrest_rotations:\n  a: [0, 0, 0, 2]\n",
     "rest_rotations.a: expected a unit quaternion [x, y, z, w]"),
])
def test_a_broken_skeleton_map_names_its_field(tmp_path, text, words):
    from poselib_utils.skeleton_maps import load_skeleton_map

    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=r"broken.yaml: .*" + re.escape(words)):
        load_skeleton_map(str(path))


IGE_ASSETS = os.environ.get("ISAACGYMENVS_ASSETS", "")


@pytest.mark.skipif(not os.path.isdir(IGE_ASSETS), reason="ISAACGYMENVS_ASSETS names no local copy of its assets/")
def test_isaacgymenvs_backflip_is_deepmimics_backflip(character):
    """IsaacGymEnvs' backflip, read with no flag, is DeepMimic's backflip frame for frame."""
    ige = load_clip(os.path.join(IGE_ASSETS, "amp", "motions", "amp_humanoid_backflip.npy"), character.skeleton)
    ours = load_motion(repo_path("motions/humanoid3d_backflip.txt"), character.skeleton)
    assert ige.num_frames == ours.num_frames == 29
    np.testing.assert_allclose(ige.frame_durations, ours.frame_durations)
    root_ige, rots_ige = poselib_interop.clip_local_rotations(ige, character)
    root_ours, rots_ours = poselib_interop.clip_local_rotations(ours, character)
    assert np.abs(root_ige - root_ours).max() < 1e-3
    angle = (Rotation.from_quat(rots_ige.reshape(-1, 4)) * Rotation.from_quat(rots_ours.reshape(-1, 4)).inv())
    assert np.degrees(angle.magnitude()).max() < 0.01


@pytest.mark.skipif(not os.path.isdir(IGE_ASSETS), reason="ISAACGYMENVS_ASSETS names no local copy of its assets/")
def test_deepmimics_backflip_written_for_isaacgymenvs_is_its_file(tmp_path):
    ours = str(tmp_path / "backflip.npy")
    poselib_interop.main([repo_path("motions/humanoid3d_backflip.txt"), "-o", ours, "--skeleton", "amp_humanoid"])
    written = load_poselib_npy(ours)
    theirs = load_poselib_npy(os.path.join(IGE_ASSETS, "amp", "motions", "amp_humanoid_backflip.npy"))
    assert written["skeleton_tree"]["node_names"] == theirs["skeleton_tree"]["node_names"]
    for key in ("parent_indices", "local_translation"):
        np.testing.assert_allclose(written["skeleton_tree"][key]["arr"], theirs["skeleton_tree"][key]["arr"], atol=1e-6)
    angle = (Rotation.from_quat(written["rotation"]["arr"].reshape(-1, 4))
             * Rotation.from_quat(theirs["rotation"]["arr"].reshape(-1, 4)).inv()).magnitude()
    assert np.degrees(angle).max() < 0.01
    np.testing.assert_allclose(written["root_translation"]["arr"], theirs["root_translation"]["arr"], atol=1e-4)
    for key in ("global_velocity", "global_angular_velocity"):  # poselib's smoothed velocities, 1 mm/s
        np.testing.assert_allclose(written[key]["arr"], theirs[key]["arr"], atol=1e-3, err_msg=key)


@pytest.mark.skipif(not os.path.isdir(IGE_ASSETS), reason="ISAACGYMENVS_ASSETS names no local copy of its assets/")
@pytest.mark.parametrize("clip", ["walk", "run", "cartwheel", "hop", "dance"])
def test_isaacgymenvs_clips_load_for_training_with_no_flag(clip):
    import train
    from hydra import compose, initialize_config_dir
    from tasks.config import CONFIG_DIR

    path = os.path.join(IGE_ASSETS, "amp", "motions", "amp_humanoid_{}.npy".format(clip))
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["sim_engine=mujoco", "task.env.motion_file=" + path])
    assert train.check_config(cfg) == "mujoco"
