"""Multi-clip datasets: clips with sampling weights, in DeepMimic's format or a YAML equivalent.

DeepMimic (data/datasets/*.txt) writes JSON::

    {"Motions": [{"Weight": 0.5, "File": "data/motions/humanoid3d_walk.txt"}, ...]}

The YAML form is the same structure (``Motions``/``File``/``Weight``, or lower case)::

    motions:
      - {file: motions/humanoid3d_walk.txt, weight: 2}
      - {file: motions/humanoid3d_run.txt}          # weight 1

A clip path is looked up relative to the dataset file, then the repository root; DeepMimic's own
``data/motions/<name>`` paths also resolve to ``motions/<name>``. ``task.env.motion_file`` may be
a clip, a dataset, or a list of either (plain clips weigh 1). A clip is a DeepMimic ``.txt`` or a
poselib ``.npy`` (IsaacGymEnvs' motion files: poselib_utils/poselib_interop.py), read by ``load_clip``.
"""
import json
import os
from typing import List, Sequence, Tuple, Union

from poselib_utils.data_loader import DataFormatError, MotionClip, Skeleton, load_motion
from poselib_utils.repository import REPO_ROOT

POSELIB_SUFFIX = ".npy"


def load_clip(path: str, skeleton: Skeleton) -> MotionClip:
    """A clip for the character ``skeleton`` (read from its MJCF): a DeepMimic clip, or a poselib
    motion on any skeleton poselib_utils/skeletons/ maps onto that character."""
    if path.endswith(POSELIB_SUFFIX):
        from poselib_utils.poselib_interop import Character, load_poselib_clip

        return load_poselib_clip(path, Character(skeleton.source))
    return load_motion(path, skeleton)


def _load_structured(path: str):
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as err:
        raise DataFormatError(path, "", "unreadable: not UTF-8 text ({})".format(err.reason))
    if path.endswith((".yaml", ".yml")):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise DataFormatError(path, "", "invalid YAML: {}".format(err))
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def is_dataset(path: str) -> bool:
    """A YAML file, or a JSON file whose top level has ``Motions``."""
    if path.endswith((".yaml", ".yml")):
        return True
    if path.endswith(POSELIB_SUFFIX):
        return False
    if not os.path.isfile(path) or os.path.getsize(path) > (64 << 20):
        return False
    data = _load_structured(path)
    return isinstance(data, dict) and ("Motions" in data or "motions" in data)


def _resolve_clip(path: str, dataset: str, where: str) -> str:
    base = os.path.dirname(os.path.abspath(dataset))
    candidates = [path] if os.path.isabs(path) else [os.path.join(base, path), os.path.join(REPO_ROOT, path)]
    if path.replace("\\", "/").startswith("data/motions/"):
        candidates.append(os.path.join(REPO_ROOT, "motions", path.replace("\\", "/")[len("data/motions/"):]))
    for c in candidates:
        if os.path.isfile(c):
            return os.path.abspath(c)
    raise DataFormatError(dataset, where, "clip file '{}' not found (looked in {})".format(path, ", ".join(candidates)))


def load_motion_dataset(path: str) -> Tuple[List[str], List[float]]:
    """Absolute clip paths and their weights (not normalised) from a dataset file."""
    if not os.path.isfile(path):
        raise DataFormatError(path, "", "dataset file not found")
    data = _load_structured(path)
    if data is None:
        raise DataFormatError(path, "", "invalid JSON")
    entries = data.get("Motions", data.get("motions")) if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise DataFormatError(path, "top level", "needs a non-empty 'Motions' list of {File, Weight}")
    files, weights = [], []
    for i, entry in enumerate(entries):
        where = "Motions[{}]".format(i)
        if isinstance(entry, str):
            entry = {"File": entry}
        if not isinstance(entry, dict):
            raise DataFormatError(path, where, "expected {{File, Weight}}, got {!r}".format(entry))
        clip = entry.get("File", entry.get("file"))
        if not isinstance(clip, str) or not clip:
            raise DataFormatError(path, where, "missing field 'File'")
        weight = entry.get("Weight", entry.get("weight", 1.0))
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0 or weight == float("inf"):
            raise DataFormatError(path, where, "field 'Weight' must be a finite number >= 0, got {!r}".format(weight))
        files.append(_resolve_clip(clip, path, where))
        weights.append(float(weight))
    if sum(weights) <= 0:
        raise DataFormatError(path, "Motions", "all weights are zero")
    return files, weights


def resolve_motion_files(spec: Union[str, Sequence[str]], root: str = REPO_ROOT) -> Tuple[List[str], List[float]]:
    """``task.env.motion_file`` (a clip, a dataset or a list of them) -> clip paths and weights.

    Relative paths are taken from ``root``; a plain clip that does not exist raises
    ``FileNotFoundError`` naming it, a folder or a bad dataset ``DataFormatError``."""
    entries = [spec] if isinstance(spec, str) else list(spec)
    files, weights = [], []
    for entry in entries:
        full = entry if os.path.isabs(entry) else os.path.join(root, entry)
        if os.path.isdir(full):
            raise DataFormatError(full, "", "is a folder: give a clip (.txt, .npy), a dataset (.yaml, .json) or a list of them")
        if not os.path.isfile(full):
            raise FileNotFoundError("task.env.motion_file: {} does not exist".format(full))
        if is_dataset(full):
            f, w = load_motion_dataset(full)
            files += f
            weights += w
        else:
            files.append(full)
            weights.append(1.0)
    return files, weights


def check_evaluation_envs(num_clips: int, num_envs: int) -> None:
    """Evaluation gives clips to envs round-robin: with fewer envs than clips the last clips would
    go unmeasured, so this raises ``ValueError`` instead. (Torch-free: train.py checks it before
    IsaacGym is imported; the task checks it for every other entry point.)"""
    if num_envs < num_clips:
        raise ValueError("evaluation plays each clip in its own envs (round-robin): {} clips need num_envs >= {}, "
                         "got {}".format(num_clips, num_clips, num_envs))
