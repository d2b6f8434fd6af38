"""A task's whole step recorded once as a CUDA graph and replayed: one launch per policy step.

At a few thousand envs the hundreds of small kernels of a step (the task's TorchScript kernels,
the reference queries, the engine's Warp sequences) cost the host more time to launch than the
device needs to run them, so the device waits for the host (benchmarks/epoch_split.py --trace).
``CapturedStep`` runs the step eagerly for a few calls (TorchScript specialises its kernels and
the reference queries capture their own graphs), then records one call into a torch CUDA graph,
the engine's Warp kernels included where the engine allows it (``Engine.capturable``), and
replays that graph from then on.

What a replayed step returns are the graph's own buffers, which the next step rewrites: as the
eager step's reward, reset and extras buffers are; only the observations are copied, because the
eager step returns fresh ones. The containers of the outputs (the extras dict and the dicts in it)
are copied at capture: an eager step of the same task afterwards puts new tensors into the task's
own extras, and the replays must go on returning the tensors the graph writes. Random numbers (reset times and clips) come from torch's CUDA
generator, which advances on every replay, so replayed steps draw new numbers as eager ones do.
"""
import gc
from typing import Any, Callable, Optional, Tuple

import torch


class CapturedStep:
    """``CapturedStep(step)(actions)`` is ``step(actions)``: eager for ``warmup_calls`` calls, then
    a replay of the graph recorded at the next call."""

    def __init__(self, step: Callable[[torch.Tensor], Tuple], warmup_calls: int = 3):
        self.step = step
        self.warmup_calls = warmup_calls
        self.calls = 0
        self.graph: Optional[torch.cuda.CUDAGraph] = None
        self._actions: Optional[torch.Tensor] = None
        self._outputs: Optional[Tuple] = None

    def __call__(self, actions: torch.Tensor) -> Tuple:
        if self.graph is None:
            if self.calls < self.warmup_calls:
                self.calls += 1
                return self.step(actions)
            try:
                self._capture(actions)
            except RuntimeError as err:  # a failed capture leaves torch's CUDA generator unusable: stop here
                raise RuntimeError("the task's step could not be recorded as a CUDA graph ({}); "
                                   "task.env.cuda_graph_step=False steps it eagerly".format(str(err).splitlines()[0])) from err
        self._actions.copy_(actions)
        self.graph.replay()
        obs, rewards, resets, extras = self._outputs
        return {k: v.clone() for k, v in obs.items()}, rewards, resets, extras

    def _capture(self, actions: torch.Tensor) -> None:
        """Record one step without running it (capture launches nothing); ``__call__`` replays it."""
        self._actions = actions.detach().clone()
        graph = torch.cuda.CUDAGraph()
        # A garbage collection inside the capture would record the frees of unrelated (Warp)
        # objects into the graph.
        enabled = gc.isenabled()
        gc.disable()
        try:
            # relaxed: the mode Warp joins the capture in (Engine._launch), and the one run on the GPU
            with torch.cuda.graph(graph, capture_error_mode="relaxed"):
                outputs = self.step(self._actions)
        finally:
            if enabled:
                gc.enable()
        self._outputs = _copy_containers(outputs)
        self.graph = graph

    def close(self) -> None:
        self.graph = None
        self._outputs = None


def _copy_containers(value: Any) -> Any:
    """``value`` with each dict, list and tuple in it copied and the tensors in them shared."""
    if isinstance(value, dict):
        return {k: _copy_containers(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_copy_containers(v) for v in value)
    return value
