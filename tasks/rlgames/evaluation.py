"""Evaluation of a policy with tracking metrics, through rl_games' player.

``train.py test=True`` registers ``EvaluationPlayer`` for ``a2c_continuous``: when the task is in
evaluation mode (``task.env.evaluation``, on by default with ``test=True``), the player runs
every env once from clip time 0 to the end of its evaluation episode, prints rl_games' usual
``av reward`` line and the metrics table (tasks/tracking_metrics.py), and writes the
metrics to ``train.params.config.player.metrics_json`` when that is set. With
``train.params.config.player.push_search`` it searches the largest push survived instead
(tasks/rlgames/push_search.py).
"""
import math
import time
from typing import Dict, List, Optional

from rl_games.algos_torch.players import PpoPlayerContinuous

from tasks.rlgames.checkpoint_loading import load_checkpoint_or_exit, load_weights
from tasks.rlgames.push_search import push_survival, run_push_search
from tasks.tracking_metrics import format_table, format_worst_bodies, write_json


def unwrap_task(env):
    """The VecTask behind rl_games' env (the player gets the task itself, or an RLGPUEnv)."""
    return getattr(env, "env", env)


def run_evaluation(player, deterministic: bool = True, json_path: Optional[str] = None,
                   verbose: bool = True) -> Dict[str, Dict[str, float]]:
    """Play every env's evaluation episode with ``player``'s policy; return the per-clip summary."""
    task = unwrap_task(player.env)
    metrics = task.tracking_metrics
    if metrics is None:
        raise ValueError("the task is not in evaluation mode (task.env.evaluation=True)")
    obs = player.env_reset(player.env)
    player.get_batch_size(obs, 1)  # sets the player's batch dimension, as rl_games' run() does
    metrics.reset()
    if player.is_rnn:
        player.init_rnn()
    # Every env's episode ends by its clip's full length; a couple of spare steps absorb float
    # rounding of the clip-end time. Finished envs restart but are no longer counted.
    budget = int(metrics.max_episode_steps.max()) + 2
    start = time.perf_counter()
    steps = 0
    while steps < budget and not metrics.all_finished:
        action = player.get_action(obs, deterministic)
        obs, _, done, _ = player.env_step(player.env, action)
        steps += 1
        if player.is_rnn and player.states is not None:
            for s in player.states:
                s[:, done.to(s.device).bool(), :] = 0.0
    summary = metrics.summary()
    per_env = metrics.per_env()
    finished = metrics.finished
    if verbose:
        num = int(finished.sum())
        if num:
            av_reward = float((metrics.sums["reward"] * finished.double()).sum()) / num
            av_steps = float((per_env["length"] * finished.double()).sum()) / num
            print("av reward: {:.3f} av steps: {:.1f} (evaluation episodes: {}, {:.1f} s)".format(
                av_reward, av_steps, num, time.perf_counter() - start))
        if num < task.num_envs:
            print("evaluation: {} of {} envs did not finish their episode within {} steps".format(
                task.num_envs - num, task.num_envs, budget))
        print(format_table(summary))
        print(format_worst_bodies(summary))
        if task.pushes.force_n > 0.0:
            print("push: {:.0f} N at {:.0f} deg: {} of {} episodes survived (not terminated early)".format(
                task.pushes.force_n, math.degrees(task.pushes.angle), push_survival(metrics)[0], num))
    if json_path:
        meta = {"num_envs": task.num_envs, "deterministic": bool(deterministic), "dt": task.dt,
                "horizon_s": task.max_episode_length * task.dt, "steps": steps,
                "motion_files": list(task.motion_lib.motion_files),
                "early_termination": bool(task.enable_early_termination)}
        pushes = task.pushes
        if pushes.force_n > 0.0:
            meta["push"] = {"force_n": pushes.force_n, "direction_deg": math.degrees(pushes.angle),
                            "at_s": pushes.at_s, "spread_s": pushes.spread_s, "duration_s": pushes.duration_s,
                            "survival_rate": push_survival(metrics)[2]}
        write_json(json_path, summary, meta)
        if verbose:
            print("evaluation metrics written to {}".format(json_path))
    return summary


class EvaluationPlayer(PpoPlayerContinuous):
    """rl_games' continuous PPO player; in evaluation mode it reports tracking metrics."""

    def restore(self, fn):
        """The policy and its observation normaliser only: play starts every env afresh. (rl_games'
        players hand a checkpoint's ``env_state``, the training envs' state kept for exact resume,
        to the env, which here is the task itself.)"""
        checkpoint = load_checkpoint_or_exit(fn, self.model)
        load_weights(self.model, checkpoint)
        if self.normalize_input and "running_mean_std" in checkpoint:
            self.model.running_mean_std.load_state_dict(checkpoint["running_mean_std"])

    def run(self):
        task = unwrap_task(self.env)
        if getattr(task, "tracking_metrics", None) is None:
            return super().run()
        if self.player_config.get("push_search"):
            return run_push_search(task, lambda: run_evaluation(self, self.is_deterministic, verbose=False),
                                   dict(self.player_config["push_search"]), self.is_deterministic,
                                   self.player_config.get("metrics_json") or None)
        self.summary = run_evaluation(self, self.is_deterministic, self.player_config.get("metrics_json") or None)
        not_finite = non_finite_metrics(self.summary)
        if not_finite:  # printed and written above; the exit code says the numbers are not results
            raise SystemExit("evaluation: {} not finite: the simulation diverged (check the clip's values and "
                             "task.env.sim_freq_hz)".format(", ".join(not_finite)))
        return self.summary


def non_finite_metrics(summary: Dict[str, Dict]) -> List[str]:
    """'<clip> <metric>' for every metric in ``summary`` that is inf or nan."""
    return ["{} {}".format(clip, key) for clip, metrics in summary.items() for key, value in metrics.items()
            if isinstance(value, float) and not math.isfinite(value)]


def register_evaluation_player(runner) -> None:
    runner.player_factory.register_builder("a2c_continuous", lambda **kwargs: EvaluationPlayer(**kwargs))
