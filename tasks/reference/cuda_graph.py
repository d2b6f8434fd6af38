"""Replay a pure tensor function as a CUDA graph: one launch instead of one per operation.

The task's per-step math is many small kernels; at a few thousand envs launching them costs more
than running them. A function of fixed-shape tensors with no host-side effects can be captured
once per input signature and replayed. Off CUDA the function is simply called, and so it is
while torch captures a graph of its own (the task's whole step): it is then recorded into that one.
"""
from typing import Any, Callable, Dict, Tuple

import torch


def _map_tensors(fn: Callable[[torch.Tensor], torch.Tensor], value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_map_tensors(fn, v) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_map_tensors(fn, v) for v in value)
    return value


class GraphedFunction:
    """``GraphedFunction(fn)(*tensors)`` equals ``fn(*tensors)``; on CUDA it replays a graph
    captured for that input signature. Outputs are fresh tensors (copied from the graph's
    static outputs), so callers may keep them across calls."""

    def __init__(self, fn: Callable, warmup_calls: int = 3):
        self.fn = fn
        self.warmup_calls = warmup_calls
        self._graphs: Dict[Tuple, Tuple[torch.cuda.CUDAGraph, Tuple[torch.Tensor, ...], Any]] = {}

    def __call__(self, *inputs: torch.Tensor) -> Any:
        if not inputs[0].is_cuda or torch.cuda.is_current_stream_capturing():
            return self.fn(*inputs)
        key = tuple((t.shape, t.dtype, t.device) for t in inputs)
        if key not in self._graphs:
            self._graphs[key] = self._capture(inputs)
        graph, static_inputs, static_outputs = self._graphs[key]
        for static, value in zip(static_inputs, inputs):
            static.copy_(value)
        graph.replay()
        return _map_tensors(torch.clone, static_outputs)

    def _capture(self, inputs):
        static_inputs = tuple(t.clone() for t in inputs)
        side = torch.cuda.Stream(device=inputs[0].device)
        side.wait_stream(torch.cuda.current_stream(inputs[0].device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup_calls):  # TorchScript and cuBLAS settle before capture
                self.fn(*static_inputs)
        torch.cuda.current_stream(inputs[0].device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_outputs = self.fn(*static_inputs)
        return graph, static_inputs, static_outputs
