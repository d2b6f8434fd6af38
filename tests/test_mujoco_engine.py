"""tasks.engines.mujoco_engine.MujocoEngine against MuJoCo's own computations.

Every engine readout is recomputed here on a fresh MjData built from the engine's public state
(root_state + dof_state): body frames from mj_forward (xpos, xquat), body velocities from
mj_objectVelocity (world frame, at the body frame), the centre-of-mass velocity from
mj_subtreeVel and from the mass-weighted body COM velocities, ground contact forces from
mj_contactForce rotated out of each contact frame (the Engine contract: the force the ground
exerts on each body, +z for a foot standing on it). Stepping is checked against plain mj_step on
the character's own MJCF. The PD hold test measures how well the position actuators keep a
reference pose with the root pinned, and shows the same check failing without PD.
"""
import json
import os

import mujoco
import numpy as np
import pytest
import torch

from tasks.engines.engine import EngineConfig
from tasks.engines.mujoco_engine import MujocoEngine
from tasks.reference.motion_lib import MotionLib
from poselib_utils.repository import REPO_ROOT

MJCF = os.path.join(REPO_ROOT, "assets", "mjcf", "humanoid3d.xml")
WALK = os.path.join(REPO_ROOT, "motions", "humanoid3d_walk.txt")
SIM_DT = 1.0 / 120.0
SUBSTEPS = 4
STATE_TOL = 1e-4  # float32 buffers
MID_STANCE_FRAME = 5  # walk: right foot flat on the floor, left foot at the top of its swing
with open(WALK) as _f:
    WALK_FRAME_TIMES = np.concatenate([[0.0], np.cumsum([frame[0] for frame in json.load(_f)["Frames"]][:-1])])
RIGHT_ANKLE, LEFT_ANKLE = "right_ankle", "left_ankle"
# PD hold (measured on this machine: 0.0022 rad from the reference pose, 0.0054 rad 0.5 s after a
# 0.2 rad perturbation; targets = zeros leave 1.24 rad, zero gains 2.64 rad)
PD_HOLD_BOUND = 0.05
PD_FAIL_MIN = 0.5


def make_engine(num_envs):
    return MujocoEngine(EngineConfig(mjcf_path=MJCF, num_envs=num_envs, sim_dt=SIM_DT, substeps=SUBSTEPS,
                                     num_threads=2))


@pytest.fixture(scope="module")
def lib():
    return MotionLib([WALK], MJCF, "cpu")


def ref_state(lib, times):
    times = torch.as_tensor(times, dtype=torch.float32)
    return lib.get_state(torch.zeros(times.shape, dtype=torch.long), times)


def set_ref(engine, ref, env_ids=None):
    engine.set_state(env_ids, ref.root_pos, ref.root_rot, ref.root_vel, ref.root_ang_vel, ref.dof_pos, ref.dof_vel)


def engine_qpos_qvel(engine, i):
    """qpos/qvel of env i from the engine's public readouts (free joint: world linear velocity,
    body-frame angular velocity)."""
    root = engine.root_state()[i].double().numpy()
    dof = engine.dof_state()[i].double().numpy()
    quat = root[3:7] / np.linalg.norm(root[3:7])
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, quat)
    qpos = np.concatenate([root[0:3], quat, dof[:, 0]])
    qvel = np.concatenate([root[7:10], rot.reshape(3, 3).T @ root[10:13], dof[:, 1]])
    return qpos, qvel


def mujoco_readouts(model, qpos, qvel, ctrl=None):
    """What MuJoCo itself says for this state: body states [B, 13], COM velocity (two ways),
    net force the ground exerts on each body [B, 3] (world)."""
    data = mujoco.MjData(model)
    data.qpos[:] = qpos
    data.qvel[:] = qvel
    if ctrl is not None:
        data.ctrl[:] = ctrl
    mujoco.mj_forward(model, data)
    mujoco.mj_subtreeVel(model, data)
    nb = model.nbody - 1
    body = np.zeros((nb, 13))
    com_vel = np.zeros(3)
    res = np.zeros(6)
    for b in range(1, model.nbody):
        mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_XBODY, b, res, 0)
        body[b - 1] = np.concatenate([data.xpos[b], data.xquat[b], res[3:6], res[0:3]])
        mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_BODY, b, res, 0)  # at the body's COM
        com_vel += model.body_mass[b] * res[3:6]
    com_vel /= model.body_mass[1:].sum()
    contact = np.zeros((nb, 3))
    for c in range(data.ncon):
        con = data.contact[c]
        wrench = np.zeros(6)
        mujoco.mj_contactForce(model, data, c, wrench)
        # contact-frame force on geom2 (normal points from geom1 to geom2), rotated to world
        force = con.frame.reshape(3, 3).T @ wrench[0:3]
        b1, b2 = model.geom_bodyid[con.geom1], model.geom_bodyid[con.geom2]
        if b2 > 0:
            contact[b2 - 1] += force
        if b1 > 0:
            contact[b1 - 1] -= force
    return body, data.subtree_linvel[1].copy(), com_vel, contact


