"""Tracking metrics (tasks/tracking_metrics.py) against facts that do not come from the code
under test: the reference played back as the 'simulation' scores zero, a known offset or
rotation scores exactly that offset or angle, and the evaluation mode of the task starts every
env at clip time 0 on its round-robin clip and runs the horizon (looping clip) or the clip
(non-looping clip), with the engine teleported onto the reference after each step."""
import math
import os

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from tasks.humanoid_deepmimic import HumanoidDeepMimic
from tasks.reference.motion_lib import MotionLib
from tasks.rotations import quat_from_axis_angle, quat_mul
from tasks.tracking_metrics import (TrackingMetrics, evaluation_episode_steps, format_table,
                                          format_worst_bodies, procrustes_aligned_error)
from poselib_utils.repository import REPO_ROOT

MJCF = os.path.join(REPO_ROOT, "assets", "mjcf", "humanoid3d.xml")
WALK = os.path.join(REPO_ROOT, "motions", "humanoid3d_walk.txt")  # looping
KICK = os.path.join(REPO_ROOT, "motions", "humanoid3d_kick.txt")  # not looping
DT = 1.0 / 30.0


@pytest.fixture(scope="module")
def lib():
    return MotionLib([WALK, KICK], MJCF, "cpu")


def play_reference(lib, metrics, steps, num_envs, offset=None, root_turn=0.0, reward=1.0, terminate_at=None):
    """Feed the metrics the reference itself (env i plays clip i % 2 from time 0), shifted by
    ``offset`` [B, 3] and with the root turned by ``root_turn`` rad about z."""
    ids = torch.arange(num_envs) % lib.num_motions
    times = torch.zeros(num_envs)
    for step in range(1, steps + 1):
        times = times + DT
        ref = lib.get_state(ids, times)
        pos = ref.body_pos + (offset if offset is not None else 0.0)
        rot = ref.body_rot.clone()
        turn = quat_from_axis_angle(torch.tensor([[0.0, 0.0, 1.0]]).expand(num_envs, 3),
                                    torch.full((num_envs,), root_turn))
        rot[:, 0] = quat_mul(turn, rot[:, 0])
        terminated = torch.zeros(num_envs, dtype=torch.bool)
        if terminate_at is not None:
            terminated = torch.full((num_envs,), step == terminate_at)
        done = (step == metrics.max_episode_steps[ids]) | terminated
        metrics.update(pos, rot, ids, times, torch.full((num_envs,), reward), done, terminated)


def make_metrics(lib, num_envs=4, horizon_s=2.0):
    steps = evaluation_episode_steps(lib.durations, lib.loops, horizon_s, DT)
    return TrackingMetrics(lib, num_envs, steps, DT)


def test_episode_steps_follow_the_horizon_and_the_clip(lib):
    steps = evaluation_episode_steps(lib.durations, lib.loops, 20.0, DT)
    assert steps[0] == 600  # looping walk: 20 s at 30 Hz
    assert steps[1] == math.ceil(float(lib.durations[1]) * 30 - 1e-4)  # kick plays once
    assert evaluation_episode_steps(lib.durations, lib.loops, 0.5, DT)[1] == 15  # the horizon caps it


def test_reference_played_back_scores_zero(lib):
    metrics = make_metrics(lib)
    play_reference(lib, metrics, int(metrics.max_episode_steps.max()), 4)
    summary = metrics.summary()
    assert set(summary) == {"humanoid3d_walk.txt", "humanoid3d_kick.txt", "all"}
    for clip in summary.values():
        assert clip["num_episodes"] in (2, 4)
        for key in ("mpjpe_g_mm", "mpjpe_l_mm", "root_pos_err_mm", "root_rot_err_deg", "mpjpe_pa_mm",
                    "vel_err_mm_frame", "accel_err_mm_frame2"):
            assert clip[key] == pytest.approx(0.0, abs=1e-3), key
        assert clip["success_rate"] == 1.0
        assert clip["normalized_return"] == pytest.approx(1.0)
    assert summary["humanoid3d_walk.txt"]["episode_length_steps"] == 60
    assert summary["humanoid3d_walk.txt"]["episode_length_s"] == pytest.approx(2.0)
    assert "humanoid3d_kick.txt" in format_table(summary)


