import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

# DeepMimic's original data (MIT) lives beside the repository and is never copied into it.
DEEPMIMIC_DATA = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "deepmimic_data"))


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope="session")
def deepmimic_data():
    if not os.path.isdir(DEEPMIMIC_DATA):
        pytest.skip("DeepMimic's original data folder {} is absent; these tests read its character and "
                    "controller files".format(DEEPMIMIC_DATA))
    return DEEPMIMIC_DATA


@pytest.fixture(scope="session")
def humanoid_char_path(deepmimic_data):
    return os.path.join(deepmimic_data, "characters", "humanoid3d.txt")


@pytest.fixture(scope="session")
def humanoid_ctrl_path(deepmimic_data):
    return os.path.join(deepmimic_data, "controllers", "humanoid3d_ctrl.txt")


@pytest.fixture(scope="session")
def dog_char_path(deepmimic_data):
    return os.path.join(deepmimic_data, "characters", "dog3d.txt")


@pytest.fixture(scope="session")
def dog_ctrl_path(deepmimic_data):
    return os.path.join(deepmimic_data, "controllers", "dog3d_ctrl.txt")


@pytest.fixture(scope="session")
def committed_mjcf_path():
    return os.path.join(REPO_ROOT, "assets", "mjcf", "humanoid3d.xml")