def assert_body_state(actual, expected, atol=STATE_TOL):
    actual = actual.double().numpy()
    np.testing.assert_allclose(actual[:, 0:3], expected[:, 0:3], atol=atol)
    sign = np.sign(np.sum(actual[:, 3:7] * expected[:, 3:7], axis=-1, keepdims=True))
    np.testing.assert_allclose(actual[:, 3:7], sign * expected[:, 3:7], atol=atol)
    np.testing.assert_allclose(actual[:, 7:10], expected[:, 7:10], atol=atol)
    np.testing.assert_allclose(actual[:, 10:13], expected[:, 10:13], atol=atol)


def check_against_mujoco(engine, ctrl=None, contact_atol=0.05):
    model = engine.model
    for i in range(engine.num_envs):
        qpos, qvel = engine_qpos_qvel(engine, i)
        body, subtree_vel, com_vel, contact = mujoco_readouts(model, qpos, qvel,
                                                              None if ctrl is None else ctrl[i].numpy())
        assert_body_state(engine.body_state()[i], body)
        np.testing.assert_allclose(engine.com_velocity()[i].numpy(), subtree_vel, atol=STATE_TOL)
        np.testing.assert_allclose(engine.com_velocity()[i].numpy(), com_vel, atol=STATE_TOL)
        if ctrl is not None:
            np.testing.assert_allclose(engine.contact_forces()[i].numpy(), contact, atol=contact_atol, rtol=1e-4)


@pytest.fixture
def airborne_state():
    """An env lifted 1 m with a tumbling root and moving joints (no contacts)."""
    rng = np.random.default_rng(3)
    quat = rng.normal(size=4)
    quat /= np.linalg.norm(quat)
    return dict(root_pos=torch.tensor([[0.3, -0.2, 2.0]]), root_rot=torch.tensor([quat], dtype=torch.float32),
                root_vel=torch.tensor([[0.5, -1.0, 0.3]]), root_ang_vel=torch.tensor([[1.5, -2.0, 0.7]]),
                dof_pos=torch.tensor(rng.uniform(-0.5, 0.5, size=(1, 28)), dtype=torch.float32),
                dof_vel=torch.tensor(rng.uniform(-2.0, 2.0, size=(1, 28)), dtype=torch.float32))


def test_set_state_readouts_match_mujoco(lib, airborne_state):
    engine = make_engine(4)
    ref = ref_state(lib, WALK_FRAME_TIMES[[0, 9, 18]].tolist())
    set_ref(engine, ref, torch.arange(3))
    engine.set_state(torch.tensor([3]), **airborne_state)
    check_against_mujoco(engine)
    # the root velocities read back are the world-frame ones that were set
    root = engine.root_state()
    np.testing.assert_allclose(root[:3, 7:10].numpy(), ref.root_vel.numpy(), atol=1e-5)
    np.testing.assert_allclose(root[:3, 10:13].numpy(), ref.root_ang_vel.numpy(), atol=1e-5)
    np.testing.assert_allclose(root[3, 7:10].numpy(), airborne_state["root_vel"][0].numpy(), atol=1e-5)
    np.testing.assert_allclose(root[3, 10:13].numpy(), airborne_state["root_ang_vel"][0].numpy(), atol=1e-5)
    np.testing.assert_allclose(engine.dof_state()[:3, :, 0].numpy(), ref.dof_pos.numpy(), atol=1e-6)
    np.testing.assert_allclose(engine.dof_state()[:3, :, 1].numpy(), ref.dof_vel.numpy(), atol=1e-6)
    # bodies where the reference (MuJoCo FK of the clip) puts them
    np.testing.assert_allclose(engine.body_state()[:3, :, 0:3].numpy(), ref.body_pos.numpy(), atol=1e-5)


