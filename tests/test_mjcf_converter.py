"""poselib_utils.mjcf_converter: the committed humanoid and dog models, checked in MuJoCo
against the numbers in DeepMimic's character and controller files (read here as raw JSON).

Conventions checked (stated by the converter, and independent of its code): DeepMimic is Y-up, the
world is Z-up, a vector (x, y, z) maps to (x, -z, y); capsules are Param0 wide with Param1 between
the cap centres along the shape's y axis; spheres are Param0 wide; boxes are Param0..2 long along
x, y, z; PD gains become position actuators; torque limits become force ranges.
"""
import json
import os

import mujoco
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from poselib_utils.mjcf_converter import convert_files
from poselib_utils.repository import REPO_ROOT

Y_UP_TO_Z_UP = Rotation.from_euler("x", 90, degrees=True)
CHARACTERS = ["humanoid3d", "dog3d"]
# The controller each committed model is made with: the humanoid's PD controller, and the one
# DeepMimic's dog training uses (args/train_dog3d_<clip>_args.txt: --char_ctrl_files).
CONTROLLERS = {"humanoid3d": "humanoid3d_ctrl", "dog3d": "dog3d_phase_rot_ctrl"}


def _read(path):
    with open(path) as f:
        return json.load(f)


def _map(v):
    """DeepMimic Y-up (x, y, z) -> Z-up (x, -z, y)."""
    x, y, z = v
    return np.array([x, -z, y], dtype=np.float64)


def _name(model, obj, index):
    return mujoco.mj_id2name(model, obj, index)


def _body_id(model, name):
    """MuJoCo numbers bodies depth-first in XML order, not in DeepMimic's order: look them up by name."""
    b = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
    assert b > 0, "no body named {}".format(name)
    return b


@pytest.fixture(scope="module")
def humanoid_model(committed_mjcf_path):
    return mujoco.MjModel.from_xml_path(committed_mjcf_path)


@pytest.fixture(scope="module", params=CHARACTERS)
def character_case(request, deepmimic_data):
    """(character JSON, controller JSON, committed compiled model) for each character."""
    name = request.param
    char_path = os.path.join(deepmimic_data, "characters", name + ".txt")
    ctrl_path = os.path.join(deepmimic_data, "controllers", CONTROLLERS[name] + ".txt")
    model = mujoco.MjModel.from_xml_path(os.path.join(REPO_ROOT, "assets", "mjcf", name + ".xml"))
    return _read(char_path), _read(ctrl_path), model


# ----------------------------------------------------------------------------- committed file

@pytest.mark.parametrize("name", CHARACTERS)
def test_committed_model_is_regenerated_exactly(name, deepmimic_data):
    with open(os.path.join(REPO_ROOT, "assets", "mjcf", name + ".xml")) as f:
        committed = f.read()
    char_path = os.path.join(deepmimic_data, "characters", name + ".txt")
    assert convert_files(char_path, os.path.join(deepmimic_data, "controllers", CONTROLLERS[name] + ".txt")) == committed


def test_humanoid_sizes(humanoid_model, humanoid_char_path):
    m = humanoid_model
    joints = [j["Name"] for j in _read(humanoid_char_path)["Skeleton"]["Joints"]]
    assert m.nbody == 16  # world + 15 character bodies
    assert sorted(_name(m, mujoco.mjtObj.mjOBJ_BODY, b) for b in range(1, m.nbody)) == sorted(joints)
    assert m.nq == 35  # free joint 7 + 8 spherical x 3 hinges + 4 revolute
    assert m.nv == 34
    assert m.nu == 28
    assert m.body_mass.sum() == pytest.approx(45.0)


# ----------------------------------------------------------------------------- per character

def test_bodies_and_tree(character_case):
    char, _, m = character_case
    joints = char["Skeleton"]["Joints"]
    assert m.nbody == len(joints) + 1
    names = [_name(m, mujoco.mjtObj.mjOBJ_BODY, b) for b in range(1, m.nbody)]
    assert sorted(names) == sorted(j["Name"] for j in joints)
    for rec in joints:
        parent = m.body_parentid[_body_id(m, rec["Name"])]
        if rec["Parent"] < 0:
            assert parent == 0, rec["Name"]
        else:
            assert _name(m, mujoco.mjtObj.mjOBJ_BODY, parent) == joints[rec["Parent"]]["Name"], rec["Name"]


