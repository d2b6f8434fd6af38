"""MuJoCo-Warp engine against MuJoCo C: the CPU engine, and mj_forward directly.

Runs on CUDA when torch sees a GPU, else on Warp's CPU device with a few worlds (mujoco_warp
compiles its kernels for the CPU on first use: about 30 s on two cores, cached afterwards).
"""
import mujoco
import numpy as np
import pytest
import torch

mjw = pytest.importorskip("mujoco_warp")

from tasks.engines import ENGINES, build_engine, resolve_engine_name  # noqa: E402
from tasks.engines.engine import EngineConfig  # noqa: E402
from tasks.engines.mujoco_engine import MujocoEngine  # noqa: E402
from tasks.engines.mujoco_scene import FLOOR_NAME, build_scene_xml  # noqa: E402
from tasks.engines.mujoco_warp_engine import MujocoWarpEngine  # noqa: E402
from tasks.rotations import quat_diff_angle, quat_from_axis_angle, quat_rotate_inverse  # noqa: E402

DEVICE = "cuda:0" if torch.cuda.is_available() else "cpu"
NUM_ENVS = 4
SIM_DT = 1.0 / 120.0
SUBSTEPS = 4
HORIZON_S = 0.5

# Cross-engine tolerances over HORIZON_S (float32 Warp vs float64 C). On Warp's CPU device the
# largest differences seen were ~1e-6 m, ~3e-6 rad, ~2e-5 m/s and ~8e-5 rad/s; the bounds leave
# room for the GPU's different summation order (atomics) through two landings.
POS_TOL = 5e-3  # m
ROT_TOL = 1e-2  # rad
LIN_VEL_TOL = 5e-2  # m/s
ANG_VEL_TOL = 1e-1  # rad/s
DOF_POS_TOL = 1e-2  # rad
DOF_VEL_TOL = 1e-1  # rad/s
# At one state (set_state): only float32 rounding and the solver's stopping point differ.
FWD_TOL = 1e-4
FWD_VEL_TOL = 1e-3
FORCE_REL_TOL = 2e-2
FORCE_ABS_TOL = 1.0  # N


@pytest.fixture(scope="module")
def cfg(committed_mjcf_path):
    return EngineConfig(mjcf_path=committed_mjcf_path, num_envs=NUM_ENVS, sim_dt=SIM_DT, substeps=SUBSTEPS,
                        device=DEVICE)


@pytest.fixture(scope="module")
def warp_engine(cfg):
    engine = MujocoWarpEngine(cfg)
    yield engine
    engine.close()


def reference_state(engine, seed, root_height, dof_scale=0.2, vel_scale=1.0):
    """A perturbed reference pose, different in every env, with root and joint velocities."""
    n, d = engine.num_envs, engine.num_dofs
    gen = torch.Generator().manual_seed(seed)
    dof_pos = dof_scale * torch.randn(n, d, generator=gen)
    for name in ("right_knee", "left_knee"):  # keep the knees inside their range (bent backwards)
        i = engine.dof_names.index(name)
        dof_pos[:, i] = -dof_pos[:, i].abs()
    for name in ("right_elbow", "left_elbow"):
        i = engine.dof_names.index(name)
        dof_pos[:, i] = dof_pos[:, i].abs()
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1)
    root_rot = quat_from_axis_angle(axis, 0.1 * torch.rand(n, generator=gen))
    root_pos = torch.cat([0.2 * torch.randn(n, 2, generator=gen), torch.full((n, 1), root_height)], dim=-1)
    root_vel = vel_scale * torch.cat([0.5 * torch.randn(n, 2, generator=gen), torch.zeros(n, 1)], dim=-1)
    root_ang_vel = vel_scale * 0.3 * torch.randn(n, 3, generator=gen)
    dof_vel = vel_scale * 0.5 * torch.randn(n, d, generator=gen)
    return root_pos, root_rot, root_vel, root_ang_vel, dof_pos, dof_vel


def drop_height(model_path):
    """Root height that puts the default pose's lowest point 0.1 m above the floor."""
    m = mujoco.MjModel.from_xml_string(build_scene_xml(model_path, with_sensors=False))
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    floor = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, FLOOR_NAME)
    lowest = min(d.geom_xpos[g][2] - geom_extent_z(m, d, g) for g in range(m.ngeom) if g != floor)
    return d.qpos[2] - lowest + 0.1


