"""The IsaacGym engine against IsaacGym's rules, where IsaacGym itself cannot run.

What IsaacGym would break on a first run is checked three ways: the conversions against scipy and
MuJoCo's own kinematics (in this process); the asset copy IsaacGym loads against MuJoCo's masses of
the same file; and the engine, train.py and the first-run check run in subprocesses on the stand-in
``isaacgym`` of tests/isaacgym_standin/ (its rules: that package's docstring), which must be
imported before torch, as IsaacGym must.
"""
import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import mujoco
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from poselib_utils.repository import DEFAULT_MJCF, REPO_ROOT
from tasks.engines.isaacgym_asset import geom_volume, isaacgym_mjcf, parse_mjcf
from tasks.engines.spherical_joints import SphericalJoints
from tasks.humanoid_deepmimic import compute_deepmimic_reset

STANDIN = os.path.join(REPO_ROOT, "tests", "isaacgym_standin")


def on_standin(args, timeout=300):
    # the stand-in first; what the caller's PYTHONPATH holds (packages installed there) after it
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([STANDIN, REPO_ROOT] + [p for p in os.environ.get(
        "PYTHONPATH", "").split(os.pathsep) if p]))
    return subprocess.run([sys.executable] + args, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def humanoid_spherical_joints():
    mjcf = parse_mjcf(DEFAULT_MJCF)
    names = mjcf["dof_names"]
    bodies = [b for b in mjcf["bodies"] if len(b["hinges"]) == 3]
    return (SphericalJoints([[names.index(n) for n, _ in b["hinges"]] for b in bodies],
                            [[axis for _, axis in b["hinges"]] for b in bodies], torch.device("cpu")),
            bodies, names)


def random_pose(num, names, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(num, len(names), generator=gen) * 2 - 1) * 1.4, torch.randn(num, len(names), generator=gen) * 3


def test_exp_map_and_child_frame_velocity_match_mujoco_kinematics():
    """For random hinge angles and rates of humanoid3d, the exponential map is the rotation vector of
    each spherical body's rotation relative to its parent as MuJoCo computes it, and the angular
    velocity DOFs are MuJoCo's body angular velocity relative to the parent, in the body's frame."""
    joints, bodies, names = humanoid_spherical_joints()
    model = mujoco.MjModel.from_xml_path(DEFAULT_MJCF)
    data = mujoco.MjData(model)
    pos, vel = random_pose(8, names)
    exp_map = joints.angles_to_exp_map(pos)
    rates = joints.rates_to_angular_velocity(pos, vel)
    for n in range(pos.shape[0]):
        data.qpos[:] = np.concatenate([[0, 0, 1, 1, 0, 0, 0], pos[n].double().numpy()])
        data.qvel[:] = np.concatenate([np.zeros(6), vel[n].double().numpy()])
        mujoco.mj_forward(model, data)
        for body in bodies:
            b, p = model.body(body["name"]).id, model.body_parentid[model.body(body["name"]).id]
            world = Rotation.from_quat(data.xquat[b][[1, 2, 3, 0]])
            parent = Rotation.from_quat(data.xquat[p][[1, 2, 3, 0]])
            slots = [names.index(h) for h, _ in body["hinges"]]
            axes = np.array([a for _, a in body["hinges"]])
            np.testing.assert_allclose(axes @ (parent.inv() * world).as_rotvec(), exp_map[n, slots], atol=2e-5)
            w_body, w_parent = np.zeros(6), np.zeros(6)
            mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_BODY, b, w_body, 0)
            mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_BODY, p, w_parent, 0)
            relative = world.inv().apply(w_body[:3] - w_parent[:3])
            np.testing.assert_allclose(axes @ relative, rates[n, slots], atol=2e-4)


def test_conversions_invert_and_agree_with_scipy():
    joints, _, names = humanoid_spherical_joints()
    pos, vel = random_pose(64, names, seed=1)
    exp_map = joints.angles_to_exp_map(pos)
    chest = [names.index(n) for n in ("chest_x", "chest_z", "chest_y")]
    expected = Rotation.from_euler("XZY", pos[:, chest].double().numpy()).as_rotvec()  # intrinsic x, z, y
    np.testing.assert_allclose(exp_map[:, chest].numpy(), expected[:, [0, 2, 1]], atol=1e-5)
    torch.testing.assert_close(joints.exp_map_to_angles(exp_map), pos, atol=1e-4, rtol=0)
    torch.testing.assert_close(joints.angular_velocity_to_rates(pos, joints.rates_to_angular_velocity(pos, vel)),
                               vel, atol=1e-3, rtol=0)
    knee = names.index("right_knee")  # a revolute joint passes through untouched
    assert torch.equal(exp_map[:, knee], pos[:, knee])


