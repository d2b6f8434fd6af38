"""Learning curves in tracking metrics: train clips for a fixed wall time, then evaluate the saved
checkpoints along the way (MPJPE-G etc. against samples and seconds) and export the final policies.

    python benchmarks/learning.py --seconds 900 --out results \\
        jump=motions/humanoid3d_jump.txt \\
        "cartwheel=motions/humanoid3d_cartwheel.txt skill=cartwheel" \\
        "trot=motions/dog3d_trot.txt character=dog3d"

Each run is ``NAME=CLIP`` plus hydra overrides for train.py. Training ends with SIGTERM after
``--seconds`` (train.py then writes a final checkpoint); a run continues an earlier one with
``checkpoint=<its .pth>`` among its overrides. Runs train one after the other, or all at once with
``--concurrent`` (several runs sharing one GPU: their wall times are then not those of a run alone), or
with ``--gpus 0,1`` side by side on a multi-GPU machine, each alone on its GPU (wall times of a run alone).
Every ``--eval-every``-th saved checkpoint and the final one are evaluated as benchmarks/evaluate.py
does (the run's ``character=``, ``skill=``, ``goal=`` and ``task.*`` overrides apply there too),
``--parallel-evals`` at a time. Writes
``<out>/<name>.csv`` (epoch, seconds since the start, samples, metrics), ``<out>/<name>.pth`` (the
final checkpoint, exported), ``<out>/<name>_metrics.json`` and ``<out>/summary.md`` (with ``--bar-mm``,
the first evaluated checkpoint that met the bar: the wall time and samples it took).
"""
import argparse
import concurrent.futures
import csv
import glob
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from typing import Dict, List, NamedTuple, Optional

import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's packages
from poselib_utils.repository import REPO_ROOT  # noqa: E402

METRICS = ("success_rate", "mpjpe_g_mm", "mpjpe_l_mm", "root_pos_err_mm", "root_rot_err_deg", "mpjpe_pa_mm",
           "normalized_return")


class Run(NamedTuple):
    name: str
    clip: str
    overrides: List[str]
    gpu: Optional[str] = None  # CUDA_VISIBLE_DEVICES of its training and evaluations (--gpus)


def parse_run(spec: str) -> Run:
    words = shlex.split(spec)
    name, sep, clip = words[0].partition("=") if words else ("", "", "")
    if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or not clip:
        raise SystemExit("run '{}': expected NAME=CLIP [override ...], NAME of letters, digits, '_', '.', '-'".format(
            spec))
    if not os.path.isfile(os.path.join(REPO_ROOT, clip)) and not os.path.isfile(clip):
        raise SystemExit("run '{}': clip {} does not exist".format(name, clip))
    return Run(name, os.path.abspath(clip if os.path.isfile(clip) else os.path.join(REPO_ROOT, clip)), words[1:])


def run_env(run: Run) -> Dict[str, str]:
    env = dict(os.environ)
    if run.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = run.gpu
    return env


def sets_own_epochs(run: Run) -> bool:
    """Whether ``run`` fixes its epoch count: max_iterations or max_epochs among its overrides, or a skill
    whose file sets train.params.config.max_epochs (a linear learning-rate schedule decays over it)."""
    if any(o.startswith(("max_iterations=", "train.params.config.max_epochs=")) for o in run.overrides):
        return True
    for override in run.overrides:
        if override.startswith("skill="):
            path = os.path.join(REPO_ROOT, "cfg", "skill", override.split("=", 1)[1] + ".yaml")
            if not os.path.isfile(path):
                continue
            with open(path) as f:
                config = ((yaml.safe_load(f) or {}).get("train") or {}).get("params", {}).get("config", {})
            if "max_epochs" in config:
                return True
    return False


def train(run: Run, args) -> subprocess.Popen:
    """Starts train.py for ``run``; its output goes to <out>/<name>.train.log, after a line with the command.
    ``--max-epochs`` caps the runs that do not set their own epoch count."""
    epoch_cap = [] if sets_own_epochs(run) else ["max_iterations={}".format(args.max_epochs)]
    cmd = [sys.executable, os.path.join(REPO_ROOT, "train.py"), "task=HumanoidDeepMimic", "headless=True",
           "experiment={}".format(run.name), "num_envs={}".format(args.num_envs), "sim_engine={}".format(args.engine),
           "task.env.motion_file='{}'".format(run.clip), "train.params.config.save_frequency={}".format(args.save_every)
           ] + epoch_cap + run.overrides
    with open(os.path.join(args.out, run.name + ".train.log"), "w") as log:  # the child keeps its own handle
        prefix = "CUDA_VISIBLE_DEVICES={} ".format(run.gpu) if run.gpu is not None else ""
        log.write("# {}{}\n".format(prefix, " ".join(shlex.quote(c) for c in cmd[1:])))
        log.flush()
        return subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=run_env(run))


