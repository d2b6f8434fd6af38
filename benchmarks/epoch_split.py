"""Where a training epoch's time goes: engine, task, rollout and training rates, and the split of
one epoch into physics, task kernels, policy inference, rl_games' bookkeeping and the PPO update
(physics and task kernels as one part where the step is replayed as one CUDA graph).

    python benchmarks/epoch_split.py --num-envs 4096 --epochs 20            # GPU engine
    python benchmarks/epoch_split.py --engine mujoco --num-envs 64 --epochs 4

One process: the engine alone and the task alone with random actions (benchmarks/throughput.py),
then rl_games training as train.py runs it. Training runs ``--epochs`` epochs untimed (rl_games'
own samples/s, no synchronisation added) and as many again with a device synchronisation around
every timed part, whose sums give the split; the rollout rate (task + policy, no update) comes from
that second pass. The first ``--skip`` epochs of each pass are left out (warm-up).
``--rollout rl_games`` times rl_games' own per-step-synchronising rollout instead of the project's
(tasks/rlgames/rollout.py); ``--trace`` profiles two epochs of the untimed pass and prints the
device time of the kernels that take most of it.
"""
import argparse
import os
import shutil
import sys
import time
import uuid
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's packages
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

import train  # noqa: E402
from benchmarks.throughput import time_engine, time_task  # noqa: E402
from rl_games.common.a2c_common import A2CBase  # noqa: E402

from tasks.config import CONFIG_DIR, register_resolvers  # noqa: E402
from tasks.rlgames.checkpointing import PreemptibleA2CAgent  # noqa: E402
from tasks.rlgames.evaluation import unwrap_task  # noqa: E402


class EpochClock:
    """Seconds per timed part, summed over the epochs after ``skip``; ``timing`` False: epochs only."""

    def __init__(self, device: torch.device, skip: int, timing: bool, rollout: str = "one_sync", trace: bool = False):
        self.device, self.skip, self.timing, self.rollout = device, skip, timing, rollout
        self.seconds = defaultdict(float)
        self.epochs = 0
        self.horizon = 0  # policy steps per env and epoch, set from the training config
        self.profiler = torch.profiler.profile() if trace else None

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def timed(self, name, fn):
        def run(*args, **kwargs):
            if not self.timing or (self.device.type == "cuda" and torch.cuda.is_current_stream_capturing()):
                # (a graph's capture runs nothing to time, and may not synchronise)
                return fn(*args, **kwargs)
            self.sync()
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            self.sync()
            if self.epochs >= self.skip:
                self.seconds[name] += time.perf_counter() - start
            return out
        return run


class TimedAgent(PreemptibleA2CAgent):
    """rl_games' agent with its rollout, inference, env step and epoch timed by ``clock``."""

    def __init__(self, base_name, params, clock: EpochClock):
        super().__init__(base_name, params)
        self.clock = clock
        engine = unwrap_task(self.vec_env).engine
        engine.step = clock.timed("engine step", engine.step)  # this engine object only

    def get_action_values(self, obs):
        return self.clock.timed("inference", super().get_action_values)(obs)

    def env_step(self, actions):
        return self.clock.timed("env step", super().env_step)(actions)

    def play_steps(self):
        rollout = super().play_steps if self.clock.rollout == "one_sync" else lambda: A2CBase.play_steps(self)
        return self.clock.timed("rollout", rollout)()

    def train_epoch(self):
        profiler, traced = self.clock.profiler, self.clock.epochs - self.clock.skip
        if profiler is not None and traced == 0:
            profiler.start()
        self.clock.sync()
        start = time.perf_counter()
        out = super().train_epoch()
        self.clock.sync()
        if self.clock.epochs >= self.clock.skip:
            self.clock.seconds["epoch"] += time.perf_counter() - start
        if profiler is not None and traced in (0, 1):
            self.clock.seconds["traced"] += time.perf_counter() - start
            if traced == 1:
                profiler.stop()
        self.clock.epochs += 1
        return out


def train_epochs(engine: str, num_envs: int, epochs: int, skip: int, timing: bool, overrides, rollout: str = "one_sync",
                 trace: bool = False) -> EpochClock:
    """``epochs`` epochs of train.py's training; the clock of them."""
    register_resolvers()
    experiment = "epoch_split_" + uuid.uuid4().hex[:8]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["sim_engine=" + engine, "num_envs={}".format(num_envs),
                                                        "max_iterations={}".format(epochs), "headless=True"]
                      + list(overrides))
    engine = train.check_config(cfg)
    from rl_games.torch_runner import Runner

    from tasks.rlgames.distributed import rank_info
    from tasks.rlgames.observers import EpisodeStatsObserver, MultiObserver

    sim_device, rl_device = train._set_up_process(cfg, engine, rank_info(False))
    run_dir = os.path.join(train.RUNS_DIR, experiment)
    tasks_made = train._register_task(cfg, engine, run_dir, True, sim_device, rl_device)
    train_cfg = train._train_config(cfg, rl_device, experiment)
    train_cfg["params"]["config"]["save_frequency"] = 0
    clock = EpochClock(torch.device(rl_device), skip, timing, rollout, trace)
    clock.horizon = int(train_cfg["params"]["config"]["horizon_length"])
    runner = Runner(algo_observer=MultiObserver([EpisodeStatsObserver()]))  # as train.py's
    train.set_matmul_precision(cfg)
    runner.algo_factory.register_builder("a2c_continuous", lambda **kwargs: TimedAgent(clock=clock, **kwargs))
    try:
        runner.load(train_cfg)
        runner.reset()
        runner.run({"train": True, "play": False, "checkpoint": None, "sigma": None})
    finally:
        tasks_made.close()
        shutil.rmtree(run_dir, ignore_errors=True)
    return clock


