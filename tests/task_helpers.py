"""What tests/test_task.py and tests/test_reward.py share: HumanoidDeepMimic built from the hydra
config (cfg/, composed as train.py does) on the MuJoCo CPU engine (tests/conftest.py's ``task``
fixture is one of these), and reference states to compare with."""
import os

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from scipy.spatial.transform import Rotation

from poselib_utils.repository import REPO_ROOT
from tasks.humanoid_deepmimic import HumanoidDeepMimic

CFG_DIR = os.path.join(REPO_ROOT, "cfg")
MJCF = os.path.join(REPO_ROOT, "assets", "mjcf", "humanoid3d.xml")
NUM_ENVS = 8


def make_cfg(*overrides):
    with initialize_config_dir(config_dir=CFG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=["num_envs={}".format(NUM_ENVS), "sim_engine=mujoco"]
                       + list(overrides))


def make_task(*overrides):
    cfg = make_cfg(*overrides)
    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    task_cfg["env"]["num_threads"] = 2
    return HumanoidDeepMimic(task_cfg, "cpu", "cpu", 0, True)


def reference(task, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.zeros(n, dtype=torch.long)
    times = torch.rand(n, generator=gen) * task.motion_lib.durations[0]
    return task.motion_lib.get_state(ids, times)


def rotate_world_z(quat_wxyz, angle):
    """Pre-multiply wxyz quaternions by a rotation about world z (scipy)."""
    rot = Rotation.from_rotvec(np.outer(angle, [0.0, 0.0, 1.0]))
    q = quat_wxyz.double().numpy()
    out = (rot * Rotation.from_quat(q[:, [1, 2, 3, 0]])).as_quat()[:, [3, 0, 1, 2]]
    return torch.tensor(out, dtype=torch.float32)
