"""The hydra configuration's home in code: the resolvers our yaml uses, and the env count a run
gets when the command line names none. train.py and the IsaacGymEnvs registration both use it;
nothing here imports torch or an engine, so IsaacGym can still be imported first."""
import os

from omegaconf import OmegaConf

from poselib_utils.repository import REPO_ROOT

CONFIG_DIR = os.path.join(REPO_ROOT, "cfg")
RUNS_DIR = os.path.join(REPO_ROOT, "runs")  # training runs: checkpoints, summaries, videos

# Env count when the command line gives none: small on the CPU engine, thousands on a GPU engine.
DEFAULT_NUM_ENVS = {"mujoco": 64}
DEFAULT_GPU_NUM_ENVS = 4096


def default_num_envs(engine: str) -> int:
    return DEFAULT_NUM_ENVS.get(engine, DEFAULT_GPU_NUM_ENVS)


def minibatch_size(num_envs, horizon, num_minibatches) -> int:
    """rl_games' minibatch in samples: one epoch's samples split into ``num_minibatches``."""
    return max(1, int(num_envs) * int(horizon) // int(num_minibatches))


RESOLVERS = {
    "resolve_default": lambda default, arg: default if arg in ("", None) else arg,
    "if": lambda pred, a, b: a if pred else b,
    "minibatch": minibatch_size,
}


def register_resolvers() -> None:
    """Register those of ``RESOLVERS`` not yet registered (IsaacGymEnvs registers its own
    ``if`` and ``resolve_default``, with the same meaning)."""
    for name, fn in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