def geom_extent_z(m, d, g):
    size, rot = m.geom_size[g], d.geom_xmat[g].reshape(3, 3)
    if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_SPHERE:
        return size[0]
    if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_CAPSULE:
        return size[0] + size[1] * abs(rot[2, 2])
    if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX:
        return float(np.abs(rot[2]) @ size)
    return m.geom_rbound[g]


def c_forward(m, state, env, ctrl):
    """mj_forward of one env's state; returns MjData."""
    root_pos, root_rot, root_vel, root_ang_vel, dof_pos, dof_vel = (x[env].double().cpu().numpy() for x in state)
    d = mujoco.MjData(m)
    local_ang_vel = quat_rotate_inverse(torch.tensor(root_rot), torch.tensor(root_ang_vel)).numpy()
    d.qpos[:] = np.concatenate([root_pos, root_rot, dof_pos])
    d.qvel[:] = np.concatenate([root_vel, local_ang_vel, dof_vel])
    d.ctrl[:] = ctrl
    mujoco.mj_forward(m, d)
    mujoco.mj_subtreeVel(m, d)
    return d


def c_body_state(m, d):
    rows = []
    for b in range(1, m.nbody):
        vel = np.zeros(6)
        mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_XBODY, b, vel, 0)  # [angular; linear], world
        rows.append(np.concatenate([d.xpos[b], d.xquat[b], vel[3:], vel[:3]]))
    return np.stack(rows)


def c_floor_forces(m, d):
    """Per-body force the floor exerts on each body (the Engine contract's sign), world frame."""
    floor = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, FLOOR_NAME)
    out = np.zeros((m.nbody - 1, 3))
    for i in range(d.ncon):
        con = d.contact[i]
        if floor not in (con.geom1, con.geom2):
            continue
        local = np.zeros(6)
        mujoco.mj_contactForce(m, d, i, local)
        on_geom2 = con.frame.reshape(3, 3).T @ local[:3]  # the force geom1 exerts on geom2
        if con.geom1 == floor:
            out[m.geom_bodyid[con.geom2] - 1] += on_geom2
        else:
            out[m.geom_bodyid[con.geom1] - 1] -= on_geom2
    return out


def assert_close_to_c_forward(engine, state, envs, cfg):
    m = mujoco.MjModel.from_xml_string(build_scene_xml(cfg.mjcf_path, with_sensors=False))
    body_state = engine.body_state().cpu().numpy()
    for env in envs:
        d = c_forward(m, state, env, state[4][env].double().cpu().numpy())
        want = c_body_state(m, d)
        got = body_state[env]
        np.testing.assert_allclose(got[:, :3], want[:, :3], atol=FWD_TOL)
        angle = quat_diff_angle(torch.tensor(got[:, 3:7]).double(), torch.tensor(want[:, 3:7]))
        assert float(angle.max()) < FWD_TOL
        np.testing.assert_allclose(got[:, 7:], want[:, 7:], atol=FWD_VEL_TOL)
        np.testing.assert_allclose(engine.com_velocity()[env].cpu().numpy(), d.subtree_linvel[1], atol=FWD_VEL_TOL)
        np.testing.assert_allclose(engine.dof_state()[env, :, 0].cpu().numpy(), d.qpos[7:], atol=FWD_TOL)
        np.testing.assert_allclose(engine.dof_state()[env, :, 1].cpu().numpy(), d.qvel[6:], atol=FWD_VEL_TOL)
        forces = c_floor_forces(m, d)
        got_forces = engine.contact_forces()[env].cpu().numpy()
        np.testing.assert_allclose(got_forces, forces, rtol=FORCE_REL_TOL, atol=FORCE_ABS_TOL)


def test_set_state_matches_mj_forward(warp_engine, cfg):
    # Low enough that the feet press into the floor, so the contact forces are checked too.
    state = reference_state(warp_engine, seed=1, root_height=drop_height(cfg.mjcf_path) - 0.11, dof_scale=0.05)
    warp_engine.set_state(None, *state)
    assert float(warp_engine.contact_forces()[..., 2].sum()) > 100.0  # the floor pushes the feet up
    assert_close_to_c_forward(warp_engine, state, range(NUM_ENVS), cfg)


