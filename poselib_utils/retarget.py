"""Express DeepMimic clips in the MJCF character's coordinates (see mjcf_converter's conventions).

A spherical joint's quaternion is split exactly into its three hinge angles (intrinsic Euler
angles in ``SPHERICAL_AXIS_ORDER`` of the Z-up image of the rotation); a revolute joint's angle
is copied; the root moves into the Z-up world. Hinge angles are unwrapped over time so that
finite-difference velocities never see a 2 pi jump.
"""
from typing import Dict, List, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from poselib_utils.data_loader import MotionClip, Skeleton
from poselib_utils.mjcf_converter import SPHERICAL_AXIS_ORDER, Y_UP_TO_Z_UP, hinge_names


def wxyz_to_rotation(q_wxyz: np.ndarray) -> Rotation:
    return Rotation.from_quat(np.asarray(q_wxyz)[..., [1, 2, 3, 0]])


def rotation_to_wxyz(rot: Rotation) -> np.ndarray:
    return rot.as_quat()[..., [3, 0, 1, 2]]


def _conjugate_to_z_up(rot: Rotation) -> Rotation:
    return Y_UP_TO_Z_UP * rot * Y_UP_TO_Z_UP.inv()


def clip_hinge_angles(clip: MotionClip, skeleton: Skeleton) -> Dict[str, np.ndarray]:
    """Per-frame angle of every MJCF hinge of the character, keyed by hinge name."""
    angles = {}
    for joint, col in zip(skeleton.joints, skeleton.param_offsets()):
        col -= 1  # frames exclude the duration column
        if joint.joint_type == "spherical":
            local = _conjugate_to_z_up(wxyz_to_rotation(clip.frames[:, col:col + 4]))
            euler = local.as_euler(SPHERICAL_AXIS_ORDER.upper())
            for name, values in zip(hinge_names(joint.name, joint.joint_type), euler.T):
                angles[name] = np.unwrap(values)
        elif joint.joint_type == "revolute":
            angles[joint.name] = clip.frames[:, col].copy()
    return angles


def clip_root_pose(clip: MotionClip):
    """Root position [F, 3] and rotation wxyz [F, 4] in the Z-up world, sign-continuous."""
    pos = Y_UP_TO_Z_UP.apply(clip.frames[:, 0:3])
    quat = rotation_to_wxyz(_conjugate_to_z_up(wxyz_to_rotation(clip.frames[:, 3:7])))
    for f in range(1, len(quat)):
        if np.dot(quat[f], quat[f - 1]) < 0:
            quat[f] = -quat[f]
    return pos, quat


def clip_to_qpos(clip: MotionClip, skeleton: Skeleton, hinge_order: Sequence[str]) -> np.ndarray:
    """MuJoCo ``qpos`` per frame, [F, 7 + len(hinge_order)]: root pos, root quat wxyz, hinges.

    ``hinge_order`` is the model's hinge joints in qpos order (read from the compiled MJCF).
    """
    angles = clip_hinge_angles(clip, skeleton)
    missing = [name for name in hinge_order if name not in angles]
    if missing or len(angles) != len(hinge_order):
        raise ValueError("{}: character hinges {} do not match the model's {}".format(
            clip.path, sorted(angles), list(hinge_order)))
    pos, quat = clip_root_pose(clip)
    return np.concatenate([pos, quat, np.stack([angles[n] for n in hinge_order], axis=1)], axis=1)


def clip_global_rotations(clip: MotionClip, skeleton: Skeleton) -> List[Rotation]:
    """Every joint's world rotation per frame in DeepMimic's own Y-up frame, by chaining the
    clip's local rotations; independent of the MJCF, so tests can check the model against it."""
    rots: List[Rotation] = []
    for joint, col in zip(skeleton.joints, skeleton.param_offsets()):
        col -= 1
        if joint.joint_type == "none":
            local = wxyz_to_rotation(clip.frames[:, col + 3:col + 7])
        elif joint.joint_type == "spherical":
            local = wxyz_to_rotation(clip.frames[:, col:col + 4])
        elif joint.joint_type == "revolute":
            local = Rotation.from_rotvec(np.outer(clip.frames[:, col], [0.0, 0.0, 1.0]))
        else:
            local = Rotation.identity(clip.num_frames)
        rots.append(local if joint.parent < 0 else rots[joint.parent] * local)
    return rots
