"""The task's step replayed as one CUDA graph (tasks/base/step_graph.py) against the eager step.

The graph tests need a CUDA device and mujoco_warp (they run on the GPU machine); the CPU test
checks that the CPU engine always steps eagerly.
"""
import importlib.util

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from tasks.config import CONFIG_DIR, register_resolvers
from tasks.humanoid_deepmimic import HumanoidDeepMimic
from tasks.rlgames.resume_state import capture_task_state, restore_task_state

needs_gpu_engine = pytest.mark.skipif(
    not torch.cuda.is_available() or importlib.util.find_spec("mujoco_warp") is None,
    reason="needs a CUDA device and mujoco_warp")
NUM_ENVS = 64


def build(engine: str, device: str, *overrides) -> HumanoidDeepMimic:
    register_resolvers()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["num_envs={}".format(NUM_ENVS), "sim_engine=" + engine] + list(overrides))
    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    task_cfg["env"]["num_threads"] = 2
    return HumanoidDeepMimic(task_cfg, device, device, 0, True)


def test_the_cpu_engine_steps_eagerly():
    task = build("mujoco", "cpu")
    assert task.captured_step is None
    task.close()


@needs_gpu_engine
def test_the_flag_turns_the_graph_off():
    task = build("mujoco_warp", "cuda:0", "task.env.cuda_graph_step=False")
    assert task.captured_step is None
    task.close()


@needs_gpu_engine
def test_replayed_steps_equal_eager_steps():
    # Each step three times from the same state: as the task steps (3 eager warm-up steps, the
    # capture, then replays) and twice eagerly; then on from the first's state. The two eager steps
    # give the floor (GPU atomics in the contact solve may round differently from run to run); the
    # graph must stay within a small multiple of it. No episode ends, so random draws do not matter.
    task = build("mujoco_warp", "cuda:0", "task.env.enable_early_termination=False", "task.env.episode_length_s=100")
    task.reset()
    torch.manual_seed(0)
    rows, episode_buffers = [], set()
    for step in range(8):
        actions = torch.rand(NUM_ENVS, task.num_actions, device="cuda:0") * 2 - 1
        before = capture_task_state(task)
        obs, rew, reset, extras = task.step(actions)
        replayed = (obs["obs"], rew.clone(), reset.clone())
        if task.captured_step.graph is not None:  # replays return the graph's buffers, also after eager steps
            episode_buffers.add(extras["episode"]["ep_reward"].data_ptr())
        after = capture_task_state(task)
        eager = []
        for _ in range(2):
            restore_task_state(task, before)
            obs, rew, reset, _ = task.step_eagerly(actions)
            eager.append((obs["obs"].clone(), rew.clone(), reset.clone()))
        obs_gap = (eager[0][0] - replayed[0]).abs().max(dim=0)
        rows.append({"step": step, "obs_gap": float(obs_gap.values.max()), "obs_index": int(obs_gap.values.argmax()),
                     "obs_floor": float((eager[0][0] - eager[1][0]).abs().max()),
                     "rew_gap": float((eager[0][1] - replayed[1]).abs().max()),
                     "rew_floor": float((eager[0][1] - eager[1][1]).abs().max()),
                     "resets": (int(replayed[2].sum()), int(eager[0][2].sum()))})
        restore_task_state(task, after)
    table = "\n".join(str(r) for r in rows)
    for r in rows:
        assert r["obs_gap"] <= max(1e-4, 10 * r["obs_floor"]), table
        assert r["rew_gap"] <= max(1e-5, 10 * r["rew_floor"]), table
        assert r["resets"] == (0, 0), table
    assert task.captured_step.graph is not None and len(episode_buffers) == 1, (table, episode_buffers)
    kept = task.step(actions)[0]["obs"]
    assert not torch.equal(task.step(actions)[0]["obs"], kept) and kept.abs().sum() > 0  # the caller's to keep
    task.close()


@needs_gpu_engine
def test_replayed_steps_restart_finished_envs_at_new_reference_states():
    task = build("mujoco_warp", "cuda:0")
    task.reset()
    actions = torch.zeros(NUM_ENVS, task.num_actions, device="cuda:0")
    for _ in range(5):
        task.step(actions)
    assert task.captured_step.graph is not None
    pushed = torch.zeros(NUM_ENVS, dtype=torch.bool, device="cuda:0")
    pushed[: NUM_ENVS // 2] = True
    drawn_times = []
    for _ in range(2):
        ref = task.motion_lib.get_state(task.motion_ids, task.motion_times)
        # 3 m above its reference: farther than termination_distance, so the episode ends
        task.engine.set_state(pushed, ref.root_pos + torch.tensor([0.0, 0.0, 3.0], device="cuda:0"), ref.root_rot,
                              ref.root_vel, ref.root_ang_vel, ref.dof_pos, ref.dof_vel)
        _, _, resets, _ = task.step(actions)
        assert torch.equal(resets.bool()[pushed], torch.ones_like(pushed[pushed]))
        assert (task.progress_buf[pushed] == 0).all()
        new_ref = task.motion_lib.get_state(task.motion_ids, task.motion_times)
        root_pos = task.engine.root_state()[:, 0:3]
        assert torch.allclose(root_pos[pushed], new_ref.root_pos[pushed], atol=1e-4)
        drawn_times.append(task.motion_times[pushed].clone())
    assert not torch.equal(drawn_times[0], drawn_times[1])  # each replay draws new start times
    task.close()
