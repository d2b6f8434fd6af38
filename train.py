"""Train or play HumanoidDeepMimic with rl_games, configured by hydra (IsaacGymEnvs' train.py).

    python train.py task=HumanoidDeepMimic                                  # train
    python train.py task=HumanoidDeepMimic test=True checkpoint=runs/<run>/nn/HumanoidDeepMimic.pth
"""
import datetime
import importlib.util
import os

import hydra
from omegaconf import DictConfig, OmegaConf

from poselib_utils.repository import repo_path
from tasks.config import RUNS_DIR, SettingError, check_run_settings, default_num_envs, register_resolvers
from tasks.rlgames.stop_request import StopRequest

STARTUP_STOP_REQUEST = None  # installed by ``__main__`` before anything else; main() installs one otherwise
MATMUL_PRECISIONS = ("highest", "high", "medium")  # torch.set_float32_matmul_precision's
ENGINE_PACKAGES = {"mujoco_warp": ("mujoco_warp", 'pip install -e ".[gpu]"'),
                   "isaacgym": ("isaacgym", "install IsaacGym Preview 4 (see docs/isaacgym.md)")}


def check_config(cfg: DictConfig) -> str:
    """Fail fast, with one message, on settings that would only break after start-up.
    Returns the engine name and fills in the env count where it is ``auto``."""
    engine = _check_engine(cfg.sim_engine)
    num_envs = _check_settings(cfg, engine)
    _check_motion(cfg, num_envs)
    if cfg.matmul_precision not in MATMUL_PRECISIONS:
        raise SystemExit("matmul_precision must be one of {}, got {!r}".format(
            ", ".join(MATMUL_PRECISIONS), cfg.matmul_precision))
    if cfg.test and not cfg.checkpoint:
        raise SystemExit("test=True needs checkpoint=<path to a .pth file>")
    if cfg.test and cfg.multi_gpu:
        raise SystemExit("test=True plays in one process; drop multi_gpu=True")
    if cfg.capture_video and not all(importlib.util.find_spec(p) for p in ("imageio", "imageio_ffmpeg")):
        raise SystemExit('capture_video=True needs imageio and imageio-ffmpeg: pip install -e ".[video]"')
    if cfg.wandb_activate and importlib.util.find_spec("wandb") is None:
        raise SystemExit("wandb_activate=True needs the 'wandb' package: pip install wandb "
                         "(tensorboard logs are written either way)")
    if cfg.checkpoint and not os.path.isfile(cfg.checkpoint):
        raise SystemExit("checkpoint {} does not exist".format(cfg.checkpoint))
    return engine


def _check_engine(name: str) -> str:
    from tasks.engines import resolve_engine_name

    try:
        engine = resolve_engine_name(name)
    except ValueError as err:
        raise SystemExit(str(err))
    if engine in ENGINE_PACKAGES and importlib.util.find_spec(ENGINE_PACKAGES[engine][0]) is None:
        raise SystemExit("sim_engine={} needs the '{}' package: {}".format(engine, *ENGINE_PACKAGES[engine]))
    return engine


def _check_settings(cfg: DictConfig, engine: str) -> int:
    """Every numeric and on/off setting within what it allows (tasks/config.py); returns the env count."""
    if cfg.task.env.num_envs == "auto":
        cfg.task.env.num_envs = default_num_envs(engine)
    try:
        check_run_settings(cfg)
    except SettingError as err:
        raise SystemExit(str(err))
    return int(cfg.task.env.num_envs)


def _check_motion(cfg: DictConfig, num_envs: int) -> None:
    """The character and every clip load, and the clips fit the character; otherwise they would
    fail only when rl_games builds the env."""
    from poselib_utils.data_loader import DataFormatError
    from poselib_utils.mjcf_character import allowed_contact_bodies, compile_mjcf, load_skeleton_from_mjcf
    from poselib_utils.motion_dataset import check_evaluation_envs, load_clip, resolve_motion_files
    from poselib_utils.repository import character_of_clip

    try:  # a clip, a dataset of weighted clips (poselib_utils/motion_dataset.py) or a list of them
        motion_paths = resolve_motion_files(cfg.task.env.motion_file)[0]
    except FileNotFoundError as err:
        raise SystemExit(str(err))
    except DataFormatError as err:
        raise SystemExit("task.env.motion_file: {}".format(err))
    asset = repo_path(cfg.task.env.asset_file)
    try:
        skeleton = load_skeleton_from_mjcf(asset)
        compile_mjcf(asset)
    except DataFormatError as err:
        raise SystemExit("task.env.asset_file: {}".format(err))
    for full in motion_paths:
        try:
            load_clip(full, skeleton)
        except DataFormatError as err:
            named = character_of_clip(full)
            hint = "; its name says {0}: add character={0}".format(named) \
                if named is not None and named + ".xml" != os.path.basename(asset) else ""
            raise SystemExit("task.env.motion_file: {}{}".format(err, hint))
    contact_bodies = cfg.task.env.contact_bodies
    try:  # DataFormatError is a ValueError
        allowed_contact_bodies(OmegaConf.to_container(contact_bodies) if OmegaConf.is_config(contact_bodies)
                               else contact_bodies, asset, skeleton.joint_names)
    except ValueError as err:
        raise SystemExit(str(err))
    if cfg.task.env.evaluation:
        try:
            check_evaluation_envs(len(motion_paths), num_envs)
        except ValueError as err:
            raise SystemExit(str(err))