def training_waves(runs: List[Run], concurrent: bool, gpus: List[str]) -> List[List[Run]]:
    """The groups of runs that train at the same time: all (``concurrent``), one per GPU (``gpus``: each
    run alone on its GPU), or one at a time."""
    if concurrent:
        return [list(runs)]
    if gpus:
        placed = [run._replace(gpu=gpus[i % len(gpus)]) for i, run in enumerate(runs)]
        return [placed[i:i + len(gpus)] for i in range(0, len(placed), len(gpus))]
    return [[run] for run in runs]


def train_for(waves: List[List[Run]], args) -> Dict[str, float]:
    """Trains each wave's runs together for ``args.seconds``; returns each run's start time."""
    starts = {}
    for batch in waves:
        procs = {}
        for run in batch:
            starts[run.name] = time.time()
            procs[run.name] = train(run, args)
        deadline = time.time() + args.seconds
        for name, proc in procs.items():
            try:
                proc.wait(timeout=max(deadline - time.time(), 0.0))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)  # train.py: finish the epoch, save, exit 0
                proc.wait()
            if proc.returncode != 0:
                raise SystemExit("training {} failed (exit {}): see {}".format(
                    name, proc.returncode, os.path.join(args.out, name + ".train.log")))
            print("trained {} for {:.0f} s".format(name, time.time() - starts[name]), flush=True)
    return starts


def epoch_of(checkpoint: str) -> int:
    """The epoch in train.py's checkpoint names: last_<name>_ep_<epoch>_rew_<r>.pth or ..._sigterm.pth."""
    return int(re.search(r"_ep_(\d+)", os.path.basename(checkpoint)).group(1))


def checkpoints_to_evaluate(run: Run, start: float, every: int) -> List[str]:
    """Every ``every``-th checkpoint this run saved (not an earlier run's of the same name) and its last."""
    saved = [p for p in glob.glob(os.path.join(REPO_ROOT, "runs", run.name, "nn", "last_*_ep_*.pth"))
             if os.path.getmtime(p) >= start]
    by_epoch = sorted(saved, key=lambda p: (epoch_of(p), os.path.getmtime(p)))
    if not by_epoch:
        raise SystemExit("run {} saved no checkpoint: see its training log".format(run.name))
    chosen = {}  # epoch -> checkpoint; the final (SIGTERM) one replaces a regular save of its epoch
    for path in by_epoch[every - 1::every] + [by_epoch[-1]]:
        chosen[epoch_of(path)] = path
    return [chosen[epoch] for epoch in sorted(chosen)]


def evaluate(run: Run, checkpoint: str, args) -> dict:
    out = os.path.join(args.out, "eval", "{}__{}.json".format(run.name, os.path.basename(checkpoint)[:-4]))
    cmd = [sys.executable, os.path.join(REPO_ROOT, "benchmarks", "evaluate.py"), "--checkpoint", checkpoint,
           "--motion-file", run.clip, "--num-envs", str(args.eval_envs), "--horizon", str(args.horizon),
           "--engine", args.engine, "--json", out, "--"] + [o for o in run.overrides
                                                             if o.startswith(("task.", "skill=", "character=", "goal="))]
    result = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, env=run_env(run))
    with open(out[:-5] + ".log", "w") as f:
        f.write(result.stdout + result.stderr)
    if result.returncode != 0:
        raise SystemExit("evaluating {} failed:\n{}".format(checkpoint, (result.stdout + result.stderr)[-3000:]))
    with open(out) as f:
        return json.load(f)


def curve(run: Run, start: float, args) -> List[dict]:
    """One row per evaluated checkpoint: epoch, seconds since the run started, samples, metrics."""
    from tasks.rlgames.checkpoint_loading import load_checkpoint

    checkpoints = checkpoints_to_evaluate(run, start, args.eval_every)
    with concurrent.futures.ThreadPoolExecutor(args.parallel_evals) as pool:
        results = list(pool.map(lambda c: evaluate(run, c, args), checkpoints))
    rows = []
    for checkpoint, result in zip(checkpoints, results):
        state = load_checkpoint(checkpoint)
        metrics = result["metrics"]["all"]
        rows.append(dict({"epoch": state["epoch"], "seconds": round(os.path.getmtime(checkpoint) - start, 1),
                          "samples": state["frame"], "checkpoint": os.path.relpath(checkpoint, REPO_ROOT)},
                         **{k: metrics[k] for k in METRICS}))
    return rows