def test_readouts_match_mujoco_after_steps_under_random_pd_targets(lib, airborne_state):
    engine = make_engine(4)
    ref = ref_state(lib, [0.1, 0.45, 0.8, 0.0])
    set_ref(engine, ref)
    engine.set_state(torch.tensor([3]), **airborne_state)
    gen = torch.Generator().manual_seed(0)
    targets = None
    for _ in range(8):
        targets = ref.dof_pos + 0.3 * torch.randn(ref.dof_pos.shape, generator=gen)
        engine.set_pd_targets(targets)
        engine.step()
    assert torch.isfinite(engine.body_state()).all()
    # the state has moved well away from where it started
    assert (engine.dof_state()[..., 0] - ref.dof_pos).abs().max() > 0.05
    check_against_mujoco(engine, ctrl=targets)


def test_step_is_substeps_of_mj_step(airborne_state):
    """One engine step = SUBSTEPS MuJoCo steps of SIM_DT with the PD targets as position-actuator
    controls (an airborne character: no contacts, so the result is exact)."""
    engine = make_engine(1)
    engine.set_state(None, **airborne_state)
    targets = airborne_state["dof_pos"] + 0.4
    model = mujoco.MjModel.from_xml_path(MJCF)
    model.opt.timestep = SIM_DT
    data = mujoco.MjData(model)
    data.qpos[:], data.qvel[:] = engine_qpos_qvel(engine, 0)
    for _ in range(2):
        engine.set_pd_targets(targets)
        engine.step()
        data.ctrl[:] = targets[0].numpy()
        for _ in range(SUBSTEPS):
            mujoco.mj_step(model, data)
    np.testing.assert_allclose(engine.dof_state()[0, :, 0].numpy(), data.qpos[7:], atol=1e-5)
    np.testing.assert_allclose(engine.dof_state()[0, :, 1].numpy(), data.qvel[6:], atol=1e-4)
    mujoco.mj_forward(model, data)
    np.testing.assert_allclose(engine.body_state()[0, :, 0:3].numpy(), data.xpos[1:], atol=1e-5)
    # and it did move: the joints are heading for the targets
    assert (engine.dof_state()[0, :, 0] - airborne_state["dof_pos"][0]).abs().max() > 0.01


def test_contact_forces(lib, airborne_state):
    engine = make_engine(2)
    bodies = engine.body_names
    # stale controls in the engine's scratch data must not leak into a reset's contact forces
    engine.set_pd_targets(torch.full((2, 28), 0.8))
    engine.step()
    ref = ref_state(lib, [0.0])  # the first frame: right foot on (slightly into) the floor
    set_ref(engine, ref, torch.tensor([0]))
    engine.set_state(torch.tensor([1]), **airborne_state)
    forces = engine.contact_forces()
    # in the air: nothing touches the ground
    assert forces[1].abs().max().item() == 0.0
    # standing on the right foot: the ground pushes the foot up, nothing else touches
    right = bodies.index(RIGHT_ANKLE)
    assert forces[0, right, 2].item() > 10.0
    assert forces[0, right].norm().item() > 10.0
    others = [b for b in range(len(bodies)) if b != right]
    assert forces[0, others].abs().max().item() == 0.0
    # the same force MuJoCo computes, with the reset pose as the held PD target
    qpos, qvel = engine_qpos_qvel(engine, 0)
    _, _, _, contact = mujoco_readouts(engine.model, qpos, qvel, ref.dof_pos[0].numpy())
    np.testing.assert_allclose(forces[0].numpy(), contact, atol=0.05, rtol=1e-4)

    # held upright with the root pinned, the feet carry the character's weight on average
    root_pos, root_rot = ref.root_pos.clone(), ref.root_rot.clone()
    zeros = torch.zeros(1, 3)
    support = []
    for _ in range(30):
        engine.set_pd_targets(ref.dof_pos.repeat(2, 1))
        engine.step()
        support.append(engine.contact_forces()[0, :, 2].sum().item())
        dof = engine.dof_state()[0:1]
        engine.set_state(torch.tensor([0]), root_pos, root_rot, zeros, zeros, dof[..., 0].clone(), dof[..., 1].clone())
    weight = float(engine.model.body_mass.sum()) * 9.81  # MuJoCo's compiled masses
    assert np.mean(np.array(support) > 0.0) > 0.8
    assert 0.3 * weight < np.mean(support) < 3.0 * weight


