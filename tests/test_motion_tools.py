"""Motion data tools (issue 7): poselib .npy interop, BVH import and retargeting, multi-clip datasets.

Facts checked against independent references: MuJoCo's forward kinematics of the committed MJCF
(for the poselib skeleton and for retargeted clips), the source clip itself (round trips), and
the sampling weights written in the dataset file."""
import json
import os

import mujoco
import numpy as np
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

import train
from poselib_utils.bvh import load_bvh, write_bvh
from poselib_utils.bvh_import import bvh_to_clip
from poselib_utils.data_loader import DataFormatError, load_motion
from poselib_utils.motion_dataset import load_motion_dataset, resolve_motion_files
from poselib_utils.poselib_interop import (Character, clip_local_rotations, clip_to_poselib, convert,
                                           poselib_to_frames, save_poselib_npy)
from poselib_utils.retarget import clip_to_qpos
from tasks.humanoid_deepmimic import HumanoidDeepMimic
from poselib_utils.retarget import hinge_joint_names
from poselib_utils.repository import REPO_ROOT

WALK = os.path.join(REPO_ROOT, "motions", "humanoid3d_walk.txt")
KICK = os.path.join(REPO_ROOT, "motions", "humanoid3d_kick.txt")
Y_TO_Z = Rotation.from_euler("x", 90, degrees=True)


@pytest.fixture(scope="module")
def character():
    return Character()


@pytest.fixture(scope="module")
def walk(character):
    return load_motion(WALK, character.skeleton)


def mujoco_body_pos(character, clip):
    """World positions [F, J, 3] of the character's bodies (DeepMimic joint order) by MuJoCo."""
    model = character.model
    data = mujoco.MjData(model)
    ids = [model.body(n).id for n in character.names]
    out = []
    for q in clip_to_qpos(clip, character.skeleton, hinge_joint_names(model)):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        out.append(data.xpos[ids].copy())
    return np.stack(out)


def same_quats(a, b):
    """Max difference of two [.., 4] quaternion arrays, up to sign."""
    return np.minimum(np.abs(a - b).max(-1), np.abs(a + b).max(-1)).max()


def frames_match(character, a, b, tol):
    """DeepMimic frames equal, with quaternions compared up to sign."""
    for joint, col in zip(character.skeleton.joints, character.skeleton.param_offsets()):
        c = col - 1
        if joint.joint_type == "none":
            assert np.abs(a[:, 0:3] - b[:, 0:3]).max() < tol
            assert same_quats(a[:, 3:7], b[:, 3:7]) < tol
        elif joint.joint_type == "spherical":
            assert same_quats(a[:, c:c + 4], b[:, c:c + 4]) < tol, joint.name
        elif joint.joint_type == "revolute":
            assert np.abs(a[:, c] - b[:, c]).max() < tol, joint.name


# ---------------------------------------------------------------------------------- poselib


