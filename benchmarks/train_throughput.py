"""rl_games training throughput: runs train.py for a fixed number of epochs and reports the
samples per second rl_games measured (its "fps total": simulation, inference and PPO updates).

    python benchmarks/train_throughput.py --num-envs 4096 --epochs 30            # GPU engine
    python benchmarks/train_throughput.py --num-envs 16 --epochs 3 --engine mujoco
    python benchmarks/train_throughput.py --num-envs 4096 -- matmul_precision=highest   # train.py overrides after --
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's packages
from poselib_utils.repository import REPO_ROOT  # noqa: E402
FPS_TOTAL = re.compile(r"fps total: (\d+)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--skip", type=int, default=3, help="first epochs left out (warm-up, compilation)")
    parser.add_argument("overrides", nargs="*", help="train.py (hydra) overrides, after --")
    args = parser.parse_args()
    experiment = "train_throughput_" + uuid.uuid4().hex[:8]
    command = [sys.executable, os.path.join(REPO_ROOT, "train.py"), "task=HumanoidDeepMimic", "headless=True",
               "sim_engine=" + args.engine, "num_envs={}".format(args.num_envs),
               "max_iterations={}".format(args.epochs), "experiment=" + experiment] + list(args.overrides)
    try:
        result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    finally:
        shutil.rmtree(os.path.join(REPO_ROOT, "runs", experiment), ignore_errors=True)
    if result.returncode != 0:
        sys.exit("train.py failed:\n" + result.stdout[-3000:] + result.stderr[-3000:])
    rates = [int(v) for v in FPS_TOTAL.findall(result.stdout)]
    measured = rates[args.skip:] or rates
    if not measured:
        sys.exit("train.py printed no 'fps total' lines")
    print("envs={} epochs={} samples/s (rl_games fps total, mean of epochs {}..{}): {:.0f}".format(
        args.num_envs, args.epochs, len(rates) - len(measured) + 1, len(rates), sum(measured) / len(measured)))


if __name__ == "__main__":
    main()