def test_total_mass(character_case):
    char, _, m = character_case
    assert m.body_mass.sum() == pytest.approx(sum(b["Mass"] for b in char["BodyDefs"]), rel=1e-9)
    masses = {b["Name"]: b["Mass"] for b in char["BodyDefs"]}
    for b in range(1, m.nbody):
        assert m.body_mass[b] == pytest.approx(masses[_name(m, mujoco.mjtObj.mjOBJ_BODY, b)], rel=1e-9)


def test_degrees_of_freedom(character_case):
    char, _, m = character_case
    records = char["Skeleton"]["Joints"]
    types = [j["Type"] for j in records]
    hinges = 3 * types.count("spherical") + types.count("revolute")
    assert m.nq == 7 + hinges
    assert m.nv == 6 + hinges
    assert m.nu == hinges
    per_type = {"none": [mujoco.mjtJoint.mjJNT_FREE], "fixed": [],
                "spherical": [mujoco.mjtJoint.mjJNT_HINGE] * 3, "revolute": [mujoco.mjtJoint.mjJNT_HINGE]}
    for rec in records:
        b, joint_type = _body_id(m, rec["Name"]), rec["Type"]
        body_joints = [j for j in range(m.njnt) if m.jnt_bodyid[j] == b]
        assert [m.jnt_type[j] for j in body_joints] == per_type[joint_type]


def test_body_offsets(character_case):
    char, _, m = character_case
    for rec in char["Skeleton"]["Joints"]:
        b = _body_id(m, rec["Name"])
        if rec["Parent"] < 0:
            np.testing.assert_allclose(m.body_pos[b][:2], 0.0)  # root starts above the origin
            assert m.body_pos[b][2] > 0
            continue
        np.testing.assert_allclose(m.body_pos[b], _map((rec["AttachX"], rec["AttachY"], rec["AttachZ"])),
                                   atol=1e-6, err_msg=rec["Name"])


def test_actuators_match_controller_and_torque_limits(character_case):
    char, ctrl, m = character_case
    gains = {r["Name"]: (r["Kp"], r["Kd"]) for r in ctrl["PDControllers"]}
    joints = {r["Name"]: r for r in char["Skeleton"]["Joints"]}
    seen = {}
    for a in range(m.nu):
        assert m.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT
        jnt = m.actuator_trnid[a, 0]
        body = _name(m, mujoco.mjtObj.mjOBJ_BODY, m.jnt_bodyid[jnt])
        kp, kd = gains[body]
        lim = joints[body]["TorqueLim"]
        assert m.actuator_gainprm[a, 0] == pytest.approx(kp), body
        assert m.actuator_biasprm[a, 1] == pytest.approx(-kp), body
        assert m.actuator_biasprm[a, 2] == pytest.approx(-kd), body
        assert m.actuator_forcelimited[a]
        np.testing.assert_allclose(m.actuator_forcerange[a], [-lim, lim], err_msg=body)
        seen[body] = seen.get(body, 0) + 1
    expected = {n: {"spherical": 3, "revolute": 1}[r["Type"]] for n, r in joints.items()
                if r["Type"] in ("spherical", "revolute")}
    assert seen == expected
    # every hinge has exactly one actuator
    assert sorted(m.actuator_trnid[:, 0]) == [j for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE]


def test_revolute_limits_enforced(character_case):
    char, _, m = character_case
    for rec in char["Skeleton"]["Joints"]:
        b = _body_id(m, rec["Name"])
        if rec["Type"] != "revolute":
            continue
        (jnt,) = [j for j in range(m.njnt) if m.jnt_bodyid[j] == b]
        # DeepMimic rotates a revolute joint about its local z axis: (0, 0, 1) -> Z-up (0, -1, 0)
        np.testing.assert_allclose(m.jnt_axis[jnt], _map((0, 0, 1)), atol=1e-12)
        assert m.jnt_limited[jnt]
        np.testing.assert_allclose(m.jnt_range[jnt], [rec["LimLow0"], rec["LimHigh0"]], atol=1e-6)


