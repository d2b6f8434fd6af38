"""HumanoidDeepMimic built from the hydra config (cfg/, composed as train.py does) on the MuJoCo
CPU engine: observations, the VecTask step contract, resets after a simulation blow-up, early
termination, time-outs and configuration errors. The reward is checked in tests/test_reward.py."""
import json
import math
import os

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from scipy.spatial.transform import Rotation

from poselib_utils.data_loader import DataFormatError
from tasks.humanoid_deepmimic import compute_deepmimic_observations, compute_deepmimic_reset
from poselib_utils.repository import REPO_ROOT
from task_helpers import MJCF, NUM_ENVS, make_cfg, make_task, reference, rotate_world_z


# ------------------------------------------------------------------------------------------
# (a) observations, spaces, step
# ------------------------------------------------------------------------------------------

def test_observation_layout_and_spaces(task):
    b, k = task.engine.num_bodies, len(task.target_frames)
    assert (b, k) == (15, 2)
    # documented layout: height | positions of bodies 1.. | tan-norm | lin vel | ang vel | phase | targets
    expected = 1 + (b - 1) * 3 + b * 6 + b * 3 + b * 3 + 1 + k * (b * 3 + b * 6)
    assert task.num_obs == expected == 494
    assert task.observation_space.shape == (expected,) == tuple(task.obs_buf.shape[1:])
    assert task.action_space.shape == (28,)
    assert np.all(task.action_space.low == -1.0) and np.all(task.action_space.high == 1.0)
    obs = task.reset()["obs"]
    assert obs.shape == (NUM_ENVS, expected) and torch.isfinite(obs).all()
    body = task.engine.body_state()
    np.testing.assert_allclose(obs[:, 0].numpy(), body[:, 0, 2].numpy(), atol=1e-6)
    # body 1 relative to the root, turned by minus the root's yaw (scipy)
    q = body[:, 0, 3:7].double().numpy()
    fwd = Rotation.from_quat(q[:, [1, 2, 3, 0]]).apply([1.0, 0.0, 0.0])
    yaw = np.arctan2(fwd[:, 1], fwd[:, 0])
    rel = (body[:, 1, 0:3] - body[:, 0, 0:3]).double().numpy()
    local = Rotation.from_rotvec(np.outer(-yaw, [0.0, 0.0, 1.0])).apply(rel)
    np.testing.assert_allclose(obs[:, 1:4].numpy(), local, atol=1e-5)
    # phase: time in the clip over its duration
    phase_at = 1 + (b - 1) * 3 + b * 12
    expected_phase = (task.motion_times / task.motion_lib.durations[task.motion_ids]).numpy()
    np.testing.assert_allclose(obs[:, phase_at].numpy(), expected_phase, atol=1e-5)


