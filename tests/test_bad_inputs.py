"""Bad inputs fail once, before start-up, with one line naming the input and what is allowed
(issue: every bad input gets one clear error). One row per input: the overrides given to train.py's
start-up check, the words its message must contain, and anything the row needs missing."""
import importlib.util

import pytest
from hydra import compose, initialize_config_dir

import train
from tasks.config import CONFIG_DIR

ROWS = [
    # (overrides, expected words, packages made unavailable)
    (["task.env.motion_file=motions"], ["task.env.motion_file", "/motions: is a folder",
                                        "a clip (.txt), a dataset (.yaml, .json)"], ()),
    (["task.env.motion_file=motions/no_such_clip.txt"], ["no_such_clip.txt does not exist"], ()),
    (["capture_video=True"], ["capture_video=True needs imageio and imageio-ffmpeg", 'pip install -e ".[video]"'],
     ("imageio_ffmpeg",)),
    (["num_envs=0"], ["num_envs must be positive, got 0"], ()),
    (["checkpoint=checkpoints/no_such.pth"], ["checkpoint checkpoints/no_such.pth does not exist"], ()),
]


@pytest.mark.parametrize("overrides, words, unavailable", ROWS, ids=lambda v: str(v))
def test_bad_input_fails_at_start_with_one_line(overrides, words, unavailable, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in unavailable else real_find_spec(name, *a))
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["sim_engine=mujoco"] + overrides)
    with pytest.raises(SystemExit) as err:
        train.check_config(cfg)
    message = str(err.value.code)
    assert "\n" not in message and all(w in message for w in words), message
