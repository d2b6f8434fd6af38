"""tasks.reference.motion_lib.MotionLib (cpu) against the clips' own numbers.

Expected values come from the raw clip JSON (root position mapped Y-up -> Z-up as
(x, y, z) -> (x, -z, y), root rotation conjugated by +90 deg about x, with scipy), from
poselib_utils.retarget.clip_to_qpos for hinge angles (tested in test_retarget.py), from MuJoCo's
own forward kinematics run here, and from finite differences computed here.
"""
import json
import os

import mujoco
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation, Slerp

from poselib_utils.data_loader import load_motion
from poselib_utils.mjcf_character import load_skeleton_from_mjcf
from poselib_utils.retarget import clip_to_qpos
from tasks.reference.motion_lib import MotionLib
from poselib_utils.repository import REPO_ROOT

MJCF = os.path.join(REPO_ROOT, "assets", "mjcf", "humanoid3d.xml")
WALK = os.path.join(REPO_ROOT, "motions", "humanoid3d_walk.txt")  # Loop: wrap
KICK = os.path.join(REPO_ROOT, "motions", "humanoid3d_kick.txt")  # Loop: none
R_UP = Rotation.from_euler("x", 90, degrees=True)
POS_TOL = 1e-5  # float32 buffers, positions of order 1 m
WALK_ID, KICK_ID = 0, 1


class Clip:
    """The clip as the file has it, in the Z-up world, computed without the project's code
    (except clip_to_qpos for the hinge angles)."""

    def __init__(self, path, model):
        with open(path) as f:
            raw = json.load(f)
        frames = np.array(raw["Frames"], dtype=np.float64)
        self.loop = raw["Loop"] == "wrap"
        self.dt = frames[:, 0]
        self.times = np.concatenate([[0.0], np.cumsum(self.dt[:-1])])
        self.duration = float(self.dt[:-1].sum())
        pos = frames[:, 1:4].copy()
        pos[:, 0] -= pos[0, 0]
        pos[:, 2] -= pos[0, 2]
        self.root_pos = np.stack([pos[:, 0], -pos[:, 2], pos[:, 1]], axis=1)
        quat = frames[:, 4:8] / np.linalg.norm(frames[:, 4:8], axis=1, keepdims=True)
        self.root_rot = R_UP * Rotation.from_quat(quat[:, [1, 2, 3, 0]]) * R_UP.inv()
        skeleton = load_skeleton_from_mjcf(MJCF)
        hinges = [model.joint(j).name for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE]
        self.qpos = clip_to_qpos(load_motion(path, skeleton), skeleton, hinges)
        data = mujoco.MjData(model)
        xpos, xquat, com = [], [], []
        mass = model.body_mass[1:]
        for q in self.qpos:
            data.qpos[:] = q
            mujoco.mj_kinematics(model, data)
            xpos.append(data.xpos[1:].copy())
            xquat.append(data.xquat[1:].copy())
            com.append((mass[:, None] * data.xipos[1:]).sum(0) / mass.sum())
        self.body_pos = np.stack(xpos)
        self.body_quat = np.stack(xquat)
        self.com = np.stack(com)
        self.num_frames = len(frames)


def fwd_diff(values, dt):
    vel = (values[1:] - values[:-1]) / dt[:-1].reshape((-1,) + (1,) * (values.ndim - 1))
    return np.concatenate([vel, vel[-1:]])


def assert_same_quat(actual, expected_wxyz, atol):
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected_wxyz, dtype=np.float64)
    sign = np.sign(np.sum(a * b, axis=-1, keepdims=True))
    np.testing.assert_allclose(a, sign * b, atol=atol)


def wxyz(rot):
    return rot.as_quat()[..., [3, 0, 1, 2]]


@pytest.fixture(scope="module")
def model():
    return mujoco.MjModel.from_xml_path(MJCF)


@pytest.fixture(scope="module")
def lib():
    return MotionLib([WALK, KICK], MJCF, "cpu")


@pytest.fixture(scope="module")
def clips(model):
    return {WALK_ID: Clip(WALK, model), KICK_ID: Clip(KICK, model)}


