"""Bad inputs fail once, before start-up, with one line naming the input and what is allowed
(issue: every bad input gets one clear error). One row per input: the overrides given to train.py's
start-up check, the words its message must contain, and anything the row needs missing. ``{bad}``
in an override is a folder of broken copies of the shipped clip and character (``BROKEN_FILES``)."""
import importlib.util
import json
import math
import os
import re

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import train
from benchmarks import evaluate
from poselib_utils.repository import repo_path
from tasks.config import CONFIG_DIR, SettingError
from tasks.rlgames.evaluation import non_finite_metrics

WALK = repo_path("motions/humanoid3d_walk.txt")
CHARACTER = repo_path("assets/mjcf/humanoid3d.xml")


def _walk_clip() -> dict:
    with open(WALK) as f:
        return json.load(f)


def _clip_with(row: int, column: int, value: float) -> str:
    """The walk clip with one number changed (column 0 is the frame's duration)."""
    clip = _walk_clip()
    clip["Frames"][row][column] = value
    return json.dumps(clip)


def _clip_frames_cut_to(width: int) -> str:
    clip = _walk_clip()
    clip["Frames"] = [frame[:width] for frame in clip["Frames"]]
    return json.dumps(clip)


def _character_with(old: str, new: str) -> str:
    with open(CHARACTER) as f:
        text = f.read()
    assert old in text
    return text.replace(old, new, 1)


BROKEN_FILES = {  # name: text; finite but absurd clip values, and characters MuJoCo refuses
    "short_frames.txt": lambda: _clip_frames_cut_to(43),
    "long_frame.txt": lambda: _clip_with(3, 0, 1e30),
    "far_root.txt": lambda: _clip_with(3, 1, 1e30),
    "high_root.txt": lambda: _clip_with(3, 2, -1e30),
    "knee_1e30.txt": lambda: _clip_with(5, 20, 1e30),  # right_knee, the first revolute joint
    "negative_mass.xml": lambda: _character_with('mass="', 'mass="-'),
    "unknown_attribute.xml": lambda: _character_with("<geom ", '<geom bogus="1" '),
    "actuator_on_missing_joint.xml": lambda: _character_with('joint="right_knee"', 'joint="no_such_knee"'),
}

