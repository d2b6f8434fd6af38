"""The goals (tasks/goals.py): target heading (goal=heading) and strike (goal=strike), and the anchored
reference they train against (tasks/reference/anchoring.py): the rewards against DeepMimic's formulas,
the observations and the anchor against scipy's rotations, the task's reward as 0.7 imitation + 0.3 goal,
the strike's hits and trials."""
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import uuid

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from benchmarks import evaluate
from poselib_utils.repository import REPO_ROOT
from tasks.goals import heading_goal_observation, heading_goal_reward, strike_goal_reward
from tasks.reference.anchoring import anchored, reference_anchor
from task_helpers import make_task, reference

HEADING = ("goal=heading", "skill=walk")


def random_rotations(n, seed):
    return torch.tensor(Rotation.random(n, random_state=seed).as_quat()[:, [3, 0, 1, 2]], dtype=torch.float32)


def scipy_heading(quat_wxyz):
    """Yaw of the body's x axis projected onto the ground."""
    x_axis = Rotation.from_quat(quat_wxyz[:, [1, 2, 3, 0]].double().numpy()).apply([1.0, 0.0, 0.0])
    return np.arctan2(x_axis[:, 1], x_axis[:, 0])


def test_the_goal_reward_is_deepmimics_formula():
    gen = torch.Generator().manual_seed(0)
    com_vel = 3.0 * torch.randn(256, 3, generator=gen)
    yaw = (torch.rand(256, generator=gen) - 0.5) * 4 * math.pi
    speed = 2.0 * torch.rand(256, generator=gen)
    reward = heading_goal_reward(com_vel, yaw, speed, 2.5)
    v, d = com_vel.double().numpy(), np.stack([np.cos(yaw.double()), np.sin(yaw.double())], axis=1)
    expected = np.exp(-2.5 * np.maximum(0.0, speed.double().numpy() - (v[:, :2] * d).sum(1)) ** 2)
    np.testing.assert_allclose(reward.double().numpy(), expected, rtol=1e-5, atol=1e-6)
    assert (reward[(v[:, :2] * d).sum(1) >= speed.numpy()] == 1.0).all()  # faster than v* costs nothing


def test_the_goal_observation_is_the_target_in_the_heading_frame():
    root_rot = random_rotations(128, 1)
    target = (torch.rand(128) - 0.5) * 4 * math.pi
    observed = heading_goal_observation(root_rot, target).double().numpy()
    relative = target.double().numpy() - scipy_heading(root_rot)
    np.testing.assert_allclose(observed, np.stack([np.cos(relative), np.sin(relative)], axis=1), atol=1e-5)


def test_the_anchored_reference_stands_where_the_character_stands():
    task = make_task("num_envs=16")
    ref = reference(task, 16, seed=2)
    sim_pos = torch.randn(16, 3) * 5.0
    sim_rot = random_rotations(16, 3)
    moved = anchored(ref, reference_anchor(sim_pos, sim_rot, ref))
    np.testing.assert_allclose(moved.root_pos[:, :2], sim_pos[:, :2], atol=1e-4)  # on the character's ground spot
    np.testing.assert_allclose(moved.root_pos[:, 2], ref.root_pos[:, 2], atol=1e-6)  # at the clip's height
    turn = np.angle(np.exp(1j * (scipy_heading(moved.root_rot) - scipy_heading(sim_rot))))
    np.testing.assert_allclose(turn, 0.0, atol=1e-4)  # facing the character's way
    # a rigid turn about z: scipy's rotation of each body about the root, joint angles untouched
    delta = scipy_heading(sim_rot) - scipy_heading(ref.root_rot)
    for i in range(16):
        about_z = Rotation.from_rotvec([0.0, 0.0, delta[i]])
        local = ref.body_pos[i].double().numpy() - ref.root_pos[i].double().numpy()
        np.testing.assert_allclose(moved.body_pos[i].double().numpy() - moved.root_pos[i].double().numpy(),
                                   about_z.apply(local), atol=1e-4)
        turned = (about_z * Rotation.from_quat(ref.body_rot[i][:, [1, 2, 3, 0]].double().numpy())).as_quat()
        dots = np.abs((turned * moved.body_rot[i][:, [1, 2, 3, 0]].double().numpy()).sum(1))
        np.testing.assert_allclose(dots, 1.0, atol=1e-5)
        np.testing.assert_allclose(moved.root_vel[i].double().numpy(), about_z.apply(ref.root_vel[i].double().numpy()),
                                   atol=1e-4)
    assert torch.equal(moved.dof_pos, ref.dof_pos) and torch.equal(moved.dof_vel, ref.dof_vel)


