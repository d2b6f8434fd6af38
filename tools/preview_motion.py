"""Play DeepMimic clips kinematically on the MJCF character (no policy), in a window or to an mp4.

    python -m tools.preview_motion motions/humanoid3d_walk.txt               # window
    python -m tools.preview_motion motions/humanoid3d_walk.txt --out walk.mp4
    python -m tools.preview_motion some_folder/ --out all.mp4 --cycles 2     # every clip in a folder
    python -m tools.preview_motion motions/dog3d_trot.txt --out trot.mp4     # the dog, by the clip's name

A clip of duration T played for C cycles at F frames/s gives round(C * T * F) + 1 frames (times
0, 1/F, ..., C * T); clips of a folder play one after another, in name order. Looping clips
carry their root displacement from cycle to cycle, as in training (tasks/reference/motion_lib.py).
"""
import argparse
import os
import sys
import time
from typing import List

from poselib_utils.repository import character_mjcf_of_clip


def clip_paths(inputs: List[str]) -> List[str]:
    """Files as given; folders expand to their .txt clips, sorted by name."""
    paths = []
    for path in inputs:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".txt"))
            if not found:
                raise SystemExit("{}: no .txt clips in this folder".format(path))
            paths.extend(found)
        elif os.path.isfile(path):
            paths.append(path)
        else:
            raise SystemExit("{} does not exist".format(path))
    return paths


def frame_times(duration: float, fps: float, cycles: float) -> "list":
    count = int(round(cycles * duration * fps)) + 1
    return [i / fps for i in range(count)]


def clip_qpos(motion_lib, motion_id: int, times) -> "np.ndarray":
    """[T, 7 + D] qpos of clip ``motion_id`` at ``times`` (root pos, root quat wxyz, hinges)."""
    import torch

    ids = torch.full((len(times),), motion_id, dtype=torch.long)
    state = motion_lib.get_state(ids, torch.tensor(times, dtype=torch.float32))
    return torch.cat([state.root_pos, state.root_rot, state.dof_pos], dim=1).double().numpy()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("motions", nargs="+", help="DeepMimic clip files or folders of clips")
    parser.add_argument("--out", help="write an mp4 here instead of opening a window")
    parser.add_argument("--asset", help="character MJCF (default: the clips' character by name, e.g. dog3d_trot.txt: "
                                         "assets/mjcf/dog3d.xml; humanoid3d otherwise)")
    parser.add_argument("--carry-heading", action="store_true",
                        help="looping clips also carry their turn from cycle to cycle (task.env.carry_cycle_heading)")
    parser.add_argument("--fps", type=float, default=30.0, help="frames per second (default 30)")
    parser.add_argument("--cycles", type=float, default=1.0, help="times through each clip (default 1)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args(argv)
    if args.fps <= 0 or args.cycles <= 0:
        parser.error("--fps and --cycles must be positive")
    paths = clip_paths(args.motions)
    if args.asset is None:
        characters = sorted({character_mjcf_of_clip(p) for p in paths})
        if len(characters) > 1:
            parser.error("these clips are for {} characters ({}): preview one character's clips, or pass --asset".format(
                len(characters), ", ".join(os.path.basename(c) for c in characters)))
        args.asset = characters[0]
    if args.out:
        from tasks.display.gl_backend import select_gl_backend

        select_gl_backend()  # before mujoco is imported
    elif not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and sys.platform.startswith("linux"):
        raise SystemExit("no display: pass --out clip.mp4 to write a video instead")

    from poselib_utils.data_loader import DataFormatError
    from tasks.reference.motion_lib import MotionLib
    from tasks.display.render_scene import GhostScene, follow_camera

    try:
        motion_lib = MotionLib(paths, args.asset, "cpu", carry_heading=args.carry_heading)
    except DataFormatError as err:
        raise SystemExit(str(err))
    scene = GhostScene(args.asset, ghost=False)
    plan = [(i, p, frame_times(float(motion_lib.durations[i]), args.fps, args.cycles)) for i, p in enumerate(paths)]

    if args.out:
        from tasks.display.render_scene import OffscreenRenderer
        from tasks.display.viewer import Mp4Writer, ProgressLine

        renderer = OffscreenRenderer(scene.model, args.width, args.height)
        writer = Mp4Writer(args.out, args.fps)
        progress = ProgressLine(sum(len(t) for _, _, t in plan), "preview -> " + args.out)
        for motion_id, path, times in plan:
            for qpos in clip_qpos(motion_lib, motion_id, times):
                scene.set_state(qpos)
                follow_camera(renderer.camera, scene.root_pos())
                writer.append(renderer.render(scene.data))
                progress.update()
        writer.close()
        renderer.close()
        print("wrote {} ({} frames, {:g} fps)".format(args.out, writer.num_frames, args.fps))
        return 0

    import mujoco.viewer

    with mujoco.viewer.launch_passive(scene.model, scene.data) as handle:
        with handle.lock():
            follow_camera(handle.cam, scene.root_pos())
        while handle.is_running():
            for motion_id, path, times in plan:
                print("playing {} ({:.2f} s)".format(os.path.relpath(path), float(motion_lib.durations[motion_id])))
                for qpos in clip_qpos(motion_lib, motion_id, times):
                    if not handle.is_running():
                        return 0
                    start = time.time()
                    with handle.lock():
                        scene.set_state(qpos)
                        handle.cam.lookat[:] = scene.root_pos()
                    handle.sync()
                    time.sleep(max(0.0, 1.0 / args.fps - (time.time() - start)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
