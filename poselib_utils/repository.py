"""Where this checkout keeps its data: the one definition of the repository root.

The code runs from the checkout (setup.py installs dependencies only), so paths in cfg/, on the
command line and in datasets are relative to the repository root unless absolute.
"""
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MJCF = os.path.join(REPO_ROOT, "assets", "mjcf", "humanoid3d.xml")


def repo_path(path: str) -> str:
    """``path`` as given when absolute, else relative to the repository root."""
    return path if os.path.isabs(path) else os.path.join(REPO_ROOT, path)


def character_mjcf_of_clip(clip_path: str) -> str:
    """The character a DeepMimic clip is for, from its name (``dog3d_trot.txt``: assets/mjcf/dog3d.xml,
    as DeepMimic names its clips); humanoid3d when no committed character matches the name."""
    name = os.path.basename(clip_path).split("_")[0]
    path = os.path.join(REPO_ROOT, "assets", "mjcf", name + ".xml")
    return path if name and os.path.isfile(path) else DEFAULT_MJCF