def write_results(run: Run, rows: List[dict], final_metrics: dict, args) -> str:
    from tasks.rlgames.export_checkpoint import export_checkpoint

    with open(os.path.join(args.out, run.name + ".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        writer.writerows(rows)
    export_checkpoint(os.path.join(REPO_ROOT, rows[-1]["checkpoint"]), os.path.join(args.out, run.name + ".pth"))
    with open(os.path.join(args.out, run.name + "_metrics.json"), "w") as f:
        json.dump(final_metrics, f, indent=2)
    lines = ["### {} ({})".format(run.name, " ".join([os.path.relpath(run.clip, REPO_ROOT)] + run.overrides)), "",
             "| epoch | s | M samples | success | MPJPE-G mm | MPJPE-L mm | root pos mm | root rot deg | PA-MPJPE mm "
             "| norm. return |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append("| {} | {:.0f} | {:.1f} | {:.0%} | {:.1f} | {:.1f} | {:.1f} | {:.2f} | {:.1f} | {:.3f} |".format(
            r["epoch"], r["seconds"], r["samples"] / 1e6, r["success_rate"], r["mpjpe_g_mm"], r["mpjpe_l_mm"],
            r["root_pos_err_mm"], r["root_rot_err_deg"], r["mpjpe_pa_mm"], r["normalized_return"]))
    if args.bar_mm is not None:
        lines += ["", bar_line(rows, args.bar_mm, args.bar_success)]
    return "\n".join(lines) + "\n"


def bar_line(rows: List[dict], bar_mm: float, bar_success: float) -> str:
    """When the curve first met the bar (MPJPE-G and success rate), or how close it came."""
    bar = "MPJPE-G <= {:g} mm and success >= {:.0%}".format(bar_mm, bar_success)
    for r in rows:
        if r["mpjpe_g_mm"] <= bar_mm and r["success_rate"] >= bar_success:
            return "Bar ({}) first met at epoch {}: {:.0f} s, {:.1f} M samples.".format(
                bar, r["epoch"], r["seconds"], r["samples"] / 1e6)
    best = min(rows, key=lambda r: (r["success_rate"] < bar_success, r["mpjpe_g_mm"]))
    return "Bar ({}) not met; best {:.1f} mm with {:.0%} success at epoch {} ({:.0f} s).".format(
        bar, best["mpjpe_g_mm"], best["success_rate"], best["epoch"], best["seconds"])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="NAME=CLIP [hydra override ...], one quoted argument per run")
    parser.add_argument("--seconds", type=float, required=True, help="training wall time of each run")
    parser.add_argument("--out", default="learning_results", help="folder for the curves and exported policies")
    parser.add_argument("--concurrent", action="store_true", help="train all runs at once (sharing the device)")
    parser.add_argument("--gpus", default="", help="comma-separated GPU ids: runs train side by side, each alone on "
                        "one of these GPUs (CUDA_VISIBLE_DEVICES), in waves of as many runs as GPUs")
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--engine", default="auto", help="sim_engine: auto, mujoco, mujoco_warp")
    parser.add_argument("--save-every", type=int, default=25, help="epochs between saved checkpoints")
    parser.add_argument("--eval-every", type=int, default=6, help="evaluate every k-th saved checkpoint")
    parser.add_argument("--max-epochs", type=int, default=100000,
                        help="epoch cap of the runs that set none (the wall time ends runs)")
    parser.add_argument("--eval-envs", type=int, default=16)
    parser.add_argument("--horizon", type=float, default=20.0, help="evaluation seconds of looping clips")
    parser.add_argument("--parallel-evals", type=int, default=4)
    parser.add_argument("--bar-mm", type=float, help="report when MPJPE-G first reached this (mm)")
    parser.add_argument("--bar-success", type=float, default=1.0, help="with --bar-mm: the success rate needed")
    args = parser.parse_args(argv)
    runs = [parse_run(spec) for spec in args.runs]
    if len({r.name for r in runs}) != len(runs):
        raise SystemExit("run names must differ: {}".format([r.name for r in runs]))
    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()]
    if gpus and args.concurrent:
        raise SystemExit("--gpus and --concurrent exclude each other: --gpus gives each run a GPU of its own")
    args.out = os.path.abspath(args.out)
    os.makedirs(os.path.join(args.out, "eval"), exist_ok=True)

    waves = training_waves(runs, args.concurrent, gpus)
    starts = train_for(waves, args)
    summary = []
    for run in [run for wave in waves for run in wave]:
        rows = curve(run, starts[run.name], args)
        with open(os.path.join(args.out, "eval", "{}__{}.json".format(
                run.name, os.path.basename(rows[-1]["checkpoint"])[:-4]))) as f:
            final = json.load(f)
        summary.append(write_results(run, rows, final, args))
        print(summary[-1], flush=True)
        with open(os.path.join(args.out, "summary.md"), "w") as f:  # after each run: a cut-off keeps the finished
            f.write("\n".join(summary))


if __name__ == "__main__":
    main()