def test_observations_invariant_to_heading_and_ground_position(task):
    """Turning and moving the whole scene (simulation and reference) about the vertical leaves the
    observations unchanged; turning only the character does not."""
    n = 4
    body = task.engine.body_state()[:n].clone()
    ref = reference(task, n * 2, seed=1)
    ref_pos = ref.body_pos.view(n, 2, -1, 3).clone()
    ref_rot = ref.body_rot.view(n, 2, -1, 4).clone()
    phase = torch.rand(n, 1)
    base = compute_deepmimic_observations(body, ref_pos, ref_rot, phase)
    angle = 1.234
    rot = Rotation.from_rotvec([0.0, 0.0, angle])
    shift = torch.tensor([3.0, -2.0, 0.0])

    def turn_vec(v):
        shape = v.shape
        return torch.tensor(rot.apply(v.reshape(-1, 3).double().numpy()), dtype=torch.float32).view(shape)

    def turn_quat(q):
        shape = q.shape
        return rotate_world_z(q.reshape(-1, 4), np.full(q.numel() // 4, angle)).view(shape)

    moved = body.clone()
    moved[..., 0:3] = turn_vec(body[..., 0:3]) + shift
    moved[..., 3:7] = turn_quat(body[..., 3:7])
    moved[..., 7:10] = turn_vec(body[..., 7:10])
    moved[..., 10:13] = turn_vec(body[..., 10:13])
    out = compute_deepmimic_observations(moved, turn_vec(ref_pos) + shift, turn_quat(ref_rot), phase)
    np.testing.assert_allclose(out.numpy(), base.numpy(), atol=2e-5)
    out = compute_deepmimic_observations(moved, ref_pos, ref_rot, phase)
    assert (out - base).abs().max().item() > 0.1


def test_step_contract(task):
    task.reset()
    actions = torch.zeros(NUM_ENVS, task.num_actions)
    result = task.step(actions)
    assert isinstance(result, tuple) and len(result) == 4
    obs, rew, done, extras = result
    assert set(obs) == {"obs"} and obs["obs"].shape == (NUM_ENVS, task.num_obs)
    assert torch.isfinite(obs["obs"]).all()
    assert rew.shape == (NUM_ENVS,) and torch.isfinite(rew).all()
    assert ((rew >= 0) & (rew <= 1.0 + 1e-6)).all()
    assert done.shape == (NUM_ENVS,)
    assert extras["time_outs"].shape == (NUM_ENVS,)
    for key in ("episode", "terminated", "sim_failures"):
        assert key in extras
    # actions outside [-1, 1] are clipped, not an error
    obs, rew, _, _ = task.step(torch.full((NUM_ENVS, task.num_actions), 5.0))
    assert torch.isfinite(obs["obs"]).all() and torch.isfinite(rew).all()


def test_actions_outside_the_range_act_as_the_range_limit():
    task = make_task("task.env.enable_early_termination=False")
    task.reset()
    saved, times, progress = task.engine.capture_state(), task.motion_times.clone(), task.progress_buf.clone()

    def dofs_after(action):
        task.engine.restore_state(saved)
        task.motion_times[:], task.progress_buf[:] = times, progress
        task.step(torch.full((NUM_ENVS, task.num_actions), action))
        return task.engine.dof_state().clone()

    at_limit = dofs_after(1.0)
    assert torch.equal(dofs_after(5.0), at_limit)
    assert not torch.allclose(dofs_after(0.5), at_limit, atol=1e-3)  # the targets do move the joints


def test_reset_starts_episodes_at_random_clip_times_in_the_reference_state():
    """Reference state initialisation: start times spread over the clip, each env put exactly in
    the reference state of its time."""
    task = make_task("num_envs=64")
    torch.manual_seed(0)
    task.reset()
    duration = float(task.motion_lib.durations[0])
    times = task.motion_times
    assert (times >= 0).all() and (times <= duration).all()
    assert times.std() > 0.2 * duration  # uniform over the clip: duration / sqrt(12) = 0.29 duration
    ref = task.motion_lib.get_state(task.motion_ids, times)
    np.testing.assert_allclose(task.engine.root_state()[:, 0:3], ref.root_pos, atol=1e-5)
    np.testing.assert_allclose(task.engine.dof_state()[..., 0], ref.dof_pos, atol=1e-5)



# ------------------------------------------------------------------------------------------
# (b) blown-up simulation, (c) termination and time-out
# ------------------------------------------------------------------------------------------

def place_at(task, times):
    """Set every env's clip time and put its character in the reference state of that time."""
    task.motion_times[:] = times
    ref = task.motion_lib.get_state(task.motion_ids, task.motion_times)
    task.engine.set_state(None, ref.root_pos, ref.root_rot, ref.root_vel, ref.root_ang_vel, ref.dof_pos,
                          ref.dof_vel)


def hold_actions(task):
    """Actions whose PD targets are each env's current reference pose."""
    ref = task.motion_lib.get_state(task.motion_ids, task.motion_times)
    return (ref.dof_pos / task.action_scale).clamp(-1.0, 1.0)


@pytest.mark.parametrize("blow_up", ["nan velocities", "absurd joint speed", "absurd position"])
def test_blown_up_env_resets_only_that_env(blow_up):
    task = make_task("task.env.enable_early_termination=False")
    task.reset()
    for _ in range(3):
        task.step(hold_actions(task))
    assert int(task.extras["sim_failures"]) == 0
    before = task.progress_buf.clone()
    engine = task.engine
    qvel = slice(engine._qvel_at, engine._qvel_at + engine.model.nv)
    if blow_up == "nan velocities":
        engine._state[3, qvel] = np.nan
    elif blow_up == "absurd joint speed":
        engine._state[3, engine._qvel_at + 6:engine._qvel_at + engine.model.nv] = 1.0e5  # rad/s, every hinge
    else:
        engine._state[3, engine._qpos_at] = 1.0e6  # m along x
    obs, rew, done, extras = task.step(hold_actions(task))
    assert int(extras["sim_failures"]) == 1
    assert done[3].item() == 1 and task.progress_buf[3].item() == 0
    others = [i for i in range(NUM_ENVS) if i != 3]
    assert (done[others] == 0).all()
    assert (task.progress_buf[others] == before[others] + 1).all()
    assert torch.isfinite(obs["obs"]).all() and torch.isfinite(rew).all()
    assert rew[3].item() == 0.0 and extras["time_outs"][3].item() == 0
    # the episode statistics the logger averages stay finite too
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in extras["episode"].values()), extras["episode"]
    assert torch.isfinite(engine.body_state()).all() and torch.isfinite(engine.dof_state()).all()
    # and the env goes on normally
    obs, rew, done, extras = task.step(hold_actions(task))
    assert int(extras["sim_failures"]) == 1 and torch.isfinite(rew).all() and rew[3].item() > 0


def lay_down(task, env):
    """Put env's character on the ground, straight and pitched 90 degrees: the root 0.11 m up,
    where the chest (a 0.11 m sphere) touches the floor."""
    ids = torch.tensor([env])
    rot = torch.tensor([[math.cos(math.pi / 4), 0.0, math.sin(math.pi / 4), 0.0]])
    pos = task.engine.root_state()[ids, 0:3].clone()
    pos[:, 2] = 0.11
    zeros = torch.zeros(1, 3)
    task.engine.set_state(ids, pos, rot, zeros, zeros, torch.zeros(1, 28), torch.zeros(1, 28))


@pytest.mark.parametrize("early_termination", [True, False])
def test_character_on_the_ground_terminates(early_termination):
    # termination_distance out of reach: only the ground contact can end the episode
    task = make_task("task.env.enable_early_termination={}".format(early_termination),
                     "task.env.termination_distance=100.0")
    task.reset()
    task.step(hold_actions(task))
    before = task.progress_buf.clone()
    lay_down(task, 2)
    actions = hold_actions(task)
    actions[2] = 0.0  # keep lying straight
    obs, rew, done, extras = task.step(actions)
    fell = task.engine.contact_forces()  # after the reset: env 2 is standing again
    if early_termination:
        assert bool(extras["terminated"][2]) and done[2].item() == 1
        assert extras["time_outs"][2].item() == 0 and rew[2].item() == 0.0
        assert task.progress_buf[2].item() == 0
        assert task.engine.root_state()[2, 2].item() > 0.5  # reset to the reference, upright
    else:
        assert not bool(extras["terminated"][2]) and done[2].item() == 0
        assert task.progress_buf[2].item() == before[2].item() + 1
        assert task.engine.root_state()[2, 2].item() < 0.4
        assert task.engine.contact_forces()[2, task.engine.body_names.index("chest")].norm().item() > 1.0
    others = [i for i in range(NUM_ENVS) if i != 2]
    assert not extras["terminated"][others].any() and (done[others] == 0).all()
    assert torch.isfinite(obs["obs"]).all() and torch.isfinite(fell).all()


def test_one_body_far_from_its_reference_terminates():
    """The farthest body counts, not the root: one wrist 1.5 m off ends the episode, 0.9 m does not."""
    task = make_task()
    ref = task.motion_lib.get_state(torch.zeros(2, dtype=torch.long), torch.tensor([0.3, 0.3]))
    body_pos = ref.body_pos.clone()
    wrist = task.motion_lib.body_names.index("right_wrist")
    body_pos[0, wrist, 1] += 1.5
    body_pos[1, wrist, 1] += 0.9
    nb = body_pos.shape[1]
    reset, terminated, timed_out = compute_deepmimic_reset(
        body_pos=body_pos, ref_body_pos=ref.body_pos, contact_forces=torch.zeros(2, nb, 3),
        progress=torch.ones(2, dtype=torch.long), contact_settle_steps=0,
        fall_contact_mask=torch.zeros(nb, dtype=torch.bool), sim_failed=torch.zeros(2, dtype=torch.bool),
        clip_ended=torch.zeros(2, dtype=torch.bool), enable_early_termination=True, termination_distance=1.0,
        contact_force_threshold=1.0, max_episode_length=300)
    assert terminated.tolist() == [True, False] and reset.tolist() == [True, False]
    assert not timed_out.any()


def test_episode_statistics_average_the_finished_episodes():
    """At a time-out of every env: ep_reward is the mean per-step reward the steps returned, and
    ep_length_s the episode's length."""
    task = make_task("task.env.enable_early_termination=False", "task.env.episode_length_s=0.2")
    task.reset()
    rewards = []
    for _ in range(6):  # 0.2 s at 30 Hz
        _, rew, done, extras = task.step(hold_actions(task))
        rewards.append(rew.clone())
    assert done.all() and int(extras["episode"]["num_done"]) == NUM_ENVS
    assert float(extras["episode"]["ep_reward"]) == pytest.approx(float(torch.stack(rewards).mean()), rel=1e-5)
    assert float(extras["episode"]["ep_length_s"]) == pytest.approx(0.2)


def test_drifting_from_the_reference_terminates():
    task = make_task()
    task.reset()
    task.step(hold_actions(task))
    root = task.engine.root_state()[5:6].clone()
    dof = task.engine.dof_state()[5:6].clone()
    root[:, 0] += 2.0  # 2 m from the reference, more than termination_distance (1 m)
    task.engine.set_state(torch.tensor([5]), root[:, 0:3], root[:, 3:7], root[:, 7:10], root[:, 10:13],
                          dof[..., 0], dof[..., 1])
    _, rew, done, extras = task.step(hold_actions(task))
    assert bool(extras["terminated"][5]) and done[5].item() == 1 and rew[5].item() == 0.0
    assert done.sum().item() == 1


def test_time_out_after_episode_length():
    task = make_task()
    cfg_env = make_cfg().task.env
    assert task.max_episode_length == round(cfg_env.episode_length_s * cfg_env.control_freq_hz) == 300
    task.reset()
    # env 1 is about to take its last step, env 6 the one before its last
    task.progress_buf[1] = task.max_episode_length - 1
    task.progress_buf[6] = task.max_episode_length - 2
    _, _, done, extras = task.step(hold_actions(task))
    assert extras["time_outs"][1].item() == 1 and done[1].item() == 1
    assert not bool(extras["terminated"][1])
    assert task.progress_buf[1].item() == 0
    assert extras["time_outs"][6].item() == 0 and done[6].item() == 0
    assert task.progress_buf[6].item() == task.max_episode_length - 1
    _, _, done, extras = task.step(hold_actions(task))
    assert extras["time_outs"][6].item() == 1 and done[6].item() == 1
    assert extras["time_outs"].sum().item() == 1


def test_end_of_non_looping_clip_is_terminal_not_time_out():
    task = make_task("task.env.motion_file=motions/humanoid3d_kick.txt")
    task.reset()
    duration = float(task.motion_lib.durations[0])
    times = torch.full((NUM_ENVS,), 0.5)
    times[4] = duration - 0.5 * task.dt  # one step from the end
    times[5] = duration - 1.5 * task.dt  # two steps from the end
    place_at(task, times)
    _, _, done, extras = task.step(hold_actions(task))
    assert done[4].item() == 1 and extras["time_outs"][4].item() == 0
    assert not bool(extras["terminated"][4])
    assert done.sum().item() == 1
    _, _, done, extras = task.step(hold_actions(task))
    assert done[5].item() == 1 and extras["time_outs"][5].item() == 0



# ------------------------------------------------------------------------------------------
# (d) skill configuration
# ------------------------------------------------------------------------------------------

def test_run_skill_decays_its_learning_rate_over_max_iterations():
    """rl_games' linear schedule ends at max_epochs: skill=run sets 1900, a max_iterations override replaces it."""
    for overrides, epochs in ((["skill=run"], 1900), (["skill=run", "max_iterations=30"], 30), ([], 1000)):
        config = OmegaConf.to_container(make_cfg(*overrides).train, resolve=True)["params"]["config"]
        assert config["max_epochs"] == epochs
        assert config["lr_schedule"] == ("linear" if overrides else "constant")


def test_run_skill_keeps_deepmimic_horizons_in_seconds_at_its_60_hz():
    """skill=run doubles the policy rate; its target frames still look 1/30 and 2/30 s ahead and its
    discount and GAE lambda still decay over about as many seconds as DeepMimic's 0.95 at 30 Hz."""
    default, run = make_cfg(), make_cfg("skill=run")
    assert run.task.env.control_freq_hz == 2 * default.task.env.control_freq_hz
    for cfg in (default, run):
        hz = cfg.task.env.control_freq_hz
        np.testing.assert_allclose([k / hz for k in cfg.task.env.obs.target_frames], [1 / 30, 2 / 30])
        for key in ("gamma", "tau"):
            np.testing.assert_allclose(cfg.train.params.config[key] ** hz, 0.95 ** 30, rtol=0.03)


# ------------------------------------------------------------------------------------------
# (e) configuration errors
# ------------------------------------------------------------------------------------------

@pytest.fixture
def bad_width_clip(tmp_path):
    with open(os.path.join(REPO_ROOT, "motions", "humanoid3d_walk.txt")) as f:
        clip = json.load(f)
    assert len(clip["Frames"][0]) == 44
    clip["Frames"] = [frame[:43] for frame in clip["Frames"]]
    path = tmp_path / "short_frames.txt"
    path.write_text(json.dumps(clip))
    return str(path)


def test_task_constructor_rejects_bad_configuration(bad_width_clip):
    with pytest.raises(ValueError, match="unknown sim_engine 'warp_drive'"):
        make_task("sim_engine=warp_drive")
    with pytest.raises(ValueError, match="task.env.num_envs must be a whole number >= 1, got 0"):
        make_task("num_envs=0")
    with pytest.raises(FileNotFoundError, match="humanoid3d_nope.txt does not exist"):
        make_task("task.env.motion_file=motions/humanoid3d_nope.txt")
    with pytest.raises(DataFormatError, match=r"short_frames.txt: frame 0: has 43 numbers, .* needs 44"):
        make_task("task.env.motion_file={}".format(bad_width_clip))
    with pytest.raises(ValueError, match="task.env.control_freq_hz must be a number > 0, got 0"):
        make_task("task.env.control_freq_hz=0")
    with pytest.raises(ValueError, match=r"sim_freq_hz \(120.0\) must be a whole multiple of task.env.control_freq_hz"):
        make_task("task.env.control_freq_hz=7")


def test_contact_bodies_character_follows_deepmimics_fall_contacts(humanoid_char_path):
    """'character' ends an episode on ground contact exactly of the bodies DeepMimic's character file
    marks EnableFallContact (read here from that file), so hands and knees may touch the ground."""
    with open(humanoid_char_path) as f:
        falls = {b["Name"] for b in json.load(f)["BodyDefs"] if b["EnableFallContact"]}
    assert falls == {"root", "chest", "neck"}
    task = make_task("task.env.contact_bodies=character")
    bodies = task.engine.body_names
    assert {b for b, fall in zip(bodies, task.fall_contact_mask.tolist()) if fall} == falls
    assert task.termination_settings["contact_bodies"] == "character"
    default = make_task()
    assert {b for b, fall in zip(bodies, default.fall_contact_mask.tolist()) if not fall} == {"right_ankle",
                                                                                           "left_ankle"}
    with pytest.raises(ValueError, match="task.env.contact_bodies: a list of body names or 'character'"):
        make_task("task.env.contact_bodies=everything")


def test_contact_bodies_character_needs_the_mjcf_field(tmp_path):
    """An MJCF converted before the field existed fails naming the field and the fix."""
    from poselib_utils.data_loader import DataFormatError
    from poselib_utils.mjcf_character import load_fall_contact_bodies

    text = open(MJCF).read()
    old = [line for line in text.splitlines() if "deepmimic_fall_contacts" in line]
    assert len(old) == 1
    stale = tmp_path / "humanoid3d.xml"
    stale.write_text(text.replace(old[0] + "\n", ""))
    with pytest.raises(DataFormatError, match="deepmimic_fall_contacts.*regenerate"):
        load_fall_contact_bodies(str(stale))
    assert load_fall_contact_bodies(MJCF) == ["root", "chest", "neck"]


def test_engine_with_its_own_window_gets_env0_reference_and_resets_on_request(monkeypatch):
    """For an engine with a window of its own (IsaacGym), the task hands it env 0's reference body
    positions each step (checked against MuJoCo's forward kinematics of the reference pose) and
    resets env 0 when the window asks, in the step's one state write (IsaacGym's maintainers: one
    indexed write per step). Stood in for by the CPU engine with a window pretended."""
    import mujoco

    from tasks.engines import EngineWindow
    from tasks.engines.mujoco_engine import MujocoEngine

    shown, requests, writes = [], [False, True, False], []

    class WindowedMujocoEngine(MujocoEngine, EngineWindow):
        window_open = True

        def set_state(self, env_ids, *state):
            writes.append(env_ids)
            super().set_state(env_ids, *state)

        def show_reference(self, body_pos):
            shown.append(body_pos.clone())

        def take_reset_request(self):
            return requests.pop(0)

    monkeypatch.setattr("tasks.humanoid_deepmimic.build_engine", lambda name, cfg: WindowedMujocoEngine(cfg))
    task = make_task("task.env.enable_early_termination=False")  # only the request may reset an env
    task.reset()
    model = mujoco.MjModel.from_xml_path(MJCF)
    data = mujoco.MjData(model)
    body_ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in task.engine.body_names]
    for _ in range(3):
        writes.clear()
        task.step(hold_actions(task))
        assert len(writes) == 1
        ref = task.motion_lib.get_state(task.motion_ids[0:1], task.motion_times[0:1])
        data.qpos[:] = torch.cat([ref.root_pos[0], ref.root_rot[0], ref.dof_pos[0]]).double().numpy()
        mujoco.mj_kinematics(model, data)
        # the root exactly; the other bodies within 1 cm, as the library blends their positions between
        # clip frames (up to ~5 mm from the blended pose's FK at the wrists). The root moves ~4 cm a step.
        np.testing.assert_allclose(shown[-1][0].numpy(), data.xpos[body_ids[0]], atol=1e-5)
        np.testing.assert_allclose(shown[-1].numpy(), data.xpos[body_ids], atol=1e-2)
        if len(shown) == 2:  # the second step's request reset env 0 only
            assert task.progress_buf[0].item() == 0 and (task.progress_buf[1:] == 2).all()
    assert len(shown) == 3 and not requests
