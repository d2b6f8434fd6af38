"""The target-heading goal (goal=heading, tasks/goals.py) and the anchored reference it trains against
(tasks/reference/anchoring.py): the reward against DeepMimic's formula, the observation and the anchor
against scipy's rotations, and the task's reward as 0.7 imitation + 0.3 goal."""
import json
import math
import os

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from poselib_utils.repository import REPO_ROOT
from tasks.goals import heading_goal_observation, heading_goal_reward
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
        along = task.goal.errors(task.engine.com_velocity())[1]
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
