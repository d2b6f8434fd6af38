"""rl_games glue: the vec-env adapter and an observer that logs the task's episode statistics."""
from collections import defaultdict
from typing import Callable

from rl_games.common.algo_observer import AlgoObserver
from rl_games.common.ivecenv import IVecEnv

from tasks.utils.resume_state import ResumeState


class RLGPUEnv(IVecEnv):
    """Hands a VecTask to rl_games' training loop; the task resets its own finished envs."""

    def __init__(self, create_task: Callable, config_name: str, num_actors: int, **kwargs):
        if kwargs:
            print("RLGPUEnv: ignoring unknown arguments {}".format(sorted(kwargs)))
        self.env = create_task()
        if self.env.num_envs != num_actors:
            raise ValueError("rl_games expects {} actors but the task has {} envs".format(num_actors, self.env.num_envs))
        self.resume = ResumeState()  # exact resume from checkpoints (tasks/utils/resume_state.py)

    def step(self, actions):
        return self.env.step(actions)

    def reset(self):
        if self.resume.restored:  # rl_games' train() resets first: continue the restored episodes instead
            return self.resume.observations(self.env)
        return self.env.reset()

    def get_number_of_agents(self):
        return self.env.get_number_of_agents()

    def get_env_info(self):
        return {"action_space": self.env.action_space, "observation_space": self.env.observation_space,
                "agents": 1, "value_size": 1}

    def set_train_info(self, env_frames, *args, **kwargs):
        self.resume.set_train_info(args[0] if args else None)

    def get_env_state(self):
        return self.resume.capture(self.env)

    def set_env_state(self, env_state):
        self.resume.restore(self.env, env_state)


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
