"""tasks.rotations (wxyz quaternions, TorchScript) against scipy.spatial.transform.Rotation
(xyzw) on random inputs. Every expected value is computed with scipy or numpy only."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation, Slerp

from tasks.rotations import (heading_angle, heading_quat_inv, quat_angle, quat_conjugate, quat_diff_angle,
                                   quat_from_axis_angle, quat_mul, quat_rotate, quat_rotate_inverse, quat_slerp,
                                   quat_to_rotvec, quat_to_tan_norm)

N = 256
ATOL = 1e-9  # float64 throughout


def wxyz(rot: Rotation) -> torch.Tensor:
    return torch.from_numpy(rot.as_quat()[..., [3, 0, 1, 2]].copy())


def to_scipy(q: torch.Tensor) -> Rotation:
    return Rotation.from_quat(q.numpy()[..., [1, 2, 3, 0]])


def same_rotation(q: torch.Tensor, rot: Rotation, atol=ATOL):
    """q and rot's quaternion agree up to the quaternion's sign."""
    a = q.numpy()
    b = rot.as_quat()[..., [3, 0, 1, 2]]
    sign = np.sign(np.sum(a * b, axis=-1, keepdims=True))
    np.testing.assert_allclose(a, sign * b, atol=atol)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def rots(rng):
    return Rotation.random(N, random_state=rng), Rotation.random(N, random_state=rng)


def test_quat_mul_composes_like_scipy(rots):
    a, b = rots
    same_rotation(quat_mul(wxyz(a), wxyz(b)), a * b)
    # b applied first: (a*b) v = a (b v)
    v = torch.from_numpy(np.random.default_rng(0).normal(size=(N, 3)))
    np.testing.assert_allclose(quat_rotate(quat_mul(wxyz(a), wxyz(b)), v).numpy(), a.apply(b.apply(v.numpy())),
                               atol=ATOL)


def test_quat_mul_is_not_commutative(rots):
    a, b = rots
    ab = quat_mul(wxyz(a), wxyz(b)).numpy()
    ba = quat_mul(wxyz(b), wxyz(a)).numpy()
    assert np.abs(np.abs(np.sum(ab * ba, axis=-1)) - 1.0).max() > 1e-3


def test_quat_rotate_and_inverse(rots, rng):
    a, _ = rots
    v = rng.normal(size=(N, 3))
    np.testing.assert_allclose(quat_rotate(wxyz(a), torch.from_numpy(v)).numpy(), a.apply(v), atol=ATOL)
    np.testing.assert_allclose(quat_rotate_inverse(wxyz(a), torch.from_numpy(v)).numpy(), a.inv().apply(v),
                               atol=ATOL)
    same_rotation(quat_conjugate(wxyz(a)), a.inv())


def test_quat_rotate_broadcasts_over_bodies(rng):
    rot = Rotation.random(6 * 4, random_state=rng)
    v = rng.normal(size=(6, 4, 3))
    q = wxyz(rot).view(6, 4, 4)
    np.testing.assert_allclose(quat_rotate(q, torch.from_numpy(v)).numpy(),
                               rot.apply(v.reshape(-1, 3)).reshape(6, 4, 3), atol=ATOL)


def test_quat_rotate_float32(rots, rng):
    a, _ = rots
    v = rng.normal(size=(N, 3))
    out = quat_rotate(wxyz(a).float(), torch.from_numpy(v).float())
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), a.apply(v), atol=1e-5)


def test_quat_from_axis_angle(rng):
    axis = rng.normal(size=(N, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = rng.uniform(-2 * np.pi, 2 * np.pi, size=N)
    q = quat_from_axis_angle(torch.from_numpy(axis), torch.from_numpy(angle))
    same_rotation(q, Rotation.from_rotvec(axis * angle[:, None]))


def test_quat_angle_and_diff_angle(rots):
    a, b = rots
    np.testing.assert_allclose(quat_angle(wxyz(a)).numpy(), a.magnitude(), atol=1e-7)
    # sign of the quaternion does not matter
    np.testing.assert_allclose(quat_angle(-wxyz(a)).numpy(), a.magnitude(), atol=1e-7)
    np.testing.assert_allclose(quat_diff_angle(wxyz(a), wxyz(b)).numpy(), (a * b.inv()).magnitude(), atol=1e-7)


def test_quat_to_rotvec(rots, rng):
    a, _ = rots
    expected = a.as_rotvec()
    np.testing.assert_allclose(quat_to_rotvec(wxyz(a)).numpy(), expected, atol=1e-7)
    np.testing.assert_allclose(quat_to_rotvec(-wxyz(a)).numpy(), expected, atol=1e-7)
    # tiny rotations (the small-angle branch)
    small = Rotation.from_rotvec(rng.normal(size=(N, 3)) * 1e-7)
    np.testing.assert_allclose(quat_to_rotvec(wxyz(small)).numpy(), small.as_rotvec(), atol=1e-12)
    np.testing.assert_allclose(quat_to_rotvec(torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)).numpy(),
                               np.zeros((1, 3)), atol=0)


def test_quat_slerp_matches_scipy(rots, rng):
    a, b = rots
    t = rng.uniform(0.0, 1.0, size=N)
    # negate half of b: the same rotations, so slerp must still take the short way
    qb = wxyz(b) * torch.from_numpy(np.where(rng.uniform(size=N) < 0.5, -1.0, 1.0))[:, None]
    out = quat_slerp(wxyz(a), qb, torch.from_numpy(t)[:, None])
    expected = Rotation.concatenate([Slerp([0.0, 1.0], Rotation.concatenate([a[i], b[i]]))([t[i]])
                                     for i in range(N)])
    same_rotation(out, expected, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(out.numpy(), axis=-1), 1.0, atol=1e-12)


def test_quat_slerp_endpoints_and_nearly_equal(rots, rng):
    a, b = rots
    zeros = torch.zeros(N, 1, dtype=torch.float64)
    same_rotation(quat_slerp(wxyz(a), wxyz(b), zeros), a)
    same_rotation(quat_slerp(wxyz(a), wxyz(b), zeros + 1.0), b)
    near = Rotation.from_rotvec(rng.normal(size=(N, 3)) * 1e-9) * a
    out = quat_slerp(wxyz(a), wxyz(near), zeros + 0.5)
    assert torch.isfinite(out).all()
    same_rotation(out, a, atol=1e-8)


def _scipy_yaw(rot: Rotation) -> np.ndarray:
    fwd = rot.apply([1.0, 0.0, 0.0])
    return np.arctan2(fwd[:, 1], fwd[:, 0])


def test_heading_angle(rots):
    a, _ = rots
    np.testing.assert_allclose(heading_angle(wxyz(a)).numpy(), _scipy_yaw(a), atol=1e-9)
    # a pure yaw returns itself
    yaw = np.linspace(-3.0, 3.0, 13)
    np.testing.assert_allclose(heading_angle(wxyz(Rotation.from_euler("z", yaw[:, None]))).numpy(), yaw, atol=1e-9)


def test_heading_quat_inv_removes_yaw(rots, rng):
    a, _ = rots
    v = rng.normal(size=(N, 3))
    yaw = _scipy_yaw(a)
    expected = Rotation.from_rotvec(np.outer(-yaw, [0.0, 0.0, 1.0])).apply(v)
    out = quat_rotate(heading_quat_inv(wxyz(a)), torch.from_numpy(v)).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-9)
    # in the heading frame the body's x axis points along +x (no y component), z is untouched
    fwd = quat_rotate(heading_quat_inv(wxyz(a)), torch.from_numpy(a.apply([1.0, 0.0, 0.0]))).numpy()
    np.testing.assert_allclose(fwd[:, 1], 0.0, atol=1e-9)
    assert np.all(fwd[:, 0] >= -1e-12)
    np.testing.assert_allclose(out[:, 2], v[:, 2], atol=1e-12)


def test_quat_to_tan_norm(rots):
    a, _ = rots
    out = quat_to_tan_norm(wxyz(a)).numpy()
    np.testing.assert_allclose(out[:, 0:3], a.apply([1.0, 0.0, 0.0]), atol=ATOL)
    np.testing.assert_allclose(out[:, 3:6], a.apply([0.0, 0.0, 1.0]), atol=ATOL)
    np.testing.assert_allclose(quat_to_tan_norm(-wxyz(a)).numpy(), out, atol=ATOL)


def test_body_state_accessors_read_the_named_columns():
    """The TorchScript accessors and the slices name the same columns, which tile the 13-wide row."""
    from tasks.body_state import (ANG_VEL, BODY_STATE_WIDTH, LIN_VEL, POS, ROT, body_ang_vel, body_lin_vel, body_pos,
                                  body_rot, body_vel)

    parts = (POS, ROT, LIN_VEL, ANG_VEL)
    assert [p.start for p in parts] == [0] + [p.stop for p in parts[:-1]] and BODY_STATE_WIDTH == 13
    assert [p.stop - p.start for p in parts] == [3, 4, 3, 3]
    state = torch.randn(2, 5, BODY_STATE_WIDTH)
    for accessor, part in ((body_pos, POS), (body_rot, ROT), (body_lin_vel, LIN_VEL), (body_ang_vel, ANG_VEL)):
        assert torch.equal(accessor(state), state[..., part])
        assert torch.equal(torch.jit.script(accessor)(state), state[..., part])
    assert torch.equal(body_vel(state), torch.cat([state[..., LIN_VEL], state[..., ANG_VEL]], dim=-1))
