"""External body forces through the engine seam (pushes), checked against Newton's second law with
MuJoCo's own masses and gravity, and on the IsaacGym stand-in against IsaacGym's force-tensor rules."""
import importlib.util
import textwrap

import mujoco
import pytest
import torch

from poselib_utils.repository import DEFAULT_MJCF
from tasks.engines import build_engine
from tasks.engines.engine import EngineConfig
from tasks.engines.mujoco_scene import compile_scene
from test_isaacgym_engine import on_standin

SIM_DT = 1.0 / 120.0
SUBSTEPS = 4
NUM_ENVS = 3
ENGINES = ["mujoco", pytest.param("mujoco_warp", marks=pytest.mark.skipif(
    importlib.util.find_spec("mujoco_warp") is None, reason="needs mujoco_warp"))]


@pytest.fixture(scope="module", params=ENGINES)
def engine(request):
    device = "cuda:0" if request.param == "mujoco_warp" and torch.cuda.is_available() else "cpu"
    built = build_engine(request.param, EngineConfig(mjcf_path=DEFAULT_MJCF, num_envs=NUM_ENVS, sim_dt=SIM_DT,
                                                     substeps=SUBSTEPS, device=device, num_threads=2))
    yield built
    built.close()


def drop_from_rest(engine):
    """Every env at rest 3 m up (no ground contact within a step), holding its pose."""
    n, d, dev = engine.num_envs, engine.num_dofs, engine.device
    up, upright = torch.tensor([[0.0, 0.0, 3.0]] * n, device=dev), torch.tensor([[1.0, 0, 0, 0]] * n, device=dev)
    zeros3, zeros_dof = torch.zeros(n, 3, device=dev), torch.zeros(n, d, device=dev)
    engine.set_state(None, up, upright, zeros3, zeros3, zeros_dof, zeros_dof)
    engine.set_pd_targets(torch.zeros(n, d, device=dev))


def mujoco_pushed_from_rest(body, force, steps):
    """MuJoCo itself: the scene 3 m up at rest, ``force`` on ``body``'s centre of mass for ``steps``
    physics steps; the COM velocity and body positions afterwards."""
    m = compile_scene(DEFAULT_MJCF, SIM_DT)
    d = mujoco.MjData(m)
    d.qpos[0:3] = [0.0, 0.0, 3.0]
    d.xfrc_applied[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, body), 0:3] = force
    for _ in range(steps):
        mujoco.mj_step(m, d)
    mujoco.mj_forward(m, d)
    mujoco.mj_subtreeVel(m, d)
    return torch.tensor(d.subtree_linvel[1], dtype=torch.float32), torch.tensor(d.xpos[1:], dtype=torch.float32)


def test_a_push_changes_the_momentum_by_force_times_time(engine):
    m = mujoco.MjModel.from_xml_path(DEFAULT_MJCF)
    mass, gravity = float(m.body_mass.sum()), torch.tensor(m.opt.gravity, dtype=torch.float32)
    forces = torch.zeros(NUM_ENVS, engine.num_bodies, 3)
    forces[1, 0] = torch.tensor([240.0, 0.0, 0.0])  # env 1: DeepMimic's forward push on the walk's root
    forces[2, engine.body_names.index("left_wrist")] = torch.tensor([0.0, -30.0, 10.0])  # env 2: a wrist
    drop_from_rest(engine)
    engine.set_body_forces(forces.to(engine.device))
    engine.step()
    seconds = SUBSTEPS * SIM_DT
    # Newton, from rest, where the force acts at the root: the COM velocity changes by (F / M + g) t. (A
    # force on a limb also turns the body, and the discrete steps then conserve momentum only closely.)
    newton = (forces.sum(dim=1) / mass + gravity) * seconds
    assert torch.allclose(engine.com_velocity()[:2].cpu(), newton[:2], atol=2e-4), (engine.com_velocity(), newton)
    com_vel, body_pos = mujoco_pushed_from_rest("left_wrist", [0.0, -30.0, 10.0], SUBSTEPS)
    assert torch.allclose(engine.com_velocity()[2].cpu(), com_vel, atol=2e-4)
    assert torch.allclose(engine.body_state()[2, :, 0:3].cpu(), body_pos, atol=1e-4)
    # held until set again; zeros end the push
    engine.step()
    assert torch.allclose(engine.com_velocity()[1].cpu(), 2 * newton[1], atol=4e-4)
    assert torch.allclose(engine.com_velocity()[2].cpu(), mujoco_pushed_from_rest(
        "left_wrist", [0.0, -30.0, 10.0], 2 * SUBSTEPS)[0], atol=4e-4)
    engine.set_body_forces(torch.zeros_like(forces).to(engine.device))
    drop_from_rest(engine)
    engine.step()
    assert torch.allclose(engine.com_velocity().cpu(), (gravity * seconds).expand(NUM_ENVS, 3), atol=2e-4)


def test_a_push_survives_capture_and_restore(engine):
    forces = torch.zeros(NUM_ENVS, engine.num_bodies, 3)
    forces[:, 0, 1] = 500.0
    drop_from_rest(engine)
    engine.set_body_forces(forces.to(engine.device))
    saved = engine.capture_state()
    engine.step()
    pushed = engine.com_velocity().clone()
    engine.set_body_forces(torch.zeros_like(forces).to(engine.device))
    engine.restore_state(saved)
    engine.step()
    assert torch.allclose(engine.com_velocity(), pushed, atol=1e-6)
    engine.set_body_forces(torch.zeros_like(forces).to(engine.device))


def test_isaacgym_gets_the_forces_before_every_simulate_in_its_own_body_order():
    code = textwrap.dedent("""
        import isaacgym, torch
        from isaacgym import gymapi
        from poselib_utils.repository import DEFAULT_MJCF
        from tasks.engines.engine import EngineConfig
        from tasks.engines.isaacgym_engine import IsaacGymEngine
        e = IsaacGymEngine(EngineConfig(mjcf_path=DEFAULT_MJCF, num_envs=3, sim_dt=1 / 120, substeps=2))
        e.set_pd_targets(torch.zeros(3, e.num_dofs))
        e.step()
        assert e.gym.simulated_forces == [None, None]
        forces = torch.zeros(3, e.num_bodies, 3)
        forces[1, 0] = torch.tensor([240.0, 0.0, 0.0])
        forces[2, e.body_names.index("left_wrist")] = torch.tensor([0.0, -300.0, 100.0])
        e.set_body_forces(forces)
        e.step()
        asset_names = e.gym.get_asset_rigid_body_names(e.gym.asset)
        seen = e.gym.simulated_forces[2:]
        assert len(seen) == 2
        for rows, space in seen:
            assert space == gymapi.ENV_SPACE
            rows = rows.view(3, len(asset_names), 3)
            for env in range(3):
                for b, name in enumerate(e.body_names):
                    assert torch.equal(rows[env, asset_names.index(name)], forces[env, b]), (env, name)
        print("forces ok")
    """)
    proc = on_standin(["-c", code])
    assert proc.returncode == 0 and "forces ok" in proc.stdout, proc.stderr[-3000:]
