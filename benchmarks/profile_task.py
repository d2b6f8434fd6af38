"""Where a task step spends its time: torch.profiler over random-action steps.

    python benchmarks/profile_task.py --engine mujoco_warp --num-envs 4096
"""
import argparse
import os
import sys
import traceback
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from throughput import make_task  # noqa: E402
from tasks.engines import resolve_engine_name  # noqa: E402


def label_calls(obj, method: str, label: str) -> None:
    """Wrap ``obj.method`` in a profiler range so the table shows its total."""
    inner = getattr(obj, method)

    def wrapped(*args, **kwargs):
        with torch.profiler.record_function(label):
            return inner(*args, **kwargs)

    setattr(obj, method, wrapped)


def report_synchronisations(step) -> None:
    """Run two steps with CUDA sync debugging on; print the call stack of each synchronisation."""
    seen = set()

    def show(message, category, filename, lineno, file=None, line=None):
        stack = "".join(traceback.format_stack()[-8:-1])
        if stack not in seen:
            seen.add(stack)
            print("--- {}\n{}".format(message, stack))

    warnings.showwarning = show
    warnings.simplefilter("always")
    torch.cuda.set_sync_debug_mode("warn")
    for _ in range(2):
        step()
    torch.cuda.set_sync_debug_mode("default")
    print("{} distinct synchronising call sites".format(len(seen)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rows", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=200, help="steps first (TorchScript specialises on shapes)")
    parser.add_argument("--find-syncs", action="store_true",
                        help="print where a step makes the host wait for the GPU, then exit")
    args = parser.parse_args()
    engine = resolve_engine_name(args.engine)
    device = "cpu" if engine == "mujoco" else "cuda:0"
    task = make_task(engine, args.num_envs, device)
    for obj, method in ((task.motion_lib, "get_state"), (task.engine, "set_state"), (task, "_reset_envs"),
                        (task, "compute_observations"), (task, "_record_episode_stats")):
        label_calls(obj, method, "## " + type(obj).__name__ + "." + method)
    task.reset()
    actions = torch.zeros(args.num_envs, task.num_actions, device=task.device)
    for _ in range(args.warmup):
        task.step(actions.uniform_(-1, 1))
    if args.find_syncs:
        report_synchronisations(lambda: task.step(actions.uniform_(-1, 1)))
        return
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities, with_stack=False) as prof:
        for _ in range(args.steps):
            with torch.profiler.record_function("pre_physics_step"):
                task.pre_physics_step(actions.uniform_(-1, 1))
            with torch.profiler.record_function("engine.step"):
                task.engine.step()
            with torch.profiler.record_function("post_physics_step"):
                task.post_physics_step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
