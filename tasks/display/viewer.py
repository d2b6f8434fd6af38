"""Watching env 0: an interactive MuJoCo viewer and mp4 clips, both with the reference ghost.

``TaskWatcher`` is fed by the task after each step. It reads env 0 through the engine contract
(``root_state``, ``dof_state``) and the reference at env 0's clip time from the motion library,
copies both to the host and shows them in a display-only ``GhostScene``, so it works the same
whatever the engine (display is not the hot path; nothing is copied unless a window is open or
a clip is being recorded).

Viewer keys: Space pause/resume, Backspace reset env 0, G show/hide the ghost, B ghost beside /
overlaid. The camera follows the character.
"""
import atexit
import math
import os
import sys
import time
from typing import Any, Dict, Optional

import numpy as np
import torch

VIEWER_HELP = "viewer keys: Space pause, Backspace reset env 0, G ghost on/off, B ghost beside/overlaid, " \
              "Left/Right turn the target heading (goal=heading)"
KEY_SPACE, KEY_BACKSPACE, KEY_B, KEY_G, KEY_RIGHT, KEY_LEFT = 32, 259, 66, 71, 262, 263  # GLFW key codes
STEER_STEP_DEG = 15.0  # a goal's target turns this much per arrow key press
GHOST_BESIDE = np.array([0.0, 1.0, 0.0])  # metres, where "beside" puts the ghost


def character_qpos(root_state: torch.Tensor, dof_pos: torch.Tensor) -> np.ndarray:
    """MuJoCo qpos [7 + D] of one character from a root state [13] (pos, quat wxyz, ...) and hinges [D]."""
    return torch.cat([root_state[0:7], dof_pos]).detach().cpu().double().numpy()


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in ("darwin", "win32")


class ProgressLine:
    """One updating line on a terminal (tqdm-like, no dependency); plain lines when piped."""

    def __init__(self, total: int, label: str, stream=None):
        self.total, self.label, self.count = total, label, 0
        self.stream = stream or sys.stderr
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._start = time.time()
        self._last_print = 0.0

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.time()
        if self.count >= self.total or (self._tty and now - self._last_print > 0.2) or (
                not self._tty and now - self._last_print > 10.0):
            self._last_print = now
            rate = self.count / max(now - self._start, 1e-6)
            text = "{}: {}/{} frames ({:.0f}%, {:.1f} frames/s)".format(
                self.label, self.count, self.total, 100.0 * self.count / max(self.total, 1), rate)
            self.stream.write(("\r" + text) if self._tty else (text + "\n"))
            if self._tty and self.count >= self.total:
                self.stream.write("\n")
            self.stream.flush()


class Mp4Writer:
    """Frames to an H.264 mp4 through imageio-ffmpeg (pip install imageio imageio-ffmpeg)."""

    def __init__(self, path: str, fps: float):
        # Without imageio-ffmpeg, imageio picks another plugin for '.mp4' (tifffile) and fails on the
        # first frame with an unrelated TypeError; ask for both packages up front instead.
        try:
            import imageio
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise RuntimeError('writing mp4 needs imageio and imageio-ffmpeg: pip install -e ".[video]"')
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self.num_frames = 0
        self._writer = imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", quality=7,
                                          macro_block_size=16, pixelformat="yuv420p")

    def append(self, frame: np.ndarray) -> None:
        self._writer.append_data(frame)
        self.num_frames += 1

    def close(self) -> None:
        self._writer.close()


