"""Standard motion-tracking metrics of an evaluation run, accumulated on the device.

Each env contributes its first episode only (the evaluation episode: clip time 0 to the
horizon). After every policy step the task feeds the simulated body positions and rotations,
the env's clip and time, the step reward and the done/terminated flags; the reference is
queried here from the motion library (``MotionLib.get_state`` at the env's motion time), never
taken from anything the policy saw. Everything is batched: no per-env Python loops, and no
host synchronisation until ``summary``.

Definitions (per frame f of an episode, B bodies in MJCF order, the root is body 0):

- MPJPE-G: mean over bodies of ``|p_sim - p_ref|`` (mm), averaged over frames, then envs.
- MPJPE-L: the same after subtracting each pose's own root position (root-relative, mm).
- root position error: ``|root_sim - root_ref|`` (mm); root rotation error: the angle of the
  rotation between the simulated and reference root orientations (deg).
- PA-MPJPE: MPJPE-G after the similarity transform (rotation, translation, scale) that best maps
  the simulated pose onto the reference in the least-squares sense (Procrustes), so it measures
  the body's shape alone, not where it stands or which way it leans (mm).
- velocity and acceleration errors: mean over bodies of the difference between the simulated and
  reference first (second) finite differences of global body positions, in mm per frame (per
  frame²), a frame being one policy step (1/30 s by default, the 30 fps of PHC's E_vel / E_acc).
  A looping clip's reference jumps where it wraps, and these errors include those jumps.
- success: the episode was not terminated early and the mean body position error stayed below
  ``success_threshold`` (0.5 m) at every frame.
- episode length: steps (and seconds) until the episode ended (failure, clip end or horizon).
- normalised return: the episode's return over the most it could be, the number of steps of a
  full evaluation episode (the reward is at most 1 per step), so a fall is penalised.
"""
import json
import math
import os
from typing import Dict, List, Optional

import torch

from poselib_utils.motion_dataset import check_evaluation_envs
from tasks.rotations import quat_diff_angle

SUCCESS_THRESHOLD_M = 0.5
# The order of the columns of the printed table and of each clip's JSON entry.
METRIC_KEYS = ("num_episodes", "success_rate", "mpjpe_g_mm", "mpjpe_l_mm", "root_pos_err_mm", "root_rot_err_deg",
               "mpjpe_pa_mm", "vel_err_mm_frame", "accel_err_mm_frame2", "episode_length_steps",
               "episode_length_s", "normalized_return")


def evaluation_episode_steps(durations: torch.Tensor, loops: torch.Tensor, horizon_s: float,
                             dt: float) -> torch.Tensor:
    """Steps of a full evaluation episode per clip: the horizon for looping clips, the clip's
    length (at most the horizon) for the others. Matches the task's time-out (progress reaching
    the horizon) and clip end (motion time reaching the duration)."""
    horizon = torch.full_like(durations, float(round(horizon_s / dt)))
    clip = torch.ceil(durations / dt - 1e-4)
    return torch.where(loops, horizon, torch.minimum(clip, horizon)).long()


def make_tracking_metrics(task) -> "TrackingMetrics":
    """The accumulator of a task in evaluation mode (its clips, env count, horizon and step)."""
    lib = task.motion_lib
    check_evaluation_envs(lib.num_motions, task.num_envs)
    steps = evaluation_episode_steps(lib.durations, lib.loops, task.max_episode_length * task.dt, task.dt)
    return TrackingMetrics(lib, task.num_envs, steps, task.dt, report_goal=task.goal.report)


