"""train.py end to end (subprocesses, as a user runs it): a short training run writes its
checkpoint and config, the checkpoint plays, and checkpoint mistakes fail with one clear message."""
import os
import shutil
import subprocess
import sys
import uuid

import pytest
import torch
import yaml
from poselib_utils.repository import REPO_ROOT

NUM_OBS = 494  # 1 + 14*3 + 15*6 + 15*3 + 15*3 + 1 + 2 * (15*3 + 15*6): target_frames [1, 2]
NUM_OBS_ONE_TARGET = 359  # the same with target_frames [1]
NUM_ACTIONS = 28


def run_train(*args, timeout=120):
    return subprocess.run([sys.executable, "train.py", "headless=True"] + list(args), cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def output(proc):
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def trained():
    experiment = "pytest_smoke_{}_{}".format(os.getpid(), uuid.uuid4().hex[:8])
    run_dir = os.path.join(REPO_ROOT, "runs", experiment)
    try:
        proc = run_train("task=HumanoidDeepMimic", "max_iterations=6", "num_envs=16",
                         "experiment={}".format(experiment))
        yield proc, run_dir
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
def trained_checkpoint(trained):
    """The best-reward checkpoint the smoke training wrote."""
    checkpoint = os.path.join(trained[1], "nn", "HumanoidDeepMimic.pth")
    if not os.path.isfile(checkpoint):
        pytest.fail("training wrote no checkpoint")
    return checkpoint


def test_training_writes_checkpoint_and_config(trained):
    proc, run_dir = trained
    assert proc.returncode == 0, output(proc)[-3000:]
    checkpoint = os.path.join(run_dir, "nn", "HumanoidDeepMimic.pth")
    assert os.path.isfile(checkpoint)
    with open(os.path.join(run_dir, "config.yaml")) as f:
        cfg = yaml.safe_load(f)
    assert cfg["task"]["env"]["num_envs"] == 16
    assert cfg["train"]["params"]["config"]["max_epochs"] == 6
    assert cfg["sim_engine"] in ("auto", "mujoco")
    model = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
    assert model["running_mean_std.running_mean"].shape == (NUM_OBS,)
    assert model["a2c_network.mu.weight"].shape[0] == NUM_ACTIONS
    assert all(torch.isfinite(v).all() for v in model.values() if torch.is_tensor(v) and v.is_floating_point())


def test_checkpoint_plays(trained_checkpoint):
    checkpoint = trained_checkpoint
    proc = run_train("task=HumanoidDeepMimic", "test=True", "checkpoint={}".format(checkpoint), "num_envs=2",
                     "num_test_games=2")
    assert proc.returncode == 0, output(proc)[-3000:]
    assert "av reward" in output(proc)


def test_checkpoint_with_other_network_sizes_fails_naming_both(trained_checkpoint):
    checkpoint = trained_checkpoint
    proc = run_train("task=HumanoidDeepMimic", "test=True", "checkpoint={}".format(checkpoint), "num_envs=2",
                     "num_test_games=1", "task.env.obs.target_frames=[1]")
    assert proc.returncode != 0
    text = output(proc)
    assert "{} observations".format(NUM_OBS) in text and "has {}".format(NUM_OBS_ONE_TARGET) in text, text[-3000:]
    assert "Traceback" not in text


def test_missing_checkpoint_fails_clearly(tmp_path):
    missing = str(tmp_path / "nope.pth")
    proc = run_train("test=True", "checkpoint={}".format(missing), "num_envs=2")
    assert proc.returncode != 0
    assert "checkpoint {} does not exist".format(missing) in output(proc)
    assert "Traceback" not in output(proc)
    proc = run_train("test=True", "num_envs=2")
    assert proc.returncode != 0
    assert "test=True needs checkpoint=" in output(proc)


def test_rates_that_do_not_divide_fail_clearly():
    proc = run_train("task.env.control_freq_hz=7", "num_envs=2", "max_iterations=1")
    assert proc.returncode == 1
    assert "task.env.sim_freq_hz (120.0) must be a whole multiple of task.env.control_freq_hz (7.0)" in output(proc)
    assert "Traceback" not in output(proc)


def test_negative_reward_weights_fail_clearly():
    proc = run_train("task.reward.root_w=-0.2", "num_envs=2", "max_iterations=1")
    assert proc.returncode == 1
    assert "task.reward.root_w must be a number >= 0, got -0.2" in output(proc)
    assert "Traceback" not in output(proc)


def test_playing_under_other_termination_settings_warns_with_the_trained_overrides(trained_checkpoint, tmp_path):
    """A cartwheel policy is trained with the wrists allowed on the ground; played without that, its
    episodes end at the first hand contact. The checkpoint (and its export) records the settings, and
    playing under others names the override that restores them."""
    from tasks.rlgames.export_checkpoint import export_checkpoint

    with open(os.path.join(REPO_ROOT, "cfg", "task", "HumanoidDeepMimic.yaml")) as f:
        defaults = yaml.safe_load(f)["env"]
    with open(os.path.join(REPO_ROOT, "cfg", "character", "humanoid3d.yaml")) as f:
        defaults.update(yaml.safe_load(f)["env"])
    state = torch.load(trained_checkpoint, map_location="cpu", weights_only=True)
    assert state["env_state"]["task"]["termination"] == {
        "contact_bodies": defaults["contact_bodies"], "termination_distance": defaults["termination_distance"],
        "contact_force_threshold": defaults["contact_force_threshold"]}
    exported = str(tmp_path / "exported.pth")
    export_checkpoint(trained_checkpoint, exported)
    wrists = "[right_ankle,left_ankle,right_wrist,left_wrist]"
    for checkpoint in (trained_checkpoint, exported):
        proc = run_train("task=HumanoidDeepMimic", "test=True", "checkpoint={}".format(checkpoint), "num_envs=2",
                         "num_test_games=1", "task.env.contact_bodies={}".format(wrists))
        assert proc.returncode == 0, output(proc)[-3000:]
        trained_with = "[{}]".format(",".join(defaults["contact_bodies"]))
        assert "add 'task.env.contact_bodies={}' to play it as trained".format(trained_with) in output(proc)
        assert "termination_distance" not in output(proc)  # only what differs
    proc = run_train("task=HumanoidDeepMimic", "test=True", "checkpoint={}".format(exported), "num_envs=2",
                     "num_test_games=1")
    assert proc.returncode == 0 and "warning: checkpoint" not in output(proc)


@pytest.mark.parametrize("precision", ["highest", "high"])
def test_matmul_precision_survives_rl_games_runner(precision):
    # rl_games' Runner switches TF32 on when it is built; the configured precision must win.
    sys.path.insert(0, REPO_ROOT)
    import train
    from omegaconf import OmegaConf

    before = torch.get_float32_matmul_precision()
    try:
        cfg = OmegaConf.create({"matmul_precision": precision, "wandb_activate": False, "test": False})
        train._make_runner(cfg, True, "unused", None)
        assert torch.get_float32_matmul_precision() == precision
        assert torch.backends.cuda.matmul.allow_tf32 == (precision != "highest")
    finally:
        torch.set_float32_matmul_precision(before)