def query(lib, motion_id, times):
    times = torch.as_tensor(np.asarray(times, dtype=np.float64), dtype=torch.float32)
    ids = torch.full(times.shape, motion_id, dtype=torch.long)
    return {k: v.numpy().astype(np.float64) for k, v in lib.get_state(ids, times)._asdict().items()}


def test_clip_metadata(lib, clips):
    for i in (WALK_ID, KICK_ID):
        assert float(lib.durations[i]) == pytest.approx(clips[i].duration, abs=1e-6)
        assert bool(lib.loops[i]) == clips[i].loop
    assert lib.num_motions == 2
    assert lib.body_names[0] == "root" and len(lib.body_names) == 15 and len(lib.dof_names) == 28


@pytest.mark.parametrize("motion_id", [WALK_ID, KICK_ID])
def test_state_at_frame_times_equals_frames(lib, clips, motion_id):
    clip = clips[motion_id]
    # a looping clip's last frame time is the next cycle's start (checked in the looping test)
    f = np.arange(clip.num_frames - 1 if clip.loop else clip.num_frames)
    s = query(lib, motion_id, clip.times[f])
    np.testing.assert_allclose(s["root_pos"], clip.root_pos[f], atol=POS_TOL)
    assert_same_quat(s["root_rot"], wxyz(clip.root_rot[f]), atol=1e-5)
    np.testing.assert_allclose(s["dof_pos"], clip.qpos[f, 7:], atol=1e-5)
    # every body where MuJoCo's forward kinematics puts it for this frame's qpos
    np.testing.assert_allclose(s["body_pos"], clip.body_pos[f], atol=POS_TOL)
    assert_same_quat(s["body_rot"], clip.body_quat[f], atol=1e-5)
    np.testing.assert_allclose(s["body_pos"][:, 0], clip.root_pos[f], atol=POS_TOL)
    np.testing.assert_allclose(s["phase"], clip.times[f] / clip.duration, atol=1e-6)


def local_rotations(model, xquat):
    """Each body's rotation relative to its parent's (the root: its world rotation)."""
    world = Rotation.from_quat(np.asarray(xquat)[:, [1, 2, 3, 0]])
    parents = model.body_parentid[1:] - 1
    return [world[b] if parents[b] < 0 else world[parents[b]].inv() * world[b] for b in range(len(parents))]


def forward_kinematics(model, root_pos, root_rot, dof_pos):
    data = mujoco.MjData(model)
    data.qpos[:] = np.concatenate([root_pos, root_rot, dof_pos])
    mujoco.mj_kinematics(model, data)
    return data.xpos[1:].copy(), data.xquat[1:].copy()


@pytest.mark.parametrize("motion_id", [WALK_ID, KICK_ID])
def test_halfway_between_frames(lib, clips, model, motion_id):
    """Halfway between keyframes the root is halfway along its line and every joint halfway along
    the shorter arc between its keyframe rotations (DeepMimic's slerp, here scipy's), seen through
    MuJoCo's forward kinematics of the reference's own hinge angles, which also put every body
    where the reference says."""
    clip = clips[motion_id]
    f = np.arange(0, clip.num_frames - 1, 3)
    s = query(lib, motion_id, clip.times[f] + 0.5 * clip.dt[f])
    np.testing.assert_allclose(s["root_pos"], 0.5 * (clip.root_pos[f] + clip.root_pos[f + 1]), atol=POS_TOL)
    expected = [Slerp([0.0, 1.0], clip.root_rot[[i, i + 1]])([0.5])[0] for i in f]
    assert_same_quat(s["root_rot"], np.stack([wxyz(r) for r in expected]), atol=1e-5)
    for row, i in enumerate(f):
        body_pos, body_quat = forward_kinematics(model, s["root_pos"][row], s["root_rot"][row], s["dof_pos"][row])
        np.testing.assert_allclose(body_pos, s["body_pos"][row], atol=1e-4)
        assert_same_quat(body_quat, s["body_rot"][row], atol=1e-4)
        before, after = local_rotations(model, clip.body_quat[i]), local_rotations(model, clip.body_quat[i + 1])
        for got, r0, r1 in zip(local_rotations(model, body_quat), before, after):
            halfway = Slerp([0.0, 1.0], Rotation.concatenate([r0, r1]))([0.5])[0]
            assert (got.inv() * halfway).magnitude() < 1e-4
    # and a quarter of the way, for the rotation
    s = query(lib, motion_id, clip.times[f] + 0.25 * clip.dt[f])
    expected = [Slerp([0.0, 1.0], clip.root_rot[[i, i + 1]])([0.25])[0] for i in f]
    assert_same_quat(s["root_rot"], np.stack([wxyz(r) for r in expected]), atol=1e-5)


