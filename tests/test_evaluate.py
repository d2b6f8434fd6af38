"""benchmarks/evaluate.py over a freshly trained (1 epoch, in-process) checkpoint: one evaluation
episode per env from clip time 0, clips round-robin, the horizon respected, a JSON with every
metric per clip and the table printed."""
import json
import os
import shutil
import uuid

import pytest
from hydra import compose, initialize_config_dir

import train
from benchmarks import evaluate
from tasks.tracking_metrics import METRIC_KEYS
from poselib_utils.repository import REPO_ROOT



@pytest.fixture(scope="module")
def checkpoint():
    experiment = "pytest_eval_{}_{}".format(os.getpid(), uuid.uuid4().hex[:6])
    run_dir = os.path.join(REPO_ROOT, "runs", experiment)
    overrides = ["task=HumanoidDeepMimic", "headless=True", "sim_engine=mujoco", "num_envs=4", "max_iterations=1",
                 "task.env.num_threads=2", "train.params.config.horizon_length=4", "experiment=" + experiment]
    try:
        with initialize_config_dir(config_dir=os.path.join(REPO_ROOT, "cfg"), version_base="1.3"):
            train.main(compose(config_name="config", overrides=overrides))
        nn_dir = os.path.join(run_dir, "nn")
        yield os.path.join(nn_dir, sorted(os.listdir(nn_dir))[0])
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_evaluate_writes_metrics_per_clip(checkpoint, tmp_path, capsys):
    out = str(tmp_path / "metrics.json")
    evaluate.main(["--checkpoint", checkpoint, "--motion-file", "motions/humanoid3d_walk.txt",
                   "motions/humanoid3d_kick.txt", "--num-envs", "4", "--horizon", "0.5", "--json", out,
                   "--engine", "mujoco"])
    printed = capsys.readouterr().out
    assert "MPJPE-G mm" in printed and "humanoid3d_kick.txt" in printed
    assert "humanoid3d_kick.txt: worst bodies (MPJPE-G mm)" in printed
    with open(out) as f:
        result = json.load(f)
    metrics, meta = result["metrics"], result["meta"]
    assert set(metrics) == {"humanoid3d_walk.txt", "humanoid3d_kick.txt", "all"}
    assert meta["num_envs"] == 4 and meta["deterministic"] and meta["horizon_s"] == pytest.approx(0.5)
    for clip in ("humanoid3d_walk.txt", "humanoid3d_kick.txt"):
        m = metrics[clip]
        assert set(m) == set(METRIC_KEYS) | {"mpjpe_g_per_body_mm"}
        per_body = m["mpjpe_g_per_body_mm"]
        assert len(per_body) == 15 and sum(per_body.values()) / 15 == pytest.approx(m["mpjpe_g_mm"])
        assert m["num_episodes"] == 2  # envs 0, 2 walk; 1, 3 kick
        assert 0 < m["episode_length_steps"] <= 15  # 0.5 s at 30 Hz at most
        assert 0.0 <= m["normalized_return"] <= 1.0
        assert m["mpjpe_g_mm"] > 0 and m["mpjpe_l_mm"] >= 0 and 0 <= m["success_rate"] <= 1
    assert metrics["all"]["num_episodes"] == 4


def test_a_dog_checkpoint_is_evaluated_on_the_dog(tmp_path, capsys):
    experiment = "pytest_eval_dog_{}_{}".format(os.getpid(), uuid.uuid4().hex[:6])
    run_dir = os.path.join(REPO_ROOT, "runs", experiment)
    overrides = ["task=HumanoidDeepMimic", "character=dog3d", "headless=True", "sim_engine=mujoco", "num_envs=2",
                 "max_iterations=1", "task.env.num_threads=2", "train.params.config.horizon_length=4",
                 "experiment=" + experiment]
    try:
        with initialize_config_dir(config_dir=os.path.join(REPO_ROOT, "cfg"), version_base="1.3"):
            train.main(compose(config_name="config", overrides=overrides))
        nn_dir = os.path.join(run_dir, "nn")
        out = str(tmp_path / "dog.json")
        evaluate.main(["--checkpoint", os.path.join(nn_dir, sorted(os.listdir(nn_dir))[0]), "--motion-file",
                       "motions/dog3d_pace.txt", "--horizon", "0.3", "--json", out, "--engine", "mujoco"])
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    with open(out) as f:
        metrics = json.load(f)["metrics"]
    per_body = metrics["dog3d_pace.txt"]["mpjpe_g_per_body_mm"]
    assert len(per_body) == 23 and "left_toe" in per_body  # the dog's bodies, from its MJCF


def test_a_dataset_file_is_evaluated_clip_by_clip(checkpoint, tmp_path, capsys):
    """By default one env per clip of the dataset (not per file named); fewer envs than clips fail early."""
    dataset = os.path.join(REPO_ROOT, "motions", "datasets", "humanoid3d_walk_run.yaml")
    out = str(tmp_path / "metrics.json")
    evaluate.main(["--checkpoint", checkpoint, "--motion-file", dataset, "--horizon", "0.2", "--json", out,
                   "--engine", "mujoco"])
    with open(out) as f:
        metrics = json.load(f)["metrics"]
    assert set(metrics) == {"humanoid3d_walk.txt", "humanoid3d_run.txt", "all"}
    with pytest.raises(SystemExit, match=r"2 clips need num_envs >= 2, got 1"):
        evaluate.main(["--checkpoint", checkpoint, "--motion-file", dataset, "--num-envs", "1", "--engine", "mujoco"])