def test_poselib_npy_round_trip_and_forward_kinematics(tmp_path, character, walk):
    path = str(tmp_path / "walk.npy")
    save_poselib_npy(path, clip_to_poselib(walk, character))
    raw = open(path, "rb").read()
    assert b"numpy._core" not in raw and b"numpy.core" not in raw  # NumPy 1.x cannot import numpy._core

    d = np.load(path, allow_pickle=True).item()  # how poselib's Serializable.from_file reads it
    assert d["__name__"] == "SkeletonMotion" and d["is_local"] is True and d["fps"] == 30
    tree = d["skeleton_tree"]
    assert sorted(tree["node_names"]) == sorted(mujoco.MjModel.from_xml_path(character.mjcf_path).body(i).name
                                                for i in range(1, 16))
    rot = d["rotation"]["arr"]
    assert rot.shape == (walk.num_frames, 15, 4) and d["rotation"]["context"]["dtype"] == "float32"
    assert np.allclose(np.linalg.norm(rot, axis=-1), 1.0, atol=1e-5)
    for key in ("global_velocity", "global_angular_velocity"):
        assert d[key]["arr"].shape == (walk.num_frames, 15, 3)
    assert d["root_translation"]["arr"].shape == (walk.num_frames, 3)

    # Our own FK over the file's tree: node = parent * (local rotation xyzw, local translation).
    parents = d["skeleton_tree"]["parent_indices"]["arr"].astype(np.int64)
    offsets = d["skeleton_tree"]["local_translation"]["arr"].astype(np.float64)
    pos = np.zeros((walk.num_frames, 15, 3))
    glob = [None] * 15
    for j in range(15):
        local = Rotation.from_quat(rot[:, j].astype(np.float64))
        if parents[j] < 0:
            glob[j], pos[:, j] = local, d["root_translation"]["arr"]
        else:
            glob[j] = glob[parents[j]] * local
            pos[:, j] = pos[:, parents[j]] + glob[parents[j]].apply(offsets[j])
    assert np.abs(pos - mujoco_body_pos(character, walk)).max() < 1e-5
    # velocities as poselib's SkeletonMotion stores them: the positions' central differences per
    # second, smoothed by scipy's Gaussian of sigma 2 frames (edges held), so close to the plain ones
    steps = np.gradient(pos, axis=0)  # metres per frame: central differences, one-sided at the ends
    smoothed = gaussian_filter1d(steps, 2.0, axis=0, mode="nearest") * 30.0
    fd = (pos[2:] - pos[:-2]) / (walk.frame_times[2:] - walk.frame_times[:-2])[:, None, None]
    assert np.abs(d["global_velocity"]["arr"] - smoothed).max() < 2e-3
    assert np.abs(d["global_velocity"]["arr"][5:-5] - fd[4:-4]).mean() < 0.05

    back = str(tmp_path / "walk_back.txt")
    convert(path, back)
    clip = load_motion(back, character.skeleton)
    assert clip.loop == walk.loop and np.allclose(clip.frame_durations, walk.frame_durations)
    frames_match(character, clip.frames, walk.frames, 1e-6)

    # Without our 'deepmimic' extras (a file from poselib itself): fps gives the frame durations.
    del d["deepmimic"]
    frames, durations, loop = poselib_to_frames(d, character)
    assert np.allclose(durations[:-1], 1.0 / 30) and durations[-1] == 0.0 and loop is False  # DeepMimic's last
    frames_match(character, frames, walk.frames, 1e-6)


def test_poselib_export_of_a_dog_clip_finds_the_dog_by_name(tmp_path):
    from poselib_utils.poselib_interop import main

    trot = os.path.join(REPO_ROOT, "motions", "dog3d_trot.txt")
    dog = Character(os.path.join(REPO_ROOT, "assets", "mjcf", "dog3d.xml"))
    clip = load_motion(trot, dog.skeleton)
    out = str(tmp_path / "dog3d_trot.npy")
    main([trot, "-o", out])  # no --mjcf: the clip's name says dog3d
    d = np.load(out, allow_pickle=True).item()
    m = mujoco.MjModel.from_xml_path(dog.mjcf_path)
    assert d["skeleton_tree"]["node_names"] == [m.body(i).name for i in range(1, m.nbody)]
    assert d["rotation"]["arr"].shape == (clip.num_frames, m.nbody - 1, 4)
    assert np.allclose(d["root_translation"]["arr"], mujoco_body_pos(dog, clip)[:, 0], atol=1e-5)
    back = str(tmp_path / "dog3d_trot_back.txt")
    main([out, "-o", back])
    frames_match(dog, load_motion(back, dog.skeleton).frames, clip.frames, 1e-5)


def test_poselib_skeleton_mismatch_is_named(character, walk):
    d = clip_to_poselib(walk, character)
    renamed = dict(d, skeleton_tree=dict(d["skeleton_tree"], node_names=["pelvis"] + d["skeleton_tree"]["node_names"][1:]))
    with pytest.raises(DataFormatError, match=r"against the character: nodes \['pelvis'\] are unknown, \['root'\] are missing"):
        poselib_to_frames(renamed, character)
    lt = d["skeleton_tree"]["local_translation"]["arr"].copy()
    lt[d["skeleton_tree"]["node_names"].index("right_shoulder")] *= 1.5
    longer = dict(d, skeleton_tree=dict(d["skeleton_tree"], local_translation={"arr": lt}))
    with pytest.raises(DataFormatError, match="node 'right_shoulder'"):
        poselib_to_frames(longer, character)


# ---------------------------------------------------------------------------------- BVH


