"""Exact resume (tasks/rlgames/resume_state.py): with a fixed seed, training K+1 epochs in one run
gives the same network, optimizer and env state as training K epochs, stopping with a
checkpoint, and resuming for one epoch; a resume that drops the saved env/RNG state does not.
Runs train.py's main in-process (8 envs, 8-step horizon, a small network) to stay fast."""
import glob
import os
import shutil
import uuid

import pytest
import torch
from hydra import compose, initialize_config_dir

import train
from poselib_utils.repository import REPO_ROOT
from tasks.rlgames.resume_state import FORMAT_VERSION

K = 2
SMALL = ["task=HumanoidDeepMimic", "headless=True", "sim_engine=mujoco", "num_envs=8", "seed=7",
         "task.env.num_threads=2", "train.params.config.horizon_length=8", "train.params.config.mini_epochs=2",
         "train.params.network.mlp.units=[64,32]", "train.params.config.lr_schedule=adaptive",
         "train.params.config.save_frequency=0"]


def train_run(experiment, epochs, checkpoint=""):
    overrides = SMALL + ["experiment={}".format(experiment), "max_iterations={}".format(epochs)]
    if checkpoint:
        overrides.append("checkpoint={}".format(checkpoint))
    with initialize_config_dir(config_dir=os.path.join(REPO_ROOT, "cfg"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    train.main(cfg)
    found = glob.glob(os.path.join(REPO_ROOT, "runs", experiment, "nn", "last_*_ep_{}_*.pth".format(epochs)))
    assert len(found) == 1, found
    return found[0]


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def max_difference(a, b):
    """Largest absolute difference over the tensors of two nested checkpoint structures."""
    if torch.is_tensor(a):
        return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0
    if isinstance(a, dict):
        assert set(a) == set(b)
        return max([max_difference(a[k], b[k]) for k in a] + [0.0])
    if isinstance(a, (list, tuple)):
        return max([max_difference(x, y) for x, y in zip(a, b)] + [0.0])
    return 0.0


@pytest.fixture(scope="module")
def experiments():
    tag = "pytest_resume_{}_{}".format(os.getpid(), uuid.uuid4().hex[:6])
    names = {k: "{}_{}".format(tag, k) for k in ("straight", "stopped", "resumed", "reset")}
    try:
        yield names
    finally:
        for name in names.values():
            shutil.rmtree(os.path.join(REPO_ROOT, "runs", name), ignore_errors=True)


def test_resume_continues_exactly(experiments, tmp_path):
    straight = load(train_run(experiments["straight"], K + 1))
    stopped_path = train_run(experiments["stopped"], K)
    stopped = load(stopped_path)
    assert stopped["epoch"] == K and stopped["env_state"]["version"] == FORMAT_VERSION
    resumed = load(train_run(experiments["resumed"], K + 1, checkpoint=stopped_path))

    assert resumed["epoch"] == straight["epoch"] == K + 1
    assert resumed["frame"] == straight["frame"] == (K + 1) * 8 * 8
    assert max_difference(straight["model"], stopped["model"]) > 1e-6  # the last epoch did learn something
    assert max_difference(resumed["model"], straight["model"]) == 0.0  # bit-identical on the CPU, as the README says
    assert max_difference(resumed["optimizer"]["state"], straight["optimizer"]["state"]) == 0.0
    assert resumed["optimizer"]["param_groups"][0]["lr"] == pytest.approx(
        straight["optimizer"]["param_groups"][0]["lr"])
    task_r, task_s = resumed["env_state"]["task"], straight["env_state"]["task"]
    assert max_difference(task_r["buffers"], task_s["buffers"]) < 1e-4
    assert torch.equal(task_r["buffers"]["motion_times"], task_s["buffers"]["motion_times"])

    # Negative control: the same checkpoint without its env state (envs and RNGs restart) diverges.
    bare = dict(stopped, env_state=None)
    bare_path = str(tmp_path / "bare.pth")
    torch.save(bare, bare_path)
    reset = load(train_run(experiments["reset"], K + 1, checkpoint=bare_path))
    assert max_difference(reset["model"], straight["model"]) > 1e-4


@pytest.mark.parametrize("engine_name", ["mujoco", "mujoco_warp"])
def test_engine_state_round_trip(engine_name, committed_mjcf_path):
    """Capture after a step, step on (A), restore, step again (B): A and B are the same physics."""
    if engine_name == "mujoco_warp":
        pytest.importorskip("mujoco_warp")
    from tasks.engines import build_engine
    from tasks.engines.engine import EngineConfig

    device = "cuda:0" if engine_name == "mujoco_warp" and torch.cuda.is_available() else "cpu"
    engine = build_engine(engine_name, EngineConfig(mjcf_path=committed_mjcf_path, num_envs=2, sim_dt=1.0 / 120.0,
                                                    substeps=4, device=device))
    targets = 0.3 * torch.randn(2, engine.num_dofs, generator=torch.Generator().manual_seed(0)).to(device)
    engine.set_pd_targets(targets)
    for _ in range(3):
        engine.step()
    saved = engine.capture_state()
    runs = []
    for _ in range(2):
        engine.set_pd_targets(-targets)
        engine.step()
        engine.step()
        runs.append((engine.body_state().clone(), engine.dof_state().clone(), engine.contact_forces().clone()))
        engine.restore_state(saved)
    for a, b in zip(*runs):
        assert torch.equal(a, b)
    engine.close()