class InteractiveViewer:
    """mujoco.viewer's passive window on a GhostScene, paced to real time, with the keys above."""

    def __init__(self, scene, dt: float):
        import mujoco.viewer

        self.scene, self.dt = scene, dt
        self.paused = False
        self.show_ghost = True
        self.beside = False
        self._reset_requested = False
        self.steer_presses = 0  # arrow presses not yet passed on: + left, - right
        self._last = time.time()
        self._handle = mujoco.viewer.launch_passive(scene.model, scene.data, key_callback=self._on_key,
                                                    show_left_ui=False, show_right_ui=False)
        from tasks.display.render_scene import follow_camera
        with self._handle.lock():
            follow_camera(self._handle.cam, scene.root_pos())
        print(VIEWER_HELP)

    def _on_key(self, key: int) -> None:
        if key == KEY_SPACE:
            self.paused = not self.paused
        elif key == KEY_BACKSPACE:
            self._reset_requested = True
        elif key == KEY_G:
            self.show_ghost = not self.show_ghost
        elif key == KEY_B:
            self.beside = not self.beside
        elif key in (KEY_LEFT, KEY_RIGHT):
            self.steer_presses += 1 if key == KEY_LEFT else -1

    def is_running(self) -> bool:
        return self._handle.is_running()

    def show(self, qpos: np.ndarray, ghost_qpos: Optional[np.ndarray]) -> bool:
        """Draw one frame; blocks while paused. Returns True once after Backspace was pressed."""
        from tasks.display.render_scene import GHOST_GROUP

        if not self._handle.is_running():
            return False
        with self._handle.lock():
            self.scene.ghost_offset = GHOST_BESIDE if self.beside else np.zeros(3)
            self.scene.set_state(qpos, ghost_qpos)
            self._handle.opt.geomgroup[GHOST_GROUP] = 1 if self.show_ghost else 0
            self._handle.cam.lookat[:] = self.scene.root_pos()
        self._handle.sync()
        wait = self.dt - (time.time() - self._last)
        if wait > 0:
            time.sleep(wait)
        while self.paused and self._handle.is_running() and not self._reset_requested:
            with self._handle.lock():
                self._handle.opt.geomgroup[GHOST_GROUP] = 1 if self.show_ghost else 0
            self._handle.sync()
            time.sleep(0.02)
        self._last = time.time()
        requested, self._reset_requested = self._reset_requested, False
        return requested

    def close(self) -> None:
        self._handle.close()


class VideoRecorder:
    """Every ``freq`` steps, a clip of ``length`` frames of env 0 (IsaacGymEnvs' capture_video_freq
    and capture_video_len, counted in policy steps) to ``<out_dir>/env0_step<step>.mp4``; with a
    tensorboard dir, a strip of four of its frames is logged as image ``video/env0``."""

    def __init__(self, scene, out_dir: str, fps: float, length: int = 100, freq: int = 1464, width: int = 640,
                 height: int = 480, tensorboard_dir: Optional[str] = None, frames_per_step: int = 1):
        from tasks.display.render_scene import OffscreenRenderer

        if length <= 0 or freq <= 0:
            raise ValueError("capture_video_len ({}) and capture_video_freq ({}) must be positive".format(
                length, freq))
        self.scene, self.out_dir, self.fps = scene, out_dir, fps
        self.length, self.freq = length, max(freq, length)
        self.frames_per_step = frames_per_step
        self.renderer = OffscreenRenderer(scene.model, width, height)
        self.tensorboard_dir = tensorboard_dir
        self._tb = None
        self._writer = None  # type: Optional[Mp4Writer]
        self._progress = None  # type: Optional[ProgressLine]
        self._thumbs = []
        self._start_step = 0
        self.written = []  # paths of finished clips

    def wants_frame(self, step: int) -> bool:
        return self._writer is not None or step % self.freq == 0

    def add_frame(self, step: int, show_ghost: bool = True) -> None:
        """Call with the state already in ``self.scene``; starts a clip where ``step`` is due."""
        from tasks.display.render_scene import follow_camera

        if self._writer is None:
            if step % self.freq != 0:
                return
            path = os.path.join(self.out_dir, "env0_step{:08d}.mp4".format(step))
            self._writer = Mp4Writer(path, self.fps)
            self._progress = ProgressLine(self.length, "video " + os.path.relpath(path))
            self._thumbs, self._start_step = [], step
        follow_camera(self.renderer.camera, self.scene.root_pos())
        frame = self.renderer.render(self.scene.data, show_ghost=show_ghost)
        self._writer.append(frame)
        self._progress.update()
        if self._writer.num_frames in np.linspace(1, self.length, 4).astype(int):
            self._thumbs.append(frame[::2, ::2])
        if self._writer.num_frames >= self.length:
            self._finish()

    def _finish(self) -> None:
        self._writer.close()
        self.written.append(self._writer.path)
        if self.tensorboard_dir and self._thumbs:
            if self._tb is None:
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(self.tensorboard_dir)
            strip = np.concatenate(self._thumbs, axis=1)
            self._tb.add_image("video/env0", strip, self._start_step * self.frames_per_step, dataformats="HWC")
            self._tb.add_text("video/env0_file", self._writer.path, self._start_step * self.frames_per_step)
            self._tb.flush()
        self._writer = None

    def close(self) -> None:
        if self._writer is not None:
            self._finish()
        if self._tb is not None:
            self._tb.close()
        self.renderer.close()


