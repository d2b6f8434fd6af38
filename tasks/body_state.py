"""The body state every engine publishes: one row of 13 numbers per body, world frame.

Its layout is named here once. Eager code indexes with the slices; TorchScript kernels, which
cannot read module globals, call the accessors (the same columns, checked against the slices in
tests/test_rotations.py).
"""
import torch

POS = slice(0, 3)  # body frame origin (m)
ROT = slice(3, 7)  # body frame rotation, quaternion (w, x, y, z)
LIN_VEL = slice(7, 10)  # body frame origin's linear velocity (m/s)
ANG_VEL = slice(10, 13)  # angular velocity (rad/s)
BODY_STATE_WIDTH = ANG_VEL.stop


def body_pos(state: torch.Tensor) -> torch.Tensor:
    return state[..., 0:3]


def body_rot(state: torch.Tensor) -> torch.Tensor:
    return state[..., 3:7]


def body_lin_vel(state: torch.Tensor) -> torch.Tensor:
    return state[..., 7:10]


def body_ang_vel(state: torch.Tensor) -> torch.Tensor:
    return state[..., 10:13]


def body_vel(state: torch.Tensor) -> torch.Tensor:
    """Linear and angular velocity together [..., 6]."""
    return state[..., 7:13]
