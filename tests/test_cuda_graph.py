"""GraphedFunction replays give what the function computes eagerly (CUDA only)."""
import os

import pytest
import torch

from tasks.reference.cuda_graph import GraphedFunction
from tasks.reference.motion_lib import MotionLib
from poselib_utils.repository import REPO_ROOT

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_off_cuda_it_calls_the_function():
    calls = []
    graphed = GraphedFunction(lambda x: calls.append(1) or x * 2)
    assert torch.equal(graphed(torch.ones(3)), torch.full((3,), 2.0))
    assert calls == [1]


@needs_cuda
def test_replay_matches_eager_for_new_inputs_and_outputs_survive_the_next_call():
    graphed = GraphedFunction(lambda x, y: (torch.sin(x) * y, (x + y).sum(dim=-1)))
    x, y = torch.randn(64, 5, device="cuda"), torch.randn(64, 5, device="cuda")
    first = graphed(x, y)
    x2, y2 = torch.randn(64, 5, device="cuda"), torch.randn(64, 5, device="cuda")
    second = graphed(x2, y2)
    assert torch.allclose(first[0], torch.sin(x) * y) and torch.allclose(first[1], (x + y).sum(-1))
    assert torch.allclose(second[0], torch.sin(x2) * y2)


@needs_cuda
def test_graphed_motion_queries_equal_eager_queries():
    files = [os.path.join(REPO_ROOT, "motions", f) for f in ("humanoid3d_walk.txt", "humanoid3d_kick.txt")]
    lib = MotionLib(files, os.path.join(REPO_ROOT, "assets/mjcf/humanoid3d.xml"), "cuda")
    for _ in range(3):
        ids = torch.randint(0, 2, (256,), device="cuda")
        times = torch.rand(256, device="cuda") * 5.0
        graphed, eager = lib.get_state(ids, times), lib._query(ids, times)
        for a, b in zip(graphed, eager):
            assert torch.allclose(a, b, atol=1e-6)
