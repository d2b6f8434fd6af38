"""Run HumanoidDeepMimic from an IsaacGymEnvs checkout's train.py (IsaacGym Preview 4).

NOT RUN against IsaacGym; tests/test_isaacgym_registration.py checks the registry and hydra
search path with a stubbed isaacgym. Steps in docs/isaacgym.md. From this repository's root:

    python -m tasks.isaacgymenvs_registration task=HumanoidDeepMimic [num_envs=4096] [headless=True]

``main`` registers the task, then runs IsaacGymEnvs' own ``isaacgymenvs/train.py`` as
``__main__`` (so hydra reads IsaacGymEnvs' cfg/config.yaml as usual), with these overrides added:

* ``+character=humanoid3d`` first, unless the user chose one (``+character=dog3d``): IsaacGymEnvs'
  config.yaml has no character group (cfg/character/), and a skill given after it still picks its clip.
* ``hydra.searchpath=[file://<this repo>/cfg]``: hydra finds task/HumanoidDeepMimic.yaml and
  train/HumanoidDeepMimicPPO.yaml here; IsaacGymEnvs' own config.yaml stays the primary config.
* ``+sim_engine=isaacgym``: our task yaml reads ``${sim_engine}``, a key IsaacGymEnvs lacks.
* ``num_envs=4096`` unless given: our task yaml's ``auto`` default is resolved by our train.py only.
* ``+task.env.numEnvs=${task.env.num_envs}``: IsaacGymEnvs' train.py reads ``task.env.numEnvs``.

Run it from this repository's root, not from isaacgymenvs/: IsaacGymEnvs has its own ``tasks``
package, and the script's directory comes first on ``sys.path``.
"""
import os
import runpy
import sys
from typing import List, Optional

from tasks.config import CONFIG_DIR, DEFAULT_GPU_NUM_ENVS, register_resolvers

TASK_NAME = "HumanoidDeepMimic"


def register_with_isaacgymenvs() -> str:
    """Insert HumanoidDeepMimic into ``isaacgymenvs.tasks.isaacgym_task_map`` and register our
    hydra resolvers. Returns the hydra search-path entry that makes our cfg/ visible."""
    import isaacgym  # noqa: F401  (before torch, which the task imports)
    import isaacgymenvs.tasks

    from tasks.humanoid_deepmimic import HumanoidDeepMimic

    isaacgymenvs.tasks.isaacgym_task_map[TASK_NAME] = HumanoidDeepMimic
    register_resolvers()
    return "file://" + CONFIG_DIR


def isaacgymenvs_arguments(argv: List[str], search_path: str) -> List[str]:
    """IsaacGymEnvs' train.py command line: the user's overrides and ours (module docstring)."""
    keys = [a.split("=", 1)[0].lstrip("+~") for a in argv]
    first = [] if "character" in keys else ["+character=humanoid3d"]
    extra = []
    if "hydra.searchpath" not in keys:
        extra.append("hydra.searchpath=[{}]".format(search_path))
    if "sim_engine" not in keys:
        extra.append("+sim_engine=isaacgym")
    if "num_envs" not in keys and "task.env.num_envs" not in keys:
        extra.append("num_envs={}".format(DEFAULT_GPU_NUM_ENVS))
    if "task.env.numEnvs" not in keys:
        extra.append("+task.env.numEnvs=${task.env.num_envs}")
    return first + list(argv) + extra


def check_checkpoint_argument(argv: List[str]) -> None:
    """IsaacGymEnvs' runner restores ``checkpoint=`` with rl_games' own loader, which would run code a
    crafted file carries: the file is read safely first and refused here if it fails. rl_games' loader
    also needs the whole network, so an exported policy (actor only) is refused with where it plays."""
    from tasks.rlgames.checkpoint_loading import load_checkpoint_or_exit

    for arg in argv:
        key, _, path = arg.partition("=")
        if key.lstrip("+~") == "checkpoint" and path and load_checkpoint_or_exit(path).get("actor_only"):
            raise SystemExit("checkpoint {} is an exported policy (the actor alone), which IsaacGymEnvs' runner "
                             "cannot load: play or fine-tune it with this repository's train.py (python train.py "
                             "task=HumanoidDeepMimic sim_engine=isaacgym checkpoint={} ...)".format(path, path))


def main(argv: Optional[List[str]] = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    search_path = register_with_isaacgymenvs()
    check_checkpoint_argument(args)
    import isaacgymenvs

    train_py = os.path.join(os.path.dirname(os.path.abspath(isaacgymenvs.__file__)), "train.py")
    sys.argv = [train_py] + isaacgymenvs_arguments(args, search_path)
    runpy.run_path(train_py, run_name="__main__")


if __name__ == "__main__":
    main()