def write_clip_as_bvh(path, character, clip, names, offsets_scale, rest_turn=None, extra=None, order="ZXY"):
    """The clip as a Y-up BVH whose joints follow the character's; ``rest_turn[j]`` (Z-up) turns
    joint j's rest frame (so the BVH's rest pose differs), ``extra`` inserts rigid joints."""
    root, rots = clip_local_rotations(clip, character)
    n = len(character.names)
    turn = [rest_turn.get(character.names[j], Rotation.identity()) if rest_turn else Rotation.identity()
            for j in range(n)]
    glob = []
    for j in range(n):
        local = Rotation.from_quat(rots[:, j])
        glob.append(local if character.parents[j] < 0 else glob[character.parents[j]] * local)
    b_names, b_parents, b_offsets, b_rots = [], [], [], []
    index = {}
    for j in range(n):
        p = character.parents[j]
        g = glob[j] * turn[j]  # the BVH joint's world rotation (Z-up)
        off = character.offsets[j] if p >= 0 else np.zeros(3)
        parent_b = index[p] if p >= 0 else -1
        pre = (extra or {}).get(character.names[j])
        if pre is not None:  # a rigid joint halfway along the bone (clavicle, LHipJoint, ...)
            b_names.append(pre)
            b_parents.append(parent_b)
            b_offsets.append(turn[p].inv().apply(0.5 * off))
            b_rots.append(Rotation.identity(clip.num_frames))
            parent_b = len(b_names) - 1
            off = 0.5 * off
        pg = glob[p] * turn[p] if p >= 0 else Rotation.identity(clip.num_frames)
        b_names.append(names[character.names[j]])
        b_parents.append(parent_b)
        b_offsets.append(turn[p].inv().apply(off) if p >= 0 else off)
        b_rots.append(pg.inv() * g)
        index[j] = len(b_names) - 1
    # to a Y-up file: vectors by Y_TO_Z^-1, rotations conjugated
    offs = Y_TO_Z.inv().apply(np.stack(b_offsets)) * offsets_scale
    rots_y = [Y_TO_Z.inv() * r * Y_TO_Z for r in b_rots]
    write_bvh(path, b_names, b_parents, offs, Y_TO_Z.inv().apply(root) * offsets_scale, rots_y,
              float(clip.frame_durations[0]), order=order,
              end_sites={len(b_names) - 1: [np.array([0.0, 5.0, 0.0])]})


def test_bvh_round_trip_reproduces_the_clip(tmp_path, character, walk):
    bvh = str(tmp_path / "walk.bvh")
    write_clip_as_bvh(bvh, character, walk, {n: n for n in character.names}, 100.0)  # centimetres
    joint_map = str(tmp_path / "identity.yaml")
    yaml.safe_dump({n: n for n in character.names}, open(joint_map, "w"))
    out = str(tmp_path / "walk.txt")
    report = bvh_to_clip(bvh, joint_map, out)
    assert abs(report["scale"] - 0.01) < 1e-6 and report["max"] < 1e-4
    clip = load_motion(out, character.skeleton)
    # the clip's frames are 0.033332 s apart, 1/30 s printed rounded: at 30 fps it keeps every frame
    n = walk.num_frames
    assert clip.num_frames == n
    pos_in, pos_out = mujoco_body_pos(character, walk), mujoco_body_pos(character, clip)
    lift = pos_out[..., 2] - pos_in[..., 2]
    assert np.ptp(lift) < 1e-4  # one constant lift: the ground contact
    assert np.abs(pos_out[..., :2] - pos_in[..., :2]).max() < 1e-6
    # the lowest point of the feet touches the floor: MuJoCo's geoms at the lowest frame
    model, data = character.model, mujoco.MjData(character.model)
    lowest = np.inf
    for q in clip_to_qpos(clip, character.skeleton, hinge_joint_names(model)):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        for g in range(model.ngeom):
            if model.body(model.geom_bodyid[g]).name in ("right_ankle", "left_ankle"):
                corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * model.geom_size[g]
                lowest = min(lowest, (data.geom_xpos[g] + corners @ data.geom_xmat[g].reshape(3, 3).T)[:, 2].min())
    assert abs(lowest) < 1e-6

    # fps resampling: 60 fps output, every second frame is the 30 fps clip's frame
    out60 = str(tmp_path / "walk60.txt")
    bvh_to_clip(bvh, joint_map, out60, fps=60.0)
    clip60 = load_motion(out60, character.skeleton)
    assert np.allclose(clip60.frame_durations, 1 / 60.0) and abs(clip60.num_frames - (2 * clip.num_frames - 1)) <= 1
    assert np.abs(mujoco_body_pos(character, clip60)[0:2 * n - 1:2][:n - 1] - pos_out[:n - 1]).max() < 2e-3


