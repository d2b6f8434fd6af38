"""Goals beside imitation (task.env.goal, the config group goal=...), as in DeepMimic's paper, section 9:
the reward is ``imitation_weight`` x imitation + (1 - imitation_weight) x the goal's reward (0.7 / 0.3
there), and the policy observes the goal after its imitation observations. Goals that choose where the
character goes (``anchors_reference``) get a reference that follows the character: each step the clip
is turned and shifted onto the character's root (tasks/reference/anchoring.py), so imitation asks for
the clip's pose and gait, not its path.

- ``none``: imitation alone (the default).
- ``heading`` (cfg/goal/heading.yaml): DeepMimic's target heading. Travel along a target direction d*
  at least at speed v*: exp(-speed_scale * max(0, v* - v . d*)^2), v the centre-of-mass velocity; v* is
  ``speed_mps``, or the clip's own mean root speed when that is 0. The target turns by up to
  ``max_turn_deg`` at random times (``change_rate_hz``); observed: d* in the heading frame (cos, sin).
- ``strike`` (cfg/goal/strike.yaml): DeepMimic's strike. Hit a target sphere with ``body``: 1 once it
  is hit, else exp(-distance_scale * |p* - p_body|^2). A new target appears at each cycle of the clip,
  at a random bearing, ground distance and height from the root; a cycle is a trial, hit or missed.
  Observed: the target in the heading frame relative to the root (3) and whether it is hit (1).

Each goal gives the evaluation its own metrics (``step_metrics``: per-step values the tracking metrics
average, ``report``: what the table and JSON show).
"""
import math
from typing import Dict, List

import torch

from tasks.body_state import POS, ROT
from tasks.config import SettingError
from tasks.rotations import heading_angle, heading_quat_inv, quat_rotate


def build_goal(goal, num_envs: int, control_freq: float, clip_speeds: torch.Tensor, body_names: List[str],
               device: torch.device):
    """The goal named by ``goal['kind']`` (task.env.goal, a kind tasks/config.py's check_goal_settings has
    accepted); ``clip_speeds`` [M]: each clip's mean root speed."""
    kind = goal.get("kind", "none")
    if kind == "heading":
        return HeadingGoal(goal, num_envs, control_freq, clip_speeds, device)
    if kind == "strike":
        return StrikeGoal(goal, num_envs, body_names, device)
    return NoGoal()


