"""Reference motions on the task's device, queried for all envs at once.

Clips are retargeted onto the MJCF character once at load time, after their frames are subdivided
to at most ``MAX_FRAME_DT`` apart the way DeepMimic interpolates a clip (slerp of joint rotations);
MuJoCo's own forward kinematics (CPU, once per frame) gives every body's world pose and the centre
of mass, so the reference bodies are exactly the simulated model's bodies. Queries interpolate
between those frames (lerp for positions and angles, slerp for rotations), finely enough that the
hinge angles and the body poses agree. Looping clips repeat with the root's
per-cycle displacement carried over, as DeepMimic does; other clips hold their ends. With
``carry_heading`` each cycle also turns by the clip's own change of heading (a spin in place that
turns 171 degrees per cycle keeps turning instead of snapping back), the kinematic counterpart of
DeepMimic's ``sync_char_root_rot``, which its dog spin trains with.
"""
from typing import NamedTuple, Optional, Sequence

import mujoco
import numpy as np
import torch

from poselib_utils.mjcf_character import compile_mjcf, load_skeleton_from_mjcf
from poselib_utils.motion_dataset import load_clip
from poselib_utils.retarget import clip_to_qpos, cycle_root_shift, hinge_joint_names, subdivide_clip
from tasks.reference.cuda_graph import GraphedFunction
from tasks.rotations import heading_angle, quat_conjugate, quat_from_axis_angle, quat_mul, quat_rotate, quat_slerp, \
    quat_to_rotvec


# Reference frames are at most this far apart (s). At 120 Hz the backflip's reference state, put
# into the simulator, scores a reward of at least 0.99 against the reference it came from (its own
# 16 fps keyframes blended directly: 0.82).
MAX_FRAME_DT = 1.0 / 120.0


class MotionState(NamedTuple):
    """Reference state of N envs; bodies in MJCF order (world excluded), quaternions wxyz."""

    root_pos: torch.Tensor  # [N, 3]
    root_rot: torch.Tensor  # [N, 4]
    root_vel: torch.Tensor  # [N, 3] world frame
    root_ang_vel: torch.Tensor  # [N, 3] world frame
    dof_pos: torch.Tensor  # [N, D]
    dof_vel: torch.Tensor  # [N, D]
    body_pos: torch.Tensor  # [N, B, 3]
    body_rot: torch.Tensor  # [N, B, 4]
    com_vel: torch.Tensor  # [N, 3]
    phase: torch.Tensor  # [N] in [0, 1]


def _finite_difference(values: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Forward differences per frame; the last frame repeats the one before it."""
    vel = np.empty_like(values)
    vel[:-1] = (values[1:] - values[:-1]) / durations[:-1].reshape((-1,) + (1,) * (values.ndim - 1))
    vel[-1] = vel[-2]
    return vel


def _at_keyframe_coordinates(values: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Per-keyframe ``values`` [F, ...] blended linearly at fractional keyframe indices ``coords``."""
    index = np.minimum(np.floor(coords).astype(int), len(values) - 2)
    blend = (coords - index).reshape((-1,) + (1,) * (values.ndim - 1))
    return (1.0 - blend) * values[index] + blend * values[index + 1]


def _cycle_motion(qpos: np.ndarray, carry_heading: bool):
    """A looping clip's motion per cycle: its root's horizontal shift, its turn about z (radians; 0
    unless ``carry_heading``) and the point it turns about (its first root position, on the floor)."""
    turn = 0.0
    if carry_heading:
        ends = heading_angle(torch.from_numpy(qpos[[0, -1], 3:7]))
        turn = float(torch.remainder(ends[1] - ends[0] + np.pi, 2 * np.pi) - np.pi)
    return cycle_root_shift(qpos), np.float64(turn), np.array([qpos[0, 0], qpos[0, 1], 0.0])


def _cycle_transform(cycles: torch.Tensor, turn: torch.Tensor, delta: torch.Tensor):
    """Heading turn [N] and horizontal shift [N, 3] of cycle ``cycles`` of clips that turn ``turn`` and
    move ``delta`` per cycle: the shift is sum over k < cycles of delta turned by k * turn (a sum of
    rotations in closed form; cycles * delta where a clip does not turn)."""
    half = 0.5 * turn
    small = half.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(half), torch.sin(half))
    ratio = torch.sin(cycles * half) / safe
    along = torch.where(small, cycles, ratio * torch.cos((cycles - 1.0) * half))  # sum of cos(k * turn)
    across = torch.where(small, torch.zeros_like(cycles), ratio * torch.sin((cycles - 1.0) * half))  # of sin
    dx, dy = delta[:, 0], delta[:, 1]
    shift = torch.stack([along * dx - across * dy, across * dx + along * dy, torch.zeros_like(dx)], dim=-1)
    return cycles * turn, shift


