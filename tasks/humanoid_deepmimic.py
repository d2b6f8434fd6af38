"""HumanoidDeepMimic: DeepMimic's motion imitation (Peng et al. 2018) as a VecTask.

Reference state initialisation (each episode starts at a random time of its clip), early
termination (a body other than the allowed contact bodies touches the ground, or a body drifts
more than ``termination_distance`` from the reference), actions as PD targets, and DeepMimic's
imitation reward (SceneImitate.cpp). Per-step math lives in the TorchScript kernels at the
bottom; everything runs batched on the engine's device.
"""
from typing import Dict, Tuple

import torch

from poselib_utils.mjcf_character import allowed_contact_bodies, load_skeleton_from_mjcf
from poselib_utils.mjcf_converter import hinge_names
from poselib_utils.motion_dataset import resolve_motion_files
from poselib_utils.repository import REPO_ROOT, repo_path
from tasks.base.step_graph import CapturedStep
from tasks.base.vec_task import VecTask
from tasks.body_state import POS, ROT, body_ang_vel, body_lin_vel, body_pos, body_rot, body_vel
from tasks.config import REWARD_TERMS, ROOT_ERROR_COEFFS, check_task_settings, physics_substeps
from tasks.engines import EngineConfig, EngineWindow, build_engine
from tasks.goals import build_goal
from tasks.pushes import Pushes
from tasks.reference.anchoring import anchored, reference_anchor
from tasks.reference.motion_lib import MotionLib, MotionState
from tasks.rotations import (heading_quat_inv, quat_conjugate, quat_diff_angle, quat_mul, quat_rotate,
                                   quat_to_tan_norm)
from tasks.tracking_metrics import make_tracking_metrics
from tasks.display.viewer import make_watcher



def normalized_reward_weights(weights: Dict[str, float]) -> torch.Tensor:
    """The reward terms' weights divided by their sum, as DeepMimic does, so a perfect match earns
    1 per step whatever weights the config gives (check_task_settings makes the sum positive)."""
    total = sum(weights.values())
    return torch.tensor([weights[t] / total for t in REWARD_TERMS])


