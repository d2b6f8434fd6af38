"""Watching results (issue 6): offscreen frames of the character and its reference ghost, mp4
clips of env 0 recorded by the task, and the motion preview command. Rendering uses EGL or
OSMesa (tasks/display/gl_backend.py); the tests skip, saying why, where neither works."""
import sys
import json
import os

import numpy as np
import pytest
import torch
from poselib_utils.repository import REPO_ROOT

MJCF = os.path.join(REPO_ROOT, "assets", "mjcf", "humanoid3d.xml")
WALK = os.path.join(REPO_ROOT, "motions", "humanoid3d_walk.txt")
imageio = pytest.importorskip("imageio", reason="mp4 tests need imageio + imageio-ffmpeg (pip install -e '.[video]')")


@pytest.fixture(scope="module")
def gl_backend():
    from tasks.display.gl_backend import NoOffscreenBackendError, select_gl_backend

    try:
        return select_gl_backend()
    except NoOffscreenBackendError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def walk_qpos():
    """Reference qpos of the walk clip at two times 0.3 s apart (character, ghost)."""
    from tasks.reference.motion_lib import MotionLib

    lib = MotionLib([WALK], MJCF, "cpu")
    state = lib.get_state(torch.zeros(2, dtype=torch.long), torch.tensor([0.4, 0.7]))
    qpos = torch.cat([state.root_pos, state.root_rot, state.dof_pos], dim=1).double().numpy()
    return qpos[0], qpos[1]


def test_ghost_scene_is_a_second_character_without_collisions():
    import mujoco

    from tasks.display.render_scene import GHOST_PREFIX, GhostScene

    plain = mujoco.MjModel.from_xml_path(MJCF)
    scene = GhostScene(MJCF)
    m = scene.model
    assert m.nq == 2 * plain.nq and scene.character_nq == plain.nq
    ghost_geoms = [g for g in range(m.ngeom) if m.geom(g).name.startswith(GHOST_PREFIX)]
    assert len(ghost_geoms) == plain.ngeom
    assert all(m.geom_contype[g] == 0 and m.geom_conaffinity[g] == 0 for g in ghost_geoms)
    assert all(m.geom_rgba[g][3] < 1 for g in ghost_geoms)  # translucent


def test_frames_show_the_character_on_screen_and_the_ghost(gl_backend, walk_qpos):
    from tasks.display.render_scene import GhostScene, OffscreenRenderer, follow_camera

    scene = GhostScene(MJCF)
    renderer = OffscreenRenderer(scene.model, 320, 240)
    try:
        qpos, ghost_qpos = walk_qpos
        scene.set_state(qpos, ghost_qpos)
        root = scene.root_pos()
        follow_camera(renderer.camera, root)
        with_ghost = renderer.render(scene.data, show_ghost=True)
        col, row = renderer.project(root)
        no_ghost = renderer.render(scene.data, show_ghost=False)
        away = qpos.copy()
        away[0] += 100.0  # character and ghost far out of view, camera unchanged
        scene.set_state(away, away)
        empty = renderer.render(scene.data, show_ghost=False)
    finally:
        renderer.close()

    assert with_ghost.shape == (240, 320, 3) and with_ghost.std() > 10  # not blank
    assert 0 <= col < 320 and 0 <= row < 240  # the root projects inside the frame
    character = np.abs(no_ghost.astype(int) - empty.astype(int)).sum(-1) > 30
    assert character.sum() > 500  # a human figure, not a speck
    rows, cols = np.nonzero(character)
    assert rows.min() <= row <= rows.max() and cols.min() <= col <= cols.max()
    assert character[100:140, 140:180].any()  # drawn in the middle of the frame
    ghost = np.abs(with_ghost.astype(int) - no_ghost.astype(int)).sum(-1) > 30
    assert ghost.sum() > 200
    tint = with_ghost[ghost].astype(int)
    assert (tint[:, 0] - tint[:, 2]).mean() > 20  # the ghost is orange over a blue-grey scene


