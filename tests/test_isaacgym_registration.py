"""Registration of HumanoidDeepMimic with IsaacGymEnvs, without IsaacGym.

IsaacGym cannot be installed here, so ``isaacgym`` is a stub module (StubIsaacGym: an empty module
used only so ``import isaacgym`` succeeds; it simulates nothing), and ``isaacgymenvs`` is rebuilt
in tmp_path with the structure of upstream's files (isaac-sim/IsaacGymEnvs @ aeed298):
isaacgymenvs/__init__.py registers the same OmegaConf resolvers, isaacgymenvs/tasks/__init__.py
defines a module-level dict ``isaacgym_task_map`` of name -> task class, and
isaacgymenvs/cfg/config.yaml has upstream's top-level keys and defaults list.
"""
import sys
import types

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

UPSTREAM_INIT = '''
from omegaconf import OmegaConf
for _name, _fn in [("eq", lambda x, y: x.lower() == y.lower()),
                   ("contains", lambda x, y: x.lower() in y.lower()),
                   ("if", lambda pred, a, b: a if pred else b),
                   ("resolve_default", lambda default, arg: default if arg == "" else arg)]:
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _fn)
'''

UPSTREAM_TASKS_INIT = '''
class Ant:  # stands in for upstream's 25 task imports
    pass

# Mappings from strings to environments
isaacgym_task_map = {
    "Ant": Ant,
}
'''

UPSTREAM_CONFIG = '''
task_name: ${task.name}
experiment: ''
num_envs: ''
seed: 42
torch_deterministic: False
max_iterations: ''
physics_engine: 'physx'
pipeline: 'gpu'
sim_device: 'cuda:0'
rl_device: 'cuda:0'
graphics_device_id: 0
num_threads: 4
solver_type: 1
num_subscenes: 4
test: False
checkpoint: ''
sigma: ''
multi_gpu: False
wandb_activate: False
wandb_name: ${train.params.config.name}
capture_video: False
force_render: True
headless: False
defaults:
  - task: Ant
  - train: ${task}PPO
  - pbt: no_pbt
  - override hydra/job_logging: disabled
  - _self_
hydra:
  output_subdir: null
  run:
    dir: .
'''


@pytest.fixture
def fake_isaacgymenvs(tmp_path, monkeypatch):
    pkg = tmp_path / "isaacgymenvs"
    (pkg / "tasks").mkdir(parents=True)
    (pkg / "__init__.py").write_text(UPSTREAM_INIT)
    (pkg / "tasks" / "__init__.py").write_text(UPSTREAM_TASKS_INIT)
    for group, text in [("task/Ant.yaml", "name: Ant\nenv:\n  numEnvs: 1\n"),
                        ("train/AntPPO.yaml", "params:\n  config:\n    name: Ant\n"),
                        ("pbt/no_pbt.yaml", "enabled: False\n")]:
        path = pkg / "cfg" / group
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (pkg / "cfg" / "config.yaml").write_text(UPSTREAM_CONFIG)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "isaacgym", types.ModuleType("StubIsaacGym"))
    for name in [m for m in sys.modules if m == "isaacgymenvs" or m.startswith("isaacgymenvs.")]:
        monkeypatch.delitem(sys.modules, name)
    yield pkg
    GlobalHydra.instance().clear()


def test_registration_inserts_task(fake_isaacgymenvs):
    from tasks.humanoid_deepmimic import HumanoidDeepMimic
    from tasks.isaacgymenvs_registration import register_with_isaacgymenvs

    register_with_isaacgymenvs()
    import isaacgymenvs.tasks

    assert isaacgymenvs.tasks.__file__.startswith(str(fake_isaacgymenvs))
    assert isaacgymenvs.tasks.isaacgym_task_map["HumanoidDeepMimic"] is HumanoidDeepMimic
    assert "Ant" in isaacgymenvs.tasks.isaacgym_task_map


