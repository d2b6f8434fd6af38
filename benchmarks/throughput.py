"""Throughput of the physics engine alone and of the full HumanoidDeepMimic task.

    python benchmarks/throughput.py --engine mujoco --num-envs 64 256
    python benchmarks/throughput.py --engine mujoco_warp --num-envs 1024 4096 16384

Engine: random PD targets, no task. Task: engine + motion library + observations + reward +
resets, random actions. Prints policy steps per second summed over envs (env-steps/s).
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's packages
from poselib_utils.repository import DEFAULT_MJCF  # noqa: E402

from hydra import compose, initialize_config_dir  # noqa: E402

from tasks.config import CONFIG_DIR, register_resolvers  # noqa: E402
from tasks.engines import EngineConfig, build_engine, resolve_engine_name  # noqa: E402
from tasks.humanoid_deepmimic import HumanoidDeepMimic  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_engine(engine_name: str, num_envs: int, steps: int, device: str) -> float:
    engine = build_engine(engine_name, EngineConfig(DEFAULT_MJCF,
                                                    num_envs, 1.0 / 120.0, 4, device=device))
    targets = (torch.rand(num_envs, engine.num_dofs, device=engine.device) - 0.5)
    for _ in range(5):
        engine.set_pd_targets(targets)
        engine.step()
    _sync(engine.device)
    start = time.perf_counter()
    for _ in range(steps):
        engine.set_pd_targets(targets)
        engine.step()
    _sync(engine.device)
    rate = steps * num_envs / (time.perf_counter() - start)
    engine.close()
    return rate


def make_task(engine_name: str, num_envs: int, device: str) -> HumanoidDeepMimic:
    """The task as train.py builds it, from cfg/ with the given engine and env count."""
    from omegaconf import OmegaConf

    register_resolvers()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["num_envs={}".format(num_envs), "sim_engine=" + engine_name])
    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    return HumanoidDeepMimic(task_cfg, device, device, 0, True)


def time_task(engine_name: str, num_envs: int, steps: int, device: str) -> float:
    task = make_task(engine_name, num_envs, device)
    task.reset()
    actions = torch.zeros(num_envs, task.num_actions, device=task.device)
    for _ in range(5):
        task.step(actions.uniform_(-1, 1))
    _sync(task.device)
    start = time.perf_counter()
    for _ in range(steps):
        task.step(actions.uniform_(-1, 1))
    _sync(task.device)
    rate = steps * num_envs / (time.perf_counter() - start)
    task.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[64])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--device", default="")
    args = parser.parse_args()
    engine = resolve_engine_name(args.engine)
    device = args.device or ("cpu" if engine == "mujoco" else "cuda:0")
    print("engine={} device={} (4 substeps of 1/120 s per policy step)".format(engine, device))
    print("{:>8} {:>16} {:>16} {:>7} {:>10}".format("envs", "engine steps/s", "task steps/s", "ratio", "torch MiB"))
    for n in args.num_envs:
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        raw = time_engine(engine, n, args.steps, device)
        full = time_task(engine, n, args.steps, device)
        mem = torch.cuda.max_memory_allocated() / 2 ** 20 if device.startswith("cuda") else 0.0
        print("{:>8} {:>16.0f} {:>16.0f} {:>7.2f} {:>10.0f}".format(n, raw, full, full / raw, mem))


if __name__ == "__main__":
    main()