def pd_hold(lib, start_dof, targets, ground=True, zero_gains=False):
    """Pin the root at the mid-stance reference pose (feet on the floor, or 0.3 m up) each policy
    step, drive the joints towards ``targets`` for 2 s; returns the per-step max joint error
    against the reference pose [60, N] and the final dof state."""
    n = start_dof.shape[0]
    engine = make_engine(n)
    if zero_gains:
        engine.model.actuator_gainprm[:, 0] = 0.0
        engine.model.actuator_biasprm[:, 1:3] = 0.0
    ref = ref_state(lib, [float(WALK_FRAME_TIMES[MID_STANCE_FRAME])])
    root_pos = ref.root_pos.repeat(n, 1)
    if not ground:
        root_pos[:, 2] += 0.3
    root_rot = ref.root_rot.repeat(n, 1)
    zeros = torch.zeros(n, 3)
    engine.set_state(None, root_pos, root_rot, zeros, zeros, start_dof, torch.zeros_like(start_dof))
    errors = []
    for _ in range(60):  # 2 s at 30 Hz, 4 substeps of 120 Hz each
        engine.set_pd_targets(targets)
        engine.step()
        dof = engine.dof_state()
        assert torch.isfinite(dof).all() and torch.isfinite(engine.body_state()).all()
        errors.append((dof[..., 0] - ref.dof_pos).abs().max(dim=-1).values)
        engine.set_state(None, root_pos, root_rot, zeros, zeros, dof[..., 0].clone(), dof[..., 1].clone())
    return torch.stack(errors), ref


def test_pd_hold_keeps_reference_pose(lib):
    ref = ref_state(lib, [float(WALK_FRAME_TIMES[MID_STANCE_FRAME])])
    gen = torch.Generator().manual_seed(0)
    start = torch.cat([ref.dof_pos, ref.dof_pos + 0.2 * torch.randn(1, 28, generator=gen)])
    errors, _ = pd_hold(lib, start, ref.dof_pos.repeat(2, 1))
    hold, recover = errors[:, 0], errors[:, 1]
    assert hold.max().item() < PD_HOLD_BOUND, hold.max().item()
    assert recover[0].item() > 0.1  # it started away from the pose ...
    assert recover[15:].max().item() < PD_HOLD_BOUND, recover[15:].max().item()  # ... and got there in 0.5 s


def test_pd_hold_check_fails_without_pd(lib):
    ref = ref_state(lib, [float(WALK_FRAME_TIMES[MID_STANCE_FRAME])])
    # targets far from the reference pose: the joints follow the targets, not the pose
    errors, _ = pd_hold(lib, ref.dof_pos, torch.zeros(1, 28))
    assert errors[-1].item() > PD_FAIL_MIN
    # no PD at all: the stance leg folds under the character's weight
    errors, _ = pd_hold(lib, ref.dof_pos, ref.dof_pos, zero_gains=True)
    assert errors[-1].item() > PD_FAIL_MIN


def test_set_state_with_a_mask_equals_set_state_with_indices(lib):
    """A bool mask with N rows resets exactly the masked envs, like the same envs by index."""
    ids = torch.tensor([1, 3])
    mask = torch.zeros(4, dtype=torch.bool)
    mask[ids] = True
    ref = ref_state(lib, [0.1, 0.3, 0.5, 0.7])
    by_index = MujocoEngine(EngineConfig(MJCF, 4, 1.0 / 120.0, 4))
    by_mask = MujocoEngine(EngineConfig(MJCF, 4, 1.0 / 120.0, 4))
    try:
        by_index.set_state(ids, ref.root_pos[ids], ref.root_rot[ids], ref.root_vel[ids], ref.root_ang_vel[ids],
                           ref.dof_pos[ids], ref.dof_vel[ids])
        by_mask.set_state(mask, ref.root_pos, ref.root_rot, ref.root_vel, ref.root_ang_vel, ref.dof_pos, ref.dof_vel)
        assert torch.equal(by_index.body_state(), by_mask.body_state())
        assert torch.equal(by_index.dof_state(), by_mask.dof_state())
        assert not torch.allclose(by_mask.body_state()[0], by_mask.body_state()[1])
    finally:
        by_index.close()
        by_mask.close()
