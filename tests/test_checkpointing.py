"""Preemption-safe training: atomic checkpoint writes, SIGTERM ends training with a loadable checkpoint
that resumes, and the torchrun multi-process path (gloo on CPU, the mujoco engine)."""
import glob
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
import torch
import yaml

from tasks.rlgames.checkpointing import atomic_save
from tasks.rlgames.distributed import RankInfo, rank_devices
from tasks.rlgames.stop_request import StopRequest
from poselib_utils.repository import REPO_ROOT

HORIZON = 32  # cfg/train/HumanoidDeepMimicPPO.yaml horizon_length


def _state(value):
    return {"model": {"w": torch.full((1000,), float(value))}, "epoch": int(value)}


def _half_write_then_fail(obj, f):
    f.write(b"\x80\x02partial")  # what a crash leaves behind: the start of a pickle
    f.flush()
    raise OSError("disk went away mid-write")


def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = str(tmp_path / "agent.pth")
    atomic_save(_state(1), path)
    monkeypatch.setattr(torch, "save", _half_write_then_fail)
    with pytest.raises(OSError, match="mid-write"):
        atomic_save(_state(2), path)
    monkeypatch.undo()
    assert os.listdir(str(tmp_path)) == ["agent.pth"]  # no partial temp file left
    assert torch.load(path, weights_only=True)["epoch"] == 1


def test_the_same_crash_breaks_a_plain_torch_save(tmp_path, monkeypatch):
    """Control: rl_games' direct torch.save(state, path) loses the previous checkpoint to this crash."""
    path = str(tmp_path / "agent.pth")
    torch.save(_state(1), path)
    monkeypatch.setattr(torch, "save", lambda obj, p: _half_write_then_fail(obj, open(p, "wb")))
    with pytest.raises(OSError):
        torch.save(_state(2), path)
    monkeypatch.undo()
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)


def test_kill_mid_write_keeps_previous_checkpoint(tmp_path):
    """A SIGKILL halfway through the write (no Python clean-up runs): the checkpoint path still holds
    the previous file, what is left cannot be taken for a checkpoint, and the next save in the folder,
    under any name (rl_games names each periodic checkpoint afresh), removes it."""
    path = str(tmp_path / "agent.pth")
    atomic_save(_state(1), path)
    child = textwrap.dedent("""
        import os, signal, sys, torch
        sys.path.insert(0, {root!r})
        from tasks.rlgames.checkpointing import atomic_save
        def killed_mid_write(obj, f):
            f.write(b"\\x80\\x02partial"); f.flush(); os.kill(os.getpid(), signal.SIGKILL)
        torch.save = killed_mid_write
        atomic_save({{"epoch": 2}}, {path!r})
    """).format(root=REPO_ROOT, path=str(tmp_path / "agent_ep_2.pth"))
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert torch.load(path, weights_only=True)["epoch"] == 1
    left = sorted(set(os.listdir(str(tmp_path))) - {"agent.pth"})
    assert left == [".agent_ep_2.pth.partial"] and glob.glob(str(tmp_path / "*.pth")) == [path]
    atomic_save(_state(3), str(tmp_path / "agent_ep_3.pth"))
    assert sorted(os.listdir(str(tmp_path))) == ["agent.pth", "agent_ep_3.pth"]
    assert torch.load(str(tmp_path / "agent_ep_3.pth"), weights_only=True)["epoch"] == 3


def test_rank_devices_follow_isaacgymenvs():
    one = RankInfo(0, 0, 1)
    assert rank_devices("mujoco", one, False, "", "", True) == ("cpu", "cpu")
    assert rank_devices("mujoco_warp", one, False, "", "", True) == ("cuda:0", "cuda:0")
    assert rank_devices("mujoco_warp", one, False, "cuda:1", "", True) == ("cuda:1", "cuda:1")
    third = RankInfo(local_rank=2, rank=6, world_size=8)  # second node, third GPU
    assert rank_devices("mujoco_warp", third, True, "", "", True) == ("cuda:2", "cuda:2")
    assert rank_devices("mujoco", third, True, "", "", True) == ("cpu", "cuda:2")
    assert rank_devices("mujoco", third, True, "", "", False) == ("cpu", "cpu")
    with pytest.raises(SystemExit, match="needs CUDA"):
        rank_devices("mujoco_warp", third, True, "", "", False)