class HumanoidDeepMimic(VecTask):
    def __init__(self, cfg, rl_device, sim_device, graphics_device_id, headless, virtual_screen_capture=False,
                 force_render=False):
        check_task_settings(cfg)
        env = cfg["env"]
        self.sim_freq = float(env["sim_freq_hz"])
        self.control_freq = float(env["control_freq_hz"])
        self.substeps = physics_substeps(self.sim_freq, self.control_freq)
        self.dt = 1.0 / self.control_freq
        self.max_episode_length = int(round(float(env["episode_length_s"]) * self.control_freq))
        self.enable_early_termination = bool(env["enable_early_termination"])
        # Evaluation mode (tracking metrics): clips assigned round-robin, every episode starts at
        # clip time 0 and lasts the horizon (looping clips) or the clip (others).
        self.evaluation = bool(env.get("evaluation", False))
        if self.evaluation:
            self.max_episode_length = int(round(float(env.get("evaluation_horizon_s", 20.0)) * self.control_freq))
        self.termination_distance = float(env["termination_distance"])
        self.contact_force_threshold = float(env["contact_force_threshold"])
        self.target_frames = [int(k) for k in env["obs"]["target_frames"]]
        self.obs_phase = bool(env["obs"]["phase"])
        reward = cfg["reward"]
        self.reward_weights = normalized_reward_weights({t: float(reward[t + "_w"]) for t in REWARD_TERMS})
        self.reward_scales = torch.tensor([float(reward[t + "_scale"]) for t in REWARD_TERMS])
        self.root_err_coeffs = {k: float(reward[k]) for k in ROOT_ERROR_COEFFS}
        self.com_vel_coeff = float(reward["com_vel_coeff"])
        super().__init__(cfg, rl_device, sim_device, graphics_device_id, headless, virtual_screen_capture,
                         force_render)
        self._allocate_episode_stats()
        # env 0 and its reference ghost in MuJoCo's viewer and/or mp4 clips (tasks/display/viewer.py);
        # IsaacGym keeps its own viewer
        self.watcher = make_watcher(self, repo_path(cfg["env"]["asset_file"]),
                                    headless or cfg["sim_engine"] == "isaacgym", cfg.get("video"))
        self.tracking_metrics = make_tracking_metrics(self) if self.evaluation else None
        # The whole step as one CUDA graph (tasks/base/step_graph.py), where the engine allows it and
        # nothing reads the state on the host between steps (viewer, video, tracking metrics).
        rl = torch.device(rl_device)
        if bool(env["cuda_graph_step"]) and self.engine.capturable and self.watcher is None \
                and self.tracking_metrics is None and rl.type == self.device.type and rl.index in (None, self.device.index):
            self.captured_step = CapturedStep(self.step_eagerly)

    def create_sim(self) -> None:
        env = self.cfg["env"]
        asset = repo_path(env["asset_file"])
        # a clip, a dataset of weighted clips (poselib_utils/motion_dataset.py) or a list of them
        motion_files, motion_weights = resolve_motion_files(env["motion_file"], REPO_ROOT)
        skeleton = load_skeleton_from_mjcf(asset)
        self.engine = build_engine(self.cfg["sim_engine"], EngineConfig(
            mjcf_path=asset, num_envs=self.num_envs, sim_dt=1.0 / self.sim_freq, substeps=self.substeps,
            device=self.sim_device, headless=self.headless,
            num_threads=int(env.get("num_threads", 0))))
        device = self.engine.device
        self.motion_lib = MotionLib(motion_files, asset, device, motion_weights, bool(env["carry_cycle_heading"]))
        if self.motion_lib.body_names != self.engine.body_names or self.motion_lib.dof_names != self.engine.dof_names:
            raise ValueError("{}: engine and motion library disagree on bodies or DOFs".format(asset))
        self._build_character_tables(skeleton, env)
        for name in ("reward_weights", "reward_scales"):
            setattr(self, name, getattr(self, name).to(device))

        n = self.num_envs
        self.motion_ids = torch.zeros(n, dtype=torch.long, device=device)
        self.motion_times = torch.zeros(n, device=device)
        self.actions = torch.zeros(n, self.engine.num_dofs, device=device)
        self.pushes = Pushes(env["push"], self.control_freq, n, self.engine.num_bodies, device, self.evaluation)
        self.goal = build_goal(env["goal"], n, self.control_freq, self.motion_lib.mean_root_speeds,
                               self.engine.body_names, device)
        self.forces_applied = False  # whether the engine holds forces of the pushes
        # the clip times each observation queries: the target frames, after the current one where the goal
        # anchors them (one reference query for both)
        self.anchors_targets = self.goal.anchors_reference and bool(self.target_frames)
        queried = ([0] if self.anchors_targets else []) + self.target_frames
        self.queried_frame_offsets = torch.tensor(queried, dtype=torch.float32, device=device) * self.dt

    def _build_character_tables(self, skeleton, env) -> None:
        """Per-body and per-DOF constants of the reward and observations, in engine order."""
        device = self.engine.device
        bodies = self.engine.body_names
        index = {name: i for i, name in enumerate(bodies)}
        missing = [j.name for j in skeleton.joints if j.name not in index]
        if missing:
            raise ValueError("{}: bodies {} of the DeepMimic skeleton are not in the model".format(
                skeleton.source, missing))
        total_weight = sum(j.diff_weight for j in skeleton.joints)
        weights = torch.zeros(len(bodies))
        parents = torch.zeros(len(bodies), dtype=torch.long)
        end_effectors = torch.zeros(len(bodies), dtype=torch.bool)
        dof_body = {}
        for joint in skeleton.joints:
            b = index[joint.name]
            weights[b] = joint.diff_weight / total_weight
            parents[b] = index[skeleton.joints[joint.parent].name] if joint.parent >= 0 else b
            end_effectors[b] = joint.is_end_effector
            for hinge in hinge_names(joint.name, joint.joint_type):
                dof_body[hinge] = b
        self.body_weights, self.body_parents = weights.to(device), parents.to(device)
        self.end_effector_mask = end_effectors.to(device)
        self.dof_weights = self.body_weights[torch.tensor([dof_body[d] for d in self.engine.dof_names],
                                                          device=device)]
        requested = env["contact_bodies"]
        contact_bodies = allowed_contact_bodies(requested, skeleton.source, bodies)
        self.fall_contact_mask = torch.tensor([b not in contact_bodies for b in bodies], device=device)
        # When an episode ends early, as task.env overrides; saved in checkpoints so that playing one
        # under other settings (a cartwheel policy without its wrists allowed down) is pointed out.
        self.termination_settings = {"contact_bodies": requested if requested == "character"
                                     else [str(b) for b in contact_bodies],
                                     "termination_distance": self.termination_distance,
                                     "contact_force_threshold": self.contact_force_threshold}
        limits = self.engine.dof_limits.to(device)
        reach = torch.maximum(limits[:, 0].abs(), limits[:, 1].abs())
        self.action_scale = torch.where(reach > 0, reach, torch.full_like(reach, torch.pi))

    def _allocate_episode_stats(self) -> None:
        self.total_sim_failures = torch.zeros((), dtype=torch.long, device=self.device)
        self.episode_sums: Dict[str, torch.Tensor] = {
            t: torch.zeros(self.num_envs, device=self.device) for t in REWARD_TERMS + ("reward",)}

    def compute_observations(self) -> torch.Tensor:
        ids = self.motion_ids.repeat(len(self.queried_frame_offsets))
        times = (self.motion_times.unsqueeze(0) + self.queried_frame_offsets.unsqueeze(1)).reshape(-1)
        n, k, b = self.num_envs, len(self.target_frames), self.engine.num_bodies
        if k:
            ref = self.motion_lib.get_state(ids, times)
            if self.anchors_targets:  # the target frames follow the character, as the reward's reference does
                now, ref = MotionState(*(x[:n] for x in ref)), MotionState(*(x[n:] for x in ref))
                ref = anchored(ref, self._anchor(now))
            ref_pos = ref.body_pos.view(k, n, b, 3).transpose(0, 1)
            ref_rot = ref.body_rot.view(k, n, b, 4).transpose(0, 1)
        else:
            ref_pos, ref_rot = torch.zeros(n, 0, b, 3, device=self.device), torch.zeros(n, 0, b, 4, device=self.device)
        phase = self.motion_lib.phase(self.motion_ids, self.motion_times).unsqueeze(-1)
        if not self.obs_phase:
            phase = phase[:, :0]
        imitation = compute_deepmimic_observations(self.engine.body_state(), ref_pos, ref_rot, phase)
        return torch.cat([imitation, self.goal.observe(self.engine.root_state())], dim=-1)

    def _anchor(self, ref):
        root = self.engine.root_state()
        return reference_anchor(root[:, POS], root[:, ROT], ref)

    def reference_now(self):
        """Every env's reference at its current time, as its reward sees it (anchored for goals that need it)."""
        ref = self.motion_lib.get_state(self.motion_ids, self.motion_times)
        return anchored(ref, self._anchor(ref)) if self.goal.anchors_reference else ref

    def reset_idx(self, env_ids: torch.Tensor) -> None:
        """Reset envs ``env_ids`` (IsaacGymEnvs' entry point)."""
        chosen = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        self._reset_envs(chosen.index_fill_(0, env_ids.to(self.device), True))

    def _reset_envs(self, chosen: torch.Tensor) -> None:
        """Reference state initialisation for the envs in the mask ``chosen``: each restarts at a
        random time of a sampled clip. Works on all envs with masks, so shapes never change and
        the host never waits for the device to learn which envs reset."""
        if self.evaluation:  # clips round-robin, from time 0
            new_ids = torch.arange(self.num_envs, device=self.device) % self.motion_lib.num_motions
        else:
            new_ids = self.motion_lib.sample_motions(self.num_envs)
        self.motion_ids.copy_(torch.where(chosen, new_ids, self.motion_ids))
        new_times = torch.zeros_like(self.motion_times) if self.evaluation else \
            self.motion_lib.sample_times(self.motion_ids)
        self.motion_times.copy_(torch.where(chosen, new_times, self.motion_times))
        ref = self.motion_lib.get_state(self.motion_ids, self.motion_times)
        self.engine.set_state(chosen, ref.root_pos, ref.root_rot, ref.root_vel, ref.root_ang_vel, ref.dof_pos,
                              ref.dof_vel)
        self.progress_buf.masked_fill_(chosen, 0)
        self.pushes.reset(chosen)
        self.goal.reset(chosen, torch.cat([ref.root_pos, ref.root_rot], dim=-1), self.motion_ids)
        for buf in self.episode_sums.values():
            buf.masked_fill_(chosen, 0.0)

    def pre_physics_step(self, actions: torch.Tensor) -> None:
        self.actions[:] = actions
        self.engine.set_pd_targets(self.action_scale * actions)
        if self.pushes.active or self.forces_applied:  # and zeros once after the pushes stop
            self.engine.set_body_forces(self.pushes.forces(self.progress_buf, self.engine.root_state()[:, ROT]))
            self.forces_applied = self.pushes.active

    def post_physics_step(self) -> None:
        self.progress_buf += 1
        self.motion_times += self.dt
        ref = self.reference_now()
        body_state = self.engine.body_state()
        dof_vel = self.engine.dof_state()[..., 1]
        com_vel = self.engine.com_velocity()

        failed = detect_sim_failures(body_state, self.engine.dof_state())
        body_state, dof_vel, com_vel = (torch.where(failed.view((-1,) + (1,) * (x.dim() - 1)), torch.zeros_like(x), x)
                                        for x in (body_state, dof_vel, com_vel))  # failed envs' state: zeros

        reward, terms = compute_deepmimic_reward(
            body_state=body_state, dof_vel=dof_vel, com_vel=com_vel,
            ref_body_pos=ref.body_pos, ref_body_rot=ref.body_rot, ref_root_vel=ref.root_vel,
            ref_root_ang_vel=ref.root_ang_vel, ref_dof_vel=ref.dof_vel, ref_com_vel=ref.com_vel,
            body_parents=self.body_parents, body_weights=self.body_weights, dof_weights=self.dof_weights,
            end_effector_mask=self.end_effector_mask, term_weights=self.reward_weights,
            term_scales=self.reward_scales, com_vel_coeff=self.com_vel_coeff, **self.root_err_coeffs)
        self.goal.update(body_state, self.motion_lib.phase(self.motion_ids, self.motion_times))
        reward = self.goal.reward(reward, body_state, com_vel)  # imitation alone, or weighted with the goal's

        clip_ended = (~self.motion_lib.loops[self.motion_ids]) & (
            self.motion_times >= self.motion_lib.durations[self.motion_ids])
        reset, terminated, timed_out = compute_deepmimic_reset(
            body_pos=body_state[..., POS], ref_body_pos=ref.body_pos, contact_forces=self.engine.contact_forces(),
            progress=self.progress_buf, contact_settle_steps=self.engine.contact_settle_steps,
            fall_contact_mask=self.fall_contact_mask, sim_failed=failed,
            clip_ended=clip_ended, enable_early_termination=self.enable_early_termination,
            termination_distance=self.termination_distance, contact_force_threshold=self.contact_force_threshold,
            max_episode_length=self.max_episode_length)
        self.rew_buf[:] = torch.where(terminated | failed, torch.zeros_like(reward), reward)
        self.reset_buf[:] = reset.long()
        self.timeout_buf[:] = timed_out.long()

        if self.tracking_metrics is not None:
            self.tracking_metrics.update(body_state[..., POS], body_state[..., ROT], self.motion_ids,
                                         self.motion_times, self.rew_buf, reset, terminated | failed, ref,
                                         self.goal.step_metrics(body_state, com_vel))
        self._record_episode_stats(terms, reset, failed, terminated)
        window = self.engine if isinstance(self.engine, EngineWindow) and self.engine.window_open else None
        if window is not None and window.take_reset_request():  # Backspace: env 0 joins this step's resets
            reset = reset.clone()
            reset[0] = True
        self._reset_envs(reset)
        self.obs_buf[:] = self.compute_observations()
        if window is not None:
            self._show_reference_in(window)
        if self.watcher is not None:
            self.watcher.after_step()

    def _show_reference_in(self, window: EngineWindow) -> None:
        """An engine's own window (IsaacGym) shows env 0's reference as a ghost (only while one is open)."""
        window.show_reference(self.reference_now().body_pos[0])  # where the reward's reference is

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
        super().close()

    def _record_episode_stats(self, terms, reset, failed, terminated) -> None:
        for i, name in enumerate(REWARD_TERMS):
            self.episode_sums[name] += terms[:, i]
        self.episode_sums["reward"] += self.rew_buf
        done = reset.float()
        num_done = done.sum().clamp_min(1.0)
        lengths = self.progress_buf.float()
        episode = {"ep_" + k: (v / lengths.clamp_min(1.0) * done).sum() / num_done for k, v in self.episode_sums.items()}
        episode["ep_length_s"] = (lengths * done).sum() / num_done * self.dt
        episode["num_done"] = done.sum()
        self.total_sim_failures += failed.sum()
        self.extras["episode"] = episode
        self.extras["terminated"] = terminated
        self.extras["sim_failures"] = self.total_sim_failures