def test_set_state_subset_leaves_other_envs(warp_engine, cfg):
    first = reference_state(warp_engine, seed=2, root_height=1.2)
    warp_engine.set_state(None, *first)
    before = warp_engine.body_state().clone()
    ids = torch.tensor([1, 3], device=warp_engine.device)
    second = reference_state(warp_engine, seed=3, root_height=1.5)
    warp_engine.set_state(ids, *(x[ids.cpu()] for x in second))
    after = warp_engine.body_state()
    assert torch.equal(after[[0, 2]], before[[0, 2]])
    merged = tuple(a.clone() for a in first)
    for a, b in zip(merged, second):
        a[ids.cpu()] = b[ids.cpu()]
    assert_close_to_c_forward(warp_engine, merged, range(NUM_ENVS), cfg)
    warp_engine.set_state(ids[:0], *(x[:0] for x in second))  # no envs: a no-op


def test_set_state_with_a_mask_writes_only_masked_envs(warp_engine, cfg):
    first = reference_state(warp_engine, seed=2, root_height=1.2)
    warp_engine.set_state(None, *first)
    before = warp_engine.body_state().clone()
    mask = torch.zeros(NUM_ENVS, dtype=torch.bool, device=warp_engine.device)
    mask[[1, 3]] = True
    second = reference_state(warp_engine, seed=3, root_height=1.5)
    warp_engine.set_state(mask, *second)
    assert torch.equal(warp_engine.body_state()[[0, 2]], before[[0, 2]])
    merged = tuple(torch.where(mask.cpu().view((-1,) + (1,) * (a.dim() - 1)), b, a) for a, b in zip(first, second))
    assert_close_to_c_forward(warp_engine, merged, range(NUM_ENVS), cfg)


def test_views_are_stable_buffers(warp_engine, cfg):
    warp_engine.set_state(None, *reference_state(warp_engine, seed=4, root_height=1.0))
    views = [warp_engine.body_state(), warp_engine.dof_state(), warp_engine.com_velocity(),
             warp_engine.contact_forces(), warp_engine.root_state()]
    ptrs = [v.data_ptr() for v in views]
    before = views[0].clone()
    warp_engine.step()
    assert [v.data_ptr() for v in (warp_engine.body_state(), warp_engine.dof_state(), warp_engine.com_velocity(),
                                   warp_engine.contact_forces(), warp_engine.root_state())] == ptrs
    assert not torch.equal(before, views[0])  # updated in place
    n, b, dofs = NUM_ENVS, warp_engine.num_bodies, warp_engine.num_dofs
    assert views[0].shape == (n, b, 13) and views[1].shape == (n, dofs, 2) and views[2].shape == (n, 3)
    assert views[3].shape == (n, b, 3) and views[4].shape == (n, 13)
    assert all(v.device == warp_engine.device and v.dtype == torch.float32 for v in views)


def test_step_equals_plain_mujoco_warp_steps(warp_engine):
    """The first substep reuses the last forward (step2): same result as ``substeps`` mjw.step."""
    warp_engine.set_state(None, *reference_state(warp_engine, seed=5, root_height=0.95))
    gen = torch.Generator().manual_seed(5)
    warp_engine.set_pd_targets(0.3 * torch.randn(NUM_ENVS, warp_engine.num_dofs, generator=gen).to(warp_engine.device))
    saved = [t.clone() for t in (warp_engine._qpos, warp_engine._qvel, warp_engine._qacc_warmstart)]
    warp_engine.step()
    qpos, qvel = warp_engine._qpos.clone(), warp_engine._qvel.clone()
    for view, value in zip((warp_engine._qpos, warp_engine._qvel, warp_engine._qacc_warmstart), saved):
        view.copy_(value)
    warp_engine._launch(None, lambda: [mjw.step(warp_engine._m, warp_engine._d) for _ in range(SUBSTEPS)])
    if warp_engine.device.type == "cuda":
        torch.cuda.synchronize(warp_engine.device)
    assert torch.allclose(warp_engine._qpos, qpos, atol=1e-5)
    assert torch.allclose(warp_engine._qvel, qvel, atol=1e-4)


