"""rl_games observers: the task's episode statistics in tensorboard, several observers at once, and
optional Weights & Biases.

Tensorboard is always on (rl_games writes runs/<experiment>/summaries on rank 0 only). With
``wandb_activate=True`` rank 0 also starts a wandb run that mirrors those tensorboard scalars
(``sync_tensorboard``) and records the resolved config; wandb is imported only then, and train.py's
check_config stops with a clear message before start-up when the package is missing.
"""
import re
from collections import defaultdict
from typing import Any, Dict, List

from rl_games.common.algo_observer import AlgoObserver


class MultiObserver(AlgoObserver):
    """Forwards every rl_games observer call to each of ``observers`` in order."""

    def __init__(self, observers: List[AlgoObserver]):
        super().__init__()
        self.observers = list(observers)

    @property
    def needs_done_indices(self) -> bool:
        """Whether ``process_infos`` needs the finished envs each step (a host sync, rollout.py)."""
        return any(getattr(o, "needs_done_indices", True) for o in self.observers)

    def _call(self, name: str, *args, **kwargs) -> None:
        for observer in self.observers:
            method = getattr(observer, name, None)  # after_clear_stats is not in AlgoObserver's base
            if method is not None:
                method(*args, **kwargs)

    def before_init(self, base_name, config, experiment_name):
        self._call("before_init", base_name, config, experiment_name)

    def after_init(self, algo):
        self._call("after_init", algo)

    def process_infos(self, infos, done_indices):
        self._call("process_infos", infos, done_indices)

    def after_steps(self):
        self._call("after_steps")

    def after_clear_stats(self):
        self._call("after_clear_stats")

    def after_print_stats(self, frame, epoch_num, total_time):
        self._call("after_print_stats", frame, epoch_num, total_time)


class WandbObserver(AlgoObserver):
    """Starts wandb before rl_games creates its tensorboard writer, so ``sync_tensorboard`` mirrors every
    scalar. The run id is derived from the experiment name: a resumed job (same ``experiment=``)
    continues the same wandb run."""

    needs_done_indices = False

    def __init__(self, project: str, entity: str, group: str, config: Dict[str, Any], run_dir: str):
        super().__init__()
        self.project, self.entity, self.group = project, entity, group
        self.config, self.run_dir = config, run_dir
        self.run = None

    def before_init(self, base_name, config, experiment_name):
        import wandb

        self.run = wandb.init(project=self.project, entity=self.entity or None, group=self.group or None,
                              name=experiment_name, id=wandb_run_id(experiment_name), resume="allow",
                              config=self.config, dir=self.run_dir, sync_tensorboard=True)


def wandb_run_id(experiment_name: str) -> str:
    """wandb ids allow letters, digits, '-' and '_' only."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", experiment_name)[:128]


class EpisodeStatsObserver(AlgoObserver):
    """Averages the task's ``extras['episode']`` over an epoch and writes it to tensorboard."""

    def __init__(self):
        super().__init__()
        self.sums = defaultdict(float)
        self.weights = defaultdict(float)
        self.writer = None
        self.sim_failures = None

    def after_init(self, algo):
        self.writer = algo.writer

    needs_done_indices = False  # it reads the task's episode sums from infos

    def process_infos(self, infos, done_indices):
        episode = infos.get("episode") if isinstance(infos, dict) else None
        if not episode:
            return
        num_done = episode["num_done"]
        for key, value in episode.items():
            if key != "num_done":
                self.sums[key] = self.sums[key] + value * num_done
                self.weights[key] = self.weights[key] + num_done
        self.sim_failures = infos.get("sim_failures")

    def after_print_stats(self, frame, epoch_num, total_time):
        for key, total in self.sums.items():
            weight = float(self.weights[key])
            if weight > 0:
                self.writer.add_scalar("episode/" + key, float(total) / weight, frame)
        if self.sim_failures is not None:
            self.writer.add_scalar("episode/sim_failures_total", float(self.sim_failures), frame)
        self.sums.clear()
        self.weights.clear()
