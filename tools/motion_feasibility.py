"""Where a clip asks for more than physics allows the MJCF character: ground penetration and
centre-of-mass accelerations no floor contact can produce.

    python -m tools.motion_feasibility motions/humanoid3d_run.txt
    python -m tools.motion_feasibility motions/ --tolerance 2 --json feasibility.json

All checks use the clip's own keyframes (no interpolation) posed on the character by MuJoCo:
- **Ground penetration**: the depth of the deepest collision geom under the floor (z = 0), from
  MuJoCo's own collision detection in the simulated scene. A character standing on the floor
  cannot be where such a frame puts it.
- **Centre-of-mass acceleration**: a flat floor can only push, so whatever the contacts, the COM's
  vertical acceleration is at least -g and its horizontal acceleration at most mu * (a_z + g)
  (Coulomb friction, with mu the floor contact's friction in the scene). Accelerations are second
  differences of the keyframes' COM; ``--tolerance`` (m/s^2) absorbs motion-capture noise.
- **Loop seam** (looping clips): the last keyframe and the next cycle's first one (shifted by the
  cycle's horizontal root displacement, as DeepMimic and the motion library do) fall on the same
  instant, so any distance between them is a jump the reference makes in no time: reported as the
  mean distance over bodies and the root's rotation.

Policies are scored against the clip as it is (tasks/tracking_metrics.py): where the clip
breaks these laws, a simulated character has to leave it, whatever the policy.
"""
import argparse
import json
import os
import sys
from typing import Dict, List, NamedTuple, Optional

import mujoco
import numpy as np

from poselib_utils.repository import DEFAULT_MJCF as DEFAULT_ASSET, character_mjcf_of_clip

PENETRATION_REPORT_DEPTH = 0.005  # m: frames deeper than this count as under the floor


class ClipFeasibility(NamedTuple):
    """Per keyframe of one clip; accelerations at the interior keyframes 1 .. F-2."""

    path: str
    frame_times: np.ndarray  # [F] s
    depth: np.ndarray  # [F] m, deepest geom under the floor (0 when every geom is clear of it)
    com_pos: np.ndarray  # [F, 3] m, world frame (z up)
    com_acc: np.ndarray  # [F - 2, 3] m/s^2
    gravity: float  # m/s^2, the scene's
    friction: float  # the floor contact's sliding friction
    seam_body_jump: Optional[np.ndarray]  # [B] m each body jumps where a looping clip wraps; None if it does not loop
    seam_root_rotation: Optional[float]  # rad the root turns at that instant; None if the clip does not loop

    @property
    def vertical_excess(self) -> np.ndarray:
        """[F - 2] m/s^2 by which the COM falls faster than gravity (0 where it does not)."""
        return np.maximum(0.0, -self.gravity - self.com_acc[:, 2])

    @property
    def friction_excess(self) -> np.ndarray:
        """[F - 2] m/s^2 of horizontal COM acceleration beyond what friction can give."""
        support = self.friction * np.maximum(0.0, self.com_acc[:, 2] + self.gravity)
        return np.maximum(0.0, np.linalg.norm(self.com_acc[:, :2], axis=1) - support)


class FeasibilityCheck:
    """Poses clips on the character of one MJCF, in the simulated scene (its floor and contact rules)."""

    def __init__(self, mjcf_path: str = DEFAULT_ASSET):
        from poselib_utils.mjcf_character import load_skeleton_from_mjcf
        from tasks.engines.mujoco_scene import FLOOR_NAME, compile_scene
        from poselib_utils.retarget import hinge_joint_names

        self.skeleton = load_skeleton_from_mjcf(mjcf_path)
        self.model = compile_scene(mjcf_path, sim_dt=1.0 / 120.0, with_sensors=False)  # posed only, never stepped
        self.data = mujoco.MjData(self.model)
        self.hinges = hinge_joint_names(self.model)
        self.floor = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, FLOOR_NAME)
        self.friction = self._floor_friction()

    def _floor_friction(self) -> float:
        """Sliding friction of floor contacts: MuJoCo takes the larger of the two geoms' (equal priorities)."""
        m = self.model
        touching = [g for g in range(m.ngeom) if g != self.floor and m.geom_contype[g] & m.geom_conaffinity[self.floor]]
        return float(max(m.geom_friction[g, 0] for g in touching + [self.floor]))

    def __call__(self, path: str) -> ClipFeasibility:
        """Ground depth and COM acceleration at the keyframes of the clip at ``path``."""
        from poselib_utils.motion_dataset import load_clip
        from poselib_utils.retarget import clip_to_qpos
        from poselib_utils.retarget import cycle_root_shift

        clip = load_clip(path, self.skeleton)
        qpos = clip_to_qpos(clip, self.skeleton, self.hinges)
        depth = np.zeros(clip.num_frames)
        com = np.zeros((clip.num_frames, 3))
        body_pos = np.zeros((clip.num_frames, self.model.nbody - 1, 3))
        for f, frame in enumerate(qpos):
            self.data.qpos[:] = frame
            mujoco.mj_fwdPosition(self.model, self.data)
            com[f] = self.data.subtree_com[1]
            body_pos[f] = self.data.xpos[1:]
            for contact in self.data.contact[:self.data.ncon]:
                if self.floor in (contact.geom1, contact.geom2):
                    depth[f] = max(depth[f], -contact.dist)
        seam_jump, seam_rotation = None, None
        if clip.loop:
            seam_jump = np.linalg.norm(body_pos[-1] - (body_pos[0] + cycle_root_shift(qpos)), axis=-1)
            cos_half = min(1.0, abs(float(np.dot(qpos[-1, 3:7], qpos[0, 3:7]))))
            seam_rotation = 2.0 * float(np.arccos(cos_half))
        return ClipFeasibility(path, clip.frame_times, depth, com, second_differences(com, clip.frame_durations),
                               float(-self.model.opt.gravity[2]), self.friction, seam_jump, seam_rotation)


