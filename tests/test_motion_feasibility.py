"""Clip feasibility checks against geometry computed here from the geoms' sizes, against ballistic
flight in the jump clip's own numbers, and against accelerations injected into clips."""
import itertools
import json
import os

import mujoco
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from poselib_utils.data_loader import load_motion
from tools.motion_feasibility import FeasibilityCheck, main
from poselib_utils.retarget import clip_to_qpos
from poselib_utils.repository import REPO_ROOT as REPO

MOTIONS = os.path.join(REPO, "motions")
G = 9.81


@pytest.fixture(scope="module")
def check():
    return FeasibilityCheck()


def read_clip(name):
    with open(os.path.join(MOTIONS, "humanoid3d_{}.txt".format(name))) as f:
        return json.load(f)


def write_clip(tmp_path, name, clip):
    path = str(tmp_path / "{}.txt".format(name))
    with open(path, "w") as f:
        json.dump(clip, f)
    return path


def lowest_point(model, data, geom):
    """Lowest z of a box, capsule or sphere geom, from its size, pose and shape."""
    pos, rot, size = data.geom_xpos[geom], data.geom_xmat[geom].reshape(3, 3), model.geom_size[geom]
    kind = model.geom_type[geom]
    if kind == mujoco.mjtGeom.mjGEOM_SPHERE:
        return pos[2] - size[0]
    if kind == mujoco.mjtGeom.mjGEOM_CAPSULE:
        return pos[2] - abs(rot[2, 2]) * size[1] - size[0]
    assert kind == mujoco.mjtGeom.mjGEOM_BOX
    return min((pos + rot @ (np.array(corner) * size))[2] for corner in itertools.product((-1, 1), repeat=3))


def clip_qpos(check, path):
    return clip_to_qpos(load_motion(path, check.skeleton), check.skeleton, check.hinges)


@pytest.mark.parametrize("clip_name,drop", [("run", 0.0), ("walk", 0.0), ("walk", 0.1)])
def test_depth_is_the_deepest_geom_under_the_floor(check, tmp_path, clip_name, drop):
    clip = read_clip(clip_name)
    for frame in clip["Frames"]:
        frame[2] -= drop  # DeepMimic's root position is y-up
    path = write_clip(tmp_path, clip_name, clip)
    report = check(path)

    model = check.model
    data = mujoco.MjData(model)
    character = [g for g in range(model.ngeom) if g != check.floor]
    qpos = clip_qpos(check, path)
    assert len(report.depth) == len(qpos) == len(clip["Frames"])
    for f, frame in enumerate(qpos):
        data.qpos[:] = frame
        mujoco.mj_kinematics(model, data)
        lowest = min(lowest_point(model, data, g) for g in character)
        assert report.depth[f] == pytest.approx(max(0.0, -lowest), abs=1e-6)
    if drop:
        assert report.depth.min() > 0.08  # 10 cm down, the walk (lowest point never above 14 mm) is always under


def test_the_jump_is_ballistic_in_the_air(check):
    """Where the jump clip's lowest point stays 5 cm above the floor for three keyframes in a row
    (the second differences' span), its centre of mass falls at g with no horizontal acceleration:
    the clip's own physics, which a wrong frame time, COM or axis would break."""
    report = check(os.path.join(MOTIONS, "humanoid3d_jump.txt"))
    airborne = np.array([report.depth[i - 1:i + 2].max() == 0.0 for i in range(1, len(report.depth) - 1)])
    model, data = check.model, mujoco.MjData(check.model)
    clear = []
    for frame in clip_qpos(check, os.path.join(MOTIONS, "humanoid3d_jump.txt")):
        data.qpos[:] = frame
        mujoco.mj_kinematics(model, data)
        clear.append(min(lowest_point(model, data, g) for g in range(model.ngeom) if g != check.floor) > 0.05)
    clear = np.array(clear)
    flight = clear[:-2] & clear[1:-1] & clear[2:]
    assert flight.sum() >= 15 and airborne[flight].all()
    in_flight = report.com_acc[flight]
    assert in_flight.mean(axis=0) == pytest.approx([0.0, 0.0, -G], abs=0.5)
    assert np.abs(in_flight - [0.0, 0.0, -G]).max() < 3.0  # motion-capture noise at 60 frames/s
    assert report.vertical_excess.max() < 1.0 and report.gravity == pytest.approx(G)


def still_clip(frames, dt=1.0 / 30.0):
    """The walk's first pose held still, 5 cm up (clear of the floor), ``frames`` keyframes."""
    pose = read_clip("walk")["Frames"][0]
    pose[2] += 0.05
    return {"Loop": "none", "Frames": [[dt] + pose[1:] for _ in range(frames)]}


def test_injected_accelerations_against_the_floor_limits(check, tmp_path):
    """A pose held still has no acceleration; moving its root along a parabola adds exactly that
    acceleration to the centre of mass (uneven keyframe spacing included). A fall faster than g
    is beyond the floor by the difference; a sideways push is beyond friction by what exceeds
    mu * g, and everything is beyond friction when nothing pushes up."""
    durations = np.array([1 / 30, 1 / 60, 1 / 45, 1 / 30, 1 / 60, 1 / 30, 1 / 30])
    times = np.concatenate([[0.0], np.cumsum(durations[:-1])])

    def report_with(accel_sideways, accel_up):
        clip = still_clip(len(durations))
        for frame, dt, t in zip(clip["Frames"], durations, times):
            frame[0] = float(dt)
            frame[1] += 0.5 * accel_sideways * t * t
            frame[2] += 0.5 * accel_up * t * t
        return check(write_clip(tmp_path, "still", clip))

    still = report_with(0.0, 0.0)
    assert np.abs(still.com_acc).max() < 1e-9
    assert still.depth.max() == 0.0

    mu = check.friction
    inside = report_with(0.5 * mu * G, 0.0)
    assert inside.com_acc[:, 0] == pytest.approx(np.full(5, 0.5 * mu * G), abs=1e-6)
    assert inside.friction_excess.max() == 0.0 and inside.vertical_excess.max() == 0.0

    pushed = report_with(2.0 * mu * G, 0.0)
    assert pushed.friction_excess == pytest.approx(np.full(5, mu * G), abs=1e-6)

    falling = report_with(3.0, -3.0 * G)
    assert falling.com_acc[:, 2] == pytest.approx(np.full(5, -3.0 * G), abs=1e-6)
    assert falling.vertical_excess == pytest.approx(np.full(5, 2.0 * G), abs=1e-6)
    assert falling.friction_excess == pytest.approx(np.full(5, 3.0), abs=1e-6)