def check_checkpoint_fits(checkpoint: str, state: dict, num_obs: int, num_actions: int, termination: dict) -> None:
    """A checkpoint (``state``: as read from the file ``checkpoint``) trained with other observations
    or actions fails here, naming both sizes; one trained under other early-termination settings
    (``termination``: the task's) gets a warning giving the overrides it was trained with, since its
    episodes would end differently here."""
    from tasks.rlgames.export_checkpoint import training_termination_settings

    model = state["model"]
    running_mean = model.get("running_mean_std.running_mean")
    mu = model.get("a2c_network.mu.weight")
    if running_mean is not None and running_mean.shape[0] != num_obs:
        raise SystemExit("checkpoint {} was trained with {} observations; this task has {}".format(
            checkpoint, running_mean.shape[0], num_obs))
    if mu is not None and mu.shape[0] != num_actions:
        raise SystemExit("checkpoint {} was trained with {} actions; this task has {}".format(
            checkpoint, mu.shape[0], num_actions))
    trained = training_termination_settings(state)
    for key, value in sorted((trained or {}).items()):
        if key in termination and termination[key] != value:
            shown = "[{}]".format(",".join(value)) if isinstance(value, list) else value
            print("warning: checkpoint {} was trained with task.env.{}={}, this run has {}; add "
                  "'task.env.{}={}' to play it as trained".format(checkpoint, key, shown, termination[key], key, shown))


@hydra.main(version_base="1.3", config_name="config", config_path="./cfg")
def main(cfg: DictConfig) -> None:
    # SIGTERM from the first moment: during start-up it exits 0 at once, while training it checkpoints;
    # play keeps the default (killed, no results)
    stop_request = STARTUP_STOP_REQUEST or StopRequest().install()
    if cfg.test:
        stop_request.uninstall()
        stop_request = None
    try:
        _run(cfg, stop_request)
    except Exception:
        if stop_request is not None and stop_request.stopped_during_start_up:
            raise SystemExit(0) from None  # the signal's exit, turned into another error on its way up
        raise
    finally:
        if stop_request is not None:
            stop_request.uninstall()


def _run(cfg: DictConfig, stop_request) -> None:
    register_resolvers()
    if cfg.capture_video:  # EGL or OSMesa, chosen before anything imports mujoco (tasks/display/gl_backend.py)
        from tasks.display.gl_backend import select_gl_backend

        select_gl_backend(verbose=True)
    engine = check_config(cfg)
    if engine == "isaacgym":
        import isaacgym  # noqa: F401  (IsaacGym must be imported before torch)
    from tasks.rlgames.checkpoint_loading import load_checkpoint_or_exit

    # read safely (nothing in the file runs) before anything is built and before rl_games opens it
    checkpoint_state = load_checkpoint_or_exit(cfg.checkpoint) if cfg.checkpoint else None

    from tasks.rlgames import distributed

    ranks = distributed.rank_info(cfg.multi_gpu)
    sim_device, rl_device = _set_up_process(cfg, engine, ranks)
    run_name = cfg.experiment or "{}_{}".format(cfg.task_name, datetime.datetime.now().strftime("%d-%H-%M-%S"))
    run_dir = os.path.join(RUNS_DIR, run_name)
    tasks_made = _register_task(cfg, engine, run_dir, ranks.is_main, sim_device, rl_device)
    train_cfg = _train_config(cfg, rl_device, run_name)
    if cfg.checkpoint:
        task = tasks_made.get()
        check_checkpoint_fits(cfg.checkpoint, checkpoint_state, task.num_obs, task.num_actions,
                              task.termination_settings)
    if not cfg.test and ranks.is_main:
        _save_resolved_config(cfg, engine, sim_device, rl_device, ranks.world_size, run_dir)
    runner = _make_runner(cfg, ranks.is_main, run_dir, stop_request)
    runner.load(train_cfg)
    runner.reset()
    runner.run({"train": not cfg.test, "play": cfg.test, "checkpoint": cfg.checkpoint or None, "sigma": None})
    tasks_made.close()  # rl_games never closes its env: windows, video files and engine threads end here
    distributed.shutdown()


