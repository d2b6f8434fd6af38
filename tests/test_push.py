"""The task's push (task.env.push, DeepMimic's perturbation test): the kernel against its definition
with scipy's rotations, the force search against known thresholds, and the whole path with the
shipped walk policy on the CPU engine."""
import json
import math
import os
import re

import mujoco
import pytest
import torch
from scipy.spatial.transform import Rotation

from benchmarks import evaluate
from poselib_utils.repository import DEFAULT_MJCF, REPO_ROOT
from tasks.pushes import compute_push_forces, compute_random_push_forces
from tasks.config import SettingError, check_push_search
from tasks.rlgames.push_search import largest_survived_force
from task_helpers import make_task
from test_body_forces import drop_from_rest

WALK = os.path.join(REPO_ROOT, "checkpoints", "humanoid3d_walk.pth")


def left_of_heading(root_rot: torch.Tensor) -> torch.Tensor:
    """scipy's heading (the root's x axis on the ground) turned a quarter left, as [N, 3] directions."""
    x_axis = Rotation.from_quat(root_rot[:, [1, 2, 3, 0]].double().numpy()).apply([1.0, 0.0, 0.0])
    heading = x_axis[:, :2] / (x_axis[:, :2] ** 2).sum(1, keepdims=True) ** 0.5
    return torch.tensor([[-hy, hx, 0.0] for hx, hy in heading], dtype=torch.float32)


def test_the_push_acts_on_the_root_along_the_heading_at_its_start():
    n, bodies, steps, force, angle = 64, 15, 6, 240.0, math.pi / 2
    start = torch.arange(n) % 5 + 2  # each env's own first step (task.env.push.spread_s)
    root_rot = torch.tensor(Rotation.random(n, random_state=1).as_quat()[:, [3, 0, 1, 2]], dtype=torch.float32)
    direction, expected = torch.zeros(n, 3), torch.zeros(n, 3)
    for progress in range(14):
        steps_done = torch.full((n,), progress, dtype=torch.long)
        forces, direction = compute_push_forces(steps_done, root_rot, direction, bodies, start, steps, force, angle)
        starting = start == progress
        expected[starting] = left_of_heading(root_rot)[starting]
        pushing = (start <= progress) & (progress < start + steps)
        assert torch.allclose(forces[:, 0].norm(dim=-1), pushing.float() * force)
        assert (forces[:, 1:] == 0).all()
        # the direction stays that of the push's first step while the root turns
        assert torch.allclose(forces[pushing, 0], expected[pushing] * force, atol=1e-3)
        root_rot = torch.roll(root_rot, 1, dims=0)


@pytest.mark.skipif(not os.path.isfile(WALK), reason="the shipped walk policy is not here")
@pytest.mark.parametrize("force, survives", [(0.0, True), (5000.0, False)])
def test_a_hard_push_fells_the_walk_and_none_does_not(force, survives, tmp_path, capsys):
    out = str(tmp_path / "m.json")
    args = ["--checkpoint", WALK, "--motion-file", "motions/humanoid3d_walk.txt", "--horizon", "2.0",
            "--json", out, "--engine", "mujoco", "--push-direction", "90", "--push-at", "0.5"]
    evaluate.main(args + (["--push-force", str(force)] if force else []) + ["--", "skill=walk"])
    with open(out) as f:
        success = json.load(f)["metrics"]["all"]["success_rate"]
    assert success == (1.0 if survives else 0.0)


@pytest.mark.parametrize("threshold", [37.0, 437.0, 1234.5, 4999.0])
def test_the_search_brackets_the_force_where_survival_ends(threshold):
    tried = []

    def survival_at(force):
        tried.append(force)
        return 1.0 if force < threshold else 0.25

    survived, felled, trials = largest_survived_force(survival_at, 1.0, 50.0, 10.0, 5000.0)
    assert [f for f, _ in trials] == tried and len(set(tried)) == len(tried)
    assert survived < threshold <= felled and felled - survived <= 10.0  # below the first force too
    assert all(rate == (1.0 if f < threshold else 0.25) for f, rate in trials)


def test_a_policy_that_survives_every_force_reports_none_felled():
    survived, felled, trials = largest_survived_force(lambda force: 1.0, 0.9, 50.0, 10.0, 700.0)
    assert (survived, felled) == (700.0, None) and [f for f, _ in trials] == [50.0, 100.0, 200.0, 400.0, 700.0]


@pytest.mark.parametrize("settings, words", [
    ({}, "push_search.directions_deg must be a non-empty list of numbers, each from -360 to 360, got None"),
    ({"directions_deg": [0, 720]}, "each from -360 to 360, got [0, 720]"),
    ({"directions_deg": [0], "survival": 1.5}, "push_search.survival must be a number from 0 to 1, got 1.5"),
    ({"directions_deg": [0], "resolution_n": 0}, "push_search.resolution_n must be a number > 0, got 0"),
    ({"directions_deg": [0], "step_n": 5}, "push_search: unknown setting step_n; allowed: survival"),
])
def test_bad_search_settings_are_named(settings, words):
    with pytest.raises(SettingError, match=re.escape(words)) as raised:
        check_push_search(settings)
    assert str(raised.value).startswith("train.params.config.player.push_search")


