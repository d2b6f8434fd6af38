"""The pushes of task.env.push on a character's root, as DeepMimic's paper tests robustness (Table 6:
0.2 s pushes on the pelvis), and random training pushes (DeepMimic trained without them).

The test push acts on every env once per episode, for ``duration_s`` from ``at_s`` (env i of N from
``at_s + spread_s * i / N``, so N envs sample the phases of a cycle), horizontal, ``direction_deg`` to
the left of the character's heading when it starts. Training pushes start at random (``random_rate_hz``
per unpushed env), each a force uniform in [0, ``random_max_n``] in any horizontal direction. The
forces are world-frame, on the root's centre of mass (Engine.set_body_forces).
"""
import math
from typing import Tuple

import torch

from tasks.rotations import heading_angle


class Pushes:
    """Each env's pushes: ``forces(progress, root_rot)`` every policy step while ``active``."""

    def __init__(self, push, control_freq: float, num_envs: int, num_bodies: int, device: torch.device,
                 evaluation: bool = False):
        self.num_envs, self.num_bodies, self.device, self.dt = num_envs, num_bodies, device, 1.0 / control_freq
        self.set(float(push["force_n"]), float(push["direction_deg"]))
        self.at_s, self.spread_s = float(push["at_s"]), float(push["spread_s"])
        self.steps = max(1, int(round(float(push["duration_s"]) * control_freq)))
        self.random_max_n = 0.0 if evaluation else float(push["random_max_n"])  # evaluations: the test push only
        self.random_start_prob = min(1.0, float(push["random_rate_hz"]) * self.dt)
        times = self.at_s + self.spread_s * torch.arange(num_envs, device=device, dtype=torch.float64) / num_envs
        self.start_steps = torch.round(times / self.dt).long()
        self.direction = torch.zeros(num_envs, 3, device=device)  # each env's, fixed when its push starts
        self.random_state = torch.zeros(num_envs, 4, device=device)  # each env's training push: steps left, force

    def set(self, force_n: float, direction_deg: float) -> None:
        """The test push's force and direction (benchmarks/evaluate.py's force search changes them)."""
        self.force_n, self.angle = force_n, math.radians(direction_deg)

    @property
    def active(self) -> bool:
        return self.force_n > 0.0 or self.random_max_n > 0.0

    @property
    def duration_s(self) -> float:
        return self.steps * self.dt

    def reset(self, chosen: torch.Tensor) -> None:
        """Envs in the mask ``chosen`` start a new episode, unpushed."""
        self.random_state.masked_fill_(chosen.unsqueeze(-1), 0.0)

    def forces(self, progress: torch.Tensor, root_rot: torch.Tensor) -> torch.Tensor:
        """[N, B, 3] this step's forces (the root's only), given each env's policy steps done this episode."""
        forces, direction = compute_push_forces(progress, root_rot, self.direction, self.num_bodies, self.start_steps,
                                                self.steps, self.force_n, self.angle)
        self.direction.copy_(direction)
        random_forces, state = compute_random_push_forces(
            self.random_state, torch.rand(self.num_envs, 3, device=self.device), self.num_bodies,
            self.random_start_prob, self.random_max_n, self.steps)
        self.random_state.copy_(state)
        return forces + random_forces


@torch.jit.script
def compute_push_forces(progress: torch.Tensor, root_rot: torch.Tensor, direction: torch.Tensor, num_bodies: int,
                        start_step: torch.Tensor, num_steps: int, force: float,
                        angle: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """The push on the root [N, B, 3] during policy steps [start_step, start_step + num_steps) of each
    env's episode (``start_step`` [N]), horizontal, ``angle`` (rad) to the left of the root's heading at
    the push's first step (DeepMimic's forward push: 0, sideways: pi / 2), and each env's direction."""
    heading = heading_angle(root_rot) + angle
    starting = (progress == start_step).unsqueeze(-1)
    new_direction = torch.stack([torch.cos(heading), torch.sin(heading), torch.zeros_like(heading)], dim=-1)
    direction = torch.where(starting, new_direction, direction)
    active = ((progress >= start_step) & (progress < start_step + num_steps)).unsqueeze(-1)
    forces = torch.zeros(root_rot.shape[0], num_bodies, 3, device=root_rot.device)
    forces[:, 0] = torch.where(active, direction * force, torch.zeros_like(direction))
    return forces, direction


@torch.jit.script
def compute_random_push_forces(state: torch.Tensor, draws: torch.Tensor, num_bodies: int, start_prob: float,
                               max_force: float, num_steps: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Random pushes on the root [N, B, 3] and each env's next ``state`` ([N, 4]: policy steps left,
    world-frame force). An unpushed env starts a push with probability ``start_prob`` (``draws[:, 0]``),
    of ``num_steps`` steps, a force uniform in [0, max_force] (``draws[:, 2]``) in any horizontal
    direction (``draws[:, 1]``), held for the whole push."""
    angle = draws[:, 1] * (2.0 * math.pi)
    new_force = torch.stack([torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)], dim=-1) \
        * (draws[:, 2] * max_force).unsqueeze(-1)
    starting = (state[:, 0] <= 0.0) & (draws[:, 0] < start_prob)
    steps_left = torch.where(starting, torch.full_like(state[:, 0], float(num_steps)), state[:, 0])
    force = torch.where(starting.unsqueeze(-1), new_force, state[:, 1:])
    forces = torch.zeros(state.shape[0], num_bodies, 3, device=state.device)
    forces[:, 0] = force * (steps_left > 0.0).unsqueeze(-1)
    return forces, torch.cat([(steps_left - 1.0).clamp(min=0.0).unsqueeze(-1), force], dim=-1)
