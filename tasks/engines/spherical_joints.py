"""MuJoCo's three sequential hinges of a body <-> the spherical joint IsaacGym makes of them.

Our DOFs for such a body are MuJoCo's: hinge angles ``q1, q2, q3`` about the body axes
``a1, a2, a3`` in MJCF order (x, z, y for humanoid3d), the body rotation being
``R = R_a1(q1) R_a2(q2) R_a3(q3)``, and the hinge rates. IsaacGym's three DOFs for the same body
(listed x, y, z: tasks/engines/isaacgym_asset.py) are the exponential map of ``R``, component along
each hinge's axis, and the body's angular velocity relative to its parent in the body's own frame,
``w = (R_a2 R_a3)^T a1 q1' + R_a3^T a2 q2' + a3 q3'``, along the same axes (IsaacGymEnvs' and
MimicKit's motion libraries write ``quat_to_exp_map(q0^-1 q1) / dt`` there). Each function below
keeps our DOF layout and replaces a spherical body's three slots; other DOFs pass through.
Converting back, angles come out in their principal range (the middle one within +-pi/2).
"""
from typing import List

import torch

from tasks.rotations import quat_from_axis_angle, quat_mul, quat_rotate_inverse, quat_to_rotvec


class SphericalJoints:
    """The bodies with three hinges: their DOF slots [G, 3] (MJCF order) and axes [G, 3, 3]."""

    def __init__(self, hinge_slots: List[List[int]], hinge_axes: List[List[List[float]]], device: torch.device):
        self.slots = torch.tensor(hinge_slots, dtype=torch.long, device=device).reshape(-1, 3)
        self.axes = torch.tensor(hinge_axes, dtype=torch.float32, device=device).reshape(-1, 3, 3)
        order = self.axes.argmax(dim=-1)  # [G, 3]: which of x, y, z each hinge turns about
        unit = torch.nn.functional.one_hot(order, 3).to(self.axes.dtype)
        if not (torch.equal(unit, self.axes) and torch.equal(order.sort(dim=-1).values,
                                                            torch.arange(3, device=device).expand_as(order))):
            raise ValueError("a spherical joint needs three hinges about +x, +y and +z, got {}".format(hinge_axes))
        self.order = order

    def angles_to_exp_map(self, dof: torch.Tensor) -> torch.Tensor:
        if self.slots.shape[0] == 0:
            return dof
        return _put(dof, self.slots, _exp_map_along_axes(dof[:, self.slots], self.axes))

    def exp_map_to_angles(self, dof: torch.Tensor) -> torch.Tensor:
        if self.slots.shape[0] == 0:
            return dof
        return _put(dof, self.slots, _angles_from_exp_map(dof[:, self.slots], self.axes, self.order))

    def rates_to_angular_velocity(self, dof_pos: torch.Tensor, dof_vel: torch.Tensor) -> torch.Tensor:
        if self.slots.shape[0] == 0:
            return dof_vel
        rate_map = _rate_to_velocity_matrix(dof_pos[:, self.slots], self.axes)
        w = (rate_map @ dof_vel[:, self.slots].unsqueeze(-1)).squeeze(-1)  # child-frame angular velocity
        return _put(dof_vel, self.slots, (self.axes @ w.unsqueeze(-1)).squeeze(-1))

    def angular_velocity_to_rates(self, dof_pos: torch.Tensor, dof_vel: torch.Tensor) -> torch.Tensor:
        """``dof_pos`` in our hinge angles, ``dof_vel`` in IsaacGym's layout."""
        if self.slots.shape[0] == 0:
            return dof_vel
        w = (self.axes.transpose(-1, -2) @ dof_vel[:, self.slots].unsqueeze(-1)).squeeze(-1)
        rate_map = _rate_to_velocity_matrix(dof_pos[:, self.slots], self.axes)
        return _put(dof_vel, self.slots, (_inverse_3x3(rate_map) @ w.unsqueeze(-1)).squeeze(-1))


