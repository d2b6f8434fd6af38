"""DeepMimic's perturbation test (its paper's Table 6): the largest push a policy survives, per direction.

Each trial plays every env's evaluation episode (tasks/rlgames/evaluation.py's player) with the task's push
(``task.env.push``: time, duration and spread over envs from the config, force and direction set here)
and counts the envs that finished without an early termination. Only falls end a pushed episode: the
reference-distance termination is lifted for the search, since a character knocked off its reference
that keeps its feet has survived. Per direction the force doubles from ``start_n`` until a trial's
survival falls below ``survival``, then bisects that bracket to ``resolution_n`` (the search assumes
survival does not rise with force).
"""
import json
import math
from typing import Callable, Dict, List, Optional, Tuple

from tasks.config import check_push_search


def largest_survived_force(survival_at: Callable[[float], float], survival: float, start_n: float,
                           resolution_n: float, max_n: float) -> Tuple[float, Optional[float], List[Tuple[float, float]]]:
    """(largest force survived, smallest force not survived or None if every force up to ``max_n`` was,
    the trials as (force, survival rate) in the order tried)."""
    trials = []
    survived, felled = 0.0, None
    force = start_n
    while felled is None and force <= max_n:
        rate = survival_at(force)
        trials.append((force, rate))
        if rate >= survival:
            survived = force
            force = min(2.0 * force, max_n) if force < max_n else math.inf
        else:
            felled = force
    while felled is not None and felled - survived > resolution_n:
        force = survived + resolution_n * max(1, round((felled - survived) / (2.0 * resolution_n)))
        if force >= felled:
            break
        rate = survival_at(force)
        trials.append((force, rate))
        if rate >= survival:
            survived = force
        else:
            felled = force
    return survived, felled, trials


def push_survival(metrics) -> Tuple[int, int, float]:
    """(episodes finished without an early termination, i.e. a fall under a push; episodes finished; their
    ratio) of the evaluation ``metrics`` (tasks/tracking_metrics.py) just played."""
    survived, finished = int((metrics.finished & ~metrics.terminated).sum()), int(metrics.finished.sum())
    return survived, finished, survived / max(1, finished)


def run_push_search(task, play_episodes: Callable[[], None], settings: Dict, deterministic: bool = True,
                    json_path: Optional[str] = None) -> Dict:
    """Search every direction of ``settings`` (tasks/config.py's check_push_search) with ``play_episodes``
    (every env's evaluation episode, once, into ``task.tracking_metrics``); print a table, write JSON."""
    settings = check_push_search(settings)
    metrics = task.tracking_metrics
    saved = task.termination_distance
    task.termination_distance = math.inf

    def survival_at(force: float, direction: float) -> float:
        task.pushes.set(force, direction)
        play_episodes()
        survived, finished, rate = push_survival(metrics)
        print("push {:.0f} N at {:g} deg: {} of {} episodes survived".format(force, direction, survived, finished),
              flush=True)
        return rate

    results = {}
    try:
        for direction in settings["directions_deg"]:
            survived, felled, trials = largest_survived_force(
                lambda f: survival_at(f, float(direction)), settings["survival"], settings["start_n"],
                settings["resolution_n"], settings["max_n"])
            results[str(direction)] = {"largest_survived_n": survived, "smallest_felled_n": felled,
                                       "trials": [[f, r] for f, r in trials]}
    finally:
        task.termination_distance = saved
        task.pushes.set(0.0, 0.0)
    window = {"at_s": task.pushes.at_s, "spread_s": task.pushes.spread_s, "duration_s": task.pushes.duration_s,
              "num_envs": task.num_envs, "survival": settings["survival"]}
    print(format_search(results, window))
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"push_search": results, "meta": dict(window, deterministic=bool(deterministic),
                                                            motion_files=list(task.motion_lib.motion_files))}, f, indent=2)
        print("push search written to {}".format(json_path))
    return results


def format_search(results: Dict, window: Dict) -> str:
    lines = ["largest push survived by {:.0%} of {} episodes ({:.2f} s from {:g} s{}):".format(
        window["survival"], window["num_envs"], window["duration_s"], window["at_s"],
        ", spread over {:g} s".format(window["spread_s"]) if window["spread_s"] else ""),
        "| direction deg | survived N | felled N | trials (N: survival) |", "| --- | --- | --- | --- |"]
    for direction, r in results.items():
        felled = "{:.0f}".format(r["smallest_felled_n"]) if r["smallest_felled_n"] is not None else "none tried"
        trials = ", ".join("{:.0f}: {:.2f}".format(f, rate) for f, rate in r["trials"])
        lines.append("| {} | {:.0f} | {} | {} |".format(direction, r["largest_survived_n"], felled, trials))
    return "\n".join(lines)