def test_offsets_and_rotations_score_what_was_injected(lib):
    num_bodies = len(lib.body_names)
    metrics = make_metrics(lib)
    play_reference(lib, metrics, 60, 4, offset=torch.tensor([0.03, 0.0, 0.04]).expand(num_bodies, 3))
    walk = metrics.summary()["humanoid3d_walk.txt"]
    assert walk["mpjpe_g_mm"] == pytest.approx(50.0, abs=1e-2)  # |(3, 0, 4) cm| = 5 cm on every body
    assert walk["mpjpe_l_mm"] == pytest.approx(0.0, abs=1e-2)  # the root moved too
    assert walk["root_pos_err_mm"] == pytest.approx(50.0, abs=1e-2)
    for key in ("mpjpe_pa_mm", "vel_err_mm_frame", "accel_err_mm_frame2"):  # a constant shift
        assert walk[key] == pytest.approx(0.0, abs=1e-2), key
    assert walk["success_rate"] == 1.0

    offset = torch.zeros(num_bodies, 3)
    offset[1:, 2] = 0.05  # every body but the root
    metrics = make_metrics(lib)
    play_reference(lib, metrics, 60, 4, offset=offset, root_turn=math.radians(10.0))
    walk = metrics.summary()["humanoid3d_walk.txt"]
    assert walk["mpjpe_g_mm"] == pytest.approx(50.0 * (num_bodies - 1) / num_bodies, abs=1e-2)
    assert walk["mpjpe_l_mm"] == pytest.approx(50.0 * (num_bodies - 1) / num_bodies, abs=1e-2)
    assert walk["root_pos_err_mm"] == pytest.approx(0.0, abs=1e-2)
    assert walk["root_rot_err_deg"] == pytest.approx(10.0, abs=1e-2)

    metrics = make_metrics(lib)
    play_reference(lib, metrics, 60, 4, offset=torch.tensor([0.6, 0.0, 0.0]).expand(num_bodies, 3))
    assert metrics.summary()["all"]["success_rate"] == 0.0  # 0.6 m off on average: failed


def test_each_body_scores_its_own_offset(lib):
    """One wrist 12 cm off and one ankle 4 cm off: the per-body errors name them (and nothing else),
    and their mean over bodies is MPJPE-G."""
    names = lib.body_names
    offset = torch.zeros(len(names), 3)
    offset[names.index("left_wrist"), 0] = 0.12
    offset[names.index("right_ankle"), 1] = -0.04
    metrics = make_metrics(lib)
    play_reference(lib, metrics, 60, 4, offset=offset)
    summary = metrics.summary()
    for clip in ("humanoid3d_walk.txt", "humanoid3d_kick.txt", "all"):
        per_body = summary[clip]["mpjpe_g_per_body_mm"]
        assert list(per_body) == names
        expected = {b: 0.0 for b in names}
        expected.update(left_wrist=120.0, right_ankle=40.0)
        assert per_body == pytest.approx(expected, abs=1e-2)
        assert sum(per_body.values()) / len(names) == pytest.approx(summary[clip]["mpjpe_g_mm"], abs=1e-6)
    line = format_worst_bodies(summary).splitlines()[0]
    assert line.startswith("humanoid3d_walk.txt: worst bodies (MPJPE-G mm) left_wrist 120.0, right_ankle 40.0")