class NoGoal:
    """Imitation alone: no observations, the imitation reward as it is, the reference where the clip is."""

    anchors_reference = False

    def reset(self, chosen: torch.Tensor, root_state: torch.Tensor, motion_ids: torch.Tensor) -> None:
        pass

    def update(self, body_state: torch.Tensor, phase: torch.Tensor) -> None:
        pass

    def observe(self, root_state: torch.Tensor) -> torch.Tensor:
        return torch.zeros(root_state.shape[0], 0, device=root_state.device)

    def reward(self, imitation: torch.Tensor, body_state: torch.Tensor, com_vel: torch.Tensor) -> torch.Tensor:
        return imitation

    def step_metrics(self, body_state: torch.Tensor, com_vel: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {}

    def report(self, means: Dict[str, float], steps: float) -> Dict[str, float]:
        return {}


def uniform(low: float, high: float, n: int, device: torch.device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, device=device)


class HeadingGoal(NoGoal):
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

    def reset(self, chosen: torch.Tensor, root_state: torch.Tensor, motion_ids: torch.Tensor) -> None:
        """New episodes: a target turned up to max_turn from the start's heading, at the clip's speed."""
        new_yaw = heading_angle(root_state[:, ROT]) + uniform(-self.max_turn, self.max_turn, chosen.shape[0], self.device)
        self.target_yaw.copy_(torch.where(chosen, new_yaw, self.target_yaw))
        speed = self.clip_speeds[motion_ids] if self.speed_mps == 0.0 else torch.full_like(self.target_yaw, self.speed_mps)
        self.target_speed.copy_(torch.where(chosen, speed, self.target_speed))

    def update(self, body_state: torch.Tensor, phase: torch.Tensor) -> None:
        """The target turns at random times (change_rate_hz), by up to max_turn."""
        n = self.target_yaw.shape[0]
        changing = torch.rand(n, device=self.device) < self.change_prob
        turned = self.target_yaw + uniform(-self.max_turn, self.max_turn, n, self.device)
        self.target_yaw.copy_(torch.where(changing, turned, self.target_yaw))

    def steer(self, env: int, turn_rad: float) -> None:
        """Turn one env's target (the viewer's arrow keys); from then on only the keys turn targets."""
        self.target_yaw[env] += turn_rad
        self.change_prob = 0.0

    def observe(self, root_state: torch.Tensor) -> torch.Tensor:
        return heading_goal_observation(root_state[:, ROT], self.target_yaw)

    def reward(self, imitation: torch.Tensor, body_state: torch.Tensor, com_vel: torch.Tensor) -> torch.Tensor:
        goal = heading_goal_reward(com_vel, self.target_yaw, self.target_speed, self.speed_scale)
        return self.imitation_weight * imitation + (1.0 - self.imitation_weight) * goal

    def step_metrics(self, body_state: torch.Tensor, com_vel: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The angle (rad) between the horizontal centre-of-mass velocity and the target, and the speed
        along the target (m/s)."""
        direction = torch.stack([torch.cos(self.target_yaw), torch.sin(self.target_yaw)], dim=-1)
        along = (com_vel[:, :2] * direction).sum(dim=-1)
        across = com_vel[:, 0] * direction[:, 1] - com_vel[:, 1] * direction[:, 0]
        return {"heading_err": torch.atan2(across, along).abs(), "speed_along_target": along}

    def report(self, means: Dict[str, float], steps: float) -> Dict[str, float]:
        return {"heading_err_deg": math.degrees(means["heading_err"]), "speed_along_target_mps": means["speed_along_target"]}


class StrikeGoal(NoGoal):
    """DeepMimic's strike: each env's target position and whether this cycle's target is hit."""

    anchors_reference = True

    def __init__(self, goal, num_envs: int, body_names: List[str], device: torch.device):
        if goal["body"] not in body_names:
            raise SettingError("task.env.goal.body must be one of the character's bodies {}, got {!r}".format(
                body_names, goal["body"]))
        self.body = body_names.index(goal["body"])
        self.imitation_weight = float(goal["imitation_weight"])
        self.distance_m = [float(v) for v in goal["distance_m"]]
        self.height_m = [float(v) for v in goal["height_m"]]
        self.bearing = [math.radians(float(v)) for v in goal["bearing_deg"]]
        self.radius_m = float(goal["radius_m"])
        self.distance_scale = float(goal["distance_scale"])
        self.target = torch.zeros(num_envs, 3, device=device)
        self.hit = torch.zeros(num_envs, dtype=torch.bool, device=device)
        self.trial_ended = torch.zeros_like(self.hit)  # this step ended a trial (its cycle's target hit or missed)
        self.hit_at_trial_end = torch.zeros_like(self.hit)
        self.reach = torch.zeros(num_envs, device=device)  # this step's distance from the body to the target
        self.last_phase = torch.zeros(num_envs, device=device)
        self.device = device

    def _place(self, chosen: torch.Tensor, root_state: torch.Tensor) -> None:
        """New targets for ``chosen``: a bearing from the root's heading, a ground distance, a height."""
        n = chosen.shape[0]
        yaw = heading_angle(root_state[:, ROT]) + uniform(self.bearing[0], self.bearing[1], n, self.device)
        distance = uniform(self.distance_m[0], self.distance_m[1], n, self.device)
        target = torch.stack([root_state[:, 0] + distance * torch.cos(yaw), root_state[:, 1] + distance * torch.sin(yaw),
                              uniform(self.height_m[0], self.height_m[1], n, self.device)], dim=-1)
        self.target.copy_(torch.where(chosen.unsqueeze(-1), target, self.target))
        self.hit.masked_fill_(chosen, False)

    def reset(self, chosen: torch.Tensor, root_state: torch.Tensor, motion_ids: torch.Tensor) -> None:
        self._place(chosen, root_state)
        self.last_phase.masked_fill_(chosen, 0.0)

    def update(self, body_state: torch.Tensor, phase: torch.Tensor) -> None:
        """Hits this step, and a new target (a new trial) where the clip starts a new cycle."""
        self.reach.copy_((body_state[:, self.body, POS] - self.target).norm(dim=-1))
        self.hit |= self.reach < self.radius_m
        self.trial_ended.copy_(phase < self.last_phase)  # the phase wrapped: this cycle is over
        self.last_phase.copy_(phase)
        self.hit_at_trial_end.copy_(self.trial_ended & self.hit)
        self._place(self.trial_ended, body_state[:, 0])

    def observe(self, root_state: torch.Tensor) -> torch.Tensor:
        local = quat_rotate(heading_quat_inv(root_state[:, ROT]), self.target - root_state[:, POS])
        return torch.cat([local, self.hit.float().unsqueeze(-1)], dim=-1)

    def reward(self, imitation: torch.Tensor, body_state: torch.Tensor, com_vel: torch.Tensor) -> torch.Tensor:
        goal = strike_goal_reward(self.reach, self.hit, self.distance_scale)  # the reach of this step's update
        return self.imitation_weight * imitation + (1.0 - self.imitation_weight) * goal

    def step_metrics(self, body_state: torch.Tensor, com_vel: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {"strike_trials": self.trial_ended.float(), "strike_hits": self.hit_at_trial_end.float()}

    def report(self, means: Dict[str, float], steps: float) -> Dict[str, float]:
        trials = means["strike_trials"]
        # no trial ended (every episode fell within its first cycle): nothing hit, and a finite figure
        return {"strike_hit_rate": means["strike_hits"] / trials if trials > 0 else 0.0,
                "strike_trials_per_episode": trials * steps}


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


@torch.jit.script
def strike_goal_reward(reach: torch.Tensor, hit: torch.Tensor, distance_scale: float) -> torch.Tensor:
    """1 once the target is hit, else exp(-distance_scale * |p* - p_body|^2)."""
    return torch.where(hit, torch.ones_like(reach), torch.exp(-distance_scale * reach * reach))
