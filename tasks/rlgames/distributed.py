"""Several training processes, one per GPU, started by torchrun (IsaacGymEnvs' multi_gpu convention).

    torchrun --standalone --nproc_per_node=N train.py task=HumanoidDeepMimic headless=True multi_gpu=True

torchrun sets LOCAL_RANK, RANK and WORLD_SIZE (and MASTER_ADDR/MASTER_PORT) for every process. Each
process builds its own envs and engine on ``cuda:LOCAL_RANK`` and seeds with ``seed + RANK``;
rl_games' ``multi_gpu: True`` joins the process group and all-reduces the gradients, so the
communication is torch.distributed's (NCCL on GPUs, gloo on CPUs), nothing home-made.

rl_games 1.6.5 assumes CUDA in three places when ``multi_gpu`` is on (common/a2c_common.py):
``dist.init_process_group("nccl")``, ``config["device"] = "cuda:" + LOCAL_RANK`` in
``A2CBase.__init__``, and ``torch.cuda.set_device(local_rank)`` at the top of ``train()``.
On GPUs they are exactly right and are left alone. For processes whose rl_device is the CPU
(the mujoco engine on CPU nodes, and the tests), ``cpu_rank_shims`` and ``cpu_train_shims`` swap
these three for gloo, the chosen device and a no-op, only while rl_games' constructor and
``train()`` run.
"""
import contextlib
import os
from typing import Iterator, NamedTuple, Optional, Tuple

import torch


class RankInfo(NamedTuple):
    local_rank: int   # GPU index on this node
    rank: int         # global rank; rank 0 writes checkpoints, logs and config.yaml
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def rank_info(multi_gpu: bool) -> RankInfo:
    """This process's place in a torchrun job (the same variables rl_games reads)."""
    if not multi_gpu:
        return RankInfo(0, 0, 1)
    env = os.environ
    if "WORLD_SIZE" not in env or "RANK" not in env:
        raise SystemExit("multi_gpu=True expects to be started by torchrun (RANK and WORLD_SIZE are not set): "
                         "torchrun --standalone --nproc_per_node=<GPUs> train.py multi_gpu=True ...")
    return RankInfo(int(env.get("LOCAL_RANK", "0")), int(env["RANK"]), int(env["WORLD_SIZE"]))


def rank_devices(engine: str, info: RankInfo, multi_gpu: bool, sim_device: str, rl_device: str,
                 cuda_available: bool) -> Tuple[str, str]:
    """(sim_device, rl_device) for this process. One process: the configured devices, else cuda:0 for
    GPU engines when CUDA is there, else cpu. torchrun: GPU engines on cuda:LOCAL_RANK (both devices,
    as IsaacGymEnvs); the mujoco engine simulates on the CPU and learns on cuda:LOCAL_RANK when CUDA is
    there (rl_games' multi_gpu needs that device), else everything stays on the CPU (gloo)."""
    if not multi_gpu:
        sim = sim_device or ("cuda:0" if engine != "mujoco" and cuda_available else "cpu")
        return sim, rl_device or sim
    if sim_device or rl_device:
        raise SystemExit("multi_gpu=True picks the devices per process (cuda:LOCAL_RANK); "
                         "leave sim_device and rl_device unset")
    gpu = "cuda:{}".format(info.local_rank)
    if engine != "mujoco":
        if not cuda_available:
            raise SystemExit("multi_gpu=True with sim_engine={} needs CUDA".format(engine))
        return gpu, gpu
    return "cpu", gpu if cuda_available else "cpu"


def any_rank(flag: bool, device: str) -> bool:
    """True on every rank when ``flag`` is true on at least one (one all-reduce); ``flag`` when there
    is no process group."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item() > 0)


def shutdown() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


class _DistWithBackend:
    """torch.distributed, except that init_process_group uses ``backend`` whatever it is asked for."""

    def __init__(self, backend: str):
        self._backend = backend

    def init_process_group(self, backend: Optional[str] = None, *args, **kwargs):
        return torch.distributed.init_process_group(self._backend, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(torch.distributed, name)


@contextlib.contextmanager
def cpu_rank_shims() -> Iterator[None]:
    """While rl_games' A2CBase.__init__ runs: join the process group with gloo instead of nccl.
    (The device rl_games would force to cuda:LOCAL_RANK is kept by the agent, see
    tasks/rlgames/checkpointing.py.)"""
    from rl_games.common import a2c_common

    saved = a2c_common.dist
    a2c_common.dist = _DistWithBackend("gloo")
    try:
        yield
    finally:
        a2c_common.dist = saved


@contextlib.contextmanager
def cpu_train_shims() -> Iterator[None]:
    """While rl_games' train() runs on a CPU rank: its torch.cuda.set_device(local_rank) is a no-op
    when this torch has no CUDA (a CPU build has no torch._C._cuda_setDevice)."""
    if torch.cuda.is_available():
        yield
        return
    saved = torch.cuda.set_device
    torch.cuda.set_device = lambda device: None
    try:
        yield
    finally:
        torch.cuda.set_device = saved