# --------------------------------------------------------------------------------------------
# TorchScript kernels. Arguments: simulated state, then reference state, then constants.
# --------------------------------------------------------------------------------------------

@torch.jit.script
def compute_deepmimic_observations(body_state: torch.Tensor, ref_body_pos: torch.Tensor,
                                   ref_body_rot: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """Observation layout (B bodies, K target frames), everything in the root's heading frame:
    root height (1) | body positions relative to the root, bodies 1.. ((B-1)*3) |
    body rotations as tangent/normal (B*6) | body linear velocities (B*3) |
    body angular velocities (B*3) | phase (0 or 1) |
    per target frame and body: the reference body's position relative to the simulated root (3)
    and its rotation (6)."""
    n, num_bodies = body_state.shape[0], body_state.shape[1]
    root_pos = body_pos(body_state[:, 0])
    heading_inv = heading_quat_inv(body_rot(body_state[:, 0]))
    h_bodies = heading_inv.unsqueeze(1).expand(n, num_bodies, 4)
    local_pos = quat_rotate(h_bodies, body_pos(body_state) - root_pos.unsqueeze(1))[:, 1:]
    local_rot = quat_to_tan_norm(quat_mul(h_bodies, body_rot(body_state)))
    lin_vel = quat_rotate(h_bodies, body_lin_vel(body_state))
    ang_vel = quat_rotate(h_bodies, body_ang_vel(body_state))

    k = ref_body_pos.shape[1]
    h_ref = heading_inv.view(n, 1, 1, 4).expand(n, k, num_bodies, 4)
    ref_pos = quat_rotate(h_ref, ref_body_pos - root_pos.view(n, 1, 1, 3))
    ref_rot = quat_to_tan_norm(quat_mul(h_ref, ref_body_rot))
    return torch.cat([root_pos[:, 2:3], local_pos.reshape(n, -1), local_rot.reshape(n, -1),
                      lin_vel.reshape(n, -1), ang_vel.reshape(n, -1), phase,
                      torch.cat([ref_pos, ref_rot], dim=-1).reshape(n, -1)], dim=-1)


@torch.jit.script
def end_effector_offsets(pos: torch.Tensor, root_pos: torch.Tensor, root_rot: torch.Tensor) -> torch.Tensor:
    """DeepMimic's end-effector features of body positions ``pos`` [N, B, 3]: horizontal offset
    from the root and height above the ground (z = 0), rotated into the heading frame. [N, B, 3]"""
    offset = pos - root_pos.unsqueeze(1)
    offset = torch.cat([offset[..., 0:2], pos[..., 2:3]], dim=-1)
    heading_inv = heading_quat_inv(root_rot).unsqueeze(1).expand(offset.shape[0], offset.shape[1], 4)
    return quat_rotate(heading_inv, offset)


@torch.jit.script
def local_rotations(body_rot: torch.Tensor, body_parents: torch.Tensor) -> torch.Tensor:
    """Each joint's rotation relative to its parent body; the root keeps its world rotation."""
    parent_rot = body_rot[:, body_parents]
    local = quat_mul(quat_conjugate(parent_rot), body_rot)
    is_root = (body_parents == torch.arange(body_parents.shape[0], device=body_parents.device)).view(1, -1, 1)
    return torch.where(is_root, body_rot, local)


@torch.jit.script
def compute_deepmimic_reward(body_state: torch.Tensor, dof_vel: torch.Tensor, com_vel: torch.Tensor,
                             ref_body_pos: torch.Tensor, ref_body_rot: torch.Tensor, ref_root_vel: torch.Tensor,
                             ref_root_ang_vel: torch.Tensor, ref_dof_vel: torch.Tensor, ref_com_vel: torch.Tensor,
                             body_parents: torch.Tensor, body_weights: torch.Tensor, dof_weights: torch.Tensor,
                             end_effector_mask: torch.Tensor, term_weights: torch.Tensor, term_scales: torch.Tensor,
                             com_vel_coeff: float, root_pos_coeff: float, root_rot_coeff: float,
                             root_vel_coeff: float, root_ang_vel_coeff: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """DeepMimic's imitation reward (SceneImitate::CalcRewardImitate): a weighted sum of
    exp(-scale * err) for pose, velocity, end-effector, root and centre-of-mass errors, plus a
    global body-position term (mean squared world-position error over bodies, as in PHC; weight 0
    in DeepMimic's reward). Returns the reward [N] and the six terms before weighting [N, 6]."""
    pos = body_pos(body_state)
    rot = body_rot(body_state)
    root_pos = pos[:, 0]
    root_rot = rot[:, 0]
    ref_root_pos = ref_body_pos[:, 0]
    ref_root_rot = ref_body_rot[:, 0]

    joint_angle = quat_diff_angle(local_rotations(rot, body_parents), local_rotations(ref_body_rot, body_parents))
    pose_err = (body_weights * joint_angle * joint_angle).sum(dim=-1)

    root_ang_vel_diff = body_ang_vel(body_state[:, 0]) - ref_root_ang_vel
    vel_err = body_weights[0] * (root_ang_vel_diff * root_ang_vel_diff).sum(dim=-1) \
        + (dof_weights * (dof_vel - ref_dof_vel) ** 2).sum(dim=-1)

    ee_diff = end_effector_offsets(pos, root_pos, root_rot) \
        - end_effector_offsets(ref_body_pos, ref_root_pos, ref_root_rot)
    end_eff_err = ((ee_diff * ee_diff).sum(dim=-1) * end_effector_mask.float()).sum(dim=-1)

    root_angle = quat_diff_angle(root_rot, ref_root_rot)
    root_err = root_pos_coeff * ((root_pos - ref_root_pos) ** 2).sum(dim=-1) \
        + root_rot_coeff * root_angle * root_angle \
        + root_vel_coeff * ((body_lin_vel(body_state[:, 0]) - ref_root_vel) ** 2).sum(dim=-1) \
        + root_ang_vel_coeff * (root_ang_vel_diff * root_ang_vel_diff).sum(dim=-1)
    com_err = com_vel_coeff * ((com_vel - ref_com_vel) ** 2).sum(dim=-1)

    body_pos_err = ((pos - ref_body_pos) ** 2).sum(dim=-1).mean(dim=-1)

    errors = torch.stack([pose_err, vel_err, end_eff_err, root_err, com_err, body_pos_err], dim=-1)
    terms = torch.exp(-term_scales * errors)
    return (terms * term_weights).sum(dim=-1), terms


@torch.jit.script
def detect_sim_failures(body_state: torch.Tensor, dof_state: torch.Tensor) -> torch.Tensor:
    """Envs whose physics blew up: non-finite values, or speeds and distances no character reaches."""
    finite = torch.isfinite(body_state).all(dim=-1).all(dim=-1) & torch.isfinite(dof_state).all(dim=-1).all(dim=-1)
    sane = (body_pos(body_state).abs() < 1.0e4).all(dim=-1).all(dim=-1) \
        & (body_vel(body_state).abs() < 1.0e3).all(dim=-1).all(dim=-1) \
        & (dof_state[..., 1].abs() < 1.0e3).all(dim=-1)
    return ~(finite & sane)


@torch.jit.script
def compute_deepmimic_reset(body_pos: torch.Tensor, ref_body_pos: torch.Tensor, contact_forces: torch.Tensor,
                            progress: torch.Tensor, contact_settle_steps: int, fall_contact_mask: torch.Tensor,
                            sim_failed: torch.Tensor,
                            clip_ended: torch.Tensor, enable_early_termination: bool, termination_distance: float,
                            contact_force_threshold: float,
                            max_episode_length: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns (reset, terminated early, timed out). A non-looping clip's end ends the episode
    as DeepMimic does (a terminal state, not a time-out). Ground contact does not end an episode in
    its first ``contact_settle_steps`` steps (an engine's contacts from before the reset)."""
    touching = (contact_forces.norm(p=2, dim=-1) > contact_force_threshold) & fall_contact_mask.unsqueeze(0)
    touching = touching & (progress > contact_settle_steps).unsqueeze(-1)
    drifted = (body_pos - ref_body_pos).norm(p=2, dim=-1).max(dim=-1).values > termination_distance
    terminated = (touching.any(dim=-1) | drifted) & (~sim_failed)
    if not enable_early_termination:
        terminated = torch.zeros_like(terminated)
    timed_out = (progress >= max_episode_length) & (~terminated) & (~clip_ended) & (~sim_failed)
    reset = terminated | timed_out | clip_ended | sim_failed
    return reset, terminated, timed_out
