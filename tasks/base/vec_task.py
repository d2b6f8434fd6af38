"""IsaacGymEnvs' VecTask contract without IsaacGym: constructor, buffers, spaces, ``step``.

Subclasses implement ``create_sim``, ``pre_physics_step``, ``post_physics_step`` and
``reset_idx`` as IsaacGymEnvs tasks do; the physics lives behind ``tasks.engines``. Unlike
IsaacGymEnvs, envs that finish are reset inside ``post_physics_step``, so the observations
``step`` returns are always those the policy should act on next (rl_games never resets envs).
"""
import abc
import sys
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from tasks.base.step_graph import CapturedStep

if sys.version_info >= (3, 9):
    from gymnasium import spaces
else:  # IsaacGym's Python 3.8 environment ships gym
    from gym import spaces


class VecTask(abc.ABC):
    def __init__(self, config: Dict[str, Any], rl_device: str, sim_device: str, graphics_device_id: int,
                 headless: bool, virtual_screen_capture: bool = False, force_render: bool = False):
        # graphics_device_id, virtual_screen_capture and force_render: IsaacGymEnvs passes them to
        # every task; the engine opens its own window (EngineConfig.headless) and draws it itself.
        self.cfg = config
        self.rl_device = rl_device
        self.sim_device = sim_device
        self.headless = headless

        env_cfg = config["env"]
        # numEnvs: IsaacGymEnvs' key (its train.py sets task.env.numEnvs); ours is num_envs.
        self.num_envs = int(env_cfg.get("numEnvs", env_cfg["num_envs"]))
        if self.num_envs <= 0:
            raise ValueError("task.env.num_envs must be positive, got {}".format(self.num_envs))
        self.clip_obs = float(env_cfg.get("clip_observations", np.inf))
        self.clip_actions = float(env_cfg.get("clip_actions", 1.0))

        self.create_sim()
        self.device = self.engine.device
        self.num_obs = self.compute_observations().shape[-1]
        self.num_states = 0  # no asymmetric critic; IsaacGymEnvs' RLGPUEnv reads these two
        self.num_actions = self.engine.num_dofs
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.num_obs,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (self.num_actions,), dtype=np.float32)
        self.state_space = self.observation_space

        self.obs_buf = torch.zeros(self.num_envs, self.num_obs, device=self.device)
        self.rew_buf = torch.zeros(self.num_envs, device=self.device)
        self.reset_buf = torch.ones(self.num_envs, dtype=torch.long, device=self.device)
        self.timeout_buf = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self.progress_buf = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self.extras: Dict[str, Any] = {}
        # A subclass whose step may run as one CUDA graph sets a CapturedStep of step_eagerly here
        # (tasks/base/step_graph.py); step() then replays it.
        self.captured_step: Optional[CapturedStep] = None

    @abc.abstractmethod
    def create_sim(self) -> None:
        """Build ``self.engine`` and everything the task needs before its first observation."""

    @abc.abstractmethod
    def compute_observations(self) -> torch.Tensor:
        """Return observations [num_envs, num_obs] for the current state."""

    @abc.abstractmethod
    def pre_physics_step(self, actions: torch.Tensor) -> None:
        pass

    @abc.abstractmethod
    def post_physics_step(self) -> None:
        """Fill obs_buf, rew_buf, reset_buf, timeout_buf and extras; reset finished envs."""

    @abc.abstractmethod
    def reset_idx(self, env_ids: torch.Tensor) -> None:
        pass

    def step(self, actions: torch.Tensor) -> Tuple[Dict[str, torch.Tensor], torch.Tensor, torch.Tensor, Dict]:
        if self.captured_step is not None:
            return self.captured_step(actions)
        return self.step_eagerly(actions)

    def step_eagerly(self, actions: torch.Tensor) -> Tuple[Dict[str, torch.Tensor], torch.Tensor, torch.Tensor, Dict]:
        actions = torch.clamp(actions.to(self.device), -self.clip_actions, self.clip_actions)
        self.pre_physics_step(actions)
        self.engine.step()
        self.post_physics_step()
        self.extras["time_outs"] = self.timeout_buf.to(self.rl_device)
        obs = torch.clamp(self.obs_buf, -self.clip_obs, self.clip_obs).to(self.rl_device)
        return {"obs": obs}, self.rew_buf.to(self.rl_device), self.reset_buf.to(self.rl_device), self.extras

    def reset(self) -> Dict[str, torch.Tensor]:
        """Reset every env (rl_games calls this once, before the first step)."""
        self.reset_idx(torch.arange(self.num_envs, device=self.device))
        self.obs_buf[:] = self.compute_observations()
        return {"obs": torch.clamp(self.obs_buf, -self.clip_obs, self.clip_obs).to(self.rl_device)}

    def get_number_of_agents(self) -> int:
        return 1

    def close(self) -> None:
        if self.captured_step is not None:
            self.captured_step.close()
        self.engine.close()
