"""Logging besides rl_games' tensorboard writer: several observers at once, and optional Weights & Biases.

Tensorboard is always on (rl_games writes runs/<experiment>/summaries on rank 0 only). With
``wandb_activate=True`` rank 0 also starts a wandb run that mirrors those tensorboard scalars
(``sync_tensorboard``) and records the resolved config; wandb is imported only then, and train.py's
check_config stops with a clear message before start-up when the package is missing.
"""
import re
from typing import Any, Dict, List

from rl_games.common.algo_observer import AlgoObserver


class MultiObserver(AlgoObserver):
    """Forwards every rl_games observer call to each of ``observers`` in order."""

    def __init__(self, observers: List[AlgoObserver]):
        super().__init__()
        self.observers = list(observers)

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