def wxyz_to_rotation(q):
    return Rotation.from_quat([q[1], q[2], q[3], q[0]])


def rotation_to_wxyz(r):
    x, y, z, w = r.as_quat()
    return [float(w), float(x), float(y), float(z)]


def test_loop_seam_jump_and_turn(check, tmp_path):
    """A looping clip whose last keyframe is its first shifted horizontally wraps without a jump;
    lifting that last keyframe makes every body jump by the lift, and turning its root about the
    vertical by 20 degrees moves each body by the chord 2 r sin(10 deg) of its horizontal distance r
    from the root (MuJoCo's forward kinematics of the first pose)."""
    walk = read_clip("walk")
    first = walk["Frames"][0]

    def seam_with(last):
        clip = {"Loop": "wrap", "Frames": [list(f) for f in walk["Frames"][:-1]] + [last]}
        return check(write_clip(tmp_path, "seam", clip))

    shifted = list(first)
    shifted[1] += 0.7  # DeepMimic is y-up: x and z are horizontal
    shifted[3] -= 0.2
    closed = seam_with(shifted)
    assert closed.seam_body_jump.max() == pytest.approx(0.0, abs=1e-9)
    assert closed.seam_root_rotation == pytest.approx(0.0, abs=1e-6)

    lifted = list(shifted)
    lifted[2] += 0.03
    assert seam_with(lifted).seam_body_jump == pytest.approx(np.full(check.model.nbody - 1, 0.03), abs=1e-9)

    turned = list(shifted)
    turned[4:8] = rotation_to_wxyz(Rotation.from_euler("y", 20, degrees=True) * wxyz_to_rotation(first[4:8]))
    report = seam_with(turned)
    data = mujoco.MjData(check.model)
    data.qpos[:] = clip_qpos(check, os.path.join(MOTIONS, "humanoid3d_walk.txt"))[0]
    mujoco.mj_kinematics(check.model, data)
    radius = np.linalg.norm(data.xpos[1:, :2] - data.xpos[1, :2], axis=-1)
    assert report.seam_body_jump == pytest.approx(2.0 * radius * np.sin(np.radians(10.0)), abs=1e-6)
    assert np.degrees(report.seam_root_rotation) == pytest.approx(20.0, abs=1e-4)


def test_run_seam_root_turn_is_the_clips(check):
    """The run's root turns where it wraps by the angle between its last and first root rotations
    in the file (scipy, in the clip's own frame); a clip that does not loop has no seam."""
    frames = read_clip("run")["Frames"]
    expected = (wxyz_to_rotation(frames[-1][4:8]).inv() * wxyz_to_rotation(frames[0][4:8])).magnitude()
    report = check(os.path.join(MOTIONS, "humanoid3d_run.txt"))
    assert report.seam_root_rotation == pytest.approx(expected, abs=1e-6) and np.degrees(expected) > 5.0
    kick = check(os.path.join(MOTIONS, "humanoid3d_kick.txt"))
    assert kick.seam_body_jump is None and kick.seam_root_rotation is None


def test_floor_friction_is_the_characters(check):
    """humanoid3d.xml's default geom friction is 0.9; the floor inherits it."""
    assert check.friction == pytest.approx(0.9)


def test_command_line_table_and_json(tmp_path, capsys):
    out = tmp_path / "feasibility.json"
    assert main([os.path.join(MOTIONS, "humanoid3d_walk.txt"), os.path.join(MOTIONS, "humanoid3d_run.txt"),
                 "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "humanoid3d_walk.txt" in table and "humanoid3d_run.txt" in table
    rows = {r["clip"]: r for r in json.load(open(out))["clips"]}
    assert rows["humanoid3d_walk.txt"]["frames"] == len(read_clip("walk")["Frames"])
    assert rows["humanoid3d_run.txt"]["deepest_mm"] > rows["humanoid3d_walk.txt"]["deepest_mm"]
    assert rows["humanoid3d_run.txt"]["seam_jump_mm"] > rows["humanoid3d_walk.txt"]["seam_jump_mm"] > 0.0


def test_command_line_marks_clips_without_a_seam(tmp_path, capsys):
    assert main([os.path.join(MOTIONS, "humanoid3d_kick.txt")]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert row.startswith("humanoid3d_kick.txt") and row.split()[-2:] == ["-", "-"]


def test_command_line_names_a_malformed_clip(tmp_path):
    clip = still_clip(4)
    clip["Frames"][2] = clip["Frames"][2][:5]
    path = write_clip(tmp_path, "broken", clip)
    with pytest.raises(SystemExit, match="broken.txt.*frame 2"):
        main([path])
    with pytest.raises(SystemExit, match="at least 3 frames"):
        main([write_clip(tmp_path, "short", still_clip(2))])
