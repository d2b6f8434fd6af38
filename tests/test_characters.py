"""The task on each DeepMimic character (cfg/character/), checked against the MJCF as MuJoCo reads it
and against DeepMimic's own settings (its args files, SceneImitate's scales), not the task's tables."""
import json
import os
import re

import mujoco
import pytest

from poselib_utils.repository import REPO_ROOT
from task_helpers import NUM_ENVS, make_task
from tasks.config import REWARD_TERMS

CHARACTERS = ("humanoid3d", "dog3d")


def custom_flags(model, name):
    """A 0/1 list stored in the MJCF's <custom><text name=...>, read through MuJoCo's own arrays."""
    i = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_TEXT, name)
    assert i >= 0, name
    text = bytes(model.text_data[model.text_adr[i]:model.text_adr[i] + model.text_size[i] - 1]).decode()
    return [bool(int(v)) for v in text.split()]


def read_json(deepmimic_data, controller):
    with open(os.path.join(deepmimic_data, "controllers", controller + ".txt")) as f:
        return json.load(f)


@pytest.fixture(scope="module", params=CHARACTERS)
def built(request):
    task = make_task("character=" + request.param)
    model = mujoco.MjModel.from_xml_path(os.path.join(REPO_ROOT, "assets", "mjcf", request.param + ".xml"))
    yield request.param, task, model
    task.close()


def test_sizes_come_from_the_mjcf(built):
    name, task, m = built
    bodies = m.nbody - 1  # without the world
    hinges = int((m.jnt_type == mujoco.mjtJoint.mjJNT_HINGE).sum())
    assert task.engine.body_names == [m.body(b).name for b in range(1, m.nbody)]
    assert task.num_actions == hinges == m.nu
    frames = len(task.target_frames)
    # root height; heading-frame positions of the non-root bodies; rotations (tangent-normal);
    # linear and angular velocities; phase; per target frame, positions and rotations of every body
    assert task.num_obs == 1 + (bodies - 1) * 3 + bodies * 6 + bodies * 3 + bodies * 3 + 1 + frames * bodies * 9
    assert tuple(task.reset()["obs"].shape) == (NUM_ENVS, task.num_obs)
    assert task.motion_lib.num_motions == 1 and os.path.basename(task.cfg["env"]["motion_file"]).startswith(name)


def test_end_effectors_and_fall_contacts_come_from_the_mjcf(built):
    _, task, m = built
    assert task.end_effector_mask.tolist() == custom_flags(m, "deepmimic_end_effectors")
    assert any(task.end_effector_mask.tolist())
    if task.cfg["env"]["contact_bodies"] == "character":
        assert task.fall_contact_mask.tolist() == custom_flags(m, "deepmimic_fall_contacts")


def test_pose_and_velocity_scales_follow_deepmimic(built):
    # SceneImitate.cpp: pose_scale = 2 / 15 * joints, vel_scale = 0.1 / 15 * joints
    _, task, m = built
    joints = m.nbody - 1
    scales = dict(zip(REWARD_TERMS, task.reward_scales.tolist()))
    assert scales["pose"] == pytest.approx(2.0 / 15 * joints, rel=1e-4)
    assert scales["vel"] == pytest.approx(0.1 / 15 * joints, rel=1e-4)


@pytest.mark.parametrize("clip", ["canter", "pace", "spin", "trot"])
def test_dog_falls_on_the_bodies_deepmimic_trained_it_with(clip, deepmimic_data):
    with open(os.path.join(deepmimic_data, "args", "train_dog3d_{}_args.txt".format(clip))) as f:
        args = f.read()
    falls = {int(v) for v in re.search(r"--fall_contact_bodies ([\d ]+)", args).group(1).split()}
    controller = re.search(r"--char_ctrl_files \S*/(\S+)\.txt", args).group(1)
    # assets/mjcf/dog3d.xml has the PD gains of dog3d_phase_rot_ctrl.txt; the spin's controller
    # (dog3d_phase_ctrl.txt) differs only in what the policy observes
    assert read_json(deepmimic_data, controller)["PDControllers"] == \
        read_json(deepmimic_data, "dog3d_phase_rot_ctrl")["PDControllers"]
    task = make_task("character=dog3d", "task.env.motion_file=motions/dog3d_{}.txt".format(clip))
    try:
        assert {i for i, f in enumerate(task.fall_contact_mask.tolist()) if f} == falls
        task.reset()
        task.step(task.actions * 0)
    finally:
        task.close()