def test_hydra_finds_our_configs(fake_isaacgymenvs):
    from tasks.isaacgymenvs_registration import isaacgymenvs_arguments, register_with_isaacgymenvs

    search_path = register_with_isaacgymenvs()
    import isaacgymenvs  # noqa: F401  (registers upstream's resolvers, as its train.py does)

    user = ["task=HumanoidDeepMimic", "headless=True"]
    with initialize_config_dir(config_dir=str(fake_isaacgymenvs / "cfg"), version_base="1.1"):
        cfg = compose(config_name="config", overrides=isaacgymenvs_arguments(user, search_path))
    assert cfg.task_name == "HumanoidDeepMimic"
    assert cfg.physics_engine == "physx"  # IsaacGymEnvs' config.yaml stayed primary
    assert cfg.task.sim_engine == "isaacgym"
    assert cfg.task.env.numEnvs == 4096 and cfg.task.env.num_envs == 4096
    train = OmegaConf.to_container(cfg.train, resolve=True)
    assert train["params"]["config"]["minibatch_size"] > 0
    assert cfg.wandb_name == train["params"]["config"]["name"]


def test_skills_apply_under_isaacgymenvs_config(fake_isaacgymenvs):
    """IsaacGymEnvs' config.yaml has no skill group in its defaults: '+skill=' adds ours from the search path."""
    from tasks.isaacgymenvs_registration import isaacgymenvs_arguments, register_with_isaacgymenvs

    search_path = register_with_isaacgymenvs()
    import isaacgymenvs  # noqa: F401

    user = ["task=HumanoidDeepMimic", "+skill=cartwheel"]
    with initialize_config_dir(config_dir=str(fake_isaacgymenvs / "cfg"), version_base="1.1"):
        cfg = compose(config_name="config", overrides=isaacgymenvs_arguments(user, search_path))
    assert cfg.task.env.motion_file == "motions/humanoid3d_cartwheel.txt"
    assert cfg.task.env.contact_bodies == "character"

    user = ["task=HumanoidDeepMimic", "+character=dog3d"]
    with initialize_config_dir(config_dir=str(fake_isaacgymenvs / "cfg"), version_base="1.1"):
        cfg = compose(config_name="config", overrides=isaacgymenvs_arguments(user, search_path))
    assert (cfg.task.env.asset_file, cfg.task.env.motion_file) == ("assets/mjcf/dog3d.xml", "motions/dog3d_trot.txt")
    user = ["task=HumanoidDeepMimic", "+skill=dog3d_spin"]  # the skill picks its character itself
    with initialize_config_dir(config_dir=str(fake_isaacgymenvs / "cfg"), version_base="1.1"):
        cfg = compose(config_name="config", overrides=isaacgymenvs_arguments(user, search_path))
    assert (cfg.task.env.asset_file, cfg.task.env.carry_cycle_heading) == ("assets/mjcf/dog3d.xml", True)

    for extra, epochs in (([], 1900), (["max_iterations=40"], 40)):
        user = ["task=HumanoidDeepMimic", "+skill=run"] + extra
        with initialize_config_dir(config_dir=str(fake_isaacgymenvs / "cfg"), version_base="1.1"):
            cfg = compose(config_name="config", overrides=isaacgymenvs_arguments(user, search_path))
        train = OmegaConf.to_container(cfg.train, resolve=True)["params"]["config"]
        assert (train["lr_schedule"], train["max_epochs"]) == ("linear", epochs)


def test_user_overrides_win(fake_isaacgymenvs):
    from tasks.isaacgymenvs_registration import isaacgymenvs_arguments

    user = ["task=HumanoidDeepMimic", "num_envs=64", "sim_engine=isaacgym", "+character=dog3d"]
    arguments = isaacgymenvs_arguments(user, "file:///x")
    assert [a for a in arguments if a.startswith(("num_envs=", "+sim_engine=", "sim_engine=", "+character="))] == \
        ["num_envs=64", "sim_engine=isaacgym", "+character=dog3d"]
