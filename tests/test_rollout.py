"""The rollout without a host synchronisation per step (tasks/rlgames/rollout.py) trains exactly as
rl_games' own: on the CPU engine, the same run with either gives bit-identical weights, optimizer
state and reward meters (rl_games' is put back for the comparison run)."""
import glob
import os
import shutil
import uuid

import torch
from hydra import compose, initialize_config_dir
from rl_games.common.a2c_common import A2CBase

import train
from poselib_utils.repository import REPO_ROOT
from tasks.config import CONFIG_DIR
from tasks.rlgames.checkpointing import PreemptibleA2CAgent


def train_and_load(monkeypatch, rollout):
    name = "pytest_rollout_{}".format(uuid.uuid4().hex[:8])
    if rollout == "rl_games":
        monkeypatch.setattr(PreemptibleA2CAgent, "play_steps", A2CBase.play_steps)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        # short episodes, so games finish inside every rollout and the meters are fed
        cfg = compose(config_name="config", overrides=[
            "sim_engine=mujoco", "headless=True", "num_envs=8", "max_iterations=3", "task.env.num_threads=1",
            "task.env.episode_length_s=0.5", "experiment=" + name])
    try:
        train.main(cfg)
        path = sorted(glob.glob(os.path.join(REPO_ROOT, "runs", name, "nn", "last_*.pth")))[-1]
        return torch.load(path, map_location="cpu", weights_only=True)
    finally:
        monkeypatch.undo()
        shutil.rmtree(os.path.join(REPO_ROOT, "runs", name), ignore_errors=True)


def test_one_sync_rollout_trains_bit_identically_to_rl_games(monkeypatch):
    ours = train_and_load(monkeypatch, "one sync")
    theirs = train_and_load(monkeypatch, "rl_games")
    assert ours["model"].keys() == theirs["model"].keys()
    assert all(torch.equal(ours["model"][k], theirs["model"][k]) for k in ours["model"])
    assert ours["last_mean_rewards"] == theirs["last_mean_rewards"] and ours["epoch"] == theirs["epoch"] == 3
    for a, b in zip(ours["optimizer"]["state"].values(), theirs["optimizer"]["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a if torch.is_tensor(a[k]))


def test_observers_that_need_finished_envs_each_step_keep_rl_games_rollout():
    """rl_games' own observer reads the finished envs' indices every step: with it in the mix the
    agent keeps rl_games' rollout (the one-sync rollout passes none)."""
    from rl_games.common.algo_observer import DefaultAlgoObserver

    from tasks.rlgames.observers import EpisodeStatsObserver, MultiObserver

    assert MultiObserver([EpisodeStatsObserver()]).needs_done_indices is False
    assert MultiObserver([EpisodeStatsObserver(), DefaultAlgoObserver()]).needs_done_indices is True
