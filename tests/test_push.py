"""The task's push (task.env.push, DeepMimic's perturbation test): the kernel against its definition
with scipy's rotations, and the whole path with the shipped walk policy on the CPU engine."""
import json
import math
import os

import pytest
import torch
from scipy.spatial.transform import Rotation

from benchmarks import evaluate
from poselib_utils.repository import REPO_ROOT
from tasks.humanoid_deepmimic import compute_push_forces

WALK = os.path.join(REPO_ROOT, "checkpoints", "humanoid3d_walk.pth")


def test_the_push_acts_on_the_root_along_the_heading_at_its_start():
    n, bodies, start, steps, force, angle = 64, 15, 3, 6, 240.0, math.pi / 2
    rot_xyzw = Rotation.random(n, random_state=1).as_quat()
    root_rot = torch.tensor(rot_xyzw[:, [3, 0, 1, 2]], dtype=torch.float32)
    direction = torch.zeros(n, 3)
    for progress in range(12):
        steps_done = torch.full((n,), progress, dtype=torch.long)
        forces, direction = compute_push_forces(steps_done, root_rot, direction, bodies, start, steps, force, angle)
        if progress == start:  # the heading: the root's x axis projected onto the ground, turned left by angle
            x_axis = Rotation.from_quat(root_rot[:, [1, 2, 3, 0]].double().numpy()).apply([1.0, 0.0, 0.0])
            heading = torch.tensor(x_axis[:, :2] / (x_axis[:, :2] ** 2).sum(1, keepdims=True) ** 0.5,
                                   dtype=torch.float32)
            left = torch.stack([-heading[:, 1], heading[:, 0]], dim=-1)
            assert torch.allclose(direction[:, :2], left, atol=1e-5) and (direction[:, 2] == 0).all()
        pushing = start <= progress < start + steps
        assert torch.allclose(forces[:, 0].norm(dim=-1), torch.full((n,), force if pushing else 0.0))
        assert (forces[:, 1:] == 0).all()
        if pushing:  # the direction stays that of the first step while the root turns
            assert torch.allclose(forces[:, 0], direction * force)
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
