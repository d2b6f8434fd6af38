"""Checkpoints that survive preemption: atomic writes, and SIGTERM ends training with a checkpoint.

rl_games writes checkpoints with torch.save straight onto the final path, so a job killed mid-write
leaves a truncated .pth where the last good one was. Every checkpoint of an rl_games agent goes
through ``agent.save(fn)`` (periodic ``last_*``, best, final), so ``PreemptibleA2CAgent`` overrides
that one method: write a hidden ``.<name>.pth.partial``, flush and fsync, then ``os.replace`` it onto
``<name>.pth`` (atomic on POSIX file systems), keeping rl_games' retries for network file systems.
Nothing global is patched.

SIGTERM and SIGUSR1 (tasks/rlgames/stop_request.py) only set a flag once training runs (during
start-up they end the run at once, with nothing to save). At the next epoch boundary every rank agrees
(one all-reduce) to stop, rank 0 writes ``last_<name>_ep_<epoch>_sigterm.pth`` (an ordinary
rl_games checkpoint: model, optimizer, epoch, frame, normalisers), and training returns normally,
so the process exits with code 0. ``checkpoint=<that file>`` resumes it.
"""
import os
from typing import Any, Optional

import torch
from rl_games.algos_torch import a2c_continuous, torch_ext

from tasks.rlgames import distributed
from tasks.rlgames.checkpoint_loading import load_checkpoint_or_exit, load_weights
from tasks.rlgames.rollout import play_steps_one_sync
from tasks.rlgames.stop_request import StopRequest

PARTIAL_SUFFIX = ".partial"

def partial_path(path: str) -> str:
    """Where ``atomic_save`` writes before the rename: hidden, and not ending in .pth, so a file left
    by a kill -9 is never taken for a checkpoint (nor matched by ``*.pth``)."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, "." + name + PARTIAL_SUFFIX)


def atomic_save(obj: Any, path: str) -> None:
    """torch.save ``obj`` to ``path`` so that ``path`` is always either the old file or the whole new
    one. A kill mid-write leaves at most one partial file (``partial_path``); the next save in that
    folder removes it, since each run's checkpoints have one writer (rank 0)."""
    remove_partial_files(os.path.dirname(os.path.abspath(path)))
    tmp = partial_path(path)
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def remove_partial_files(directory: str) -> None:
    """Remove what interrupted ``atomic_save`` calls left in ``directory``."""
    for name in os.listdir(directory):
        if name.startswith(".") and name.endswith(PARTIAL_SUFFIX):
            os.remove(os.path.join(directory, name))


def _fsync_dir(directory: str) -> None:
    """Make the rename itself durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Stopped(Exception):
    pass


class PreemptibleA2CAgent(a2c_continuous.A2CAgent):
    """rl_games' continuous PPO agent with atomic checkpoints and a checkpoint-and-stop on SIGTERM.
    On CPU ranks of a torchrun job it also keeps rl_games' multi_gpu off CUDA (tasks/rlgames/distributed.py)."""

    def __init__(self, base_name, params, stop_request: Optional[StopRequest] = None):
        self.stop_request = stop_request  # None: signals are not watched
        config = params["config"]
        self._cpu_ranks = bool(config.get("multi_gpu", False)) and torch.device(config["device"]).type == "cpu"
        self._pinned_device = config["device"] if self._cpu_ranks else None
        self._device_name = config["device"]
        if self._cpu_ranks:
            with distributed.cpu_rank_shims():
                super().__init__(base_name, params)
        else:
            super().__init__(base_name, params)

    # rl_games' A2CBase.__init__ sets self.device_name = "cuda:<LOCAL_RANK>" under multi_gpu and then
    # config["device"] = self.device_name; on CPU ranks the device train.py chose wins.
    @property
    def device_name(self) -> str:
        return self._device_name

    @device_name.setter
    def device_name(self, value: str) -> None:
        self._device_name = self._pinned_device or value

    def get_full_state_weights(self):
        state = super().get_full_state_weights()
        # rl_games keeps its best mean reward as a numpy scalar; as a float the file loads with weights_only=True
        state["last_mean_rewards"] = float(state["last_mean_rewards"])
        return state

    def restore(self, fn: str, set_epoch: bool = True) -> None:
        """Resume from a training checkpoint, or fine-tune from a policy's weights alone (a shipped or
        exported one: fresh optimizer, epoch count and envs), read safely (checkpoint_loading.py)."""
        checkpoint = load_checkpoint_or_exit(fn, self.model)
        if "optimizer" not in checkpoint:
            load_weights(self.model, checkpoint)
            self.set_stats_weights(checkpoint)
            print("fine-tuning from the weights of {}: a fresh optimizer and epoch count{}".format(
                fn, ", and a fresh critic (an exported policy has none)" if checkpoint.get("actor_only") else ""))
            return
        self.set_full_state_weights(checkpoint, set_epoch=set_epoch)

    def save(self, fn: str) -> None:
        path = fn + ".pth"
        print("=> saving checkpoint '{}'".format(path))
        torch_ext.safe_filesystem_op(atomic_save, self.get_full_state_weights(), path)

    def train(self):
        if self.stop_request is not None:
            self.stop_request.start_training()
        try:
            if self._cpu_ranks:
                with distributed.cpu_train_shims():
                    return super().train()
            return super().train()
        except _Stopped:
            return self.last_mean_rewards, self.epoch_num
        finally:
            if self.writer is not None:
                self.writer.flush()

    def play_steps(self):
        """rl_games' rollout, one host synchronisation per epoch instead of per step (rollout.py), when
        the observers need no finished-env indices each step (the project's do not)."""
        if self.num_agents == 1 and not self.use_action_masks and not self.has_central_value and \
                getattr(self.algo_observer, "needs_done_indices", True) is False:
            return play_steps_one_sync(self)
        return super().play_steps()

    def update_epoch(self):
        # Called at the top of each epoch of rl_games' training loop: the previous epoch, with its
        # statistics and checkpoints, is complete, so epoch_num and frame describe the saved state.
        if self.stop_request is not None:
            if distributed.any_rank(self.stop_request.requested, self.ppo_device):
                self._save_and_stop()
        return super().update_epoch()

    def _save_and_stop(self) -> None:
        if self.global_rank == 0:
            self.save(os.path.join(self.nn_dir, "last_{}_ep_{}_sigterm".format(self.config["name"], self.epoch_num)))
        print("stopped by signal after epoch {}".format(self.epoch_num), flush=True)
        raise _Stopped()


def register_preemptible_agent(runner, stop_request: Optional[StopRequest]) -> None:
    """Make rl_games' Runner build PreemptibleA2CAgent for ``algo: a2c_continuous``."""
    runner.algo_factory.register_builder(
        "a2c_continuous", lambda **kwargs: PreemptibleA2CAgent(stop_request=stop_request, **kwargs))