def test_drift_at_constant_speed_is_a_velocity_error_only(lib):
    """The whole body sliding away at v: velocity error |v| dt per frame, no acceleration error."""
    ids, velocity = torch.zeros(2, dtype=torch.long), torch.tensor([0.3, -0.4, 0.0])  # 0.5 m/s
    metrics = TrackingMetrics(lib, 2, torch.tensor([30, 30]), DT)
    for step in range(1, 31):
        times = torch.full((2,), step * DT)
        ref = lib.get_state(ids, times)
        metrics.update(ref.body_pos + velocity * step * DT, ref.body_rot, ids, times, torch.ones(2),
                       torch.full((2,), step == 30), torch.zeros(2, dtype=torch.bool))
    walk = metrics.summary()["humanoid3d_walk.txt"]
    assert walk["vel_err_mm_frame"] == pytest.approx(500.0 * DT, rel=1e-4)
    assert walk["accel_err_mm_frame2"] == pytest.approx(0.0, abs=1e-3)
    assert walk["mpjpe_pa_mm"] == pytest.approx(0.0, abs=1e-2)
    assert walk["mpjpe_g_mm"] == pytest.approx(500.0 * DT * 15.5, rel=1e-4)  # mean of 1..30 steps


def test_drift_at_constant_acceleration_is_an_acceleration_error_of_a_dt_squared(lib):
    ids, accel = torch.zeros(2, dtype=torch.long), torch.tensor([0.0, 1.2, -1.6])  # 2 m/s^2
    metrics = TrackingMetrics(lib, 2, torch.tensor([30, 30]), DT)
    for step in range(1, 31):
        times = torch.full((2,), step * DT)
        ref = lib.get_state(ids, times)
        metrics.update(ref.body_pos + 0.5 * accel * (step * DT) ** 2, ref.body_rot, ids, times, torch.ones(2),
                       torch.full((2,), step == 30), torch.zeros(2, dtype=torch.bool))
    walk = metrics.summary()["humanoid3d_walk.txt"]
    assert walk["accel_err_mm_frame2"] == pytest.approx(2000.0 * DT ** 2, rel=1e-3)
    # velocity error: |a| dt (k - 1/2) per frame k = 2..30, averaged
    assert walk["vel_err_mm_frame"] == pytest.approx(2000.0 * DT ** 2 * np.mean(np.arange(2, 31) - 0.5), rel=1e-3)


def test_procrustes_alignment_is_the_least_squares_similarity(lib):
    """PA-MPJPE against scipy: zero for a rotated, scaled and moved copy of a pose; for a bent pose,
    the alignment of scipy's Kabsch rotation and the closed-form scale, which no other similarity
    transform found by scipy's optimiser beats (the pose shape alone is measured)."""
    from scipy.optimize import minimize
    from scipy.spatial.transform import Rotation

    ref = lib.get_state(torch.tensor([0, 1]), torch.tensor([0.4, 0.7])).body_pos.double()
    turn = Rotation.from_rotvec([0.3, -1.2, 0.5])
    moved = 1.1 * torch.from_numpy(turn.apply(ref.reshape(-1, 3).numpy())).reshape(ref.shape) + 0.7
    assert procrustes_aligned_error(moved, ref).max() < 1e-9

    generator = torch.Generator().manual_seed(0)
    bent = moved + 0.05 * torch.randn(ref.shape, generator=generator, dtype=torch.float64)
    mirrored = ref * torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)  # a reflection is no rotation
    for sim_pose, ref_pose in [(bent[0], ref[0]), (bent[1], ref[1]), (mirrored[0], ref[0])]:
        sim_c = (sim_pose - sim_pose.mean(0)).numpy()
        ref_c = (ref_pose - ref_pose.mean(0)).numpy()
        kabsch, _ = Rotation.align_vectors(ref_c, sim_c)
        rotated = kabsch.apply(sim_c)
        scale = (rotated * ref_c).sum() / (sim_c * sim_c).sum()
        expected = np.linalg.norm(scale * rotated - ref_c, axis=1).mean()
        got = float(procrustes_aligned_error(sim_pose[None], ref_pose[None])[0])
        assert got == pytest.approx(expected, rel=1e-6)

        def squared_error(x):
            fitted = x[3] * Rotation.from_rotvec(x[:3]).apply(sim_c) + x[4:]
            return ((fitted - ref_c) ** 2).sum()
        best = min((minimize(squared_error, np.r_[Rotation.random(random_state=k).as_rotvec(), 1.0, 0, 0, 0],
                             method="BFGS") for k in range(4)), key=lambda r: r.fun)
        assert ((scale * rotated - ref_c) ** 2).sum() <= best.fun + 1e-8