def _start(cmd, experiment):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("RANK", None), env.pop("WORLD_SIZE", None), env.pop("LOCAL_RANK", None)
    return subprocess.Popen(cmd + ["task=HumanoidDeepMimic", "headless=True", "num_envs=8", "task.env.num_threads=1",
                                   "experiment={}".format(experiment)],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _read_until(proc, marker, timeout):
    """Lines of proc's output up to the first containing ``marker``."""
    lines, deadline = [], time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return "".join(lines)
    proc.kill()
    pytest.fail("no {!r} within {} s:\n{}".format(marker, timeout, "".join(lines)[-3000:]))


def _finish(proc, timeout):
    try:
        rest, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("did not exit within {} s of SIGTERM".format(timeout))
    return rest


@pytest.fixture
def experiment():
    name = "pytest_preempt_{}_{}".format(os.getpid(), uuid.uuid4().hex[:8])
    yield name, os.path.join(REPO_ROOT, "runs", name)
    shutil.rmtree(os.path.join(REPO_ROOT, "runs", name), ignore_errors=True)


def _sigterm_checkpoint(run_dir):
    found = glob.glob(os.path.join(run_dir, "nn", "last_HumanoidDeepMimic_ep_*_sigterm.pth"))
    assert len(found) == 1, os.listdir(os.path.join(run_dir, "nn"))
    return found[0]


def test_sigterm_writes_a_checkpoint_exits_cleanly_and_resumes(experiment):
    name, run_dir = experiment
    proc = _start([sys.executable, "train.py", "max_iterations=100000"], name)
    head = _read_until(proc, "epoch: 1/", timeout=60)
    proc.send_signal(signal.SIGTERM)
    out = head + _finish(proc, timeout=60)
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out
    path = _sigterm_checkpoint(run_dir)
    state = torch.load(path, map_location="cpu", weights_only=True)
    epoch = state["epoch"]
    assert epoch >= 1 and path.endswith("_ep_{}_sigterm.pth".format(epoch))
    assert state["frame"] == epoch * 8 * HORIZON  # every finished epoch counted, one process
    assert len(state["optimizer"]["state"]) > 0 and all(s["step"] > 0 for s in state["optimizer"]["state"].values())
    assert state["model"]["a2c_network.mu.weight"].shape[0] == 28

    resumed = subprocess.run([sys.executable, "train.py", "task=HumanoidDeepMimic", "headless=True", "num_envs=8",
                              "experiment={}".format(name), "checkpoint={}".format(path),
                              "max_iterations={}".format(epoch + 1)],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    text = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, text[-3000:]
    assert "epoch: {}/{}".format(epoch + 1, epoch + 1) in text and "epoch: 1/" not in text, text[-3000:]
    final = glob.glob(os.path.join(run_dir, "nn", "last_HumanoidDeepMimic_ep_{}_rew*.pth".format(epoch + 1)))
    assert len(final) == 1
    assert torch.load(final[0], weights_only=True)["frame"] == (epoch + 1) * 8 * HORIZON


def _worker_pids(torchrun_pid):
    """{RANK: pid} of torchrun's worker processes."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(torchrun_pid)], capture_output=True, text=True).stdout
    ranks = {}
    for pid in out.split():
        with open("/proc/{}/environ".format(pid), "rb") as f:
            env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        ranks[int(env[b"RANK"])] = int(pid)
    return ranks


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find torchrun's workers")
def test_two_processes_on_cpu_stop_together_when_one_rank_is_signalled(experiment):
    """torchrun, 2 CPU processes (gloo), mujoco engine. SIGTERM reaches rank 1 only: both ranks agree
    to stop at the same epoch, rank 0 alone writes the checkpoint, logs and config, torchrun exits 0."""
    name, run_dir = experiment
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py",
           "multi_gpu=True", "max_iterations=100000"]
    proc = _start(cmd, name)
    head = _read_until(proc, "epoch: 1/", timeout=90)
    workers = _worker_pids(proc.pid)
    assert sorted(workers) == [0, 1]
    os.kill(workers[1], signal.SIGTERM)
    out = head + _finish(proc, timeout=90)
    assert proc.returncode == 0, out[-3000:]
    assert "world_size = 2" in out and "self.seed = 42" in out and "self.seed = 43" in out  # seed + RANK
    path = _sigterm_checkpoint(run_dir)
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert state["frame"] == state["epoch"] * 8 * HORIZON * 2  # rl_games counts both ranks' samples
    assert len(state["optimizer"]["state"]) > 0
    assert out.count("stopped by signal after epoch {}".format(state["epoch"])) == 2  # same epoch on both ranks
    assert len(os.listdir(os.path.join(run_dir, "nn"))) == 1
    assert len(os.listdir(os.path.join(run_dir, "summaries"))) == 1  # one tensorboard writer (rank 0)
    with open(os.path.join(run_dir, "config.yaml")) as f:
        cfg = yaml.safe_load(f)
    assert cfg["world_size"] == 2 and cfg["multi_gpu"] is True and cfg["train"]["params"]["config"]["multi_gpu"]
    assert cfg["sim_engine"] == "mujoco" and cfg["rl_device"] == "cpu"


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_wandb_without_the_package_fails_clearly():
    proc = subprocess.run([sys.executable, "train.py", "headless=True", "num_envs=2", "wandb_activate=True"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "wandb_activate=True needs the 'wandb' package: pip install wandb" in text and "Traceback" not in text


def test_stop_request_sets_a_flag_while_training():
    request = StopRequest().install([signal.SIGUSR1])
    request.start_training()
    try:
        assert not request.requested
        os.kill(os.getpid(), signal.SIGUSR1)
        assert request.requested and request.signum == signal.SIGUSR1
    finally:
        request.uninstall()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_stop_request_exits_cleanly_during_start_up(capsys):
    request = StopRequest().install([signal.SIGUSR1])
    try:
        with pytest.raises(SystemExit) as stopped:
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(1.0)  # the handler runs at the next bytecode; the sleep only bounds the wait
    finally:
        request.uninstall()
    assert stopped.value.code == 0
    assert "received SIGUSR1 during start-up: nothing trained yet, nothing to save" in capsys.readouterr().out


def test_a_start_up_signal_inside_an_import_still_exits_0(monkeypatch, capsys):
    """A signal while a C extension initialises (mujoco's import) reaches train.py as ImportError, not
    the handler's SystemExit (seen once in CI: exit code 1 and a traceback)."""
    sys.path.insert(0, REPO_ROOT)
    import train
    from omegaconf import OmegaConf

    def interrupted_import(cfg, stop_request):
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(1.0)  # the handler runs at the next bytecode
        except SystemExit as stop:
            raise ImportError("initialization failed") from stop  # what the import makes of it

    request = StopRequest().install([signal.SIGUSR1])
    monkeypatch.setattr(train, "STARTUP_STOP_REQUEST", request)
    monkeypatch.setattr(train, "_run", interrupted_import)
    with pytest.raises(SystemExit) as stopped:
        train.main.__wrapped__(OmegaConf.create({"test": False}))
    assert stopped.value.code == 0
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL  # uninstalled on the way out
    assert "received SIGUSR1 during start-up" in capsys.readouterr().out


def test_sigterm_in_the_first_seconds_exits_0(experiment):
    """train.py installs its handler before hydra composes the config: a SIGTERM while the task is
    still being built ends the run with code 0 and says nothing was saved (IsaacGym would be killed)."""
    name, run_dir = experiment
    proc = subprocess.Popen([sys.executable, "train.py", "headless=True", "num_envs=2", "experiment=" + name],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    out = _finish(proc, 60)
    assert proc.returncode == 0, out
    assert "during start-up: nothing trained yet, nothing to save" in out
    assert not os.path.exists(os.path.join(run_dir, "nn"))