def test_matches_cpu_engine_over_half_a_second(warp_engine, cfg):
    cpu_engine = MujocoEngine(EngineConfig(mjcf_path=cfg.mjcf_path, num_envs=NUM_ENVS, sim_dt=SIM_DT,
                                           substeps=SUBSTEPS, num_threads=1))
    try:
        # Dropped 0.1 m above the floor with velocities; lands within the horizon.
        state = reference_state(warp_engine, seed=6, root_height=drop_height(cfg.mjcf_path))
        gen = torch.Generator().manual_seed(6)
        targets = state[4] + 0.1 * torch.randn(NUM_ENVS, warp_engine.num_dofs, generator=gen)
        warp_engine.set_state(None, *(x.to(warp_engine.device) for x in state))
        cpu_engine.set_state(None, *state)
        landed = False
        for _ in range(round(HORIZON_S / (SIM_DT * SUBSTEPS))):
            for engine in (warp_engine, cpu_engine):
                engine.set_pd_targets(targets.to(engine.device))
                engine.step()
            got, want = warp_engine.body_state().cpu(), cpu_engine.body_state()
            assert float((got[..., :3] - want[..., :3]).abs().max()) < POS_TOL
            assert float(quat_diff_angle(got[..., 3:7], want[..., 3:7]).max()) < ROT_TOL
            assert float((got[..., 7:10] - want[..., 7:10]).abs().max()) < LIN_VEL_TOL
            assert float((got[..., 10:] - want[..., 10:]).abs().max()) < ANG_VEL_TOL
            dof_got, dof_want = warp_engine.dof_state().cpu(), cpu_engine.dof_state()
            assert float((dof_got[..., 0] - dof_want[..., 0]).abs().max()) < DOF_POS_TOL
            assert float((dof_got[..., 1] - dof_want[..., 1]).abs().max()) < DOF_VEL_TOL
            assert float((warp_engine.com_velocity().cpu() - cpu_engine.com_velocity()).abs().max()) < LIN_VEL_TOL
            # Net normal force per env: the same sign and size as the CPU engine's contact sensors.
            fz_got = warp_engine.contact_forces()[..., 2].sum(-1).cpu()
            fz_want = cpu_engine.contact_forces()[..., 2].sum(-1)
            assert torch.allclose(fz_got, fz_want, rtol=0.1, atol=20.0), (fz_got, fz_want)
            landed = landed or bool((fz_want > 100.0).any())
        assert landed
    finally:
        cpu_engine.close()


def test_nan_reaches_the_task_and_stays_in_its_env(warp_engine):
    state = reference_state(warp_engine, seed=7, root_height=1.0)
    state[5][0] = float("nan")
    warp_engine.set_state(None, *(x.to(warp_engine.device) for x in state))
    warp_engine.set_pd_targets(state[4].to(warp_engine.device))
    warp_engine.step()
    body_state = warp_engine.body_state()
    assert torch.isnan(body_state[0]).any()
    assert torch.isfinite(body_state[1:]).all()
    warp_engine.set_state(None, *reference_state(warp_engine, seed=7, root_height=1.0))
    warp_engine.step()
    assert torch.isfinite(warp_engine.body_state()).all()


def test_factory(monkeypatch, cfg):
    assert "mujoco_warp" in ENGINES
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_engine_name("auto") == "mujoco_warp"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_engine_name("auto") == "mujoco"
    monkeypatch.undo()
    engine = build_engine("mujoco_warp", EngineConfig(mjcf_path=cfg.mjcf_path, num_envs=2, sim_dt=SIM_DT,
                                                      substeps=SUBSTEPS, device=DEVICE))
    assert isinstance(engine, MujocoWarpEngine) and engine.body_state().shape[:2] == (2, engine.num_bodies)
    engine.close()


def test_kernel_compilation_says_one_line_not_one_per_module(tmp_path):
    """A first build (an empty kernel cache) prints what it is doing and how long it took, not Warp's
    line per loaded module (about 45 of them)."""
    import os
    import subprocess
    import sys

    from poselib_utils.repository import REPO_ROOT

    code = ("import warp as wp\nwp.config.kernel_cache_dir = {!r}\n"
            "from tasks.engines import EngineConfig, build_engine\nfrom poselib_utils.repository import DEFAULT_MJCF\n"
            "build_engine('mujoco_warp', EngineConfig(mjcf_path=DEFAULT_MJCF, num_envs=2, sim_dt=1 / 120, substeps=1, "
            "device={!r}))\n").format(str(tmp_path), DEVICE)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert not [line for line in lines if line.startswith("Module ")], lines
    assert lines[0].startswith("MuJoCo-Warp: building the physics kernels for") and str(tmp_path) in lines[0]
    assert lines[1].startswith("MuJoCo-Warp: kernels ready in") and len(lines) == 2, lines