@pytest.mark.parametrize("character", ["humanoid3d", "dog3d"])
def test_the_isaacgym_copy_lists_hinges_xyz_and_weighs_what_the_mjcf_weighs(tmp_path, character):
    """MuJoCo compiles the copy (densities, no masses) to the original's body masses; every spherical
    body's hinges are listed x, y, z; actuators, sensors and custom fields are gone."""
    mjcf = os.path.join(REPO_ROOT, "assets", "mjcf", character + ".xml")
    copy = isaacgym_mjcf(mjcf, str(tmp_path))
    original, derived = mujoco.MjModel.from_xml_path(mjcf), mujoco.MjModel.from_xml_path(copy)
    np.testing.assert_allclose(derived.body_mass, original.body_mass, rtol=1e-9)
    np.testing.assert_allclose(derived.body_ipos, original.body_ipos, atol=1e-9)
    root = ET.parse(copy).getroot()
    assert root.find("actuator") is None and root.find("custom") is None
    assert all(g.get("mass") is None for g in root.iter("geom"))
    for body in root.iter("body"):
        axes = [j.get("axis") for j in body.findall("joint") if j.get("type", "hinge") == "hinge"]
        assert len(axes) in (0, 1) or axes == ["1 0 0", "0 1 0", "0 0 1"], body.get("name")
    sphere = ET.fromstring('<geom type="sphere" size="0.5"/>')
    assert geom_volume(sphere) == pytest.approx(4.0 / 3.0 * np.pi / 8.0)


def test_contacts_an_engine_reports_from_before_a_reset_do_not_end_the_episode():
    """IsaacGymEnvs masks fall contacts on the first step after a reset. With the engine's
    ``contact_settle_steps=1`` (IsaacGym) a chest on the ground ends the episode from the
    second step after a reset on, not on the first; with 0 (MuJoCo) on the first."""
    nb = 15
    contacts = torch.zeros(3, nb, 3)
    contacts[:, 1, 2] = 50.0  # the chest, a fall-contact body, pushed up by the ground
    fall = torch.zeros(nb, dtype=torch.bool)
    fall[1] = True
    pos = torch.zeros(3, nb, 3)
    for settle, expected in ((1, [False, True, True]), (0, [True, True, True])):
        _, terminated, _ = compute_deepmimic_reset(
            body_pos=pos, ref_body_pos=pos, contact_forces=contacts, progress=torch.tensor([1, 2, 3]),
            contact_settle_steps=settle, fall_contact_mask=fall, sim_failed=torch.zeros(3, dtype=torch.bool),
            clip_ended=torch.zeros(3, dtype=torch.bool), enable_early_termination=True, termination_distance=1.0,
            contact_force_threshold=1.0, max_episode_length=300)
        assert terminated.tolist() == expected, settle


def test_isaacgym_refuses_to_load_after_torch():
    proc = on_standin(["-c", "import torch\nimport isaacgym"])
    assert proc.returncode != 0 and "PyTorch was imported before isaacgym modules" in proc.stderr


def test_train_py_trains_on_the_standin(tmp_path):
    """train.py's start-up (config check, engine name, checkpoint read) imports no torch before
    IsaacGym, and the engine runs the whole loop under the stand-in's rules."""
    name = "pytest_isaacgym_standin_{}".format(os.getpid())
    proc = on_standin(["train.py", "sim_engine=isaacgym", "sim_device=cpu", "rl_device=cpu", "headless=True",
                       "num_envs=2", "max_iterations=1", "experiment=" + name])
    try:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "MAX EPOCHS NUM!" in proc.stdout
    finally:
        import shutil

        shutil.rmtree(os.path.join(REPO_ROOT, "runs", name), ignore_errors=True)


def test_first_run_check_passes_on_the_standin(tmp_path):
    out = str(tmp_path / "check.json")
    proc = on_standin(["-m", "tools.isaacgym_check", "--num-envs", "3", "--json", out])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.load(open(out))
    assert all(row["ok"] for row in report.values()) and report["mass (relative)"]["max"] < 1e-6
    assert report["velocity reported at"]["verdict"].startswith("inconclusive")  # the stand-in moves nothing