class TrackingMetrics:
    def __init__(self, motion_lib, num_envs: int, max_episode_steps: torch.Tensor, dt: float,
                 success_threshold: float = SUCCESS_THRESHOLD_M, report_goal=None):
        """``max_episode_steps``: [num_motions] steps of a full evaluation episode per clip; ``report_goal``:
        a goal's means of its per-step values and episode steps -> the metrics it reports (tasks/goals.py)."""
        self.report_goal = report_goal
        self.motion_lib = motion_lib
        self.num_envs = num_envs
        self.dt = dt
        self.success_threshold = success_threshold
        self.device = motion_lib.device
        self.max_episode_steps = max_episode_steps.to(self.device)
        self.reset()

    def reset(self) -> None:
        z = torch.zeros(self.num_envs, dtype=torch.float64, device=self.device)
        self.sums: Dict[str, torch.Tensor] = {k: z.clone() for k in (
            "mpjpe_l", "root_pos", "root_rot", "mpjpe_pa", "vel", "accel", "reward", "frames",
            "vel_frames", "accel_frames")}
        # The last two frames' positions and velocities (sim, reference) for the finite differences.
        self.last_pos: Optional[torch.Tensor] = None
        self.last_ref_pos: Optional[torch.Tensor] = None
        self.last_vel: Optional[torch.Tensor] = None
        self.last_ref_vel: Optional[torch.Tensor] = None
        self.max_body_err = z.clone()
        self.body_err_sum = torch.zeros(self.num_envs, len(self.motion_lib.body_names), dtype=torch.float64,
                                        device=self.device)
        self.active = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)  # in its first episode
        self.finished = torch.zeros_like(self.active)
        self.terminated = torch.zeros_like(self.active)
        self.env_motion = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self.goal_sums: Dict[str, torch.Tensor] = {}

    @property
    def all_finished(self) -> bool:
        return bool(self.finished.all())

    def update(self, body_pos: torch.Tensor, body_rot: torch.Tensor, motion_ids: torch.Tensor,
               motion_times: torch.Tensor, reward: torch.Tensor, done: torch.Tensor,
               terminated: torch.Tensor, ref=None, goal_values: Optional[Dict[str, torch.Tensor]] = None) -> None:
        """One policy step of all envs. ``body_pos`` [N, B, 3], ``body_rot`` [N, B, 4] (wxyz): the
        simulated state after the step, before finished envs reset; ``motion_ids``/``motion_times``
        [N]: the clip and time the state should match; ``reward``, ``done``, ``terminated`` [N];
        ``ref``: the reference state to match, when not the clip's own (a goal's anchored reference);
        ``goal_values``: a goal's per-step values [N] (tasks/goals.py step_metrics), averaged per env."""
        if ref is None:
            ref = self.motion_lib.get_state(motion_ids, motion_times)
        body_err, *errors = tracking_errors(body_pos, body_rot, ref.body_pos, ref.body_rot)
        active = self.active
        w = active.double()
        for key, value in (goal_values or {}).items():
            self.goal_sums[key] = self.goal_sums.get(key, torch.zeros_like(w)) + w * value.double()
        self.body_err_sum += w.unsqueeze(1) * body_err.double()
        for key, value in zip(("mpjpe_l", "root_pos", "root_rot"), errors):
            self.sums[key] += w * value.double()
        self.sums["mpjpe_pa"] += w * procrustes_aligned_error(body_pos, ref.body_pos).double()
        self._accumulate_derivative_errors(body_pos, ref.body_pos, w)
        self.sums["reward"] += w * reward.double()
        self.sums["frames"] += w
        self.max_body_err = torch.where(active, torch.maximum(self.max_body_err, body_err.mean(dim=-1).double()),
                                        self.max_body_err)
        self.env_motion = torch.where(active, motion_ids, self.env_motion)
        ended = active & done.bool()
        self.terminated |= ended & terminated.bool()
        self.finished |= ended
        self.active = active & ~ended

    def _accumulate_derivative_errors(self, pos: torch.Tensor, ref_pos: torch.Tensor, w: torch.Tensor) -> None:
        """Velocity errors from an env's second evaluation frame on, acceleration errors from its third."""
        vel = ref_vel = None
        if self.last_pos is not None and self.last_ref_pos is not None:
            vel, ref_vel = pos - self.last_pos, ref_pos - self.last_ref_pos
            has_vel = w * (self.sums["frames"] > 0).double()
            self.sums["vel"] += has_vel * (vel - ref_vel).norm(p=2, dim=-1).mean(dim=-1).double()
            self.sums["vel_frames"] += has_vel
            if self.last_vel is not None and self.last_ref_vel is not None:
                has_accel = w * (self.sums["frames"] > 1).double()
                accel_diff = (vel - self.last_vel) - (ref_vel - self.last_ref_vel)
                self.sums["accel"] += has_accel * accel_diff.norm(p=2, dim=-1).mean(dim=-1).double()
                self.sums["accel_frames"] += has_accel
        self.last_pos, self.last_ref_pos = pos.clone(), ref_pos.clone()
        self.last_vel, self.last_ref_vel = vel, ref_vel

    def per_env(self) -> Dict[str, torch.Tensor]:
        """Metrics of each env's evaluation episode (SI units: m, rad, steps); ``body_err`` [N, B]
        is each body's mean position error, the others are [N]."""
        frames = self.sums["frames"].clamp_min(1.0)
        body_err = self.body_err_sum / frames.unsqueeze(1)
        per_env = {
            "body_err": body_err,
            "mpjpe_g": body_err.mean(dim=1),
            "mpjpe_l": self.sums["mpjpe_l"] / frames,
            "root_pos_err": self.sums["root_pos"] / frames,
            "root_rot_err": self.sums["root_rot"] / frames,
            "mpjpe_pa": self.sums["mpjpe_pa"] / frames,
            "vel_err": self.sums["vel"] / self.sums["vel_frames"].clamp_min(1.0),
            "accel_err": self.sums["accel"] / self.sums["accel_frames"].clamp_min(1.0),
            "success": (self.finished & ~self.terminated & (self.max_body_err < self.success_threshold)).double(),
            "length": self.sums["frames"],
            "normalized_return": self.sums["reward"] / self.max_episode_steps[self.env_motion].double(),
        }
        per_env.update({"goal_" + key: value / frames for key, value in self.goal_sums.items()})
        return per_env

    def summary(self, only_finished: bool = True) -> Dict[str, Dict[str, float]]:
        """Per clip (keyed by its file name) and ``all`` (the mean over clips): the metrics of
        METRIC_KEYS and each body's MPJPE-G (``mpjpe_g_per_body_mm``), averaged over the clip's
        envs whose evaluation episode has ended."""
        per_env = self.per_env()
        counted = self.finished if only_finished else self.finished | (self.sums["frames"] > 0)
        m = self.motion_lib.num_motions
        weight = torch.zeros(m, dtype=torch.float64, device=self.device).index_add_(0, self.env_motion,
                                                                                    counted.double())
        means = {}
        for key, values in per_env.items():
            extra = (1,) * (values.dim() - 1)
            total = torch.zeros((m,) + values.shape[1:], dtype=torch.float64, device=self.device).index_add_(
                0, self.env_motion, values * counted.double().view((-1,) + extra))
            means[key] = (total / weight.clamp_min(1.0).view((-1,) + extra)).cpu().tolist()
        weight = weight.cpu().tolist()
        names = clip_names(self.motion_lib.motion_files)
        result = {}
        for i, name in enumerate(names):
            if weight[i] == 0:
                continue
            result[name] = {
                "num_episodes": int(weight[i]),
                "success_rate": means["success"][i],
                "mpjpe_g_mm": 1000.0 * means["mpjpe_g"][i],
                "mpjpe_l_mm": 1000.0 * means["mpjpe_l"][i],
                "root_pos_err_mm": 1000.0 * means["root_pos_err"][i],
                "root_rot_err_deg": math.degrees(means["root_rot_err"][i]),
                "mpjpe_pa_mm": 1000.0 * means["mpjpe_pa"][i],
                "vel_err_mm_frame": 1000.0 * means["vel_err"][i],
                "accel_err_mm_frame2": 1000.0 * means["accel_err"][i],
                "episode_length_steps": means["length"][i],
                "episode_length_s": means["length"][i] * self.dt,
                "normalized_return": means["normalized_return"][i],
                "mpjpe_g_per_body_mm": {b: 1000.0 * e for b, e in zip(self.motion_lib.body_names,
                                                                       means["body_err"][i])},
            }
            if self.goal_sums and self.report_goal is not None:
                result[name].update(self.report_goal({k: means["goal_" + k][i] for k in self.goal_sums},
                                                     means["length"][i]))
        if result:
            clips = list(result.values())
            result["all"] = {k: sum(c[k] for c in clips) / len(clips) for k in clips[0]
                             if k not in ("num_episodes", "mpjpe_g_per_body_mm")}
            result["all"]["num_episodes"] = int(sum(c["num_episodes"] for c in clips))
            result["all"]["mpjpe_g_per_body_mm"] = {
                b: sum(c["mpjpe_g_per_body_mm"][b] for c in clips) / len(clips) for b in self.motion_lib.body_names}
        return result


