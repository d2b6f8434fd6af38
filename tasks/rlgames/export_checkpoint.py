"""Shrink an rl_games checkpoint to what playback needs: the actor and its observation normaliser
(no critic, optimizer or env state), weight matrices stored in float16 (they load back into float32
layers). Fine-tuning from an exported policy starts a fresh critic.

    python -m tasks.rlgames.export_checkpoint runs/walk/nn/last_..._sigterm.pth checkpoints/humanoid3d_walk.pth
"""
import argparse
from typing import Optional

import torch

from tasks.rlgames.checkpoint_loading import CRITIC_PREFIXES, load_checkpoint_or_exit


def export_checkpoint(source: str, target: str) -> None:
    state = load_checkpoint_or_exit(source)
    model = {k: (v.half() if v.dtype == torch.float32 and v.dim() == 2 else v) for k, v in state["model"].items()
             if not k.startswith(CRITIC_PREFIXES)}
    exported = {"model": model, "actor_only": True, "epoch": state.get("epoch"), "frame": state.get("frame")}
    termination = training_termination_settings(state)
    if termination is not None:
        exported["termination"] = termination
    torch.save(exported, target)


def training_termination_settings(state: dict) -> Optional[dict]:
    """The task.env termination settings a checkpoint was trained with: kept at the top of an exported
    one, inside rl_games' env_state (tasks/rlgames/resume_state.py) of a training one; None if absent."""
    if "termination" in state:
        return state["termination"]
    env_state = state.get("env_state")
    task_state = env_state.get("task") if isinstance(env_state, dict) else None
    return task_state.get("termination") if isinstance(task_state, dict) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source")
    parser.add_argument("target")
    args = parser.parse_args()
    export_checkpoint(args.source, args.target)
    print("wrote {}".format(args.target))


if __name__ == "__main__":
    main()