@pytest.mark.parametrize("character", ["humanoid3d", "dog3d"])
def test_task_records_env0_clips(gl_backend, tmp_path, character):
    from tests.test_task import make_cfg
    from omegaconf import OmegaConf

    from tasks.humanoid_deepmimic import HumanoidDeepMimic

    cfg = make_cfg("num_envs=2", "character=" + character)
    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    task_cfg["env"]["num_threads"] = 2
    task_cfg["video"] = {"dir": str(tmp_path / "videos"), "freq": 6, "len": 4, "width": 160, "height": 128,
                         "tensorboard_dir": str(tmp_path / "summaries")}
    task = HumanoidDeepMimic(task_cfg, "cpu", "cpu", 0, True)
    task.reset()
    for _ in range(8):  # clips start at steps 0 and 6; the second is cut at close after 2 frames
        task.step(torch.zeros(task.num_envs, task.num_actions))
    task.close()
    videos = sorted(os.listdir(str(tmp_path / "videos")))
    assert videos == ["env0_step00000000.mp4", "env0_step00000006.mp4"]
    counts = [sum(1 for _ in imageio.get_reader(str(tmp_path / "videos" / v))) for v in videos]
    assert counts == [4, 2]
    frame = imageio.get_reader(str(tmp_path / "videos" / videos[0])).get_data(0)
    assert frame.shape == (128, 160, 3) and frame.std() > 10
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(str(tmp_path / "summaries")))


def test_preview_command_writes_the_clip(gl_backend, tmp_path):
    from tools.preview_motion import main

    with open(WALK) as f:
        frames = json.load(f)["Frames"]
    duration = sum(frame[0] for frame in frames[:-1])  # DeepMimic: the last frame's duration is unused
    fps = 15.0
    out = str(tmp_path / "walk.mp4")
    assert main([WALK, "--out", out, "--fps", str(fps), "--width", "160", "--height", "128"]) == 0
    reader = imageio.get_reader(out)
    assert reader.get_meta_data()["fps"] == pytest.approx(fps)
    frames_read = [frame for frame in reader]  # list() trips on the reader's infinite len()
    assert len(frames_read) == int(round(duration * fps)) + 1
    assert frames_read[0].shape == (128, 160, 3)
    # the character walks: first and last frames differ (the camera follows, the floor slides by)
    assert np.abs(frames_read[0].astype(int) - frames_read[-1].astype(int)).mean() > 1


def test_preview_plays_a_dog_clip_on_the_dog(gl_backend, tmp_path):
    from poselib_utils.repository import character_mjcf_of_clip
    from tools.preview_motion import main

    trot = os.path.join(REPO_ROOT, "motions", "dog3d_trot.txt")
    assert os.path.basename(character_mjcf_of_clip(trot)) == "dog3d.xml"
    out = str(tmp_path / "trot.mp4")
    assert main([trot, "--out", out, "--fps", "10", "--width", "160", "--height", "128"]) == 0
    frames_read = [frame for frame in imageio.get_reader(out)]
    assert len(frames_read) > 5 and frames_read[0].std() > 10


def test_preview_refuses_clips_of_two_characters_without_an_asset():
    from tools.preview_motion import main

    with pytest.raises(SystemExit):
        main([WALK, os.path.join(REPO_ROOT, "motions", "dog3d_trot.txt"), "--out", "x.mp4"])


def test_mp4_writer_without_imageio_ffmpeg_names_the_package(tmp_path, monkeypatch):
    """imageio alone would pick its TIFF plugin for '.mp4' and fail on the first frame; the writer
    must refuse at once and say what to install (seen on a GPU machine with imageio but no ffmpeg)."""
    from tasks.display.viewer import Mp4Writer

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    with pytest.raises(RuntimeError, match="imageio-ffmpeg"):
        Mp4Writer(str(tmp_path / "x.mp4"), fps=30)
    assert not (tmp_path / "x.mp4").exists()
