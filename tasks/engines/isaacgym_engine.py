"""IsaacGym Preview 4 (PhysX) engine, written against the documented gymapi / gymtorch API.

NOT RUN: IsaacGym (Python 3.6-3.8, on no package index) cannot be installed where this project is
developed. ``.ci/static_checks.sh`` type-checks this module against ``isaacgym-stubs`` (gymapi only);
nothing here has been executed against IsaacGym. See docs/isaacgym.md.

Conversions done here, once, so the task sees the project's conventions (tasks/engines/engine.py):

* the asset: IsaacGym loads a copy of the MJCF made for its importer (tasks/engines/isaacgym_asset.py:
  spherical bodies' hinges listed x, y, z, geom densities in place of masses); the body masses it
  reports are checked against MuJoCo's at start-up.
* spherical joints: IsaacGym makes a body's three hinges one spherical joint, its DOFs the
  exponential map of the joint rotation and the child-frame angular velocity; our DOFs are MuJoCo's
  sequential hinge angles and rates. Positions, velocities and PD targets are converted both ways
  (tasks/engines/spherical_joints.py). PD drives act on the exp-map components, not on each hinge.
* quaternions: IsaacGym stores ``(x, y, z, w)``; the project uses ``(w, x, y, z)``.
* bodies and DOFs: IsaacGym's asset order is mapped by name to MJCF order (bodies without the
  world body, DOFs in hinge order); a name missing on either side is an error.
* env origins: IsaacGym's root, body and DOF tensors are in each env's own frame (IsaacGymEnvs and
  MimicKit write motion root positions into them unchanged); only drawing needs an env origin:
  lines are drawn in env 0's frame, the camera (env ``None``) in the global one.
* velocities: PhysX reports a rigid body's linear velocity at its centre of mass (the same
  tensors IsaacLab later relabelled ``com_vel``). The contract wants the body *frame's* velocity,
  as MuJoCo's ``framelinvel`` gives, so getters shift it by ``omega x (origin - com)`` and
  ``set_state`` shifts the root velocity the other way. ``python -m tools.isaacgym_check``
  measures whether that holds on a real IsaacGym.
* stale bodies after a reset: IsaacGym's rigid-body and contact tensors keep their old values until
  the next ``simulate`` (IsaacGymEnvs tasks live with that); here ``set_state`` fills the reset
  envs' body rows by forward kinematics of the written state (``_forward_kinematics``, hinges
  applied in MJCF order as MuJoCo does) and zeroes their contacts, as the contract asks. The next
  step's contact forces may predate the reset (IsaacGymEnvs masks them): ``contact_settle_steps = 1``.
* external forces (pushes) last one ``simulate`` in PhysX: they are applied before each one.
"""
import math
import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Tuple  # noqa: F401  (Tuple: type comments)

# IsaacGym must be imported before torch (gymtorch builds a torch extension on import).
from isaacgym import gymapi
from isaacgym import gymtorch  # type: ignore[attr-defined]  # isaacgym-stubs ships gymapi only
import torch

from tasks.body_state import ANG_VEL, BODY_STATE_WIDTH, LIN_VEL, POS, ROT
from tasks.engines.engine import Engine, EngineConfig, EngineWindow
from tasks.engines.isaacgym_asset import isaacgym_mjcf, parse_mjcf, spherical_hinge_groups
from tasks.engines.spherical_joints import SphericalJoints
from tasks.rotations import quat_from_axis_angle, quat_mul, quat_rotate

DEFAULT_ENV_SPACING = 5.0  # m, when EngineConfig.env_spacing is 0
MAX_ANGULAR_VELOCITY = 100.0  # rad/s; IsaacGym's default (64) clips fast limbs in flips and spins
MASS_TOLERANCE = 0.01  # relative: IsaacGym's body masses against MuJoCo's

# gymapi.acquire_gym() hands out one Gym per process, and IsaacGym supports one live sim per
# process (IsaacGymEnvs keeps an EXISTING_SIM global for this). Acquire it once, here.
_GYM = None  # type: Optional[gymapi.Gym]


