"""Engine factory. Each engine module is imported only when chosen, so a machine that has only
MuJoCo never imports isaacgym or warp."""
import importlib

from tasks.engines.engine import Engine, EngineConfig, EngineWindow

__all__ = ["ENGINES", "Engine", "EngineConfig", "EngineUnavailableError", "EngineWindow", "build_engine",
           "resolve_engine_name"]

ENGINES = {
    "mujoco": ("tasks.engines.mujoco_engine", "MujocoEngine"),
    "mujoco_warp": ("tasks.engines.mujoco_warp_engine", "MujocoWarpEngine"),
    "isaacgym": ("tasks.engines.isaacgym_engine", "IsaacGymEngine"),
}


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


def build_engine(name: str, cfg: EngineConfig) -> Engine:
    module_name, class_name = ENGINES[resolve_engine_name(name)]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise EngineUnavailableError("sim_engine '{}' needs a package that is not installed: {}".format(name, err))
    return getattr(module, class_name)(cfg)