def tracking_errors(body_pos: torch.Tensor, body_rot: torch.Tensor, ref_body_pos: torch.Tensor,
                    ref_body_rot: torch.Tensor):
    """Each body's world position error [N, B] (m; their mean is MPJPE-G), and per env [N]: the
    root-relative mean body position error (m), root position error (m), root rotation error (rad)."""
    body_err = (body_pos - ref_body_pos).norm(p=2, dim=-1)
    local = (body_pos - body_pos[:, 0:1]) - (ref_body_pos - ref_body_pos[:, 0:1])
    local_err = local.norm(p=2, dim=-1).mean(dim=-1)
    root_pos_err = body_err[:, 0]  # body 0 is the root
    root_rot_err = quat_diff_angle(body_rot[:, 0], ref_body_rot[:, 0])
    return body_err, local_err, root_pos_err, root_rot_err


def procrustes_aligned_error(body_pos: torch.Tensor, ref_body_pos: torch.Tensor) -> torch.Tensor:
    """Per env [N]: mean body position error (m) after the least-squares similarity transform
    (Umeyama's rotation, uniform scale and translation) of the simulated pose onto the reference."""
    sim = body_pos - body_pos.mean(dim=1, keepdim=True)
    ref = ref_body_pos - ref_body_pos.mean(dim=1, keepdim=True)
    u, s, vh = torch.linalg.svd(sim.transpose(1, 2) @ ref)  # sum_i sim_i ref_i^T = U S V^T
    v, ut = vh.transpose(1, 2), u.transpose(1, 2)
    reflection = torch.linalg.det(v @ ut) < 0  # keep a proper rotation: flip the weakest axis
    flip = torch.ones_like(s)
    flip[:, 2] = torch.where(reflection, -1.0, 1.0)
    rotation = v @ torch.diag_embed(flip) @ ut
    scale = (s * flip).sum(dim=-1) / (sim * sim).sum(dim=(1, 2)).clamp_min(1e-12)
    aligned = scale[:, None, None] * (sim @ rotation.transpose(1, 2))
    return (aligned - ref).norm(p=2, dim=-1).mean(dim=-1)