def second_differences(values: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """d2/dt2 of keyframe ``values`` [F, ...] at the interior keyframes, for uneven ``durations``
    (``durations[i]`` is the time from keyframe i to i + 1)."""
    before = (values[1:-1] - values[:-2]) / durations[:-2, None]
    after = (values[2:] - values[1:-1]) / durations[1:-1, None]
    return 2.0 * (after - before) / (durations[:-2, None] + durations[1:-1, None])


def summarize(report: ClipFeasibility, tolerance: float) -> Dict[str, float]:
    """The table's figures of one clip (lengths in mm, accelerations in m/s^2, shares in %)."""
    deepest = int(np.argmax(report.depth))
    vertical, sideways = report.vertical_excess, report.friction_excess
    worst = int(np.argmin(report.com_acc[:, 2]))
    return {
        "frames": int(len(report.depth)),
        "deepest_mm": 1e3 * float(report.depth[deepest]),
        "deepest_at_s": float(report.frame_times[deepest]),
        "mean_depth_mm": 1e3 * float(report.depth.mean()),
        "under_floor_pct": 100.0 * float(np.mean(report.depth > PENETRATION_REPORT_DEPTH)),
        "min_com_acc_z": float(report.com_acc[worst, 2]),
        "min_com_acc_z_at_s": float(report.frame_times[worst + 1]),
        "falls_faster_than_g_pct": 100.0 * float(np.mean(vertical > tolerance)),
        "max_friction_excess": float(sideways.max()),
        "beyond_friction_pct": 100.0 * float(np.mean(sideways > tolerance)),
        "seam_jump_mm": None if report.seam_body_jump is None else 1e3 * float(report.seam_body_jump.mean()),
        "seam_root_rot_deg": None if report.seam_root_rotation is None else float(np.degrees(report.seam_root_rotation)),
    }


def format_table(rows: List[Dict], tolerance: float) -> str:
    head = ("clip", "frames", "deepest mm (at s)", "mean depth mm", "under floor %",
            "min COM a_z (at s)", "a_z < -g %", "max friction excess", "beyond friction %", "seam mm",
            "seam root deg")
    lines = ["{:<28}{:>7}{:>20}{:>15}{:>15}{:>20}{:>12}{:>21}{:>19}{:>9}{:>15}".format(*head)]

    def optional(value):
        return "-" if value is None else "{:.1f}".format(value)

    for r in rows:
        lines.append("{:<28}{:>7}{:>20}{:>15.1f}{:>15.0f}{:>20}{:>12.0f}{:>21.1f}{:>19.0f}{:>9}{:>15}".format(
            r["clip"], r["frames"], "{:.1f} ({:.2f})".format(r["deepest_mm"], r["deepest_at_s"]), r["mean_depth_mm"],
            r["under_floor_pct"], "{:.1f} ({:.2f})".format(r["min_com_acc_z"], r["min_com_acc_z_at_s"]),
            r["falls_faster_than_g_pct"], r["max_friction_excess"], r["beyond_friction_pct"],
            optional(r["seam_jump_mm"]), optional(r["seam_root_rot_deg"])))
    lines.append("under floor: deeper than {:.0f} mm; accelerations in m/s^2, counted beyond a {:g} m/s^2 "
                 "tolerance (g = {:.2f}, floor friction {:.2f}); seam: where a looping clip wraps, the mean "
                 "body jump and the root's turn ('-': not looping)".format(
                     1e3 * PENETRATION_REPORT_DEPTH, tolerance, rows[0]["gravity"], rows[0]["friction"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("motions", nargs="+", help="DeepMimic clip files or folders of clips")
    parser.add_argument("--asset", help="character MJCF (default: each clip's character by name, e.g. "
                                         "dog3d_trot.txt: assets/mjcf/dog3d.xml; humanoid3d otherwise)")
    parser.add_argument("--tolerance", type=float, default=2.0,
                        help="m/s^2 of acceleration beyond the limits not counted (motion-capture noise)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    if args.tolerance < 0:
        parser.error("--tolerance must not be negative")

    from poselib_utils.data_loader import DataFormatError
    from tools.preview_motion import clip_paths

    checks = {}  # one per character
    rows = []
    for path in clip_paths(args.motions):
        asset = args.asset or character_mjcf_of_clip(path)
        if asset not in checks:
            checks[asset] = FeasibilityCheck(asset)
        try:
            report = checks[asset](path)
        except DataFormatError as err:
            raise SystemExit(str(err))
        if len(report.depth) < 3:
            raise SystemExit("{}: needs at least 3 frames for accelerations".format(path))
        rows.append(dict(clip=os.path.basename(path), path=path, gravity=report.gravity, friction=report.friction,
                         **summarize(report, args.tolerance)))
    print(format_table(rows, args.tolerance))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tolerance": args.tolerance, "clips": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
