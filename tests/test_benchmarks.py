"""Smoke runs of the benchmark scripts on the CPU engine with tiny sizes (no timing asserted)."""
import os
import re
import subprocess
import sys
from poselib_utils.repository import REPO_ROOT



def run(script, *args):
    result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "benchmarks", script), *args],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def test_throughput_prints_engine_and_task_rates():
    out = run("throughput.py", "--engine", "mujoco", "--num-envs", "4", "8", "--steps", "5")
    rows = re.findall(r"^\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+(\d+)$", out, re.MULTILINE)
    assert [int(r[0]) for r in rows] == [4, 8]
    assert all(int(r[1]) > 0 and int(r[2]) > 0 for r in rows)


def test_train_throughput_reports_samples_per_second():
    out = run("train_throughput.py", "--engine", "mujoco", "--num-envs", "8", "--epochs", "2", "--skip", "0",
              "--", "matmul_precision=high")
    assert re.search(r"samples/s .*: \d+", out), out


def test_epoch_split_accounts_for_the_whole_epoch():
    """The five parts of an epoch add up to the epoch; every rate is printed (no timing asserted)."""
    out = run("epoch_split.py", "--engine", "mujoco", "--num-envs", "8", "--epochs", "3", "--skip", "1", "--steps", "5")
    rates = dict(re.findall(r"^(engine alone|task, random actions|rollout: task \+ policy|training) .*?([\d,]+)$", out,
                            re.MULTILINE))
    assert len(rates) == 4 and all(int(v.replace(",", "")) > 0 for v in rates.values()), out
    parts = re.findall(r"^(physics|task kernels|policy inference|rl_games bookkeeping|PPO update)\s+(-?[\d.]+)\s", out,
                       re.MULTILINE)
    total = float(re.search(r"^total\s+([\d.]+)$", out, re.MULTILINE).group(1))
    assert len(parts) == 5 and abs(sum(float(ms) for _, ms in parts) - total) < 0.5, out
    runs = os.path.join(REPO_ROOT, "runs")
    assert not [d for d in (os.listdir(runs) if os.path.isdir(runs) else []) if d.startswith("epoch_split_")]


def test_epoch_split_times_rl_games_rollout_and_traces_two_epochs():
    out = run("epoch_split.py", "--engine", "mujoco", "--num-envs", "8", "--epochs", "3", "--skip", "1", "--steps", "5",
              "--rollout", "rl_games", "--trace")
    assert "rl_games rollout" in out, out
    traced = re.search(r"^traced 2 epochs: ([\d.]+) s wall, operators busy ([\d.]+) s", out, re.MULTILINE)
    assert traced and 0 < float(traced.group(2)), out
    assert re.search(r"^\s+[\d.]+ ms\s+\d+ x  aten::", out, re.MULTILINE), out  # the busiest operators, listed


def test_train_throughput_passes_its_overrides_to_train():
    result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "benchmarks", "train_throughput.py"),
                             "--engine", "mujoco", "--num-envs", "8", "--epochs", "1", "--", "matmul_precision=fast"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "matmul_precision must be one of" in result.stderr + result.stdout


