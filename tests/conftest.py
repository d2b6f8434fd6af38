import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # the checkout's packages, whatever directory pytest runs from
    sys.path.insert(0, REPO_ROOT)

from tasks.config import register_resolvers  # noqa: E402

register_resolvers()  # what train.main does first, for the tests that compose cfg/ themselves

# DeepMimic's character and controller files (MIT), shipped unchanged as test data: the facts the
# loader, the MJCF converter and the retargeter are checked against (tests/data/deepmimic/README.md).
DEEPMIMIC_DATA = os.path.join(REPO_ROOT, "tests", "data", "deepmimic")


@pytest.fixture(scope="session")
def deepmimic_data():
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


@pytest.fixture(scope="module")
def task():
    """HumanoidDeepMimic with the default config on the CPU engine (tests/task_helpers.py)."""
    from task_helpers import make_task

    return make_task()


@pytest.fixture(scope="session")
def committed_mjcf_path():
    return os.path.join(REPO_ROOT, "assets", "mjcf", "humanoid3d.xml")
