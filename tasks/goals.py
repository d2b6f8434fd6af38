"""Goals beside imitation (task.env.goal, the config group goal=...), as in DeepMimic's paper, section 9:
the reward is ``imitation_weight`` x imitation + (1 - imitation_weight) x the goal's reward (0.7 / 0.3
there), and the policy observes the goal after its imitation observations.

- ``none``: imitation alone (the default).
- ``heading`` (cfg/goal/heading.yaml): travel along a target direction d* at least at speed v*,
  reward exp(-speed_scale * max(0, v* - v . d*)^2) with v the centre-of-mass velocity (DeepMimic's
  target heading; speed_scale 2.5 there). v* is ``speed_mps``, or the clip's own mean root speed when
  that is 0. The target turns by up to ``max_turn_deg`` at random times (``change_rate_hz``); the
  policy sees d* in its heading frame (cos, sin). Its reference follows the character: each step the
  clip is turned and shifted onto the character's root (tasks/reference/anchoring.py), so imitation
  asks for the clip's pose and gait, not its path.
"""
import math
from typing import Tuple

import torch

from tasks.config import GOAL_KINDS, SettingError
from tasks.rotations import heading_angle


def build_goal(goal, num_envs: int, control_freq: float, clip_speeds: torch.Tensor, device: torch.device):
    """The goal named by ``goal['kind']`` (task.env.goal); ``clip_speeds`` [M]: each clip's mean root speed."""
    kind = goal.get("kind", "none")
    if kind == "none":
        return NoGoal()
    if kind == "heading":
        return HeadingGoal(goal, num_envs, control_freq, clip_speeds, device)
    raise SettingError("task.env.goal.kind must be one of {}, got {!r}".format(", ".join(GOAL_KINDS), kind))


class NoGoal:
    """Imitation alone: no observations, the imitation reward as it is, the reference where the clip is."""

    anchors_reference = False
    imitation_weight = 1.0

    def reset(self, chosen: torch.Tensor, root_rot: torch.Tensor, motion_ids: torch.Tensor) -> None:
        pass

    def step(self) -> None:
        pass

    def observe(self, root_rot: torch.Tensor) -> torch.Tensor:
        return torch.zeros(root_rot.shape[0], 0, device=root_rot.device)

    def reward(self, imitation: torch.Tensor, com_vel: torch.Tensor) -> torch.Tensor:
        return imitation


class HeadingGoal:
    """DeepMimic's target heading: each env's target direction (its yaw) and speed."""

    anchors_reference = True

    def __init__(self, goal, num_envs: int, control_freq: float, clip_speeds: torch.Tensor, device: torch.device):
        self.imitation_weight = float(goal["imitation_weight"])
        self.speed_mps = float(goal["speed_mps"])
        self.speed_scale = float(goal["speed_scale"])
        self.change_prob = min(1.0, float(goal["change_rate_hz"]) / control_freq)
        self.max_turn = math.radians(float(goal["max_turn_deg"]))
        self.clip_speeds = clip_speeds.to(device)
        self.target_yaw = torch.zeros(num_envs, device=device)
        self.target_speed = torch.zeros(num_envs, device=device)
        self.device = device

    def _turns(self, n: int) -> torch.Tensor:
        return (2.0 * torch.rand(n, device=self.device) - 1.0) * self.max_turn

    def reset(self, chosen: torch.Tensor, root_rot: torch.Tensor, motion_ids: torch.Tensor) -> None:
        """New episodes: a target turned up to max_turn from the start's heading, at the clip's speed."""
        new_yaw = heading_angle(root_rot) + self._turns(chosen.shape[0])
        self.target_yaw.copy_(torch.where(chosen, new_yaw, self.target_yaw))
        speed = self.clip_speeds[motion_ids] if self.speed_mps == 0.0 else torch.full_like(self.target_yaw, self.speed_mps)
        self.target_speed.copy_(torch.where(chosen, speed, self.target_speed))

    def step(self) -> None:
        """The target turns at random times (change_rate_hz), by up to max_turn."""
        n = self.target_yaw.shape[0]
        changing = torch.rand(n, device=self.device) < self.change_prob
        self.target_yaw.copy_(torch.where(changing, self.target_yaw + self._turns(n), self.target_yaw))

    def steer(self, env: int, turn_rad: float) -> None:
        """Turn one env's target (the viewer's arrow keys); from then on only the keys turn targets."""
        self.target_yaw[env] += turn_rad
        self.change_prob = 0.0

    def observe(self, root_rot: torch.Tensor) -> torch.Tensor:
        return heading_goal_observation(root_rot, self.target_yaw)

    def reward(self, imitation: torch.Tensor, com_vel: torch.Tensor) -> torch.Tensor:
        goal = heading_goal_reward(com_vel, self.target_yaw, self.target_speed, self.speed_scale)
        return self.imitation_weight * imitation + (1.0 - self.imitation_weight) * goal

    def errors(self, com_vel: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per env: the angle (rad) between the horizontal centre-of-mass velocity and the target, and the
        speed along the target (m/s)."""
        direction = torch.stack([torch.cos(self.target_yaw), torch.sin(self.target_yaw)], dim=-1)
        along = (com_vel[:, :2] * direction).sum(dim=-1)
        across = com_vel[:, 0] * direction[:, 1] - com_vel[:, 1] * direction[:, 0]
        return torch.atan2(across, along).abs(), along


@torch.jit.script
def heading_goal_observation(root_rot: torch.Tensor, target_yaw: torch.Tensor) -> torch.Tensor:
    """The target direction in the character's heading frame: (cos, sin) of its yaw relative to the heading."""
    relative = target_yaw - heading_angle(root_rot)
    return torch.stack([torch.cos(relative), torch.sin(relative)], dim=-1)


@torch.jit.script
def heading_goal_reward(com_vel: torch.Tensor, target_yaw: torch.Tensor, target_speed: torch.Tensor,
                        speed_scale: float) -> torch.Tensor:
    """exp(-speed_scale * max(0, v* - v . d*)^2): only moving slower than v* along d* costs."""
    along = com_vel[:, 0] * torch.cos(target_yaw) + com_vel[:, 1] * torch.sin(target_yaw)
    shortfall = torch.clamp(target_speed - along, min=0.0)
    return torch.exp(-speed_scale * shortfall * shortfall)
