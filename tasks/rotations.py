"""Quaternion and frame math on batched torch tensors.

One convention project-wide: quaternions are ``(w, x, y, z)``, last dimension 4; vectors last
dimension 3; world frame Z-up. Engines convert to this at the seam. No simulator imports here.

The functions are TorchScript-compatible but not scripted themselves: TorchScript compiles them
into the task's scripted kernels, which always see the same shapes, while eager callers (the
motion library, engines, resets of a varying number of envs) avoid TorchScript's re-profiling
and recompiling on every new shape.
"""
import torch


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``a * b`` (apply ``b`` first, then ``a``)."""
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], dim=-1)


def quat_conjugate(q: torch.Tensor) -> torch.Tensor:
    return torch.cat([q[..., :1], -q[..., 1:]], dim=-1)


def quat_normalize(q: torch.Tensor) -> torch.Tensor:
    return q / q.norm(p=2, dim=-1, keepdim=True).clamp_min(1e-9)


def quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors ``v`` by unit quaternions ``q``."""
    w = q[..., :1]
    u = q[..., 1:]
    t = 2.0 * torch.cross(u, v, dim=-1)
    return v + w * t + torch.cross(u, t, dim=-1)


def quat_rotate_inverse(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return quat_rotate(quat_conjugate(q), v)


def quat_from_axis_angle(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """``axis`` [..., 3] unit, ``angle`` [...] radians."""
    half = 0.5 * angle.unsqueeze(-1)
    return torch.cat([torch.cos(half), torch.sin(half) * axis], dim=-1)


def quat_angle(q: torch.Tensor) -> torch.Tensor:
    """Rotation angle of unit quaternions, in [0, pi]."""
    return 2.0 * torch.atan2(q[..., 1:].norm(p=2, dim=-1), q[..., 0].abs())


def quat_diff_angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle of the rotation taking ``b`` to ``a`` (DeepMimic's QuatDiffTheta)."""
    return quat_angle(quat_mul(a, quat_conjugate(b)))


def quat_to_rotvec(q: torch.Tensor) -> torch.Tensor:
    """Axis times angle, angle in [0, pi] (the quaternion's sign does not matter)."""
    q = torch.where(q[..., :1] < 0, -q, q)
    sin_half = q[..., 1:].norm(p=2, dim=-1, keepdim=True)
    angle = 2.0 * torch.atan2(sin_half, q[..., :1])
    scale = torch.where(sin_half > 1e-8, angle / sin_half.clamp_min(1e-8), torch.full_like(angle, 2.0))
    return q[..., 1:] * scale


def quat_slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Shortest-path spherical interpolation; ``t`` broadcasts as [..., 1]."""
    cos = (a * b).sum(dim=-1, keepdim=True)
    b = torch.where(cos < 0, -b, b)
    cos = cos.abs().clamp(max=1.0)
    theta = torch.acos(cos)
    sin = torch.sin(theta)
    small = sin < 1e-6
    wa = torch.where(small, 1.0 - t, torch.sin((1.0 - t) * theta) / sin.clamp_min(1e-6))
    wb = torch.where(small, t, torch.sin(t * theta) / sin.clamp_min(1e-6))
    return quat_normalize(wa * a + wb * b)


def heading_angle(q: torch.Tensor) -> torch.Tensor:
    """Yaw of the body's x axis about world z."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return torch.atan2(2.0 * (x * y + w * z), 1.0 - 2.0 * (y * y + z * z))


def heading_quat_inv(q: torch.Tensor) -> torch.Tensor:
    """Rotation that removes the heading: maps world vectors into the heading frame."""
    half = -0.5 * heading_angle(q)
    zeros = torch.zeros_like(half)
    return torch.stack([torch.cos(half), zeros, zeros, torch.sin(half)], dim=-1)


def quat_to_tan_norm(q: torch.Tensor) -> torch.Tensor:
    """Continuous 6-D rotation encoding: the rotated x (tangent) and z (normal) axes, i.e. the
    first and third columns of the rotation matrix. (Written out: building unit axes by indexed
    assignment would copy a host scalar to the GPU, and wait for it, inside TorchScript.)"""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return torch.stack([1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y + w * z), 2.0 * (x * z - w * y),
                        2.0 * (x * z + w * y), 2.0 * (y * z - w * x), 1.0 - 2.0 * (x * x + y * y)], dim=-1)
