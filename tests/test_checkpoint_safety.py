"""Checkpoints are read without running anything in them, and a bad one fails with one line.

A crafted .pth whose unpickling would run a shell command is given to every entry point that reads
checkpoints (play, resume, evaluate, export): each exits non-zero naming the file and what it asked
for, and the command never ran. Truncated, random, JSON and model-less files, and weights of another
network, fail the same way; the checkpoints the project writes and ships load with
``weights_only=True``, and a shipped policy (weights only) seeds training as a fine-tune."""
import glob
import os
import subprocess
import sys

import pytest
import torch

from poselib_utils.repository import REPO_ROOT
from tasks.rlgames.checkpoint_loading import CheckpointError, load_checkpoint

WALK = os.path.join(REPO_ROOT, "checkpoints", "humanoid3d_walk.pth")
SHIPPED = sorted(glob.glob(os.path.join(REPO_ROOT, "checkpoints", "*.pth")))


class ShellPayload:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch " + self.marker,))


@pytest.fixture
def payload(tmp_path):
    marker = str(tmp_path / "payload_ran")
    path = str(tmp_path / "evil.pth")
    torch.save({"model": ShellPayload(marker), "epoch": 1}, path)
    return path, marker


def run(args, timeout=300):
    result = subprocess.run([sys.executable] + args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout + result.stderr


def train_args(*extra):
    return ["train.py", "task=HumanoidDeepMimic", "headless=True", "num_envs=2", "sim_engine=mujoco"] + list(extra)


@pytest.mark.parametrize("entry", ["play", "resume", "evaluate", "export"])
def test_a_payload_checkpoint_is_refused_and_never_runs(entry, payload, tmp_path):
    path, marker = payload
    args = {"play": train_args("test=True", "checkpoint=" + path),
            "resume": train_args("max_iterations=1", "experiment=pytest_payload", "checkpoint=" + path),
            "evaluate": ["benchmarks/evaluate.py", "--checkpoint", path, "--engine", "mujoco", "--horizon", "1"],
            "export": ["-m", "tasks.rlgames.export_checkpoint", path, str(tmp_path / "out.pth")]}[entry]
    code, output = run(args)
    assert code != 0
    assert "checkpoint {} refused: it asks to run posix.system".format(path) in output, output[-2000:]
    assert "Traceback" not in output
    assert not os.path.exists(marker)
    assert not os.path.exists(tmp_path / "out.pth")


def test_the_isaacgymenvs_entry_refuses_a_payload_before_rl_games_sees_it(payload, tmp_path):
    """IsaacGymEnvs' own runner would load ``checkpoint=`` unsafely: the registration checks it first."""
    from tasks.isaacgymenvs_registration import check_checkpoint_argument

    path, marker = payload
    with pytest.raises(SystemExit, match="refused: it asks to run posix.system"):
        check_checkpoint_argument(["task=HumanoidDeepMimic", "test=True", "checkpoint=" + path])
    assert not os.path.exists(marker)
    with pytest.raises(SystemExit, match="exported policy .* play or fine-tune it with this repository's train.py"):
        check_checkpoint_argument(["task=HumanoidDeepMimic", "test=True", "checkpoint=" + WALK])  # no critic
    full = str(tmp_path / "full.pth")  # a training checkpoint holds the whole network
    torch.save({"model": torch.load(WALK, weights_only=True)["model"], "optimizer": {}}, full)
    check_checkpoint_argument(["task=HumanoidDeepMimic", "test=True", "checkpoint=" + full])


def write_bad_files(tmp_path):
    data = open(WALK, "rb").read()
    files = {"truncated.pth": data[:len(data) // 2], "random.pth": os.urandom(4096), "json.pth": b'{"model": {}}'}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    torch.save({"epoch": 3}, str(tmp_path / "no_model.pth"))
    torch.save([1, 2, 3], str(tmp_path / "a_list.pth"))


@pytest.mark.parametrize("name, words", [
    ("truncated.pth", "is truncated or corrupt"),
    ("random.pth", "is not a file written by torch.save"),
    ("json.pth", "is not a file written by torch.save"),
    ("no_model.pth", "is not an rl_games checkpoint: it has no 'model' weights"),
    ("a_list.pth", "is not an rl_games checkpoint: it has no 'model' weights"),
])
def test_bad_checkpoint_files_fail_with_one_line(name, words, tmp_path):
    write_bad_files(tmp_path)
    path = str(tmp_path / name)
    with pytest.raises(CheckpointError, match="checkpoint {} ".format(path)) as err:
        load_checkpoint(path)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_playing_a_bad_checkpoint_exits_with_its_message(tmp_path):
    write_bad_files(tmp_path)
    code, output = run(train_args("test=True", "checkpoint=" + str(tmp_path / "truncated.pth")))
    assert code != 0 and "is truncated or corrupt" in output and "Traceback" not in output, output[-2000:]


def test_weights_of_another_network_name_the_tensor_and_the_setting():
    code, output = run(train_args("test=True", "checkpoint=" + WALK, "train.params.network.mlp.units=[64,32]"))
    assert code != 0 and "Traceback" not in output, output[-2000:]
    assert "'a2c_network.actor_mlp.0.weight' is [1024, " in output and "in this network" in output
    assert "train.params.network.mlp.units" in output


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_shipped_policies_load_with_weights_only(path):
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert "a2c_network.mu.weight" in state["model"]


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_shipped_policies_hold_the_actor_alone_in_float16(path):
    """What playing needs and no more: no critic or value normaliser, weight matrices in half precision."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert state["actor_only"] is True and "optimizer" not in state and "env_state" not in state
    assert not [k for k in state["model"] if "critic" in k or k.startswith(("a2c_network.value.", "value_mean_std"))]
    assert all(v.dtype == torch.float16 for v in state["model"].values() if v.dim() == 2)
    assert os.path.getsize(path) < 2.5e6


def test_a_shipped_policy_seeds_training_as_a_fine_tune(tmp_path):
    """Weights only (no optimizer): training starts from them with a fresh optimizer and epoch count,
    and says so; the checkpoint it writes loads with weights_only=True."""
    name = "pytest_finetune"
    try:
        code, output = run(train_args("checkpoint=" + WALK, "max_iterations=1", "experiment=" + name,
                                      "train.params.config.horizon_length=8", "train.params.config.minibatch_size=16"))
        assert code == 0, output[-3000:]
        assert ("fine-tuning from the weights of {}: a fresh optimizer and epoch count, and a fresh critic "
                "(an exported policy has none)".format(WALK)) in output
        written = glob.glob(os.path.join(REPO_ROOT, "runs", name, "nn", "*.pth"))
        assert written
        state = torch.load(written[0], map_location="cpu", weights_only=True)
        assert state["epoch"] == 1 and "optimizer" in state and "env_state" in state
        fine_tuned = state["model"]["a2c_network.mu.weight"]
        shipped = torch.load(WALK, map_location="cpu", weights_only=True)["model"]["a2c_network.mu.weight"]
        assert (fine_tuned - shipped.float()).abs().max() < 0.05  # one small update away from the shipped weights
    finally:
        import shutil

        shutil.rmtree(os.path.join(REPO_ROOT, "runs", name), ignore_errors=True)