@pytest.mark.skipif(not os.path.isfile(WALK), reason="the shipped walk policy is not here")
def test_the_search_agrees_with_single_pushes_at_its_bracket(tmp_path):
    """The search's largest survived force, played again as one evaluation, leaves every pushed env
    standing, and its smallest felled force fells one; the envs are pushed at different phases."""
    common = ["--checkpoint", WALK, "--motion-file", "motions/humanoid3d_walk.txt", "--horizon", "2.5",
              "--num-envs", "3", "--engine", "mujoco", "--push-at", "0.5", "--push-spread", "0.6"]
    found = str(tmp_path / "search.json")
    evaluate.main(common + ["--push-search", "90", "--push-resolution", "40", "--json", found, "--", "skill=walk"])
    with open(found) as f:
        search = json.load(f)
    result = search["push_search"]["90.0"]
    assert search["meta"]["spread_s"] == 0.6 and search["meta"]["num_envs"] == 3
    assert 0.0 < result["largest_survived_n"] < result["smallest_felled_n"] <= result["largest_survived_n"] + 40.0
    for force, survival_is_one in ((result["largest_survived_n"], True), (result["smallest_felled_n"], False)):
        out = str(tmp_path / "one.json")
        evaluate.main(common + ["--push-force", str(force), "--push-direction", "90", "--json", out, "--", "skill=walk"])
        with open(out) as f:
            push = json.load(f)["meta"]["push"]
        assert (push["force_n"], push["spread_s"]) == (force, 0.6)
        assert (push["survival_rate"] == 1.0) == survival_is_one


def test_random_pushes_start_at_their_rate_and_hold_force_and_direction():
    n, bodies, steps, max_force, start_prob = 4096, 15, 6, 400.0, 0.05
    generator = torch.Generator().manual_seed(3)
    state = torch.zeros(n, 4)
    started, lengths, running = 0, [], torch.zeros(n, dtype=torch.long)
    held = torch.zeros(n, 3)
    for _ in range(200):
        idle = state[:, 0] <= 0
        forces, state = compute_random_push_forces(state, torch.rand(n, 3, generator=generator), bodies, start_prob,
                                                   max_force, steps)
        root = forces[:, 0]
        assert (forces[:, 1:] == 0).all() and (root[:, 2] == 0).all()
        assert (root.norm(dim=-1) <= max_force + 1e-3).all()
        pushed = root.norm(dim=-1) > 0
        new = idle & pushed
        started += int(new.sum())
        # a running push keeps its force; a new one may change it
        assert torch.equal(root[pushed & ~new], held[pushed & ~new])
        held = torch.where(pushed.unsqueeze(-1), root, held)
        running = torch.where(new, torch.ones_like(running), running + pushed.long())
        lengths += running[pushed & (state[:, 0] == 0)].tolist()  # a push's last step
    # each push lasts its steps exactly; idle envs start one with the given probability (binomial,
    # 5 standard deviations)
    assert set(lengths) == {steps}
    idle_steps = 200 * n / (1.0 + start_prob * (steps - 1))  # renewal: the steps that begin idle
    expected = start_prob * idle_steps
    assert abs(started - expected) < 5.0 * (expected * (1 - start_prob)) ** 0.5 + 0.02 * expected
    held = held[held.norm(dim=-1) > 0]
    assert len(held) > 0.99 * n
    assert (held[:, :2] / held.norm(dim=-1, keepdim=True)[:, :2]).mean(dim=0).norm() < 0.05  # any horizontal direction
    assert abs(held.norm(dim=-1).mean() - max_force / 2) < 0.03 * max_force  # uniform force


def test_training_pushes_reach_the_engine_as_their_impulse():
    """task.env.push.random_*: with every env starting a push at once, one policy step changes each
    env's centre-of-mass velocity by F t / M against the same step unpushed (MuJoCo's masses)."""
    mass = float(mujoco.MjModel.from_xml_path(DEFAULT_MJCF).body_mass.sum())
    velocities = []
    for overrides in ((), ("task.env.push.random_max_n=400", "task.env.push.random_rate_hz=1000")):
        task = make_task(*overrides)
        drop_from_rest(task.engine)
        task.pre_physics_step(torch.zeros(task.num_envs, task.engine.num_dofs))
        task.engine.step()
        velocities.append(task.engine.com_velocity().clone())
    force = task.pushes.random_state[:, 1:]
    assert (task.pushes.random_state[:, 0] == task.pushes.steps - 1).all() and (force.norm(dim=-1) > 0).all()
    assert torch.allclose(velocities[1] - velocities[0], force * task.dt / mass, atol=2e-4)
