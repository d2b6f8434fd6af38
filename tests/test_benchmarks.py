"""Smoke runs of the benchmark scripts on the CPU engine with tiny sizes (no timing asserted)."""
import os
import re
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    out = run("train_throughput.py", "--engine", "mujoco", "--num-envs", "8", "--epochs", "2", "--skip", "0")
    assert re.search(r"samples/s .*: \d+", out), out