def test_reference_state_has_the_reference_body_poses(model):
    """The backflip's keyframes are 1/16 s apart, with joints turning by up to 1.9 rad between
    them: its reference hinge angles, put through MuJoCo's forward kinematics at any time, still
    give the body poses the reward compares against (as reference state initialisation needs)."""
    lib = MotionLib([os.path.join(REPO_ROOT, "motions", "humanoid3d_backflip.txt")], MJCF, "cpu")
    times = np.linspace(0.0, float(lib.durations[0]), 401)[:-1]
    s = query(lib, 0, times)
    worst_pos, worst_angle = 0.0, 0.0
    for row in range(len(times)):
        body_pos, body_quat = forward_kinematics(model, s["root_pos"][row], s["root_rot"][row], s["dof_pos"][row])
        worst_pos = max(worst_pos, np.abs(body_pos - s["body_pos"][row]).max())
        fk = Rotation.from_quat(body_quat[:, [1, 2, 3, 0]])
        ref = Rotation.from_quat(s["body_rot"][row][:, [1, 2, 3, 0]])
        worst_angle = max(worst_angle, (fk.inv() * ref).magnitude().max())
    assert worst_pos < 0.01 and worst_angle < np.radians(2.0), (worst_pos, np.degrees(worst_angle))


def test_looping_clip_repeats_with_root_displacement(lib, clips):
    clip = clips[WALK_ID]
    assert clip.loop
    delta = clip.root_pos[-1] - clip.root_pos[0]
    delta[2] = 0.0
    assert abs(delta[0]) > 0.5  # the walk moves forward about 1.2 m per cycle
    t = np.random.default_rng(0).uniform(0.05, clip.duration - 0.05, size=16)
    base = query(lib, WALK_ID, t)
    for k in (1, 2, 5, -1):
        s = query(lib, WALK_ID, t + k * clip.duration)
        np.testing.assert_allclose(s["root_pos"], base["root_pos"] + k * delta, atol=1e-4)
        np.testing.assert_allclose(s["body_pos"], base["body_pos"] + k * delta, atol=1e-4)
        for key in ("root_rot", "body_rot", "dof_pos"):
            np.testing.assert_allclose(s[key], base[key], atol=1e-4)
        for key in ("root_vel", "root_ang_vel", "dof_vel", "com_vel"):
            np.testing.assert_allclose(s[key], base[key], atol=2e-3)
        np.testing.assert_allclose(s["phase"], base["phase"], atol=1e-4)
    # the end of a cycle is the start of the next: frame 0 moved by one cycle's displacement
    s = query(lib, WALK_ID, [clip.duration, 2 * clip.duration])
    np.testing.assert_allclose(s["root_pos"], clip.root_pos[[0, 0]] + np.outer([1, 2], delta), atol=1e-4)
    np.testing.assert_allclose(s["dof_pos"], clip.qpos[[0, 0], 7:], atol=1e-4)
    np.testing.assert_allclose(s["phase"], 0.0, atol=1e-4)


def test_carried_heading_keeps_a_spin_turning_from_cycle_to_cycle():
    """The dog's spin turns about 171 degrees per cycle. With carry_heading, cycle k is cycle 0 under the
    rigid map T (turn about z by the clip's heading change around its first root position, then move to
    its last) applied k times, here iterated with scipy; without, the heading snaps back at each seam."""
    dog = os.path.join(REPO_ROOT, "assets", "mjcf", "dog3d.xml")
    spin = os.path.join(REPO_ROOT, "motions", "dog3d_spin.txt")
    plain, carried = MotionLib([spin], dog, "cpu"), MotionLib([spin], dog, "cpu", carry_heading=True)
    d = float(plain.durations[0])
    ends, last = query(plain, 0, [0.0]), query(plain, 0, [d - 1e-6])  # the clip's first and last frames
    first_rot, last_rot = (Rotation.from_quat(q[0][[1, 2, 3, 0]]) for q in (ends["root_rot"], last["root_rot"]))
    heading = [np.arctan2(*r.apply([1.0, 0.0, 0.0])[[1, 0]]) for r in (first_rot, last_rot)]
    turn = (heading[1] - heading[0] + np.pi) % (2 * np.pi) - np.pi
    assert abs(np.degrees(turn)) > 150
    pivot = np.array([ends["root_pos"][0, 0], ends["root_pos"][0, 1], 0.0])
    move = last["root_pos"][0] - ends["root_pos"][0]
    move[2] = 0.0
    step = Rotation.from_euler("z", turn)

    t = np.linspace(0.05, d - 0.05, 7)
    base = query(plain, 0, t)
    for key, value in query(carried, 0, t).items():  # cycle 0 is the clip itself
        np.testing.assert_allclose(value, base[key], atol=1e-5)
    pos, rot = base["body_pos"].copy(), base["body_rot"].copy()
    vel = base["root_vel"].copy()
    for k in (1, 2, 3):
        pos = step.apply((pos - pivot).reshape(-1, 3)).reshape(pos.shape) + pivot + move
        rot = (step * Rotation.from_quat(rot.reshape(-1, 4)[:, [1, 2, 3, 0]])).as_quat()[:, [3, 0, 1, 2]].reshape(rot.shape)
        vel = step.apply(vel)
        got = query(carried, 0, t + k * d)
        np.testing.assert_allclose(got["body_pos"], pos, atol=2e-4)
        assert np.abs(np.abs((got["body_rot"] * rot).sum(-1)) - 1.0).max() < 1e-5  # same rotations (up to sign)
        np.testing.assert_allclose(got["root_vel"], vel, atol=2e-3)
        np.testing.assert_allclose(got["dof_pos"], base["dof_pos"], atol=1e-5)

    def seam_turn(lib):  # degrees the root turns across the first seam, in 2 ms
        a, b = (Rotation.from_quat(query(lib, 0, [x])["root_rot"][0][[1, 2, 3, 0]]) for x in (d - 1e-3, d + 1e-3))
        return np.degrees((a.inv() * b).magnitude())
    # what is left with the heading carried is the clip's own seam: its pitch and roll (5 degrees)
    assert seam_turn(carried) < 10.0 and seam_turn(plain) > 150.0


def test_non_looping_clip_clamps(lib, clips):
    clip = clips[KICK_ID]
    assert not clip.loop
    after = query(lib, KICK_ID, [clip.duration, clip.duration + 0.01, clip.duration + 0.5, clip.duration + 30.0])
    before = query(lib, KICK_ID, [0.0, -0.01, -0.5, -30.0])
    for s, f in ((after, -1), (before, 0)):
        n = len(s["root_pos"])
        np.testing.assert_allclose(s["root_pos"], np.tile(clip.root_pos[f], (n, 1)), atol=POS_TOL)
        assert_same_quat(s["root_rot"], np.tile(wxyz(clip.root_rot[f]), (n, 1)), atol=1e-5)
        np.testing.assert_allclose(s["dof_pos"], np.tile(clip.qpos[f, 7:], (n, 1)), atol=1e-5)
        np.testing.assert_allclose(s["body_pos"], np.tile(clip.body_pos[f], (n, 1, 1)), atol=POS_TOL)
    np.testing.assert_allclose(after["phase"], 1.0, atol=1e-6)
    np.testing.assert_allclose(before["phase"], 0.0, atol=1e-6)


def test_batched_query_with_two_clips(lib, clips):
    """Each env is answered from its own clip, whatever the other envs' clips are."""
    rng = np.random.default_rng(7)
    ids = rng.integers(0, 2, size=40)
    ids[:2] = [WALK_ID, KICK_ID]
    frames = np.array([rng.integers(0, clips[i].num_frames) for i in ids])
    times = np.array([clips[i].times[f] for i, f in zip(ids, frames)])
    s = lib.get_state(torch.tensor(ids), torch.tensor(times, dtype=torch.float32))
    for key, attr in (("root_pos", "root_pos"), ("body_pos", "body_pos")):
        expected = np.stack([getattr(clips[i], attr)[f] for i, f in zip(ids, frames)])
        np.testing.assert_allclose(getattr(s, key).numpy(), expected, atol=POS_TOL)
    expected = np.stack([clips[i].qpos[f, 7:] for i, f in zip(ids, frames)])
    np.testing.assert_allclose(s.dof_pos.numpy(), expected, atol=1e-5)
    expected = np.stack([wxyz(clips[i].root_rot[f]) for i, f in zip(ids, frames)])
    assert_same_quat(s.root_rot.numpy(), expected, atol=1e-5)
    expected = np.array([clips[i].times[f] / clips[i].duration for i, f in zip(ids, frames)])
    np.testing.assert_allclose(s.phase.numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("motion_id", [WALK_ID, KICK_ID])
def test_velocities_are_forward_differences(lib, clips, motion_id):
    clip = clips[motion_id]
    f = np.arange(clip.num_frames - 1 if clip.loop else clip.num_frames)
    s = query(lib, motion_id, clip.times[f])
    np.testing.assert_allclose(s["root_vel"], fwd_diff(clip.root_pos, clip.dt)[f], atol=1e-3)
    np.testing.assert_allclose(s["dof_vel"], fwd_diff(clip.qpos[:, 7:], clip.dt)[f], atol=1e-3)
    np.testing.assert_allclose(s["com_vel"], fwd_diff(clip.com, clip.dt)[f], atol=1e-3)
    # world-frame angular velocity: the rotation from frame i to i+1, R_{i+1} R_i^-1, over dt
    step = (clip.root_rot[1:] * clip.root_rot[:-1].inv()).as_rotvec() / clip.dt[:-1, None]
    np.testing.assert_allclose(s["root_ang_vel"], np.concatenate([step, step[-1:]])[f], atol=1e-3)
    # the walk moves forward at about 1 m/s
    if motion_id == WALK_ID:
        assert 0.5 < s["root_vel"][:, 0].mean() < 1.5


def test_velocities_between_frames_are_interpolated(lib, clips):
    clip = clips[WALK_ID]
    f = np.arange(0, clip.num_frames - 2)
    s = query(lib, WALK_ID, clip.times[f] + 0.5 * clip.dt[f])
    vel = fwd_diff(clip.root_pos, clip.dt)
    np.testing.assert_allclose(s["root_vel"], 0.5 * (vel[f] + vel[f + 1]), atol=1e-3)


def test_weights_sampling():
    lib = MotionLib([WALK, KICK], MJCF, "cpu", weights=[1.0, 3.0])
    torch.manual_seed(0)
    ids = lib.sample_motions(20000)
    assert set(ids.unique().tolist()) == {0, 1}
    assert (ids == 1).float().mean().item() == pytest.approx(0.75, abs=0.015)
    times = lib.sample_times(ids)
    durations = torch.tensor([lib.durations[0].item(), lib.durations[1].item()])[ids]
    assert (times >= 0).all() and (times <= durations).all()
    # the times cover each clip (not just its start)
    assert (times[ids == 1] > 0.9 * durations[ids == 1]).any()
    only_kick = MotionLib([WALK, KICK], MJCF, "cpu", weights=[0.0, 1.0])
    assert (only_kick.sample_motions(500) == 1).all()


@pytest.mark.parametrize("weights", [[1.0], [1.0, -1.0], [0.0, 0.0]])
def test_bad_weights_rejected(weights):
    with pytest.raises(ValueError, match="weights"):
        MotionLib([WALK, KICK], MJCF, "cpu", weights=weights)
