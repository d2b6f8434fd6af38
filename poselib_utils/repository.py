"""Where this checkout keeps its data: the one definition of the repository root.

The code runs from the checkout (setup.py installs dependencies only), so paths in cfg/, on the
command line and in datasets are relative to the repository root unless absolute.
"""
import os
from typing import Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MJCF = os.path.join(REPO_ROOT, "assets", "mjcf", "humanoid3d.xml")


def repo_path(path: str) -> str:
    """``path`` as given when absolute, else relative to the repository root."""
    return path if os.path.isabs(path) else os.path.join(REPO_ROOT, path)


def character_of_clip(clip_path: str) -> Optional[str]:
    """The committed character a DeepMimic clip's name says it is for (``dog3d_trot.txt``: ``dog3d``,
    as DeepMimic names its clips), or None when the name names none."""
    name = os.path.basename(clip_path).split("_")[0]
    return name if os.path.isfile(_character_mjcf(name)) else None


def character_mjcf_of_clip(clip_path: str) -> str:
    """The MJCF of the clip's character by its name (character_of_clip); humanoid3d's when it names none."""
    name = character_of_clip(clip_path)
    return DEFAULT_MJCF if name is None else _character_mjcf(name)


def _character_mjcf(name: str) -> str:
    return os.path.join(REPO_ROOT, "assets", "mjcf", name + ".xml")