def _gym() -> gymapi.Gym:
    global _GYM
    if _GYM is None:
        _GYM = gymapi.acquire_gym()
    return _GYM


def xyzw_to_wxyz(q: torch.Tensor) -> torch.Tensor:
    return torch.cat([q[..., 3:4], q[..., 0:3]], dim=-1)


def wxyz_to_xyzw(q: torch.Tensor) -> torch.Tensor:
    return torch.cat([q[..., 1:4], q[..., 0:1]], dim=-1)


class IsaacGymEngine(Engine, EngineWindow):
    contact_settle_steps = 1  # contact forces of the step after a reset may predate it (module docstring)

    def __init__(self, cfg: EngineConfig):
        mjcf = parse_mjcf(cfg.mjcf_path)
        super().__init__(cfg, torch.device(cfg.device), [b["name"] for b in mjcf["bodies"]], mjcf["dof_names"],
                         torch.tensor(mjcf["dof_ranges"], dtype=torch.float32))
        self.gym = _gym()
        self._build_kinematic_tree(mjcf["bodies"])
        self.spherical = SphericalJoints(*spherical_hinge_groups(mjcf["dof_names"], mjcf["bodies"]), self.device)
        self.sim = self._create_sim(cfg)
        asset_dir = tempfile.mkdtemp(prefix="deepmimic_isaacgym_")
        try:
            asset, dof_props = self._load_asset(isaacgym_mjcf(cfg.mjcf_path, asset_dir), mjcf)
        finally:
            shutil.rmtree(asset_dir, ignore_errors=True)
        self.dof_properties = dof_props  # as set on every actor (tools/isaacgym_check.py changes them)
        self._create_envs(asset, dof_props, mjcf["bodies"][0]["pos"], cfg.env_spacing or DEFAULT_ENV_SPACING)
        self._check_masses(cfg.mjcf_path)
        self.gym.prepare_sim(self.sim)
        self._acquire_tensors()
        self.viewer = None  # type: Optional[gymapi.Viewer]
        self.enable_viewer_sync = True
        self.paused = False
        self.show_ghost = True
        self._reset_requested = False
        self._ghost_lines = None  # type: Optional[Tuple[Any, Any]]  # (vertices [L*6], colors [L*3])
        if not cfg.headless:
            self._create_viewer()
        self._set_rest_state(mjcf["bodies"][0]["pos"], (1.0, 0.0, 0.0, 0.0))

    # --- set-up helpers ---------------------------------------------------------------------

    def _create_sim(self, cfg: EngineConfig) -> gymapi.Sim:
        """A PhysX sim with IsaacGymEnvs' humanoid settings and a ground plane."""
        use_gpu = self.device.type == "cuda"
        device_id = (self.device.index or 0) if use_gpu else 0
        sim_params = gymapi.SimParams()
        sim_params.up_axis = gymapi.UP_AXIS_Z
        sim_params.gravity = gymapi.Vec3(0.0, 0.0, -9.81)
        sim_params.dt = cfg.sim_dt
        sim_params.substeps = 1  # policy-step substeps are separate gym.simulate calls (see step)
        sim_params.use_gpu_pipeline = use_gpu
        sim_params.physx.use_gpu = use_gpu
        sim_params.physx.solver_type = 1  # TGS, IsaacGymEnvs' default
        sim_params.physx.num_position_iterations = 4
        sim_params.physx.num_velocity_iterations = 0
        sim_params.physx.num_threads = cfg.num_threads or (os.cpu_count() or 1)
        sim_params.physx.contact_offset = 0.02
        sim_params.physx.rest_offset = 0.0
        # as IsaacGymEnvs' HumanoidAMP and MimicKit's humanoids run PhysX
        sim_params.physx.bounce_threshold_velocity = 0.2
        sim_params.physx.max_depenetration_velocity = 10.0
        sim_params.physx.default_buffer_size_multiplier = 5.0
        sim_params.physx.max_gpu_contact_pairs = 8 * 1024 * 1024
        sim_params.physx.num_subscenes = 0
        graphics_device_id = -1 if cfg.headless else device_id
        sim = self.gym.create_sim(device_id, graphics_device_id, gymapi.SIM_PHYSX, sim_params)
        if sim is None:
            raise RuntimeError("IsaacGym failed to create a sim (one sim per process; is another alive?)")
        plane = gymapi.PlaneParams()
        plane.normal = gymapi.Vec3(0.0, 0.0, 1.0)
        plane.static_friction = plane.dynamic_friction = 0.9  # the MJCF's geom friction
        plane.restitution = 0.0
        self.gym.add_ground(sim, plane)
        return sim

    def _load_asset(self, asset_path: str, mjcf: Dict[str, Any]) -> Tuple[Any, Any]:
        """The IsaacGym copy of the MJCF as an asset, and its DOF properties: the actuators' PD gains
        and force limits, each hinge's armature (in joint space, as MuJoCo applies it) and limits."""
        options = gymapi.AssetOptions()
        options.default_dof_drive_mode = int(gymapi.DOF_MODE_POS)  # stubs type this field as int
        options.angular_damping = 0.0
        options.linear_damping = 0.0
        options.max_angular_velocity = MAX_ANGULAR_VELOCITY
        options.collapse_fixed_joints = False  # keep the joint-less wrists as bodies, as MuJoCo does
        options.use_physx_armature = True
        asset = self.gym.load_asset(self.sim, os.path.dirname(asset_path), os.path.basename(asset_path), options)
        self._map_asset_order(asset)
        dof_props = self.gym.get_asset_dof_properties(asset)
        ranges = dict(zip(mjcf["dof_names"], mjcf["dof_ranges"]))
        for i, name in enumerate(self.gym.get_asset_dof_names(asset)):
            kp, kv, effort = mjcf["actuators"][name]
            dof_props["driveMode"][i] = int(gymapi.DOF_MODE_POS)
            dof_props["stiffness"][i] = kp
            dof_props["damping"][i] = kv
            dof_props["effort"][i] = effort
            dof_props["armature"][i] = mjcf["armature"][name]
            dof_props["hasLimits"][i] = mjcf["limited"][name]
            dof_props["lower"][i], dof_props["upper"][i] = ranges[name]
        return asset, dof_props

    def _check_masses(self, mjcf_path: str) -> None:
        """IsaacGym's body masses (from the copy's densities) must be MuJoCo's from the MJCF."""
        from poselib_utils.mjcf_character import compile_mjcf

        self.mujoco_masses = torch.tensor(compile_mjcf(mjcf_path).body_mass[1:], dtype=torch.float32)
        ours = self._masses.cpu()
        error = ((ours - self.mujoco_masses).abs() / self.mujoco_masses.clamp_min(1e-6)).max().item()
        if error > MASS_TOLERANCE:
            table = ", ".join("{} {:.3f}/{:.3f} kg".format(n, float(a), float(b))
                              for n, a, b in zip(self.body_names, ours, self.mujoco_masses))
            raise RuntimeError("{}: IsaacGym's body masses differ from MuJoCo's by up to {:.1%} (IsaacGym/MuJoCo: {})"
                               .format(mjcf_path, error, table))

    def _create_envs(self, asset: gymapi.Asset, dof_props: Any, root_pos: List[float], spacing: float) -> None:
        """One actor per env on a grid; the env origins, actor indices, body masses and COMs."""
        lower = gymapi.Vec3(-spacing, -spacing, 0.0)
        upper = gymapi.Vec3(spacing, spacing, spacing)
        per_row = int(math.ceil(math.sqrt(self.num_envs)))
        start = gymapi.Transform()
        start.p = gymapi.Vec3(*root_pos)
        start.r = gymapi.Quat(0.0, 0.0, 0.0, 1.0)
        self.envs = []  # type: List[gymapi.Env]
        self.actors = []  # type: List[int]
        origins = []
        for i in range(self.num_envs):
            env = self.gym.create_env(self.sim, lower, upper, per_row)
            # collision group i, filter 1: self-collisions off (as the MJCF's contype/conaffinity)
            actor = self.gym.create_actor(env, asset, start, "character", i, 1, 0)
            self.gym.set_actor_dof_properties(env, actor, dof_props)
            self.envs.append(env)
            self.actors.append(actor)
            origin = self.gym.get_env_origin(env)
            origins.append([origin.x, origin.y, origin.z])
        self._env_origins = torch.tensor(origins, dtype=torch.float32, device=self.device)
        self._actor_ids = torch.tensor(
            [self.gym.get_actor_index(env, actor, gymapi.DOMAIN_SIM) for env, actor in zip(self.envs, self.actors)],
            dtype=torch.int32, device=self.device)
        props = self.gym.get_actor_rigid_body_properties(self.envs[0], self.actors[0])
        self._masses = torch.tensor([p.mass for p in props], dtype=torch.float32)[self._body_perm].to(self.device)
        coms = torch.tensor([[p.com.x, p.com.y, p.com.z] for p in props], dtype=torch.float32)[self._body_perm]
        self._com_local = coms.to(self.device)  # [B, 3] centre of mass in each body frame

    def _acquire_tensors(self) -> None:
        """IsaacGym's state tensors (each env's frame, xyzw, asset order; rows laid out as
        tasks/body_state.py, quaternion order aside), and the published buffers."""
        n, nb, nd = self.num_envs, self.num_bodies, self.num_dofs
        self._root_raw = gymtorch.wrap_tensor(self.gym.acquire_actor_root_state_tensor(self.sim))
        self._dof_raw = gymtorch.wrap_tensor(self.gym.acquire_dof_state_tensor(self.sim)).view(n, nd, 2)
        self._body_raw = gymtorch.wrap_tensor(self.gym.acquire_rigid_body_state_tensor(self.sim)).view(
            n, nb, BODY_STATE_WIDTH)
        self._contact_raw = gymtorch.wrap_tensor(self.gym.acquire_net_contact_force_tensor(self.sim)).view(n, nb, 3)
        self._targets_raw = torch.zeros(n, nd, device=self.device)
        self._forces_raw, self._forces_set = torch.zeros(n, nb, 3, device=self.device), False  # asset order
        self._pending_write = torch.zeros(n, dtype=torch.bool, device=self.device)
        self._adopt_readouts(torch.zeros(n, nd, 2, device=self.device),
                             torch.zeros(n, nb, BODY_STATE_WIDTH, device=self.device),
                             torch.zeros(n, 3, device=self.device), torch.zeros(n, nb, 3, device=self.device))

    def _map_asset_order(self, asset: gymapi.Asset) -> None:
        """Index tensors between IsaacGym's asset order and MJCF order; names must match."""
        asset_bodies = self.gym.get_asset_rigid_body_names(asset)
        asset_dofs = self.gym.get_asset_dof_names(asset)
        if sorted(asset_bodies) != sorted(self.body_names) or sorted(asset_dofs) != sorted(self.dof_names):
            raise ValueError("IsaacGym asset and MJCF disagree: bodies {} vs {}, DOFs {} vs {}".format(
                asset_bodies, self.body_names, asset_dofs, self.dof_names))
        # perm[i] = asset index of MJCF item i  (asset -> MJCF: x[:, perm]); inv: MJCF -> asset.
        self._body_perm = torch.tensor([asset_bodies.index(b) for b in self.body_names], dtype=torch.long)
        self._dof_perm = torch.tensor([asset_dofs.index(d) for d in self.dof_names], dtype=torch.long)
        self._dof_perm_inv = torch.argsort(self._dof_perm)

    def _build_kinematic_tree(self, bodies: List[Dict[str, Any]]) -> None:
        """Tables for ``_forward_kinematics``: parent, offset in parent, hinge axes and DOF slots."""
        self._parents = [b["parent"] for b in bodies]
        self._offsets = torch.tensor([b["pos"] for b in bodies], dtype=torch.float32)
        self._hinges = []  # type: List[List[Tuple[int, torch.Tensor]]]
        k = 0
        for body in bodies:
            rows = []
            for _, axis in body["hinges"]:
                a = torch.tensor(axis, dtype=torch.float32)
                rows.append((k, a / a.norm()))
                k += 1
            self._hinges.append(rows)

    def _create_viewer(self) -> None:
        self.viewer = self.gym.create_viewer(self.sim, gymapi.CameraProperties())
        if self.viewer is None:
            print("IsaacGymEngine: could not create a viewer, running headless")
            return
        for key, action in ((gymapi.KEY_ESCAPE, "QUIT"), (gymapi.KEY_V, "toggle_viewer_sync"),
                            (gymapi.KEY_SPACE, "pause"), (gymapi.KEY_BACKSPACE, "reset_env0"),
                            (gymapi.KEY_G, "toggle_ghost")):
            self.gym.subscribe_viewer_keyboard_event(self.viewer, key, action)

    # --- Engine contract -------------------------------------------------------------------

    def set_state(self, env_ids: Optional[torch.Tensor], root_pos: torch.Tensor, root_rot: torch.Tensor,
                  root_vel: torch.Tensor, root_ang_vel: torch.Tensor, dof_pos: torch.Tensor,
                  dof_vel: torch.Tensor) -> None:
        env_ids, (root_pos, root_rot, root_vel, root_ang_vel, dof_pos, dof_vel) = self.indices_and_rows(
            env_ids, (root_pos, root_rot, root_vel, root_ang_vel, dof_pos, dof_vel))
        ids = torch.arange(self.num_envs, device=self.device) if env_ids is None else env_ids.to(self.device).long()
        if ids.numel() == 0:
            return
        # The root's world-frame origin velocity -> PhysX's centre-of-mass velocity.
        root_com_offset = quat_rotate(root_rot, self._com_local[0].expand_as(root_pos))
        root = torch.cat([root_pos, wxyz_to_xyzw(root_rot),
                          root_vel + torch.cross(root_ang_vel, root_com_offset, dim=-1), root_ang_vel], dim=-1)
        self._root_raw[ids.long()] = root
        exp_map = self.spherical.angles_to_exp_map(dof_pos)
        self._dof_raw[ids, :, 0] = exp_map[:, self._dof_perm_inv]
        self._dof_raw[ids, :, 1] = self.spherical.rates_to_angular_velocity(dof_pos, dof_vel)[:, self._dof_perm_inv]
        self._targets_raw[ids] = exp_map[:, self._dof_perm_inv]
        self._pending_write[ids] = True  # written into the sim once, by the next step (_write_pending)
        # IsaacGym's body and contact tensors stay stale until the next simulate: publish these
        # envs' bodies from the written state instead (module docstring).
        self._dof_state[ids, :, 0] = dof_pos
        self._dof_state[ids, :, 1] = dof_vel
        body = self._forward_kinematics(root_pos, root_rot, root_vel, root_ang_vel, dof_pos, dof_vel)
        self._body_state[ids] = body
        self._com_velocity[ids] = self._mass_weighted_com_velocity(body)
        self._contact_forces[ids] = 0.0

    def set_pd_targets(self, targets: torch.Tensor) -> None:
        self._targets_raw[:] = self.spherical.angles_to_exp_map(targets.to(self.device))[:, self._dof_perm_inv]

    def set_body_forces(self, forces: torch.Tensor) -> None:
        self._forces_raw[:, self._body_perm] = forces.to(self.device, torch.float32)
        self._forces_set = True

    def _write_pending(self) -> None:
        """The envs set since the last step, in one indexed write of each kind: IsaacGym's maintainers
        ask for one per simulate (a second call's indices replace the first's)."""
        actor_ids = self._actor_ids[self._pending_write]
        if actor_ids.numel():
            self.gym.set_actor_root_state_tensor_indexed(self.sim, gymtorch.unwrap_tensor(self._root_raw),
                                                         gymtorch.unwrap_tensor(actor_ids), len(actor_ids))
            self.gym.set_dof_state_tensor_indexed(self.sim, gymtorch.unwrap_tensor(self._dof_raw),
                                                  gymtorch.unwrap_tensor(actor_ids), len(actor_ids))
        self._pending_write[:] = False

    def step(self) -> None:
        self._write_pending()
        self.gym.set_dof_position_target_tensor(self.sim, gymtorch.unwrap_tensor(self._targets_raw))
        for _ in range(self.substeps):
            if self._forces_set:  # env frames are the global one translated: ENV_SPACE forces are world forces
                self.gym.apply_rigid_body_force_tensors(self.sim, forceTensor=gymtorch.unwrap_tensor(self._forces_raw),
                                                        space=gymapi.ENV_SPACE)
            self.gym.simulate(self.sim)
        if self.device.type == "cpu":
            self.gym.fetch_results(self.sim, True)
        self.gym.refresh_actor_root_state_tensor(self.sim)
        self.gym.refresh_dof_state_tensor(self.sim)
        self.gym.refresh_rigid_body_state_tensor(self.sim)
        self.gym.refresh_net_contact_force_tensor(self.sim)
        self._publish()
        self._render()

    @property
    def window_open(self) -> bool:
        return self.viewer is not None

    def show_reference(self, body_pos: torch.Tensor) -> None:
        """The ghost: orange lines from each body's reference position to its parent's, in env 0's frame (as MimicKit)."""
        if self.viewer is None:
            return
        pos = body_pos.detach().to("cpu", dtype=torch.float32)
        bones = [(p, b) for b, p in enumerate(self._parents) if p >= 0]
        # flat float32 arrays, 6 numbers per line and 3 per colour (as FrankaCabinet passes lists)
        vertices = torch.stack([pos[i] for bone in bones for i in bone]).reshape(-1).numpy()
        colors = torch.tensor([1.0, 0.55, 0.1] * len(bones)).numpy()
        self._ghost_lines = (vertices, colors)

    def take_reset_request(self) -> bool:
        requested, self._reset_requested = self._reset_requested, False
        return requested

    def close(self) -> None:
        if self.viewer is not None:
            self.gym.destroy_viewer(self.viewer)
            self.viewer = None
        self.gym.destroy_sim(self.sim)

    # --- conversions -----------------------------------------------------------------------

    def _publish(self) -> None:
        """IsaacGym's raw tensors -> the project's conventions, for all envs."""
        raw = self._body_raw[:, self._body_perm]
        pos = raw[..., POS]
        rot = xyzw_to_wxyz(raw[..., ROT])
        com_vel = raw[..., LIN_VEL]
        ang_vel = raw[..., ANG_VEL]
        com_offset = quat_rotate(rot, self._com_local.expand_as(pos))
        self._body_state[..., POS] = pos
        self._body_state[..., ROT] = rot
        self._body_state[..., LIN_VEL] = com_vel - torch.cross(ang_vel, com_offset, dim=-1)
        self._body_state[..., ANG_VEL] = ang_vel
        self._com_velocity[:] = (com_vel * self._masses[:, None]).sum(dim=1) / self._masses.sum()
        dof = self._dof_raw[:, self._dof_perm]
        angles = self.spherical.exp_map_to_angles(dof[..., 0])
        self._dof_state[..., 0] = angles
        self._dof_state[..., 1] = self.spherical.angular_velocity_to_rates(angles, dof[..., 1])
        # The net contact force includes body-body contacts, which cannot occur here: actors
        # filter self-collision (create_actor's filter) and envs are in separate groups.
        self._contact_forces[:] = self._contact_raw[:, self._body_perm]

    def _mass_weighted_com_velocity(self, body: torch.Tensor) -> torch.Tensor:
        """Character COM velocity [N, 3] from body-frame states [N, B, 13] in project conventions."""
        com_offset = quat_rotate(body[..., ROT], self._com_local.expand(body.shape[0], -1, -1))
        com_vel = body[..., LIN_VEL] + torch.cross(body[..., ANG_VEL], com_offset, dim=-1)
        return (com_vel * self._masses[:, None]).sum(dim=1) / self._masses.sum()

    def _forward_kinematics(self, root_pos: torch.Tensor, root_rot: torch.Tensor, root_vel: torch.Tensor,
                            root_ang_vel: torch.Tensor, dof_pos: torch.Tensor,
                            dof_vel: torch.Tensor) -> torch.Tensor:
        """[M, B, 13] body frames (env-local, wxyz) of the MJCF tree, hinges composed in order."""
        device = root_pos.device
        pos = [root_pos]  # type: List[torch.Tensor]
        rot = [root_rot]
        lin = [root_vel]
        ang = [root_ang_vel]
        for b in range(1, self.num_bodies):
            p = self._parents[b]
            offset = quat_rotate(rot[p], self._offsets[b].to(device).expand_as(root_pos))
            q = rot[p]
            w = ang[p]
            for k, axis in self._hinges[b]:
                axis_b = axis.to(device).expand_as(root_pos)
                w = w + quat_rotate(q, axis_b) * dof_vel[:, k:k + 1]
                q = quat_mul(q, quat_from_axis_angle(axis_b, dof_pos[:, k]))
            pos.append(pos[p] + offset)
            rot.append(q)
            lin.append(lin[p] + torch.cross(ang[p], offset, dim=-1))
            ang.append(w)
        return torch.cat([torch.stack(pos, 1), torch.stack(rot, 1), torch.stack(lin, 1), torch.stack(ang, 1)], -1)

    def _handle_viewer_events(self, viewer: gymapi.Viewer) -> None:
        if self.gym.query_viewer_has_closed(viewer):
            raise SystemExit(0)
        for event in self.gym.query_viewer_action_events(viewer):
            if event.value <= 0:
                continue
            if event.action == "QUIT":
                raise SystemExit(0)
            if event.action == "toggle_viewer_sync":
                self.enable_viewer_sync = not self.enable_viewer_sync
            elif event.action == "pause":
                self.paused = not self.paused
            elif event.action == "reset_env0":
                self._reset_requested = True
            elif event.action == "toggle_ghost":
                self.show_ghost = not self.show_ghost

    def _render(self) -> None:
        """Draw the viewer, its camera following env 0's root, with the reference ghost. Keys as
        the MuJoCo viewer's: Space pauses (the window stays live), Backspace resets env 0, G toggles
        the ghost; V toggles drawing (faster training), ESC quits."""
        viewer = self.viewer
        if viewer is None:
            return
        self._handle_viewer_events(viewer)
        while self.paused and not self._reset_requested:
            self._draw(viewer)
            self._handle_viewer_events(viewer)
        if not self.enable_viewer_sync:
            self.gym.poll_viewer_events(viewer)
            return
        self._draw(viewer)

    def _draw(self, viewer: gymapi.Viewer) -> None:
        self.gym.clear_lines(viewer)
        if self.show_ghost and self._ghost_lines is not None:
            vertices, colors = self._ghost_lines
            self.gym.add_lines(viewer, self.envs[0], len(colors) // 3, vertices, colors)
        root = (self._root_raw[0, POS] + self._env_origins[0]).tolist()  # the camera takes global coordinates
        target = gymapi.Vec3(root[0], root[1], root[2])
        eye = gymapi.Vec3(root[0], root[1] - 3.0, root[2] + 1.0)
        # env None: global coordinates, as IsaacGymEnvs calls it (the stubs type it Env only)
        self.gym.viewer_camera_look_at(viewer, None, eye, target)  # type: ignore[arg-type]
        if self.device.type != "cpu":
            self.gym.fetch_results(self.sim, True)
        self.gym.step_graphics(self.sim)
        self.gym.draw_viewer(viewer, self.sim, True)
        self.gym.sync_frame_time(self.sim)