def test_geoms_match_body_defs(character_case):
    char, _, m = character_case
    bodies = {b["Name"]: b for b in char["BodyDefs"]}
    capsules = 0
    for g in range(m.ngeom):
        rec = bodies[_name(m, mujoco.mjtObj.mjOBJ_BODY, m.geom_bodyid[g])]
        assert _name(m, mujoco.mjtObj.mjOBJ_GEOM, g) == rec["Name"]
        np.testing.assert_allclose(m.geom_pos[g], _map((rec["AttachX"], rec["AttachY"], rec["AttachZ"])),
                                   atol=1e-6, err_msg=rec["Name"])
        theta = Rotation.from_euler("xyz", [rec["AttachThetaX"], rec["AttachThetaY"], rec["AttachThetaZ"]])
        geom_rot = Rotation.from_quat(m.geom_quat[g][[1, 2, 3, 0]])
        if rec["Shape"] == "capsule":
            capsules += 1
            assert m.geom_type[g] == mujoco.mjtGeom.mjGEOM_CAPSULE
            assert m.geom_size[g, 0] == pytest.approx(rec["Param0"] / 2, abs=1e-6), rec["Name"]
            assert 2 * m.geom_size[g, 1] == pytest.approx(rec["Param1"], abs=2e-6), rec["Name"]
            # the capsule's axis (MuJoCo: geom z) is the Z-up image of the shape's y axis
            axis = geom_rot.apply([0, 0, 1])
            expected = _map(theta.apply([0, 1, 0]))
            assert abs(np.dot(axis, expected)) == pytest.approx(1.0, abs=1e-6), rec["Name"]
        elif rec["Shape"] == "sphere":
            assert m.geom_type[g] == mujoco.mjtGeom.mjGEOM_SPHERE
            assert m.geom_size[g, 0] == pytest.approx(rec["Param0"] / 2, abs=1e-6), rec["Name"]
        else:
            assert m.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX
            # box edges: the Z-up images of the shape's x, y, z axes with lengths Param0..2
            for axis, length in zip(np.eye(3), (rec["Param0"], rec["Param1"], rec["Param2"])):
                direction = _map(theta.apply(axis))
                local = geom_rot.inv().apply(direction)
                k = int(np.argmax(np.abs(local)))
                assert abs(local[k]) == pytest.approx(1.0, abs=1e-6), rec["Name"]
                assert 2 * m.geom_size[g, k] == pytest.approx(length, abs=2e-6), rec["Name"]
    assert capsules == sum(b["Shape"] == "capsule" for b in char["BodyDefs"]) > 0


# ----------------------------------------------------------------------------- dog in simulation

def test_dog_compiles_and_lands_on_a_floor(dog_char_path, dog_ctrl_path):
    text = convert_files(dog_char_path, dog_ctrl_path)
    spec = mujoco.MjSpec.from_string(text)
    spec.worldbody.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 1],
                            contype=0, conaffinity=1)
    model = spec.compile()
    data = mujoco.MjData(model)
    floor = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    mujoco.mj_forward(model, data)
    assert data.qpos[2] > 0.5  # starts in the air
    floor_contacts = 0
    heights = []
    steps = int(round(1.0 / model.opt.timestep))
    assert steps == 120
    for _ in range(steps):
        mujoco.mj_step(model, data)
        assert np.all(np.isfinite(data.qpos)) and np.all(np.isfinite(data.qvel))
        heights.append(data.qpos[2])
        assert np.all(data.xpos[1:, 2] > -0.02), "a body went through the floor"
        geom1, geom2 = data.contact.geom1[:data.ncon], data.contact.geom2[:data.ncon]
        floor_contacts += int(np.sum((geom1 == floor) | (geom2 == floor)))
    assert floor_contacts > 0, "the dog never reached the floor, so the test proved nothing"
    assert min(heights) > 0.0
    print("dog root height after 1 s: {:.3f} m (min {:.3f})".format(heights[-1], min(heights)))