def split(clock: EpochClock) -> dict:
    """The epoch's parts. With the step replayed as one CUDA graph the engine's own launches are inside
    it: physics and task kernels are then one part."""
    s = clock.seconds
    if s["engine step"] == 0.0:
        return {"physics + task kernels (one CUDA graph)": s["env step"], "policy inference": s["inference"],
                "rl_games bookkeeping": s["rollout"] - s["env step"] - s["inference"], "PPO update": s["epoch"] - s["rollout"]}
    return {"physics": s["engine step"], "task kernels": s["env step"] - s["engine step"],
            "policy inference": s["inference"], "rl_games bookkeeping": s["rollout"] - s["env step"] - s["inference"],
            "PPO update": s["epoch"] - s["rollout"]}


def print_trace(clock: EpochClock, rows: int = 25) -> None:
    """The kernels with the most device time over the two traced epochs, and how busy the device was."""
    events = clock.profiler.key_averages()
    on_cpu = clock.device.type == "cpu"
    device_us = [(e.self_cpu_time_total if on_cpu else e.self_device_time_total, e.count, e.key) for e in events]
    busy = sum(us for us, _, _ in device_us) / 1e6
    wall = clock.seconds["traced"]
    print("traced 2 epochs: {:.3f} s wall, {} busy {:.3f} s ({:.0f} %)".format(
        wall, "operators" if on_cpu else "kernels", busy, 100 * busy / wall))
    for us, count, key in sorted(device_us, reverse=True)[:rows]:
        if us > 0:
            print("{:>9.1f} ms {:>7} x  {}".format(us / 1e3, count, key[:90]))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--skip", type=int, default=3, help="first epochs of each pass left out")
    parser.add_argument("--steps", type=int, default=100, help="steps of the engine and task timings")
    parser.add_argument("--rollout", choices=("one_sync", "rl_games"), default="one_sync")
    parser.add_argument("--trace", action="store_true", help="profile two epochs of the untimed pass")
    parser.add_argument("overrides", nargs="*", help="train.py (hydra) overrides, after --")
    args = parser.parse_args(argv)
    if args.skip >= args.epochs:
        raise SystemExit("--skip must be below --epochs")
    if args.trace and args.epochs < args.skip + 2:
        raise SystemExit("--trace profiles epochs --skip and --skip + 1: --epochs must be at least --skip + 2")
    from tasks.engines import resolve_engine_name

    engine = resolve_engine_name(args.engine)
    device = "cuda:0" if engine != "mujoco" else "cpu"
    engine_rate = time_engine(engine, args.num_envs, args.steps, device)
    task_rate = time_task(engine, args.num_envs, args.steps, device)
    untimed = train_epochs(engine, args.num_envs, args.epochs, args.skip, False, args.overrides, args.rollout,
                           args.trace)
    timed = train_epochs(engine, args.num_envs, args.epochs, args.skip, True, args.overrides, args.rollout)
    horizon = timed.horizon
    samples = (args.epochs - args.skip) * args.num_envs * horizon
    parts = split(timed)
    print("envs={} epochs={} (first {} left out), horizon {}, {} rollout".format(
        args.num_envs, args.epochs, args.skip, horizon, args.rollout))
    print("{:<34} {:>14}".format("rate", "per second"))
    print("{:<34} {:>14,.0f}".format("engine alone (env-steps)", engine_rate))
    print("{:<34} {:>14,.0f}".format("task, random actions (env-steps)", task_rate))
    print("{:<34} {:>14,.0f}".format("rollout: task + policy (samples)", samples / timed.seconds["rollout"]))
    print("{:<34} {:>14,.0f}".format("training (samples)", samples / untimed.seconds["epoch"]))
    print("{:<34} {:>9} {:>6}".format("one epoch, synchronised", "ms", "%"))
    per_epoch = 1000.0 / (args.epochs - args.skip)
    for name, seconds in parts.items():
        print("{:<34} {:>9.1f} {:>5.1f}%".format(name, seconds * per_epoch, 100.0 * seconds / timed.seconds["epoch"]))
    print("{:<34} {:>9.1f}".format("total", timed.seconds["epoch"] * per_epoch))
    if args.trace:
        print_trace(untimed)


if __name__ == "__main__":
    main()