CMU_NAMES = {"root": "Hips", "chest": "Spine1", "neck": "Neck", "right_hip": "RightUpLeg", "right_knee": "RightLeg",
             "right_ankle": "RightFoot", "left_hip": "LeftUpLeg", "left_knee": "LeftLeg", "left_ankle": "LeftFoot",
             "right_shoulder": "RightArm", "right_elbow": "RightForeArm", "right_wrist": "RightHand",
             "left_shoulder": "LeftArm", "left_elbow": "LeftForeArm", "left_wrist": "LeftHand"}


def test_bvh_cmu_style_t_pose_skeleton(tmp_path, character):
    """A CMU-named skeleton in inches whose rest pose is a T-pose (arms out along the shoulders'
    line, ours hang down), with clavicles and LHipJoint-like rigid joints, ZYX channels: the
    shipped 'cmu' map must recover the clip's body positions."""
    clip = load_motion(KICK, character.skeleton)
    arms_out = {}
    for side, sign in (("right", -1.0), ("left", 1.0)):  # bone +-Y (out) in the BVH, -Z (down) in ours
        turn = Rotation.align_vectors([[0.0, 0.0, -1.0]], [[0.0, sign, 0.0]])[0]
        for j in ("shoulder", "elbow", "wrist"):
            arms_out["{}_{}".format(side, j)] = turn
    extra = {"left_shoulder": "LeftShoulder", "right_shoulder": "RightShoulder", "left_hip": "LHipJoint",
             "right_hip": "RHipJoint", "chest": "Spine"}
    bvh = str(tmp_path / "cmu_kick.bvh")
    write_clip_as_bvh(bvh, character, clip, CMU_NAMES, 39.37 * 1.1, arms_out, extra, order="ZYX")
    fore_arm = load_bvh(bvh).offsets[load_bvh(bvh).names.index("LeftForeArm")]
    assert fore_arm[2] < -10 and np.abs(fore_arm[:2]).max() < 1e-6  # T-pose: out sideways (-Z, Y-up file)
    out = str(tmp_path / "kick.txt")
    report = bvh_to_clip(bvh, "cmu", out)
    assert abs(report["scale"] - 1 / (39.37 * 1.1)) < 1e-6
    assert report["max"] < 2e-3, report["bodies"]
    result = load_motion(out, character.skeleton)
    pos_in, pos_out = mujoco_body_pos(character, clip), mujoco_body_pos(character, result)
    n = min(len(pos_in), len(pos_out))
    d = pos_out[:n] - pos_in[:n]
    d[..., 2] -= np.median(d[..., 2])
    assert np.abs(d).max() < 5e-3


def test_bvh_bad_inputs_are_named(tmp_path, character, walk):
    bvh = str(tmp_path / "walk.bvh")
    write_clip_as_bvh(bvh, character, walk, CMU_NAMES, 100.0)
    bad_map = str(tmp_path / "bad_map.yaml")
    yaml.safe_dump(dict({"tail": "Hips"}, **CMU_NAMES), open(bad_map, "w"))
    with pytest.raises(DataFormatError, match="joint 'tail'.*unknown character joint"):
        bvh_to_clip(bvh, bad_map, str(tmp_path / "o.txt"))
    absent = str(tmp_path / "absent.yaml")
    yaml.safe_dump(dict(CMU_NAMES, neck="Head"), open(absent, "w"))
    with pytest.raises(DataFormatError, match=r"character joint 'neck' maps to \['Head'\], none of which is in the BVH"):
        bvh_to_clip(bvh, absent, str(tmp_path / "o.txt"))
    with pytest.raises(DataFormatError, match="no such joint map"):
        bvh_to_clip(bvh, "no_such_skeleton", str(tmp_path / "o.txt"))
    text = open(bvh).read()
    no_channels = str(tmp_path / "no_channels.bvh")
    lines = text.splitlines()
    i = next(k for k, line in enumerate(lines) if "JOINT LeftLeg" in line)
    open(no_channels, "w").write("\n".join(lines[:i + 3] + lines[i + 4:]))
    with pytest.raises(DataFormatError, match="joint 'LeftLeg' has no CHANNELS line"):
        load_bvh(no_channels)
    one_frame = str(tmp_path / "one_frame.bvh")
    head, motion = text.split("MOTION")
    rows = motion.strip().splitlines()
    open(one_frame, "w").write(head + "MOTION\nFrames: 1\n" + rows[1] + "\n" + rows[2] + "\n")
    with pytest.raises(DataFormatError, match="zero-length clip"):
        bvh_to_clip(one_frame, "cmu", str(tmp_path / "o.txt"))


