"""rl_games' rollout with one host synchronisation per epoch instead of one per step.

rl_games' ``A2CBase.play_steps`` asks the GPU after every env step which envs finished
(``dones.nonzero()``), to feed its game-reward, shaped-reward and length meters; the host then
waits for the step's kernels before it can launch the next step. ``play_steps_one_sync`` keeps each
step's finished games on the device and feeds the meters once, after the rollout, in rl_games' own
order (step by step, envs in index order, one ``update`` per step), so the meters, the printed
rewards and the best-checkpoint choice are what rl_games computes. Everything else is rl_games'
rollout as it is; recurrent policies, action masks and multi-agent envs keep rl_games' own.
"""
import time

import torch
from rl_games.common.a2c_common import swap_and_flatten01


def play_steps_one_sync(agent) -> dict:
    """``agent.play_steps()`` of rl_games' continuous A2C agent, with finished games counted after
    the rollout (module docstring). Returns rl_games' batch dict."""
    horizon, envs = agent.horizon_length, agent.num_actors
    finished = torch.zeros(horizon, envs, dtype=torch.bool, device=agent.ppo_device)
    rewards_at_end = torch.zeros((horizon,) + tuple(agent.current_rewards.shape), device=agent.ppo_device)
    shaped_at_end = torch.zeros_like(rewards_at_end)
    lengths_at_end = torch.zeros(horizon, envs, device=agent.ppo_device)
    step_time = 0.0
    for n in range(horizon):
        res_dict = agent.get_action_values(agent.obs)
        agent.experience_buffer.update_data("obses", n, agent.obs["obs"])
        agent.experience_buffer.update_data("dones", n, agent.dones)
        for k in agent.update_list:
            agent.experience_buffer.update_data(k, n, res_dict[k])
        start = time.perf_counter()
        agent.obs, rewards, agent.dones, infos = agent.env_step(res_dict["actions"])
        step_time += time.perf_counter() - start
        shaped = agent.rewards_shaper(rewards)
        if agent.value_bootstrap and "time_outs" in infos:
            shaped.add_(agent.gamma * res_dict["values"] * agent.cast_obs(infos["time_outs"]).unsqueeze(1).float())
        agent.experience_buffer.update_data("rewards", n, shaped)
        agent.current_rewards.add_(rewards)
        agent.current_shaped_rewards.add_(shaped)
        agent.current_lengths.add_(1)
        finished[n] = agent.dones.bool()
        rewards_at_end[n] = agent.current_rewards
        shaped_at_end[n] = agent.current_shaped_rewards
        lengths_at_end[n] = agent.current_lengths
        agent.algo_observer.process_infos(infos, None)  # observers that need no done indices (checkpointing.py)
        not_done = (1.0 - agent.dones.float()).unsqueeze(1)
        agent.current_rewards.mul_(not_done)
        agent.current_shaped_rewards.mul_(not_done)
        agent.current_lengths.mul_(not_done.squeeze(1))
    _update_meters(agent, finished, rewards_at_end, shaped_at_end, lengths_at_end)

    last_values = agent.get_values(agent.obs)
    buffers = agent.experience_buffer.tensor_dict
    advantages = agent.discount_values(agent.dones.float(), last_values, buffers["dones"].float(), buffers["values"],
                                       buffers["rewards"])
    batch = agent.experience_buffer.get_transformed_list(swap_and_flatten01, agent.tensor_list)
    batch["returns"] = swap_and_flatten01(advantages + buffers["values"])
    batch["played_frames"] = agent.batch_size
    batch["step_time"] = step_time
    return batch


def _update_meters(agent, finished, rewards_at_end, shaped_at_end, lengths_at_end) -> None:
    """The meters fed as rl_games feeds them, one update per step; the one host sync of the rollout."""
    where = finished.nonzero(as_tuple=False).cpu()  # [games, 2]: (step, env), step-major as rl_games meets them
    counts = torch.bincount(where[:, 0], minlength=finished.shape[0]).tolist()
    for n, envs in enumerate(where[:, 1].to(finished.device).split(counts)):
        if envs.numel():
            ids = envs.unsqueeze(1)  # rl_games indexes with nonzero()'s [games, 1]
            agent.game_rewards.update(rewards_at_end[n][ids])
            agent.game_shaped_rewards.update(shaped_at_end[n][ids])
            agent.game_lengths.update(lengths_at_end[n][ids])