def test_early_termination_fails_and_only_the_first_episode_counts(lib):
    metrics = make_metrics(lib, num_envs=2)
    play_reference(lib, metrics, 60, 2, reward=0.5, terminate_at=10)
    summary = metrics.summary()
    walk = summary["humanoid3d_walk.txt"]
    assert walk["success_rate"] == 0.0
    assert walk["episode_length_steps"] == 10  # the later steps belong to a second episode
    assert walk["normalized_return"] == pytest.approx(0.5 * 10 / 60)
    assert summary["all"]["num_episodes"] == 2


def make_eval_task(horizon_s, num_envs=4):
    with initialize_config_dir(config_dir=os.path.join(REPO_ROOT, "cfg"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "num_envs={}".format(num_envs), "sim_engine=mujoco", "task.env.evaluation=True",
            "task.env.evaluation_horizon_s={}".format(horizon_s),
            "task.env.motion_file=[motions/humanoid3d_walk.txt,motions/humanoid3d_kick.txt]"])
    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    task_cfg["env"]["num_threads"] = 2
    return HumanoidDeepMimic(task_cfg, "cpu", "cpu", 0, True)


def test_evaluation_refuses_fewer_envs_than_clips():
    with pytest.raises(ValueError, match=r"2 clips need num_envs >= 2, got 1"):
        make_eval_task(horizon_s=1.0, num_envs=1)


@pytest.mark.parametrize("root_offset_m", [0.0, 0.05])
def test_task_teleported_onto_the_reference(root_offset_m):
    """The task in evaluation mode, its engine put onto the (shifted) reference after each step:
    the metrics see exactly the shift, through the engine's own forward kinematics."""
    task = make_eval_task(horizon_s=1.0)
    engine_step = task.engine.step

    def step_then_teleport():
        engine_step()
        ref = task.motion_lib.get_state(task.motion_ids, task.motion_times + task.dt)
        root_pos = ref.root_pos + torch.tensor([root_offset_m, 0.0, 0.0])
        task.engine.set_state(None, root_pos, ref.root_rot, ref.root_vel, ref.root_ang_vel, ref.dof_pos,
                              ref.dof_vel)

    task.engine.step = step_then_teleport
    task.reset()
    assert task.motion_ids.tolist() == [0, 1, 0, 1]
    assert torch.all(task.motion_times == 0)
    kick_steps = int(task.tracking_metrics.max_episode_steps[1])
    for _ in range(32):
        task.step(torch.zeros(task.num_envs, task.num_actions))
    assert task.tracking_metrics.all_finished
    summary = task.tracking_metrics.summary()
    walk, kick = summary["humanoid3d_walk.txt"], summary["humanoid3d_kick.txt"]
    assert walk["episode_length_steps"] == 30  # the 1 s horizon of a looping clip
    assert kick["episode_length_steps"] == min(30, kick_steps)
    for clip in (walk, kick):
        assert clip["success_rate"] == 1.0
        assert clip["mpjpe_g_mm"] == pytest.approx(1000 * root_offset_m, abs=0.05)
        assert clip["root_pos_err_mm"] == pytest.approx(1000 * root_offset_m, abs=0.05)
        assert clip["mpjpe_l_mm"] == pytest.approx(0.0, abs=0.05)
        assert clip["root_rot_err_deg"] == pytest.approx(0.0, abs=0.01)
        assert 0.9 < clip["normalized_return"] <= 1.0 + 1e-6