ROWS = [
    # (overrides, expected words, packages made unavailable)
    (["sim_engine=warp_drive"], ["unknown sim_engine 'warp_drive'"], ()),
    (["matmul_precision=fast"], ["matmul_precision must be one of highest, high, medium, got 'fast'"], ()),
    (["task.env.motion_file={bad}/short_frames.txt"], ["short_frames.txt: frame 0: has 43 numbers", "needs 44"], ()),
    (["task.env.motion_file=motions"], ["task.env.motion_file", "/motions: is a folder",
                                        "a clip (.txt, .npy), a dataset (.yaml, .json)"], ()),
    (["task.env.motion_file=motions/no_such_clip.txt"], ["no_such_clip.txt does not exist"], ()),
    (["task.env.motion_file=motions/dog3d_trot.txt"], ["dog3d_trot.txt: frame 0: has 84 numbers", "needs 44",
                                                      "its name says dog3d: add character=dog3d"], ()),
    (["character=dog3d", "task.env.contact_bodies=[right_ankle]"], ["right_ankle"], ()),
    (["capture_video=True"], ["capture_video=True needs imageio and imageio-ffmpeg", 'pip install -e ".[video]"'],
     ("imageio_ffmpeg",)),
    (["num_envs=0"], ["num_envs must be a whole number >= 1", "got 0"], ()),
    (["checkpoint=checkpoints/no_such.pth"], ["checkpoint checkpoints/no_such.pth does not exist"], ()),
    # numbers and switches outside what they allow (tasks/config.py)
    (["num_envs=2.5"], ["num_envs must be a whole number >= 1", "got 2.5"], ()),
    (["max_iterations=-1"], ["max_iterations must be a whole number >= 1", "got -1"], ()),
    (["max_iterations=abc"], ["max_iterations must be a whole number >= 1", "got 'abc'"], ()),
    (["seed=abc"], ["seed must be a whole number from 0 to 2147483647", "got 'abc'"], ()),
    (["headless=maybe"], ["headless must be True or False", "got 'maybe'"], ()),
    (["task.env.episode_length_s=0"], ["task.env.episode_length_s must be a number > 0, got 0"], ()),
    (["task.env.episode_length_s=-5"], ["task.env.episode_length_s must be a number > 0, got -5"], ()),
    (["task.env.evaluation_horizon_s=0"], ["task.env.evaluation_horizon_s must be a number > 0"], ()),
    (["task.env.termination_distance=-1"], ["task.env.termination_distance must be a number > 0, got -1"], ()),
    (["task.env.contact_force_threshold=-1"], ["task.env.contact_force_threshold must be a number >= 0"], ()),
    (["task.env.sim_freq_hz=100"], ["task.env.sim_freq_hz (100.0) must be a whole multiple of "
                                    "task.env.control_freq_hz (30.0)"], ()),
    (["task.env.control_freq_hz=0"], ["task.env.control_freq_hz must be a number > 0, got 0"], ()),
    (["task.env.obs.target_frames=[0,1]"], ["task.env.obs.target_frames must be a list of whole numbers, "
                                            "each >= 1"], ()),
    (["task.env.goal.kind=punch"], ["task.env.goal.kind must be one of none, heading, strike, got 'punch'"], ()),
    (["goal=strike", "task.env.goal.distance_m=[1.2,0.6]"],
     ["task.env.goal.distance_m must be a range [low, high] with low <= high, got [1.2, 0.6]"], ()),
    (["task.env.push.spread_s=-1"], ["task.env.push.spread_s must be a number >= 0, got -1"], ()),
    (["+train.params.config.player.push_search={{directions_deg:[0],survival:2}}"],
     ["train.params.config.player.push_search.survival must be a number from 0 to 1, got 2"], ()),
    (["task.reward.pose_scale=-2"], ["task.reward.pose_scale must be a number >= 0, got -2"], ()),
    (["task.reward.root_w=nan"], ["task.reward.root_w must be a number >= 0, got nan"], ()),
    (["task.reward.{}_w=0".format(t) for t in ("pose", "vel", "end_eff", "root", "com")],
     ["task.reward: the term weights", "must have a positive sum"], ()),
    (["train.params.config.horizon_length=0"], ["train.params.config.horizon_length must be a whole number >= 1"], ()),
    (["train.params.config.gamma=1.5"], ["train.params.config.gamma must be a number from 0 to 1, got 1.5"], ()),
    (["train.params.config.learning_rate=-1e-4"], ["train.params.config.learning_rate must be a number > 0"], ()),
    (["train.params.config.minibatch_size=7"], ["train.params.config.minibatch_size (7) must divide "
                                                "num_envs x horizon_length (64 x 32 = 2048)"], ()),
    (["train.params.network.mlp.units=[]"], ["train.params.network.mlp.units must be a non-empty list"], ()),
    (["task.env.contact_bodies=[right_ankle,left_foot]"], ["task.env.contact_bodies: unknown bodies ['left_foot']",
                                                          "humanoid3d.xml has ['root', 'chest'"], ()),
    (["task.env.contact_bodies=everything"], ["task.env.contact_bodies: a list of body names or 'character', "
                                              "got 'everything'"], ()),
    (["task.env.contact_bodies=5"], ["task.env.contact_bodies: a list of body names or 'character', got 5"], ()),
    # finite but absurd clip values (poselib_utils/data_loader.py)
    (["task.env.motion_file={bad}/long_frame.txt"], ["long_frame.txt: frame 3: field 'duration' (column 0) is "
                                                     "1e+30 s; a frame may last at most 10 s"], ()),
    (["task.env.motion_file={bad}/far_root.txt"], ["far_root.txt: frame 3: root position (column 1) is 1e+30 m",
                                                   "at most 1000 m"], ()),
    (["task.env.motion_file={bad}/high_root.txt"], ["high_root.txt: frame 3: root position (column 2)"], ()),
    (["task.env.motion_file={bad}/knee_1e30.txt"], ["knee_1e30.txt: frame 5 joint 'right_knee': angle (column 20) "
                                                    "is 1e+30 rad", "within +-2 pi"], ()),
    # characters that parse but MuJoCo refuses: the message names the file
    (["task.env.asset_file={bad}/negative_mass.xml"], ["task.env.asset_file:", "negative_mass.xml: MuJoCo rejects it",
                                                        "negative"], ()),
    (["task.env.asset_file={bad}/unknown_attribute.xml"], ["unknown_attribute.xml: MuJoCo rejects it",
                                                            "unrecognized attribute: 'bogus'"], ()),
    (["task.env.asset_file={bad}/actuator_on_missing_joint.xml"],
     ["actuator_on_missing_joint.xml: MuJoCo rejects it", "no_such_knee"], ()),
]