def clip_names(paths: List[str]) -> List[str]:
    """Clip file names, made unique where two clips share one."""
    names, seen = [], {}
    for path in paths:
        name = os.path.basename(path)
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else "{}#{}".format(name, seen[name]))
    return names


def format_table(summary: Dict[str, Dict[str, float]]) -> str:
    header = ("clip", "episodes", "success", "MPJPE-G mm", "MPJPE-L mm", "root pos mm", "root rot deg",
              "PA-MPJPE mm", "vel mm/f", "acc mm/f2", "length s", "norm. return")
    rows = [header]
    for clip, m in summary.items():
        rows.append((clip, str(m["num_episodes"]), "{:.3f}".format(m["success_rate"]), "{:.1f}".format(m["mpjpe_g_mm"]),
                     "{:.1f}".format(m["mpjpe_l_mm"]), "{:.1f}".format(m["root_pos_err_mm"]),
                     "{:.2f}".format(m["root_rot_err_deg"]), "{:.1f}".format(m["mpjpe_pa_mm"]),
                     "{:.2f}".format(m["vel_err_mm_frame"]), "{:.2f}".format(m["accel_err_mm_frame2"]),
                     "{:.2f}".format(m["episode_length_s"]),
                     "{:.3f}".format(m["normalized_return"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    goal = ["{}: {}".format(clip, ", ".join("{} {:.3f}".format(k, m[k]) for k in m if k not in METRIC_KEYS
                                           and k != "mpjpe_g_per_body_mm")) for clip, m in summary.items()]
    return "\n".join(lines + [g for g in goal if not g.endswith(": ")])


def format_worst_bodies(summary: Dict[str, Dict], count: int = 5) -> str:
    """One line per clip: the ``count`` bodies farthest from the reference (MPJPE-G, mm), worst first."""
    lines = []
    for clip, m in summary.items():
        worst = sorted(m["mpjpe_g_per_body_mm"].items(), key=lambda item: -item[1])[:count]
        lines.append("{}: worst bodies (MPJPE-G mm) {}".format(
            clip, ", ".join("{} {:.1f}".format(body, err) for body, err in worst)))
    return "\n".join(lines)


def write_json(path: str, summary: Dict[str, Dict[str, float]], meta: Optional[Dict] = None) -> None:
    with open(path, "w") as f:
        json.dump({"metrics": summary, "meta": meta or {}}, f, indent=2)
