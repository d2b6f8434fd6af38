"""Exact training resume: what rl_games' checkpoints lack, saved as their ``env_state``.

rl_games' ``get_full_state_weights`` saves the model (with the observation and value
normalisers), the optimizer, the epoch, the frame counter and the best mean reward, plus
whatever ``vec_env.get_env_state()`` returns. A resumed run is only the continuation of the
stopped one if everything else that shapes the next iteration comes back too:

- the random number generators: torch (CPU and every CUDA device), numpy, Python's ``random``
  (rl_games' action noise and minibatch permutations, the task's clip and start-time sampling);
- the task: the engine's full physics state (exact float64 MuJoCo state, controls and sensor
  readings on the CPU engine; qpos, qvel, ctrl and solver warm start on MuJoCo-Warp), each env's
  clip, clip time, episode progress, buffers and episode sums;
- the agent's state outside the checkpoint: the learning rate and entropy coefficient the
  scheduler carries from epoch to epoch (an adaptive schedule changes them), the per-env running
  returns and lengths, the done flags and the game statistics that decide the 'best' checkpoint.

``RLGPUEnv`` (tasks/rlgames/vecenv.py) returns ``capture`` from ``get_env_state`` and hands a
checkpoint's state to ``ResumeState.restore``; rl_games' ``train()`` then calls ``reset()``, which
returns the restored observations instead of resetting the envs, and the agent's state is put back
at the next ``set_train_info`` (the first thing each epoch does). With a fixed seed, K+1 epochs in
one run and K epochs, a checkpoint and 1 resumed epoch give the same weights (tests/test_resume.py).
Not restored: tensorboard writers and the episode-statistics observer's partial sums (logging only).
"""
import random
from typing import Any, Dict, Optional

import numpy as np
import torch

FORMAT_VERSION = 2  # 2: numpy's generator state as a tensor (checkpoints load with weights_only=True)
TASK_BUFFERS = ("motion_ids", "motion_times", "progress_buf", "reset_buf", "timeout_buf", "obs_buf", "rew_buf",
                "actions", "total_sim_failures")
AGENT_TENSORS = ("dones", "current_rewards", "current_shaped_rewards", "current_lengths")
AGENT_METERS = ("game_rewards", "game_shaped_rewards", "game_lengths")


def capture_rng_state() -> Dict[str, Any]:
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()  # numpy's legacy MT19937 state
    numpy_state = {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                   "cached_gaussian": float(cached_gaussian)}
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    saved = state["numpy"]
    np.random.set_state(("MT19937", saved["keys"].numpy().astype(np.uint32), saved["pos"], saved["has_gauss"],
                         saved["cached_gaussian"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _cpu(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", copy=True)


def capture_task_state(task) -> Dict[str, Any]:
    state = {"engine": task.engine.capture_state(), "num_envs": task.num_envs,
             "buffers": {k: _cpu(getattr(task, k)) for k in TASK_BUFFERS if hasattr(task, k)}}
    if hasattr(task, "episode_sums"):
        state["episode_sums"] = {k: _cpu(v) for k, v in task.episode_sums.items()}
    if hasattr(task, "termination_settings"):
        state["termination"] = dict(task.termination_settings)
    return state


def restore_task_state(task, state: Dict[str, Any]) -> None:
    if state["num_envs"] != task.num_envs:
        raise ValueError("checkpoint env state has {} envs, this task has {}".format(state["num_envs"], task.num_envs))
    task.engine.restore_state(state["engine"])
    for k, v in state["buffers"].items():
        getattr(task, k).copy_(v.to(getattr(task, k).device))
    for k, v in state.get("episode_sums", {}).items():
        task.episode_sums[k].copy_(v.to(task.episode_sums[k].device))


def capture_agent_state(algo) -> Dict[str, Any]:
    state = {"last_lr": getattr(algo, "last_lr", None), "entropy_coef": getattr(algo, "entropy_coef", None)}
    for k in AGENT_TENSORS:
        if torch.is_tensor(getattr(algo, k, None)):
            state[k] = _cpu(getattr(algo, k))
    for k in AGENT_METERS:
        meter = getattr(algo, k, None)
        if meter is not None and torch.is_tensor(getattr(meter, "mean", None)):
            state[k] = {"mean": _cpu(meter.mean), "current_size": int(getattr(meter, "current_size", 0))}
    return state


def restore_agent_state(algo, state: Dict[str, Any]) -> None:
    for k in ("last_lr", "entropy_coef"):
        if state.get(k) is not None:
            setattr(algo, k, state[k])
    for k in AGENT_TENSORS:
        if k in state and torch.is_tensor(getattr(algo, k, None)):
            getattr(algo, k).copy_(state[k].to(getattr(algo, k).device))
    for k in AGENT_METERS:
        meter = getattr(algo, k, None)
        if k in state and meter is not None:
            meter.mean = state[k]["mean"].to(meter.mean.device)  # (rl_games' AverageMeter reshapes it)
            meter.current_size = state[k]["current_size"]


class ResumeState:
    """The env adapter's side of exact resume (see the module docstring)."""

    def __init__(self):
        self.algo = None  # the training agent, known from set_train_info
        self.restored = False  # the next reset() returns the restored observations
        self.pending_agent_state: Optional[Dict[str, Any]] = None

    def capture(self, task) -> Dict[str, Any]:
        return {"version": FORMAT_VERSION, "rng": capture_rng_state(), "task": capture_task_state(task),
                "agent": capture_agent_state(self.algo) if self.algo is not None else None}

    def restore(self, task, state: Optional[Dict[str, Any]]) -> None:
        if not isinstance(state, dict) or state.get("version") != FORMAT_VERSION:
            return  # a checkpoint without it (older, or another env's): training restarts its envs
        saved = state["task"]
        kind = type(task.engine).__name__
        if saved["num_envs"] != task.num_envs or saved["engine"].get("engine") != kind:
            print("resume: the checkpoint's envs ({} on {}) do not match this run's ({} on {}): "
                  "weights, optimizer and counters resume, the envs and random generators start afresh".format(
                      saved["num_envs"], saved["engine"].get("engine"), task.num_envs, kind))
            return
        restore_task_state(task, state["task"])
        restore_rng_state(state["rng"])
        self.pending_agent_state = state.get("agent")
        self.restored = True

    def observations(self, task) -> Dict[str, torch.Tensor]:
        """What ``reset()`` returns right after a restore: the stopped run's next observations."""
        self.restored = False
        return {"obs": torch.clamp(task.obs_buf, -task.clip_obs, task.clip_obs).to(task.rl_device)}

    def set_train_info(self, algo) -> None:
        self.algo = algo
        if self.pending_agent_state is not None and algo is not None:
            restore_agent_state(algo, self.pending_agent_state)
            self.pending_agent_state = None
