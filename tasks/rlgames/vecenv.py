"""The vec-env adapter that hands the task to rl_games (IsaacGymEnvs' RLGPUEnv contract)."""
from typing import Callable

from rl_games.common.ivecenv import IVecEnv

from tasks.rlgames.resume_state import ResumeState


class RLGPUEnv(IVecEnv):
    """Hands a VecTask to rl_games' training loop; the task resets its own finished envs."""

    def __init__(self, create_task: Callable, config_name: str, num_actors: int, **kwargs):
        if kwargs:
            print("RLGPUEnv: ignoring unknown arguments {}".format(sorted(kwargs)))
        self.env = create_task()
        if self.env.num_envs != num_actors:
            raise ValueError("rl_games expects {} actors but the task has {} envs".format(num_actors, self.env.num_envs))
        self.resume = ResumeState()  # exact resume from checkpoints (tasks/rlgames/resume_state.py)

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