def _forward_kinematics(model: mujoco.MjModel, data: mujoco.MjData, qpos: np.ndarray):
    """World body positions [F, B, 3], rotations wxyz [F, B, 4] and the centre of mass [F, 3] per frame."""
    body_pos, body_rot, com_pos = [], [], []
    for frame in qpos:
        data.qpos[:] = frame
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        body_pos.append(data.xpos[1:].copy())
        body_rot.append(data.xquat[1:].copy())
        com_pos.append(data.subtree_com[1].copy())
    return np.stack(body_pos), np.stack(body_rot), np.stack(com_pos)


class MotionLib:
    def __init__(self, motion_files: Sequence[str], mjcf_path: str, device: torch.device,
                 weights: Optional[Sequence[float]] = None, carry_heading: bool = False):
        if not motion_files:
            raise ValueError("MotionLib needs at least one motion file")
        self.device = torch.device(device)
        skeleton = load_skeleton_from_mjcf(mjcf_path)
        model = compile_mjcf(mjcf_path)
        data = mujoco.MjData(model)
        hinges = hinge_joint_names(model)
        self.motion_files = list(motion_files)

        columns = {k: [] for k in ("body_pos", "body_rot", "root_vel", "root_ang_vel", "dof_pos", "dof_vel",
                                   "com_vel", "frame_time", "frame_dt")}
        starts, counts, durations, loops, cycle_motions = [], [], [], [], []
        for path in self.motion_files:
            keyframes = load_clip(path, skeleton)
            clip, coords = subdivide_clip(keyframes, skeleton, MAX_FRAME_DT)
            qpos = clip_to_qpos(clip, skeleton, hinges)
            body_pos, body_rot, com_pos = _forward_kinematics(model, data, qpos)
            # Velocities as DeepMimic has them: forward differences of the keyframes (kept among the
            # subdivided frames), blended between.
            at_keyframes = coords == np.round(coords)
            key_qpos, key_com, key_dt = qpos[at_keyframes], com_pos[at_keyframes], keyframes.frame_durations
            root_rot = torch.from_numpy(key_qpos[:, 3:7])
            rot_step = quat_mul(root_rot[1:], quat_conjugate(root_rot[:-1]))
            ang_vel = np.zeros((keyframes.num_frames, 3))
            ang_vel[:-1] = quat_to_rotvec(rot_step).numpy() / key_dt[:-1, None]
            ang_vel[-1] = ang_vel[-2]
            starts.append(sum(counts))
            counts.append(clip.num_frames)
            durations.append(clip.duration)
            loops.append(clip.loop)
            cycle_motions.append(_cycle_motion(qpos, carry_heading))
            columns["body_pos"].append(body_pos.reshape(clip.num_frames, -1))
            columns["body_rot"].append(body_rot)
            columns["root_vel"].append(_at_keyframe_coordinates(_finite_difference(key_qpos[:, 0:3], key_dt), coords))
            columns["root_ang_vel"].append(_at_keyframe_coordinates(ang_vel, coords))
            columns["dof_pos"].append(qpos[:, 7:])
            columns["dof_vel"].append(_at_keyframe_coordinates(_finite_difference(key_qpos[:, 7:], key_dt), coords))
            columns["com_vel"].append(_at_keyframe_coordinates(_finite_difference(key_com, key_dt), coords))
            columns["frame_time"].append(clip.frame_times)
            columns["frame_dt"].append(np.maximum(clip.frame_durations, 1e-6))

        def to_tensor(values):
            return torch.tensor(np.concatenate(values), dtype=torch.float32, device=self.device)

        # Everything interpolated linearly sits in one [frames, width] buffer, so a query gathers
        # and blends it in a few kernels; the root is body 0 (its frame is the free joint's).
        self._linear_fields = ("body_pos", "root_vel", "root_ang_vel", "dof_pos", "dof_vel", "com_vel")
        linear = [to_tensor(columns[k]) for k in self._linear_fields]
        self._linear_slices, col = {}, 0
        for key, block in zip(self._linear_fields, linear):
            self._linear_slices[key] = slice(col, col + block.shape[1])
            col += block.shape[1]
        self._linear = torch.cat(linear, dim=1)
        self._body_rot = to_tensor(columns["body_rot"])
        self._frame_time = to_tensor(columns["frame_time"])
        self._frame_dt = to_tensor(columns["frame_dt"])
        self.num_motions = len(self.motion_files)
        self.body_names = [model.body(b).name for b in range(1, model.nbody)]
        self.dof_names = hinges
        self._frame_start = torch.tensor(starts, dtype=torch.long, device=self.device)
        self._frame_count = torch.tensor(counts, dtype=torch.long, device=self.device)
        self.durations = torch.tensor(durations, dtype=torch.float32, device=self.device)
        self.loops = torch.tensor(loops, dtype=torch.bool, device=self.device)
        self._up = torch.tensor([0.0, 0.0, 1.0], device=self.device)  # made once: no host copy in a query
        deltas, turns, pivots = (np.stack(v) for v in zip(*cycle_motions))
        self._cycle_delta, self._cycle_turn, self._cycle_pivot = (
            torch.tensor(v, dtype=torch.float32, device=self.device) for v in (deltas, turns, pivots))
        # Frames of all clips on one time axis, each clip shifted past the previous one, so a
        # single searchsorted finds every env's frame whatever its clip.
        gaps = torch.cumsum(torch.cat([torch.zeros(1, device=self.device), self.durations[:-1] + 1.0]), 0)
        self._clip_time_offset = gaps
        clip_of_frame = torch.repeat_interleave(torch.arange(self.num_motions, device=self.device), self._frame_count)
        self._search_keys = (self._frame_time + gaps[clip_of_frame]).contiguous()
        weights = np.ones(self.num_motions) if weights is None else np.asarray(weights, dtype=np.float64)
        if weights.shape != (self.num_motions,) or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError("motion weights {} do not fit {} clips".format(weights.tolist(), self.num_motions))
        self._weights = torch.tensor(weights / weights.sum(), dtype=torch.float32, device=self.device)
        self._graphed_query = GraphedFunction(self._query)

    @property
    def mean_root_speeds(self) -> torch.Tensor:
        """[M] each clip's mean horizontal root speed over a cycle (m/s): its cycle's shift over its duration."""
        return self._cycle_delta[:, :2].norm(dim=-1) / self.durations.clamp_min(1e-6)

    def sample_motions(self, n: int) -> torch.Tensor:
        if self.num_motions == 1:
            return torch.zeros(n, dtype=torch.long, device=self.device)
        return torch.multinomial(self._weights, n, replacement=True)

    def sample_times(self, motion_ids: torch.Tensor) -> torch.Tensor:
        return torch.rand(motion_ids.shape, device=self.device) * self.durations[motion_ids]

    def phase(self, motion_ids: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """Time into the clip over its duration, in [0, 1] (DeepMimic's phase variable)."""
        return self._local_time(motion_ids, times)[1] / self.durations[motion_ids]

    def _local_time(self, motion_ids: torch.Tensor, times: torch.Tensor):
        """Completed cycles (looping clips) and the time within the clip."""
        duration = self.durations[motion_ids]
        loop = self.loops[motion_ids]
        cycles = torch.where(loop, torch.floor(times / duration), torch.zeros_like(times))
        local_t = torch.where(loop, times - cycles * duration, times.clamp(min=0.0))
        return cycles, torch.minimum(local_t, duration)

    def get_state(self, motion_ids: torch.Tensor, times: torch.Tensor) -> MotionState:
        """Reference state of clip ``motion_ids[i]`` at time ``times[i]`` (seconds from its start)."""
        return self._graphed_query(motion_ids.long().contiguous(), times.float().contiguous())

    def _query(self, motion_ids: torch.Tensor, times: torch.Tensor) -> MotionState:
        cycles, local_t = self._local_time(motion_ids, times)
        start = self._frame_start[motion_ids]
        last_pair = start + self._frame_count[motion_ids] - 2
        key = local_t + self._clip_time_offset[motion_ids]
        f0 = torch.searchsorted(self._search_keys, key.contiguous(), right=True) - 1
        f0 = torch.maximum(torch.minimum(f0, last_pair), start)
        f1 = f0 + 1
        blend = ((local_t - self._frame_time[f0]) / self._frame_dt[f0]).clamp(0.0, 1.0).unsqueeze(-1)
        linear = torch.lerp(self._linear[f0], self._linear[f1], blend)
        body_rot = quat_slerp(self._body_rot[f0], self._body_rot[f1], blend.unsqueeze(-1))
        fields = {k: linear[:, s] for k, s in self._linear_slices.items()}
        body_pos = fields["body_pos"].view(times.shape[0], -1, 3)
        turn, shift = _cycle_transform(cycles, self._cycle_turn[motion_ids], self._cycle_delta[motion_ids])
        # cycle c is the clip turned by c * (turn per cycle) about its first root position, then shifted
        spin = quat_from_axis_angle(self._up.expand(times.shape[0], 3), turn)
        pivot = self._cycle_pivot[motion_ids].unsqueeze(1)
        spin_b = spin.unsqueeze(1).expand(-1, body_pos.shape[1], -1)
        body_pos = body_pos + (quat_rotate(spin_b, body_pos - pivot) - (body_pos - pivot)) + shift.unsqueeze(1)
        body_rot = quat_mul(spin_b, body_rot)
        return MotionState(
            root_pos=body_pos[:, 0],
            root_rot=body_rot[:, 0],
            root_vel=quat_rotate(spin, fields["root_vel"]),
            root_ang_vel=quat_rotate(spin, fields["root_ang_vel"]),
            dof_pos=fields["dof_pos"],
            dof_vel=fields["dof_vel"],
            body_pos=body_pos,
            body_rot=body_rot,
            com_vel=quat_rotate(spin, fields["com_vel"]),
            phase=local_t / self.durations[motion_ids],
        )