def _put(dof: torch.Tensor, slots: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    out = dof.clone()
    out[:, slots] = values
    return out


@torch.jit.script
def _hinge_rotation(angles: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    """[N, G] wxyz rotations R_a1(q1) R_a2(q2) R_a3(q3) from angles [N, G, 3] and axes [G, 3, 3]."""
    ax = axes.unsqueeze(0).expand(angles.shape[0], -1, -1, -1)
    q = quat_from_axis_angle(ax[:, :, 0], angles[..., 0])
    q = quat_mul(q, quat_from_axis_angle(ax[:, :, 1], angles[..., 1]))
    return quat_mul(q, quat_from_axis_angle(ax[:, :, 2], angles[..., 2]))


@torch.jit.script
def _exp_map_along_axes(angles: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    rotvec = quat_to_rotvec(_hinge_rotation(angles, axes))  # [N, G, 3] in the body frame
    return (axes.unsqueeze(0) @ rotvec.unsqueeze(-1)).squeeze(-1)


@torch.jit.script
def _rotvec_to_matrix(v: torch.Tensor) -> torch.Tensor:
    """Rodrigues: [..., 3] rotation vectors -> [..., 3, 3] matrices."""
    theta = v.norm(p=2, dim=-1)[..., None, None]
    small = theta < 1e-6
    t = theta.clamp_min(1e-6)
    a = torch.where(small, torch.ones_like(t), torch.sin(t) / t)
    b = torch.where(small, torch.full_like(t, 0.5), (1.0 - torch.cos(t)) / (t * t))
    zero = torch.zeros_like(v[..., 0])
    k = torch.stack([torch.stack([zero, -v[..., 2], v[..., 1]], dim=-1),
                     torch.stack([v[..., 2], zero, -v[..., 0]], dim=-1),
                     torch.stack([-v[..., 1], v[..., 0], zero], dim=-1)], dim=-2)
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand(k.shape)
    return eye + a * k + b * (k @ k)


@torch.jit.script
def _angles_from_exp_map(exp_map: torch.Tensor, axes: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Intrinsic Tait-Bryan angles about the hinge axes (i, j, k) = ``order``: with the sign e of the
    permutation, q2 = asin(e R_ik), q1 = atan2(-e R_jk, R_kk), q3 = atan2(-e R_ij, R_ii)."""
    m = _rotvec_to_matrix((axes.transpose(-1, -2).unsqueeze(0) @ exp_map.unsqueeze(-1)).squeeze(-1))
    i, j, k = order[:, 0], order[:, 1], order[:, 2]
    cyclic = ((j - i) % 3) == 1
    sign = torch.where(cyclic, torch.ones_like(i), -torch.ones_like(i)).to(exp_map.dtype)
    g = torch.arange(order.shape[0], device=order.device)
    q2 = torch.asin((sign * m[:, g, i, k]).clamp(-1.0, 1.0))
    q1 = torch.atan2(-sign * m[:, g, j, k], m[:, g, k, k])
    q3 = torch.atan2(-sign * m[:, g, i, j], m[:, g, i, i])
    return torch.stack([q1, q2, q3], dim=-1)


@torch.jit.script
def _rate_to_velocity_matrix(angles: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    """[N, G, 3, 3] M with child-frame angular velocity w = M q': columns (R_a2 R_a3)^T a1, R_a3^T a2, a3."""
    ax = axes.unsqueeze(0).expand(angles.shape[0], -1, -1, -1)
    r3 = quat_from_axis_angle(ax[:, :, 2], angles[..., 2])
    r23 = quat_mul(quat_from_axis_angle(ax[:, :, 1], angles[..., 1]), r3)
    cols = [quat_rotate_inverse(r23, ax[:, :, 0]), quat_rotate_inverse(r3, ax[:, :, 1]), ax[:, :, 2]]
    return torch.stack(cols, dim=-1)


@torch.jit.script
def _inverse_3x3(m: torch.Tensor) -> torch.Tensor:
    """Batched inverse by the adjugate; the determinant (cos q2 here) kept away from zero, so gimbal
    lock gives large rates, not inf."""
    a, b, c = m[..., 0, :], m[..., 1, :], m[..., 2, :]
    adj = torch.stack([torch.cross(b, c, dim=-1), torch.cross(c, a, dim=-1), torch.cross(a, b, dim=-1)], dim=-1)
    det = (a * torch.cross(b, c, dim=-1)).sum(dim=-1)
    sign = torch.where(det < 0, -torch.ones_like(det), torch.ones_like(det))
    det = torch.where(det.abs() < 1e-6, 1e-6 * sign, det)
    return adj / det[..., None, None]
