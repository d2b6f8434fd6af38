"""A reference state turned about world z and shifted on the ground onto the simulated character, for
goals that choose the path (tasks/goals.py): the clip then says how to move, not where.

The anchor of an env maps its reference root's heading and ground position at the current time onto
the character's root's; later reference frames (the observed target frames) take the same anchor, so
they still show where the clip goes next from where the character is. Heights, joint angles and
anything relative to the root are unchanged.
"""
from typing import Tuple

import torch

from tasks.reference.motion_lib import MotionState
from tasks.rotations import heading_angle, quat_mul, quat_rotate


def reference_anchor(sim_root_pos: torch.Tensor, sim_root_rot: torch.Tensor,
                     ref: MotionState) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(turn quaternion [N, 4], reference ground origin [N, 3], character ground origin [N, 3])."""
    return compute_reference_anchor(sim_root_pos, sim_root_rot, ref.root_pos, ref.root_rot)


def anchored(ref: MotionState, anchor: Tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> MotionState:
    """``ref`` moved by ``anchor``; ``ref`` may hold k frames per env, env-minor ([k * N], as the task's
    target-frame queries), the anchor then applies to each of them."""
    turn, ref_origin, sim_origin = anchor
    repeats = ref.root_pos.shape[0] // turn.shape[0]
    turn, ref_origin, sim_origin = turn.repeat(repeats, 1), ref_origin.repeat(repeats, 1), sim_origin.repeat(repeats, 1)
    root_pos, body_pos = anchor_points(turn, ref_origin, sim_origin, ref.root_pos, ref.body_pos)
    root_rot, body_rot = quat_mul(turn, ref.root_rot), quat_mul(turn.unsqueeze(1).expand_as(ref.body_rot), ref.body_rot)
    return ref._replace(root_pos=root_pos, root_rot=root_rot, body_pos=body_pos, body_rot=body_rot,
                        root_vel=quat_rotate(turn, ref.root_vel), root_ang_vel=quat_rotate(turn, ref.root_ang_vel),
                        com_vel=quat_rotate(turn, ref.com_vel))


@torch.jit.script
def compute_reference_anchor(sim_root_pos: torch.Tensor, sim_root_rot: torch.Tensor, ref_root_pos: torch.Tensor,
                             ref_root_rot: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    half = 0.5 * (heading_angle(sim_root_rot) - heading_angle(ref_root_rot))
    zeros = torch.zeros_like(half)
    turn = torch.stack([torch.cos(half), zeros, zeros, torch.sin(half)], dim=-1)
    zero = zeros.unsqueeze(-1)  # origins on the ground (built from tensors: no host copy in a captured step)
    return turn, torch.cat([ref_root_pos[:, :2], zero], dim=-1), torch.cat([sim_root_pos[:, :2], zero], dim=-1)


@torch.jit.script
def anchor_points(turn: torch.Tensor, ref_origin: torch.Tensor, sim_origin: torch.Tensor, root_pos: torch.Tensor,
                  body_pos: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Points p of the reference as turn (p - ref_origin) + sim_origin: the root [N, 3], the bodies [N, B, 3]."""
    bodies = body_pos.shape[1]
    body_turn = turn.unsqueeze(1).expand(turn.shape[0], bodies, 4)
    moved_bodies = quat_rotate(body_turn, body_pos - ref_origin.unsqueeze(1)) + sim_origin.unsqueeze(1)
    return quat_rotate(turn, root_pos - ref_origin) + sim_origin, moved_bodies