class TaskWatcher:
    """Connects a HumanoidDeepMimic-like task (engine, motion_lib, motion_ids, motion_times) to a
    viewer and/or a video recorder; the task calls ``after_step`` at the end of each step."""

    def __init__(self, task, mjcf_path: str, viewer: bool, video: Optional[Dict[str, Any]] = None):
        from tasks.display.render_scene import GhostScene

        self.task = task
        self.scene = GhostScene(mjcf_path, ghost=True)
        self.steps = 0
        self.viewer = InteractiveViewer(self.scene, task.dt) if viewer else None
        self.recorder = None
        if video:
            self.recorder = VideoRecorder(self.scene, video["dir"], fps=1.0 / task.dt, length=int(video["len"]),
                                          freq=int(video["freq"]), width=int(video.get("width", 640)),
                                          height=int(video.get("height", 480)),
                                          tensorboard_dir=video.get("tensorboard_dir"),
                                          frames_per_step=task.num_envs)
            atexit.register(self.close)  # rl_games may exit without closing the env: finish the mp4

    def env0_state(self):
        """(simulated qpos, reference qpos) of env 0 on the host."""
        task, engine = self.task, self.task.engine
        sim = character_qpos(engine.root_state()[0], engine.dof_state()[0, :, 0])
        ref = task.reference_now()  # where the reward's reference is: a goal's follows the character
        ghost = character_qpos(torch.cat([ref.root_pos[0], ref.root_rot[0]]), ref.dof_pos[0])
        return sim, ghost

    def after_step(self) -> None:
        viewing = self.viewer is not None and self.viewer.is_running()
        recording = self.recorder is not None and self.recorder.wants_frame(self.steps)
        if viewing or recording:
            sim, ghost = self.env0_state()
            if viewing:
                self._steer_from_keys()
            if viewing and self.viewer.show(sim, ghost):
                self.task.reset_idx(torch.zeros(1, dtype=torch.long, device=self.task.device))
                self.task.obs_buf[:] = self.task.compute_observations()
                sim, ghost = self.env0_state()
            if recording:
                self.scene.ghost_offset = np.zeros(3)
                self.scene.set_state(sim, ghost)
                self.recorder.add_frame(self.steps)
        self.steps += 1

    def _steer_from_keys(self) -> None:
        """Arrow keys turn env 0's goal target, for goals that have one (tasks/goals.py HeadingGoal)."""
        presses, self.viewer.steer_presses = self.viewer.steer_presses, 0
        goal = getattr(self.task, "goal", None)
        if presses and hasattr(goal, "steer"):
            goal.steer(0, math.radians(STEER_STEP_DEG * presses))
            print("target heading of env 0: {:.0f} deg".format(math.degrees(float(goal.target_yaw[0]))))

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None
        if self.viewer is not None:
            self.viewer.close()
            self.viewer = None


def make_watcher(task, mjcf_path: str, headless: bool, video: Optional[Dict[str, Any]]) -> Optional[TaskWatcher]:
    """A watcher when there is something to show: a window (not headless, and a display) or video."""
    viewer = not headless and has_display()
    if not headless and not viewer:
        print("no display found: no viewer (headless=True silences this)")
    if not viewer and not video:
        return None
    return TaskWatcher(task, mjcf_path, viewer, video)
