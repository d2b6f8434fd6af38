"""Reading a checkpoint without letting it run anything.

A ``.pth`` is a zip of pickles, and unpickling can call any function the file names: a shared
checkpoint could run code the moment it is opened. Every checkpoint the project reads (to play,
to resume or fine-tune, to evaluate, to export) goes through ``load_checkpoint``, which opens it
with ``torch.load(weights_only=True)``: that unpickler builds tensors and plain containers only
(dict, list, tuple, str, numbers, None) and refuses anything else before it is called. The
checkpoints the project writes hold nothing else (tasks/rlgames/resume_state.py stores random
generator and engine states as tensors), so no allow-list is needed. rl_games' own loader
(``weights_only=False``) is never used: our agent and player override ``restore``.
"""
import re
import zipfile
from typing import Any, Dict, Optional

import torch

ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
# What only training uses: the critic and its value normaliser. An exported policy (``actor_only``) leaves
# them out, half the file; a network loading it keeps its own freshly initialised critic.
CRITIC_PREFIXES = ("a2c_network.critic_mlp.", "a2c_network.value.", "value_mean_std.")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with one line naming the file and why."""


def load_checkpoint(path: str) -> Dict[str, Any]:
    """The checkpoint at ``path`` as a dict with a ``model`` state dict, on the CPU."""
    try:
        with open(path, "rb") as f:
            starts_as_zip = f.read(len(ZIP_MAGIC)) == ZIP_MAGIC
        complete_zip = starts_as_zip and zipfile.is_zipfile(path)
    except OSError as err:
        raise CheckpointError("checkpoint {}: cannot be read ({})".format(path, err.strerror or err))
    if not starts_as_zip:
        raise CheckpointError("checkpoint {} is not a file written by torch.save (not a zip archive)".format(path))
    if not complete_zip:
        raise CheckpointError("checkpoint {} is truncated or corrupt: its zip archive has no end".format(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError or others, by failure
        raise CheckpointError(_why_unloadable(path, err))
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise CheckpointError("checkpoint {} is not an rl_games checkpoint: it has no 'model' weights".format(path))
    state["model"] = {_uncompiled(k): v for k, v in state["model"].items()}
    return state


def load_checkpoint_or_exit(path: str, model: Optional[torch.nn.Module] = None) -> Dict[str, Any]:
    """``load_checkpoint`` (and ``check_weights_fit`` against ``model``) for the command-line entry
    points: a bad checkpoint ends the process with its one line instead of a traceback."""
    try:
        checkpoint = load_checkpoint(path)
        if model is not None:
            check_weights_fit(path, checkpoint, model)
    except CheckpointError as err:
        raise SystemExit(str(err))
    return checkpoint


def _why_unloadable(path: str, err: Exception) -> str:
    refused = re.search(r"GLOBAL (\S+)", str(err))
    if refused:
        return ("checkpoint {} refused: it asks to run {}, which a checkpoint never needs "
                "(only tensors and plain containers are read; nothing in it was run)".format(path, refused.group(1)))
    detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return "checkpoint {} is truncated or corrupt: {}".format(path, detail)


def _uncompiled(key: str) -> str:
    """torch.compile prefixes parameter names with ``_orig_mod.``; rl_games strips it on load too."""
    return key[len("_orig_mod."):] if key.startswith("_orig_mod.") else key


def check_weights_fit(path: str, checkpoint: Dict[str, Any], model: torch.nn.Module) -> None:
    """The checkpoint's weights have this network's names and shapes; otherwise one line naming the
    first tensor that differs (network sizes are ``train.params.network.mlp.units``)."""
    expected = model.state_dict()
    for name, tensor in checkpoint["model"].items():
        if name not in expected:
            raise CheckpointError("checkpoint {} has weights '{}' that this network lacks: it was trained with "
                                  "another network (train.params.network)".format(path, name))
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError("checkpoint {}: '{}' is {} there and {} in this network: set "
                                  "train.params.network.mlp.units as it was trained".format(
                                      path, name, list(tensor.shape), list(expected[name].shape)))
    missing = [name for name in expected if name not in checkpoint["model"]
               and not (checkpoint.get("actor_only") and name.startswith(CRITIC_PREFIXES))]
    if missing:
        raise CheckpointError("checkpoint {} lacks weights {} of this network (train.params.network)".format(
            path, missing[:3]))


def load_weights(model: torch.nn.Module, checkpoint: Dict[str, Any]) -> None:
    """The checkpoint's weights into ``model`` (checked by ``check_weights_fit``); an actor-only one
    leaves the model's critic as it is."""
    model.load_state_dict(checkpoint["model"], strict=not checkpoint.get("actor_only", False))