BROKEN = {  # what the engine did before: each must make the engine or the first-run check fail
    "hinge angles written as IsaacGym's DOFs": ("from tasks.engines import spherical_joints as s\n"
                                                "s.SphericalJoints.angles_to_exp_map = lambda self, d: d\n"
                                                "s.SphericalJoints.exp_map_to_angles = lambda self, d: d\n",
                                                "rotation (deg)"),
    "hinge rates written as IsaacGym's DOF velocities": (
        "from tasks.engines import spherical_joints as s\n"
        "s.SphericalJoints.rates_to_angular_velocity = lambda self, p, v: v\n"
        "s.SphericalJoints.angular_velocity_to_rates = lambda self, p, v: v\n", "angular velocity (rad/s)"),
    "geom masses left to IsaacGym's importer (density 1000)": (
        "from tasks.engines import isaacgym_asset as a\n"
        "a.geom_volume = lambda geom: float(geom.get('mass')) / 1000.0\n", "IsaacGym's body masses differ from MuJoCo's"),
    "the MJCF loaded as it is (hinges x, z, y)": ("from tasks.engines import isaacgym_engine as e\n"
                                                  "e.isaacgym_mjcf = lambda path, out: path\n",
                                                  "which exp-map component each DOF would carry is not known"),
}


@pytest.mark.parametrize("what", sorted(BROKEN))
def test_first_run_check_catches_what_a_real_isaacgym_would_break(what):
    patch, words = BROKEN[what]
    code = "import isaacgym\n" + patch + "from tools import isaacgym_check\nimport sys\n" \
        "sys.exit(isaacgym_check.main(['--num-envs', '3']))\n"
    proc = on_standin(["-c", code])
    assert proc.returncode != 0, proc.stdout
    assert words in proc.stdout + proc.stderr and ("FAILED" in proc.stdout or "Error" in proc.stderr)


def test_the_dog_builds_on_the_standin_with_its_own_sizes():
    code = textwrap.dedent("""
        import isaacgym, torch
        from poselib_utils.repository import REPO_ROOT
        from tasks.engines.engine import EngineConfig
        from tasks.engines.isaacgym_engine import IsaacGymEngine
        e = IsaacGymEngine(EngineConfig(mjcf_path=REPO_ROOT + "/assets/mjcf/dog3d.xml", num_envs=2, sim_dt=1 / 120,
                                        substeps=1))
        e.set_pd_targets(torch.zeros(2, e.num_dofs))
        e.step()
        print("dog", e.num_bodies, e.num_dofs, tuple(e.body_state().shape))
    """)
    proc = on_standin(["-c", code])
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = mujoco.MjModel.from_xml_path(os.path.join(REPO_ROOT, "assets", "mjcf", "dog3d.xml"))
    assert m.nu == 58  # 18 spherical joints of 3 hinges, 4 revolute
    assert "dog {0} {1} (2, {0}, 13)".format(m.nbody - 1, m.nu) in proc.stdout, proc.stdout


def test_root_states_are_written_in_each_envs_own_frame():
    """IsaacGym's root tensor holds env-local positions: what set_state gets is what the sim gets,
    for envs whose grid origin is metres away (the engine once added the origin, placing env i at
    twice its offset)."""
    code = textwrap.dedent("""
        import isaacgym, torch
        from poselib_utils.repository import DEFAULT_MJCF
        from tasks.engines.engine import EngineConfig
        from tasks.engines.isaacgym_engine import IsaacGymEngine
        e = IsaacGymEngine(EngineConfig(mjcf_path=DEFAULT_MJCF, num_envs=4, sim_dt=1 / 120, substeps=1))
        origins = [e.gym.get_env_origin(env) for env in e.envs]
        assert max(abs(o.x) + abs(o.y) for o in origins) > 1.0
        pos = torch.tensor([[0.1 * i, -0.2, 0.9] for i in range(4)])
        e.set_state(None, pos, torch.tensor([[1.0, 0, 0, 0]] * 4), torch.zeros(4, 3), torch.zeros(4, 3),
                    torch.zeros(4, e.num_dofs), torch.zeros(4, e.num_dofs))
        e.step()
        assert torch.allclose(e.gym.state["root"][:, :3], pos), e.gym.state["root"][:, :3]
        assert torch.allclose(e.root_state()[:, :3], pos)
        print("env-local ok")
    """)
    proc = on_standin(["-c", code])
    assert proc.returncode == 0 and "env-local ok" in proc.stdout, proc.stderr[-3000:]