# ---------------------------------------------------------------------------------- datasets


def test_dataset_files_deepmimic_json_and_yaml(tmp_path):
    ds_json = tmp_path / "locomotion.txt"
    ds_json.write_text(json.dumps({"Motions": [{"Weight": 0.75, "File": "data/motions/humanoid3d_walk.txt"},
                                               {"Weight": 0.25, "File": KICK}]}))
    assert load_motion_dataset(str(ds_json)) == ([WALK, KICK], [0.75, 0.25])
    ds_yaml = tmp_path / "locomotion.yaml"
    ds_yaml.write_text("motions:\n  - {file: motions/humanoid3d_walk.txt, weight: 3}\n  - file: " + KICK + "\n")
    assert resolve_motion_files([str(ds_yaml), WALK]) == ([WALK, KICK, WALK], [3.0, 1.0, 1.0])
    ds_yaml.write_text("motions: [5]\n")
    with pytest.raises(DataFormatError, match=r"locomotion.yaml: Motions\[0\]: expected \{File, Weight\}, got 5"):
        resolve_motion_files(str(ds_yaml))
    binary = tmp_path / "clip.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(DataFormatError, match=r"clip.txt: unreadable: not UTF-8 text"):
        resolve_motion_files(str(binary))
    ds_yaml.write_text("motions:\n  - {file: motions/humanoid3d_nope.txt, weight: 1}\n")
    with pytest.raises(DataFormatError, match=r"locomotion.yaml: Motions\[0\]: clip file 'motions/humanoid3d_nope.txt' "
                                              "not found"):
        resolve_motion_files(str(ds_yaml))
    ds_yaml.write_text("motions:\n  - {file: " + WALK + ", weight: -1}\n")
    with pytest.raises(DataFormatError, match="'Weight' must be a finite number >= 0"):
        resolve_motion_files(str(ds_yaml))


def test_dataset_task_samples_clips_by_weight_and_steps(tmp_path):
    ds = tmp_path / "walk_kick.yaml"
    ds.write_text("motions:\n  - {file: " + WALK + ", weight: 3}\n  - {file: " + KICK + ", weight: 1}\n")
    with initialize_config_dir(config_dir=os.path.join(REPO_ROOT, "cfg"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["num_envs=16", "sim_engine=mujoco",
                                                       "task.env.motion_file={}".format(ds)])
    train.check_config(cfg)  # what train.py checks before start-up accepts a dataset
    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    task_cfg["env"]["num_threads"] = 2
    task = HumanoidDeepMimic(task_cfg, "cpu", "cpu", 0, True)
    try:
        lib = task.motion_lib
        assert lib.motion_files == [WALK, KICK]
        torch.manual_seed(0)
        share = lib.sample_motions(20000).float().mean().item()  # fraction of kick
        assert abs(share - 0.25) < 0.015
        torch.manual_seed(0)
        task.reset_idx(torch.arange(task.num_envs))
        ids = task.motion_ids.clone()
        assert set(ids.tolist()) == {0, 1}  # envs play different clips at once
        # each env's reference is its own clip's: compare with single-clip libraries
        from tasks.reference.motion_lib import MotionLib

        times = task.motion_times.clone()
        state = lib.get_state(ids, times)
        for k, path in enumerate([WALK, KICK]):
            single = MotionLib([path], task_cfg["env"]["asset_file"] if os.path.isabs(task_cfg["env"]["asset_file"])
                               else os.path.join(REPO_ROOT, task_cfg["env"]["asset_file"]), "cpu")
            mask = ids == k
            ref = single.get_state(torch.zeros(int(mask.sum()), dtype=torch.long), times[mask])
            assert torch.allclose(state.body_pos[mask], ref.body_pos, atol=1e-5)
        for _ in range(3):
            obs, rew, done, info = task.step(torch.zeros(task.num_envs, task.num_actions))
        assert torch.isfinite(rew).all() and torch.isfinite(obs["obs"]).all()
    finally:
        task.close()