def test_learning_curves_train_evaluate_and_export(tmp_path):
    """A short run on the CPU engine: the curve's samples follow from the epoch (envs x horizon_length),
    the final checkpoint is exported with the run's settings, and the run's skill and task overrides
    reach the evaluations (no 'trained with other settings' warning)."""
    import csv

    import torch
    import yaml

    out = tmp_path / "results"
    # The run ends at its own epoch count, long before --seconds: the rows do not depend on the CPU's speed.
    run("learning.py", "--seconds", "600", "--num-envs", "8", "--engine", "mujoco", "--save-every", "2",
        "--eval-every", "3", "--eval-envs", "1", "--horizon", "1", "--parallel-evals", "2", "--out", str(out),
        "--bar-mm", "1e9", "--bar-success", "0", "--gpus", "3",
        "pytest_learning=motions/humanoid3d_cartwheel.txt skill=cartwheel task.env.termination_distance=0.8 "
        "max_iterations=13")
    try:
        with open(os.path.join(REPO_ROOT, "cfg", "train", "HumanoidDeepMimicPPO.yaml")) as f:
            horizon_length = yaml.safe_load(f)["params"]["config"]["horizon_length"]
        rows = list(csv.DictReader(open(out / "pytest_learning.csv")))
        epochs = [int(r["epoch"]) for r in rows]
        assert len(rows) >= 2 and epochs == sorted(set(epochs))
        assert epochs[:-1] == [6 * (i + 1) for i in range(len(epochs) - 1)]  # every 3rd of every 2nd epoch
        assert all(int(r["samples"]) == int(r["epoch"]) * 8 * horizon_length for r in rows)
        assert all(0.0 <= float(r["success_rate"]) <= 1.0 and float(r["mpjpe_g_mm"]) > 0.0 for r in rows)
        exported = torch.load(out / "pytest_learning.pth", map_location="cpu", weights_only=True)
        assert exported["epoch"] == epochs[-1] and exported["termination"]["contact_bodies"] == "character"
        assert exported["termination"]["termination_distance"] == 0.8
        assert open(out / "pytest_learning.train.log").readline().startswith("# CUDA_VISIBLE_DEVICES=3 ")
        logs = [open(p).read() for p in (out / "eval").glob("*.log")]
        assert len(logs) == len(rows) and not any("warning: checkpoint" in text for text in logs)
        summary = open(out / "summary.md").read()
        assert "| epoch | s | M samples |" in summary
        assert "first met at epoch {}:".format(epochs[0]) in summary  # a bar every checkpoint meets
    finally:
        import shutil

        shutil.rmtree(os.path.join(REPO_ROOT, "runs", "pytest_learning"), ignore_errors=True)


def import_learning():
    sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))
    try:
        import learning
    finally:
        sys.path.pop(0)
    return learning


def test_learning_waves_give_each_run_a_gpu_of_its_own():
    learning = import_learning()
    runs = [learning.Run(name, "clip", []) for name in "abc"]
    waves = learning.training_waves(runs, concurrent=False, gpus=["0", "1"])
    assert [[(r.name, r.gpu) for r in wave] for wave in waves] == [[("a", "0"), ("b", "1")], [("c", "0")]]
    assert learning.training_waves(runs, concurrent=True, gpus=[]) == [runs]
    assert learning.training_waves(runs, concurrent=False, gpus=[]) == [[r] for r in runs]


def test_learning_caps_only_runs_that_set_no_epoch_count():
    """The run skill's linear learning-rate schedule decays over its own 1900 epochs: no cap may replace them."""
    learning = import_learning()
    assert not learning.sets_own_epochs(learning.Run("a", "clip", ["skill=cartwheel", "task.env.x=1"]))
    assert learning.sets_own_epochs(learning.Run("b", "clip", ["skill=run"]))
    assert learning.sets_own_epochs(learning.Run("c", "clip", ["max_iterations=70"]))


def test_learning_bar_is_the_first_checkpoint_meeting_both_conditions():
    bar_line = import_learning().bar_line
    rows = [dict(epoch=e, seconds=10.0 * e, samples=1e6 * e, mpjpe_g_mm=mm, success_rate=ok)
            for e, mm, ok in [(1, 80.0, 0.0), (2, 25.0, 0.5), (3, 29.0, 1.0), (4, 20.0, 1.0)]]
    assert bar_line(rows, 30.0, 1.0).endswith("first met at epoch 3: 30 s, 3.0 M samples.")
    assert "first met at epoch 2" in bar_line(rows, 30.0, 0.5)
    assert bar_line(rows, 10.0, 1.0).endswith("not met; best 20.0 mm with 100% success at epoch 4 (40 s).")
    assert "best 25.0 mm with 50% success at epoch 2" in bar_line(rows[:2], 10.0, 1.0)  # none succeeded


def test_learning_rejects_malformed_runs(tmp_path):
    for spec, message in (("jump", "expected NAME=CLIP"), ("j=motions/nope.txt", "clip motions/nope.txt does not exist"),
                          ("j=motions/humanoid3d_jump.txt --concurrent --gpus 0,1", "exclude each other")):
        result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "benchmarks", "learning.py"), "--seconds",
                                 "1", "--out", str(tmp_path)] + spec.split(), cwd=REPO_ROOT, capture_output=True,
                                text=True)
        assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr
