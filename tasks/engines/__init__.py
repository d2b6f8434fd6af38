"""Engine factory. Each engine module is imported only when chosen, so a machine that has only
MuJoCo never imports isaacgym or warp. Importing this package imports no torch either (the engine
interface, ``tasks.engines.engine``, is loaded on first use): train.py resolves the engine name
before it imports IsaacGym, which refuses to load after torch."""
import importlib

__all__ = ["ENGINES", "Engine", "EngineConfig", "EngineUnavailableError", "EngineWindow", "build_engine",
           "resolve_engine_name"]

ENGINES = {
    "mujoco": ("tasks.engines.mujoco_engine", "MujocoEngine"),
    "mujoco_warp": ("tasks.engines.mujoco_warp_engine", "MujocoWarpEngine"),
    "isaacgym": ("tasks.engines.isaacgym_engine", "IsaacGymEngine"),
}
_INTERFACE = ("Engine", "EngineConfig", "EngineWindow")  # from tasks.engines.engine, on first use


def __getattr__(name: str):
    if name in _INTERFACE:
        return getattr(importlib.import_module("tasks.engines.engine"), name)
    raise AttributeError("module 'tasks.engines' has no attribute '{}'".format(name))


class EngineUnavailableError(RuntimeError):
    pass


def _mujoco_warp_usable() -> bool:
    """A CUDA device torch can use, and mujoco_warp importable."""
    import torch

    if not torch.cuda.is_available():
        return False
    try:
        importlib.import_module("mujoco_warp")
    except ImportError:
        return False
    return True


def resolve_engine_name(name: str) -> str:
    """Map ``auto`` to the best engine this machine can run; reject unknown names."""
    if name == "auto":
        return "mujoco_warp" if _mujoco_warp_usable() else "mujoco"
    if name not in ENGINES:
        raise ValueError("unknown sim_engine '{}': choose one of auto, {}".format(name, ", ".join(sorted(ENGINES))))
    return name


def build_engine(name: str, cfg):
    """The engine ``name`` (an ``Engine``) for ``cfg`` (an ``EngineConfig``)."""
    module_name, class_name = ENGINES[resolve_engine_name(name)]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise EngineUnavailableError("sim_engine '{}' needs a package that is not installed: {}".format(name, err))
    return getattr(module, class_name)(cfg)
