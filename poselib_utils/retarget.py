"""Express DeepMimic clips in the MJCF character's coordinates (see mjcf_converter's conventions).

A spherical joint's quaternion is split exactly into its three hinge angles (intrinsic Euler
angles in ``SPHERICAL_AXIS_ORDER`` of the Z-up image of the rotation); a revolute joint's angle
is copied; the root moves into the Z-up world. Hinge angles are unwrapped over time so that
finite-difference velocities never see a 2 pi jump.
"""
from typing import Dict, List, Sequence, Tuple

import mujoco
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


def subdivide_clip(clip: MotionClip, skeleton: Skeleton, max_frame_dt: float) -> Tuple[MotionClip, np.ndarray]:
    """The clip with every frame interval split evenly into intervals of at most ``max_frame_dt``,
    the new frames interpolated as DeepMimic interpolates a clip (lerp for positions and revolute
    angles, slerp for the root and spherical joints), and each new frame's place among the old
    ones (keyframe index plus the fraction of the way to the next). The keyframes stay as they are.

    Hinge angles and body poses are then interpolated between frames close enough that linear
    blending of each agrees with the others, even where a joint turns by a radian or more between
    the clip's own keyframes (backflip's 16 fps), so a reference state placed in the simulator
    has the body poses the reward compares against."""
    dt = clip.frame_durations[:-1]
    splits = np.maximum(np.ceil(dt / max_frame_dt - 1e-9), 1).astype(int)
    index = np.repeat(np.arange(len(dt)), splits)  # the keyframe each new frame starts from
    blend = np.concatenate([np.arange(k) / k for k in splits])
    index = np.append(index, len(dt) - 1)
    blend = np.append(blend, 1.0)  # the last keyframe, reached from the one before it
    durations = np.append(np.repeat(dt / splits, splits), clip.frame_durations[-1])

    f0, f1 = clip.frames[index], clip.frames[np.minimum(index + 1, clip.num_frames - 1)]
    frames = f0 + blend[:, None] * (f1 - f0)  # positions and revolute angles; rotations below
    for joint, col in zip(skeleton.joints, skeleton.param_offsets()):
        col -= 1  # frames exclude the duration column
        if joint.joint_type == "none":
            col += 3  # the root's rotation follows its position
        elif joint.joint_type != "spherical":
            continue
        r0, r1 = wxyz_to_rotation(f0[:, col:col + 4]), wxyz_to_rotation(f1[:, col:col + 4])
        step = (r0.inv() * r1).as_rotvec()  # the shorter way round, as slerp takes it
        frames[:, col:col + 4] = rotation_to_wxyz(r0 * Rotation.from_rotvec(blend[:, None] * step))
    return MotionClip(path=clip.path, loop=clip.loop, frame_durations=durations, frames=frames), index + blend


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


def hinge_joint_names(model: mujoco.MjModel) -> List[str]:
    """The model's hinge joints in MJCF order: the qpos columns after the root's 7."""
    return [model.joint(j).name for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE]


def cycle_root_shift(qpos: np.ndarray) -> np.ndarray:
    """How far a looping clip's root moves per cycle, horizontally (DeepMimic's cycle offset):
    the next cycle's frames are this clip's ``qpos`` [F, 7 + hinges] shifted by it."""
    shift = qpos[-1, 0:3] - qpos[0, 0:3]
    shift[2] = 0.0
    return shift