def test_the_walk_clip_speed_is_its_root_travel_over_its_duration():
    task = make_task(*HEADING)
    with open(os.path.join(REPO_ROOT, "motions", "humanoid3d_walk.txt")) as f:
        frames = np.array(json.load(f)["Frames"])
    # DeepMimic's frames: duration, then the root position (y up); the last frame closes the cycle
    travel = np.hypot(*(frames[-1, [1, 3]] - frames[0, [1, 3]]))
    assert float(task.motion_lib.mean_root_speeds[0]) == pytest.approx(travel / frames[:-1, 0].sum(), rel=1e-4)


def test_the_task_observes_the_target_and_rewards_07_imitation_plus_03_goal():
    """Two tasks alike but for the goal's speed: v* near 0 along the walking direction earns the whole
    goal reward, v* = 100 m/s none, so their rewards differ by 0.3 and the second is 0.7 x imitation."""
    rewards = []
    for speed in (1e-6, 100.0):
        task = make_task(*HEADING, "task.env.goal.max_turn_deg=0", "task.env.goal.change_rate_hz=0",
                         "task.env.goal.speed_mps={}".format(speed))
        torch.manual_seed(5)
        obs = task.reset()["obs"]
        expected = task.goal.target_yaw - torch.tensor(scipy_heading(task.engine.root_state()[:, 3:7]),
                                                       dtype=torch.float32)
        np.testing.assert_allclose(obs[:, -2:], torch.stack([torch.cos(expected), torch.sin(expected)], -1), atol=1e-5)
        np.testing.assert_allclose(task.goal.target_yaw, scipy_heading(task.engine.root_state()[:, 3:7]), atol=1e-5)
        _, reward, _, _ = task.step(torch.zeros(task.num_envs, task.engine.num_dofs))
        rewards.append(reward)
        along = task.goal.step_metrics(task.engine.body_state(), task.engine.com_velocity())["speed_along_target"]
        assert (along > 0.3).all()  # the walk moves along its start heading
    np.testing.assert_allclose(rewards[0] - rewards[1], 0.3, atol=1e-5)
    imitation = rewards[1] / 0.7
    assert ((imitation > 0.2) & (imitation <= 1.0)).all()
    reference_now = task.reference_now()
    np.testing.assert_allclose(reference_now.root_pos[:, :2], task.engine.root_state()[:, :2], atol=1e-5)


class FakeViewerHandle:
    """mujoco.viewer's passive handle without a window: what InteractiveViewer touches."""

    def __init__(self, *args, key_callback=None, **kwargs):
        import contextlib

        import mujoco
        self.key_callback = key_callback
        self.cam, self.opt = mujoco.MjvCamera(), mujoco.MjvOption()
        self.lock = contextlib.nullcontext

    def is_running(self):
        return True

    def sync(self):
        pass

    def close(self):
        pass


def test_the_viewer_arrow_keys_turn_env0s_target_and_the_ghost_follows_the_character(monkeypatch):
    import mujoco.viewer

    from tasks.display import viewer

    handles = []
    monkeypatch.setattr(mujoco.viewer, "launch_passive", lambda *a, **k: handles.append(FakeViewerHandle(*a, **k))
                        or handles[-1])
    task = make_task(*HEADING, "num_envs=2")
    watcher = viewer.TaskWatcher(task, os.path.join(REPO_ROOT, "assets", "mjcf", "humanoid3d.xml"), viewer=True)
    watcher.viewer.dt = 0.0  # no real-time pacing in a test
    task.watcher = watcher  # what the task builds itself with a display (make_task's is headless)
    task.reset()
    before = task.goal.target_yaw.clone()
    for key in (viewer.KEY_LEFT, viewer.KEY_LEFT, viewer.KEY_RIGHT, viewer.KEY_LEFT):
        handles[0].key_callback(key)
    task.step(torch.zeros(2, task.engine.num_dofs))
    turned = task.goal.target_yaw - before
    assert turned[0] == pytest.approx(math.radians(2 * viewer.STEER_STEP_DEG), abs=1e-5) and turned[1] == 0.0
    assert task.goal.change_prob == 0.0  # the keys steer from now on
    sim, ghost = watcher.env0_state()
    np.testing.assert_allclose(ghost[:2], sim[:2], atol=1e-5)  # the anchored reference stands on the character


STRIKE = ("goal=strike", "skill=spinkick")


def test_the_strike_reward_is_one_once_hit_else_deepmimics_distance_term():
    reach = torch.rand(64) * 2.0
    hit = torch.rand(64) < 0.3
    expected = np.where(hit.numpy(), 1.0, np.exp(-4.0 * reach.double().numpy() ** 2))
    np.testing.assert_allclose(strike_goal_reward(reach, hit, 4.0).double().numpy(), expected, rtol=1e-6)


