"""Tracking metrics of a checkpoint: every env plays its clip once from time 0, deterministically.

    python benchmarks/evaluate.py --checkpoint runs/walk/nn/HumanoidDeepMimic.pth \
        [--motion-file motions/humanoid3d_walk.txt ...] [--num-envs N] [--horizon 20] [--json out.json]

Runs train.py's play path (hydra config, rl_games Runner and player, the task in evaluation
mode) and prints the per-clip table of tasks/tracking_metrics.py; ``--json`` writes it.
Clips are assigned to envs round-robin (default: one env per clip). With deterministic actions
and the CPU engine every env of a clip plays the same episode, so more envs per clip only add
information with ``--stochastic`` (sampled actions) or a nondeterministic GPU engine. Further
hydra overrides can follow ``--``, e.g. ``-- task.env.enable_early_termination=False``. The
character is the clips' by their names (``--motion-file motions/dog3d_trot.txt``: ``character=dog3d``)
unless ``-- character=...`` says otherwise. ``--push-force 240 --push-direction 0`` pushes every env's
root for 0.2 s at 1 s (``task.env.push``), as DeepMimic's paper tests robustness; then only falls end
an episode (no reference-distance termination), so success is survival. ``--push-spread 1.2`` pushes
env i of N at 1 s + 1.2 s * i / N (every phase of a cycle); ``--push-search 0 90`` finds the largest
force survived forward and sideways (tasks/rlgames/push_search.py), ``--json`` then writes its trials.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's packages


def quote(value: str) -> str:
    """A hydra override value that keeps paths with '=' or ',' in one piece."""
    return "'{}'".format(value.replace("\\", "\\\\").replace("'", "\\'"))


def positive(kind):
    """An argparse type: a finite ``kind`` (int or float) above 0, or one line saying what is allowed."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0 or value == float("inf"):
            raise argparse.ArgumentTypeError("must be a {} > 0, got {!r}".format(
                "whole number" if kind is int else "number of seconds", text))
        return value
    return parse


def build_overrides(args) -> list:
    from poselib_utils.data_loader import DataFormatError
    from poselib_utils.motion_dataset import resolve_motion_files
    from poselib_utils.repository import character_of_clip

    overrides = ["task=HumanoidDeepMimic", "test=True", "headless=True", "task.env.evaluation=True",
                 "checkpoint={}".format(quote(os.path.abspath(args.checkpoint))),
                 "task.env.evaluation_horizon_s={}".format(float(args.horizon)), "sim_engine={}".format(args.engine)]
    if args.motion_file:
        files = [os.path.abspath(f) for f in args.motion_file]
        overrides.append("task.env.motion_file=[{}]".format(",".join(quote(f) for f in files)))
        try:
            clips = resolve_motion_files(files)[0]  # a dataset file counts its clips
        except (FileNotFoundError, DataFormatError) as err:
            raise SystemExit("--motion-file: {}".format(err))
        num_clips = len(clips)
        characters = {character_of_clip(c) for c in clips}
        if len(characters) == 1 and None not in characters and \
                not any(o.lstrip("+").startswith("character=") for o in args.overrides):
            overrides.append("character=" + characters.pop())  # dog3d_trot.txt: the dog
    else:
        num_clips = 1
    overrides.append("num_envs={}".format(args.num_envs or num_clips))
    if args.json:
        overrides.append("+train.params.config.player.metrics_json={}".format(quote(os.path.abspath(args.json))))
    if args.stochastic:
        overrides.append("train.params.config.player.deterministic=False")
    if args.push_force or args.push_search:
        overrides += ["task.env.push.force_n={}".format(args.push_force or 0.0),
                      "task.env.push.direction_deg={}".format(args.push_direction),
                      "task.env.push.at_s={}".format(args.push_at), "task.env.push.duration_s={}".format(args.push_duration),
                      "task.env.push.spread_s={}".format(args.push_spread)]
    if args.push_search:
        overrides.append("+train.params.config.player.push_search={{directions_deg:[{}],survival:{},resolution_n:{}}}".format(
            ",".join(str(d) for d in args.push_search), args.push_survival, args.push_resolution))
    elif args.push_force:
        if not any(o.startswith("task.env.termination_distance=") for o in args.overrides):
            # DeepMimic's perturbation test counts falls: a pushed character that strays from its
            # reference and keeps its feet has survived
            overrides.append("task.env.termination_distance=1000.0")
    return overrides + list(args.overrides)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="rl_games .pth written by train.py")
    parser.add_argument("--motion-file", nargs="+", help="clip(s) to evaluate (default: the task config's)")
    parser.add_argument("--num-envs", type=positive(int), help="envs (default: one per clip)")
    parser.add_argument("--horizon", type=positive(float), default=20.0, help="seconds for looping clips (others play once)")
    parser.add_argument("--json", help="write the metrics here")
    parser.add_argument("--engine", default="auto", help="sim_engine: auto, mujoco, mujoco_warp")
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the mean")
    parser.add_argument("--push-force", type=positive(float), help="newtons: push every env's root once (DeepMimic's "
                        "perturbation test); success is then the share that survives it")
    parser.add_argument("--push-direction", type=float, default=0.0,
                        help="degrees to the left of the character's heading: 0 forward, 90 sideways")
    parser.add_argument("--push-at", type=float, default=1.0, help="episode time of the push (s)")
    parser.add_argument("--push-duration", type=positive(float), default=0.2, help="seconds (DeepMimic's: 0.2)")
    parser.add_argument("--push-spread", type=float, default=0.0, help="seconds: env i of N is pushed at "
                        "push-at + spread * i / N (many phases of a cycle, one per env)")
    parser.add_argument("--push-search", type=float, nargs="+", metavar="DEG", help="search the largest push survived "
                        "in these directions (e.g. 0 90) instead of one evaluation")
    parser.add_argument("--push-survival", type=float, default=1.0, help="share of episodes a force must leave "
                        "standing to count as survived (search)")
    parser.add_argument("--push-resolution", type=positive(float), default=10.0, help="newtons (search)")
    parser.add_argument("overrides", nargs="*", help="hydra overrides, after --")
    args = parser.parse_args(argv)

    from hydra import compose, initialize_config_dir

    import train
    from tasks.config import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=build_overrides(args))
    train.main(cfg)


if __name__ == "__main__":
    main()