def _set_up_process(cfg: DictConfig, engine: str, ranks):
    """This rank's devices, seed and torch settings; returns (sim_device, rl_device)."""
    import torch

    from tasks.rlgames import distributed

    sim_device, rl_device = distributed.rank_devices(engine, ranks, cfg.multi_gpu, cfg.sim_device, cfg.rl_device,
                                                     torch.cuda.is_available())
    if rl_device.startswith("cuda:"):
        torch.cuda.set_device(rl_device)
    torch.manual_seed(cfg.seed + ranks.rank)  # rl_games seeds each rank with seed + RANK as well
    if cfg.torch_deterministic:
        torch.use_deterministic_algorithms(True)
    return sim_device, rl_device


class _TaskOnce:
    """The one task of this process, built when rl_games (or the checkpoint check) first asks."""

    def __init__(self, build):
        self._build = build
        self._task = None

    def get(self):
        if self._task is None:
            self._task = self._build()
        return self._task

    def close(self) -> None:
        if self._task is not None:
            self._task.close()


def _register_task(cfg: DictConfig, engine: str, run_dir: str, is_main: bool, sim_device: str,
                   rl_device: str) -> _TaskOnce:
    """Register the task with rl_games as IsaacGymEnvs does (env 'rlgpu', vec-env 'RLGPU')."""
    from rl_games.common import env_configurations, vecenv

    from tasks.humanoid_deepmimic import HumanoidDeepMimic
    from tasks.rlgames.vecenv import RLGPUEnv

    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    task_cfg["sim_engine"] = engine
    if cfg.capture_video and is_main:  # clips of env 0 with its reference ghost (tasks/display/viewer.py)
        task_cfg["video"] = {"dir": os.path.join(run_dir, "videos"), "freq": int(cfg.capture_video_freq),
                             "len": int(cfg.capture_video_len),
                             "tensorboard_dir": None if cfg.test else os.path.join(run_dir, "summaries")}
    tasks_made = _TaskOnce(lambda: HumanoidDeepMimic(task_cfg, rl_device, sim_device, cfg.graphics_device_id,
                                                     cfg.headless))
    env_configurations.register("rlgpu", {"vecenv_type": "RLGPU", "env_creator": lambda **kwargs: tasks_made.get()})
    vecenv.register("RLGPU", lambda config_name, num_actors, **kwargs: RLGPUEnv(tasks_made.get, config_name,
                                                                                num_actors, **kwargs))
    return tasks_made


def _train_config(cfg: DictConfig, rl_device: str, run_name: str) -> dict:
    train_cfg = OmegaConf.to_container(cfg.train, resolve=True)
    params = train_cfg["params"]
    params["config"]["device"] = rl_device
    params["config"]["device_name"] = rl_device
    params["config"]["full_experiment_name"] = run_name
    params["config"]["train_dir"] = RUNS_DIR
    params["config"]["player"] = dict(params["config"].get("player", {}), games_num=int(cfg.num_test_games))
    if cfg.checkpoint:
        params["load_checkpoint"] = True
        params["load_path"] = cfg.checkpoint
    return train_cfg


def _save_resolved_config(cfg: DictConfig, engine: str, sim_device: str, rl_device: str, world_size: int,
                          run_dir: str) -> None:
    """runs/<run>/config.yaml: the config as run, with the engine and devices as resolved."""
    os.makedirs(run_dir, exist_ok=True)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved["task"]["sim_engine"] = resolved["sim_engine"] = engine
    resolved.update(sim_device=sim_device, rl_device=rl_device, world_size=world_size)
    with open(os.path.join(run_dir, "config.yaml"), "w") as f:
        f.write(OmegaConf.to_yaml(OmegaConf.create(resolved)))


def set_matmul_precision(cfg: DictConfig) -> None:
    """cfg.matmul_precision, applied after rl_games' Runner is built: its constructor turns TF32 on."""
    import torch

    torch.set_float32_matmul_precision(cfg.matmul_precision)


def _make_runner(cfg: DictConfig, is_main: bool, run_dir: str, stop_request):
    """rl_games' runner with our observers, the preemptible agent (checkpoint and stop on
    ``stop_request``, None when playing) and, to play, the evaluation player."""
    from rl_games.torch_runner import Runner

    from tasks.rlgames.checkpointing import register_preemptible_agent
    from tasks.rlgames.evaluation import register_evaluation_player
    from tasks.rlgames.observers import EpisodeStatsObserver, MultiObserver, WandbObserver

    observers = [EpisodeStatsObserver()]
    if cfg.wandb_activate and is_main and not cfg.test:
        observers.append(WandbObserver(cfg.wandb_project, cfg.wandb_entity, cfg.wandb_group,
                                       OmegaConf.to_container(cfg, resolve=True), run_dir))
    runner = Runner(algo_observer=MultiObserver(observers))
    set_matmul_precision(cfg)
    register_preemptible_agent(runner, stop_request)
    if cfg.test:  # tracking metrics at the end of play
        register_evaluation_player(runner)
    return runner


if __name__ == "__main__":
    STARTUP_STOP_REQUEST = StopRequest().install()  # before hydra composes the config
    main()