def test_strike_targets_appear_in_their_ranges_and_are_observed_in_the_heading_frame():
    task = make_task(*STRIKE, "num_envs=64")
    torch.manual_seed(1)
    obs = task.reset()["obs"]
    root = task.engine.root_state()
    offset = (task.goal.target - root[:, :3]).double().numpy()
    distance = np.hypot(offset[:, 0], offset[:, 1])
    assert ((distance >= 0.6 - 1e-5) & (distance <= 1.2 + 1e-5)).all()
    height = task.goal.target[:, 2].numpy()
    assert ((height >= 0.8) & (height <= 1.25)).all()
    bearing = np.angle(np.exp(1j * (np.arctan2(offset[:, 1], offset[:, 0]) - scipy_heading(root[:, 3:7]))))
    assert bearing.min() < -2.0 and bearing.max() > 2.0  # all round the character
    heading_only = Rotation.from_rotvec(np.outer(scipy_heading(root[:, 3:7]), [0.0, 0.0, 1.0]))
    np.testing.assert_allclose(obs[:, -4:-1], heading_only.inv().apply(offset), atol=1e-4)
    assert (obs[:, -1] == 0).all()  # not hit yet


def test_a_strike_is_a_hit_once_the_body_reaches_the_target_and_each_cycle_is_a_trial():
    task = make_task(*STRIKE, "num_envs=4")
    task.reset()
    goal, body = task.goal, task.engine.body_names.index("right_ankle")
    body_state = task.engine.body_state().clone()
    goal.target[:2] = body_state[:2, body, :3]  # envs 0 and 1: the foot is on the target
    goal.target[1, 2] += 0.25  # env 1 just outside the 0.2 m radius
    goal.target[2:] = body_state[2:, body, :3] + torch.tensor([0.0, 0.0, 0.15])  # envs 2, 3 inside it
    goal.last_phase[:] = 0.5
    goal.update(body_state, torch.full((4,), 0.6))
    assert goal.hit.tolist() == [True, False, True, True] and not goal.trial_ended.any()
    imitation = torch.full((4,), 0.5)
    reward = goal.reward(imitation, body_state, task.engine.com_velocity())
    np.testing.assert_allclose(reward, [0.35 + 0.3, 0.35 + 0.3 * math.exp(-4 * 0.25 ** 2), 0.65, 0.65], atol=1e-5)
    old_targets = goal.target.clone()
    phase = torch.tensor([0.7, 0.1, 0.05, 0.8])  # envs 1 and 2 start a new cycle
    goal.update(body_state, phase)
    metrics = goal.step_metrics(body_state, task.engine.com_velocity())
    assert metrics["strike_trials"].tolist() == [0.0, 1.0, 1.0, 0.0] and metrics["strike_hits"].tolist() == [0, 0, 1, 0]
    assert goal.hit.tolist() == [True, False, False, True]  # new targets start unhit
    assert torch.equal(goal.target[[0, 3]], old_targets[[0, 3]]) and not torch.equal(goal.target[1], old_targets[1])
    assert goal.report({"strike_trials": 0.1, "strike_hits": 0.05}, 100.0) == {"strike_hit_rate": 0.5,
                                                                               "strike_trials_per_episode": 10.0}
    assert goal.report({"strike_trials": 0.0, "strike_hits": 0.0}, 100.0)["strike_hit_rate"] == 0.0  # finite: no trial


@pytest.mark.parametrize("goal, clip, keys", [
    ("heading", "walk", ("heading_err_deg", "speed_along_target_mps")),
    ("strike", "spinkick", ("strike_hit_rate", "strike_trials_per_episode")),
])
def test_a_goal_trains_and_evaluates_with_its_metrics(goal, clip, keys, tmp_path):
    """train.py with goal=<goal> (2 CPU epochs), then benchmarks/evaluate.py with the same goal: the JSON
    carries the goal's metrics, finite."""
    experiment = "pytest_goal_{}_{}".format(goal, uuid.uuid4().hex[:8])
    try:
        proc = subprocess.run([sys.executable, "train.py", "headless=True", "task=HumanoidDeepMimic", "max_iterations=2",
                               "num_envs=8", "goal=" + goal, "skill=" + clip, "experiment=" + experiment],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
        out = str(tmp_path / "m.json")
        checkpoint = sorted(glob.glob(os.path.join(REPO_ROOT, "runs", experiment, "nn", "*.pth")))[-1]
        evaluate.main(["--checkpoint", checkpoint,
                       "--motion-file", "motions/humanoid3d_{}.txt".format(clip), "--num-envs", "2", "--horizon", "2",
                       "--engine", "mujoco", "--json", out, "--", "skill=" + clip, "goal=" + goal])
        with open(out) as f:
            metrics = json.load(f)["metrics"]["all"]
        assert all(math.isfinite(metrics[k]) for k in keys)
    finally:
        shutil.rmtree(os.path.join(REPO_ROOT, "runs", experiment), ignore_errors=True)