@pytest.fixture(scope="module")
def broken_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("broken")
    for name, text in BROKEN_FILES.items():
        (folder / name).write_text(text())
    return str(folder)


@pytest.mark.parametrize("overrides, words, unavailable", ROWS, ids=lambda v: str(v))
def test_bad_input_fails_at_start_with_one_line(overrides, words, unavailable, broken_files, monkeypatch):
    overrides = [o.format(bad=broken_files) for o in overrides]
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in unavailable else real_find_spec(name, *a))
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["sim_engine=mujoco"] + overrides)
    with pytest.raises(SystemExit) as err:
        train.check_config(cfg)
    message = str(err.value.code)
    assert "\n" not in message and all(w in message for w in words), message


def test_the_shipped_settings_pass():
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        for skill in sorted(os.listdir(os.path.join(CONFIG_DIR, "skill"))):
            cfg = compose(config_name="config", overrides=["sim_engine=mujoco", "skill=" + skill[:-len(".yaml")]])
            assert train.check_config(cfg) == "mujoco"


def test_the_task_checks_its_settings_before_building_anything():
    """The IsaacGymEnvs entry builds the task without train.py's check: the task runs the same one."""
    from tasks.humanoid_deepmimic import HumanoidDeepMimic

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["sim_engine=mujoco", "num_envs=2",
                                                       "task.env.termination_distance=-1"])
    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    with pytest.raises(SettingError, match=re.escape("task.env.termination_distance must be a number > 0, got -1")):
        HumanoidDeepMimic(task_cfg, "cpu", "cpu", 0, True)


@pytest.mark.parametrize("flag, value, words", [
    ("--horizon", "0", "argument --horizon: must be a number of seconds > 0, got '0'"),
    ("--horizon", "-1", "argument --horizon: must be a number of seconds > 0, got '-1'"),
    ("--horizon", "inf", "argument --horizon: must be a number of seconds > 0, got 'inf'"),
    ("--num-envs", "0", "argument --num-envs: must be a whole number > 0, got '0'"),
    ("--num-envs", "2.5", "argument --num-envs: must be a whole number > 0, got '2.5'"),
])
def test_evaluate_refuses_a_horizon_or_env_count_that_measures_nothing(flag, value, words, capsys):
    with pytest.raises(SystemExit) as err:
        evaluate.main(["--checkpoint", "checkpoints/humanoid3d_walk.pth", flag, value])
    assert err.value.code == 2 and words in capsys.readouterr().err


def test_metrics_that_are_not_finite_are_named():
    summary = {"walk": {"mpjpe_g_mm": math.inf, "success_rate": 1.0, "num_episodes": 1},
               "all": {"mpjpe_g_mm": math.nan, "success_rate": 1.0}}
    assert non_finite_metrics(summary) == ["walk mpjpe_g_mm", "all mpjpe_g_mm"]
    assert non_finite_metrics({"walk": {"mpjpe_g_mm": 20.0}}) == []
