"""MuJoCo-Warp (GPU) engine: every env is a world of one batched ``mujoco_warp`` simulation.

The scene is the CPU engine's (tasks/engines/mujoco_scene.py: the character plus a floor) without its
readout sensors. The task's quantities are read straight from MuJoCo's own arrays by three small
Warp kernels instead: sensors in mujoco_warp run inside every ``forward``/``step`` (all substeps,
not just the last), and the contact sensor's match-and-reduce machinery costs more than one pass
over the contact list. The kernels write fixed buffers that the getters return as torch views
(``wp.to_torch``, zero copy), so a policy step allocates nothing and copies nothing to the host.

One policy step is ``step2`` (the first substep reuses the position and velocity stages of the
``forward`` that ended the previous policy step or ``set_state``; only the controls changed since),
``substeps - 1`` full steps, then ``forward`` at the final state and the readout kernels. The
readout is therefore of the final state, contact forces included, as in the CPU engine, for the
price of ``substeps`` physics steps. On CUDA the whole sequence is one CUDA graph, and so is
``forward`` + readout, which ``set_state`` replays after writing the reset envs' rows of
qpos/qvel/ctrl with torch indexing; off CUDA the same functions run as plain calls. When torch is
capturing a graph of its own (the task's whole step), the sequences are recorded into it instead:
Warp joins torch's capture on torch's stream (``wp.capture_begin(external=True)``).

mujoco_warp has no auto-reset (put_model rejects even the flag that disables it), so a blown-up
world carries NaNs to the task, which resets it. Physics runs in float32.
"""
import gc
import time
from typing import Optional

import mujoco
import mujoco_warp as mjw
import numpy as np
import torch
import warp as wp

from tasks.body_state import ANG_VEL, BODY_STATE_WIDTH, LIN_VEL, POS, ROT
from tasks.engines.engine import Engine, EngineConfig
from tasks.engines.mujoco_scene import FLOOR_NAME, character_description, compile_scene
from tasks.rotations import quat_rotate_inverse

# Most contacts one geom of each type can make with a plane (MuJoCo's plane colliders).
_PLANE_CONTACTS = {mujoco.mjtGeom.mjGEOM_SPHERE: 1, mujoco.mjtGeom.mjGEOM_ELLIPSOID: 1,
                   mujoco.mjtGeom.mjGEOM_CAPSULE: 2, mujoco.mjtGeom.mjGEOM_CYLINDER: 4,
                   mujoco.mjtGeom.mjGEOM_BOX: 4}
_OTHER_PLANE_CONTACTS = 8  # meshes and anything else
# Where each part of a body's row starts (tasks/body_state.py), as constants of the readout kernel.
_POS_AT, _ROT_AT = wp.constant(POS.start), wp.constant(ROT.start)
_LIN_VEL_AT, _ANG_VEL_AT = wp.constant(LIN_VEL.start), wp.constant(ANG_VEL.start)


def contact_capacity(m: mujoco.MjModel):
    """(nconmax, njmax) per world: every character geom touching the floor at once, plus limits.

    mujoco_warp drops constraints past njmax in a world, so its defaults (sized for a robot
    standing on its feet) are too small for a humanoid lying on the ground.
    """
    floor = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, FLOOR_NAME)
    nconmax = 0
    for g in range(m.ngeom):
        if g != floor and m.geom_bodyid[g] != 0:
            nconmax += _PLANE_CONTACTS.get(int(m.geom_type[g]), _OTHER_PLANE_CONTACTS)
    condim = int(m.geom_condim.max())
    if m.opt.cone == mujoco.mjtCone.mjCONE_PYRAMIDAL:
        rows = 1 if condim == 1 else 2 * (condim - 1)
    else:
        rows = condim
    nlimit = 2 * int(np.sum(m.jnt_limited))  # a hinge touches one end at a time; 2 leaves slack
    return nconmax, nconmax * rows + nlimit + m.neq * 6


@wp.kernel
def _body_readout(
    # Model (character tables):
    body_rootid: wp.array(dtype=int),
    body_mass: wp.array(dtype=float),
    total_mass: float,
    # Data in:
    qpos_in: wp.array2d(dtype=float),
    qvel_in: wp.array2d(dtype=float),
    xpos_in: wp.array2d(dtype=wp.vec3),
    xquat_in: wp.array2d(dtype=wp.quat),
    xipos_in: wp.array2d(dtype=wp.vec3),
    subtree_com_in: wp.array2d(dtype=wp.vec3),
    cvel_in: wp.array2d(dtype=wp.spatial_vector),
    # Out:
    body_state_out: wp.array3d(dtype=float),
    com_vel_out: wp.array2d(dtype=float),
    dof_state_out: wp.array3d(dtype=float),
    contact_out: wp.array3d(dtype=float),
):
    """One thread per world: body states, COM velocity and hinge states; clears contact forces.

    cvel is [angular; linear] at subtree_com of the body's tree root, world orientation, so the
    linear velocity of a point p on body b is cvel_lin + cvel_ang x (p - subtree_com[root(b)]).
    """
    worldid = wp.tid()
    nbody = body_state_out.shape[1]
    com_vel = wp.vec3(0.0)
    for i in range(nbody):
        body = i + 1
        xpos = xpos_in[worldid, body]
        xquat = xquat_in[worldid, body]
        cvel = cvel_in[worldid, body]
        ang = wp.spatial_top(cvel)
        centre = subtree_com_in[worldid, body_rootid[body]]
        lin = wp.spatial_bottom(cvel) + wp.cross(ang, xpos - centre)
        com_vel += body_mass[body] * (wp.spatial_bottom(cvel) + wp.cross(ang, xipos_in[worldid, body] - centre))
        for k in range(3):
            body_state_out[worldid, i, _POS_AT + k] = xpos[k]
            body_state_out[worldid, i, _LIN_VEL_AT + k] = lin[k]
            body_state_out[worldid, i, _ANG_VEL_AT + k] = ang[k]
            contact_out[worldid, i, k] = 0.0
        for k in range(4):  # mujoco_warp keeps MuJoCo's (w, x, y, z) order in wp.quat
            body_state_out[worldid, i, _ROT_AT + k] = xquat[k]
    com_vel = com_vel / total_mass
    for k in range(3):
        com_vel_out[worldid, k] = com_vel[k]
    for j in range(dof_state_out.shape[1]):
        dof_state_out[worldid, j, 0] = qpos_in[worldid, 7 + j]
        dof_state_out[worldid, j, 1] = qvel_in[worldid, 6 + j]


@wp.kernel
def _contact_readout(
    # Model (character tables):
    floor_geom: int,
    geom_bodyid: wp.array(dtype=int),
    # Data in:
    nacon_in: wp.array(dtype=int),
    contact_geom_in: wp.array(dtype=wp.vec2i),
    contact_worldid_in: wp.array(dtype=int),
    contact_force_in: wp.array(dtype=wp.spatial_vector),
    # Out:
    contact_out: wp.array3d(dtype=float),
):
    """One thread per contact: add each floor contact's world-frame force to its body's row.

    MuJoCo's contact force is the one geom[0] exerts on geom[1], along the normal from geom[0] to
    geom[1]. The row gets the force the floor exerts on the body (+z for a body standing on it),
    the Engine contract's sign.
    """
    conid = wp.tid()
    if conid >= nacon_in[0]:
        return
    geom = contact_geom_in[conid]
    force = wp.spatial_top(contact_force_in[conid])
    if geom[0] == floor_geom:
        body = geom_bodyid[geom[1]]
    elif geom[1] == floor_geom:
        body = geom_bodyid[geom[0]]
        force = -force
    else:
        return
    if body < 1:
        return
    worldid = contact_worldid_in[conid]
    for k in range(3):
        wp.atomic_add(contact_out, worldid, body - 1, k, force[k])


class MujocoWarpEngine(Engine):
    def __init__(self, cfg: EngineConfig):
        device = torch.device(cfg.device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        # No mjDSBL_AUTORESET here: mujoco_warp rejects the flag, and never auto-resets anyway.
        self.model = m = compile_scene(cfg.mjcf_path, cfg.sim_dt, with_sensors=False)
        body_names, dof_names, dof_limits = character_description(m)
        super().__init__(cfg, device, body_names, dof_names, torch.from_numpy(dof_limits))
        wp.config.log_level = max(wp.config.log_level, wp.LOG_WARNING)  # not a line per kernel module
        wp.init()
        self._wp_device = wp.device_from_torch(self.device)

        data = mujoco.MjData(m)
        mujoco.mj_forward(m, data)
        nconmax, njmax = contact_capacity(m)
        n, nb, nd = self.num_envs, self.num_bodies, self.num_dofs
        with wp.ScopedDevice(self._wp_device):
            self._m = mjw.put_model(m)
            self._d = mjw.put_data(m, data, nworld=n, nconmax=nconmax, njmax=njmax)
            self._body_rootid = wp.array(m.body_rootid, dtype=int)
            self._body_mass = wp.array(m.body_mass, dtype=float)
            self._geom_bodyid = wp.array(m.geom_bodyid, dtype=int)
            self._contact_force = wp.zeros(self._d.naconmax, dtype=wp.spatial_vector)
            self._contact_ids = wp.array(np.arange(self._d.naconmax), dtype=int)
            self._body_state_wp = wp.zeros((n, nb, BODY_STATE_WIDTH), dtype=float)
            self._com_vel_wp = wp.zeros((n, 3), dtype=float)
            self._dof_state_wp = wp.zeros((n, nd, 2), dtype=float)
            self._contact_wp = wp.zeros((n, nb, 3), dtype=float)
        self._total_mass = float(m.body_mass[1:].sum())
        self._floor_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, FLOOR_NAME)

        # Torch views aliasing the Warp arrays: writes go straight to the simulation.
        self._qpos = wp.to_torch(self._d.qpos)
        self._qvel = wp.to_torch(self._d.qvel)
        self._ctrl = wp.to_torch(self._d.ctrl)
        self._qacc_warmstart = wp.to_torch(self._d.qacc_warmstart)
        self._xfrc = wp.to_torch(self._d.xfrc_applied)  # [N, model bodies, 6]: force, torque (world, at the COM)
        self._body_ids = torch.tensor([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, b) for b in self.body_names],
                                      dtype=torch.long, device=self.device)
        self._adopt_readouts(wp.to_torch(self._dof_state_wp), wp.to_torch(self._body_state_wp),
                             wp.to_torch(self._com_vel_wp), wp.to_torch(self._contact_wp))

        self._step_graph = None
        self._forward_graph = None
        self._use_graph = self._wp_device.is_cuda and wp.is_mempool_enabled(self._wp_device)
        self.capturable = self._use_graph
        if self._wp_device.is_cuda:
            self._wp_stream = wp.get_stream(self._wp_device)
            self._wp_stream_as_torch = torch.cuda.ExternalStream(self._wp_stream.cuda_stream, device=self.device)
        # Run both sequences once (compiling and loading every kernel they use), then capture.
        start = time.perf_counter()
        print("MuJoCo-Warp: building the physics kernels for {} (compiled on a machine's first run, about 2 min "
              "on a GPU; read back from {} after that)".format(self.device, wp.config.kernel_cache_dir), flush=True)
        self._launch(None, self._forward_fn)
        self._launch(None, self._step_fn)
        print("MuJoCo-Warp: kernels ready in {:.1f} s".format(time.perf_counter() - start), flush=True)
        if self._use_graph:
            self._forward_graph = self._capture(self._forward_fn)
            self._step_graph = self._capture(self._step_fn)
        self._set_rest_state(m.qpos0[0:3], m.qpos0[3:7])

    # Physics sequences (captured as CUDA graphs on CUDA).

    def _readout(self) -> None:
        d = self._d
        wp.launch(_body_readout, dim=self.num_envs,
                  inputs=[self._body_rootid, self._body_mass, self._total_mass, d.qpos, d.qvel, d.xpos, d.xquat,
                          d.xipos, d.subtree_com, d.cvel],
                  outputs=[self._body_state_wp, self._com_vel_wp, self._dof_state_wp, self._contact_wp])
        mjw.contact_force(self._m, d, self._contact_ids, True, self._contact_force)
        wp.launch(_contact_readout, dim=d.naconmax,
                  inputs=[self._floor_geom, self._geom_bodyid, d.nacon, d.contact.geom, d.contact.worldid,
                          self._contact_force],
                  outputs=[self._contact_wp])

    def _forward_fn(self) -> None:
        mjw.forward(self._m, self._d)
        self._readout()

    def _step_fn(self) -> None:
        # The data holds forward() of the current state with the old controls: only the stages
        # after the controls (actuation, acceleration, constraint solve, integration) are stale.
        mjw.step2(self._m, self._d)
        for _ in range(self.substeps - 1):
            mjw.step(self._m, self._d)
        self._forward_fn()

    def _capture(self, fn):
        # A garbage collection inside the capture would record stale Warp objects' frees into the
        # graph (mjlab's sim.py does the same).
        enabled = gc.isenabled()
        gc.disable()
        try:
            with wp.ScopedDevice(self._wp_device), wp.ScopedCapture(force_module_load=False) as capture:
                fn()
        finally:
            if enabled:
                gc.enable()
        return capture.graph

    def _launch(self, graph, fn) -> None:
        """Run ``fn`` (or its graph) on Warp's stream, ordered after and before torch's work."""
        if not self._wp_device.is_cuda:
            with wp.ScopedDevice(self._wp_device):
                fn()
            return
        torch_stream = torch.cuda.current_stream(self.device)
        if torch.cuda.is_current_stream_capturing():  # recorded into torch's graph, on its stream
            capture_stream = wp.stream_from_torch(torch_stream)
            with wp.ScopedDevice(self._wp_device), wp.ScopedStream(capture_stream, sync_enter=False):
                # relaxed: the mode the task's capture runs in (tasks/base/step_graph.py)
                wp.capture_begin(stream=capture_stream, force_module_load=False, external=True,
                                 capture_mode=wp.CaptureMode.RELAXED)
                try:
                    fn()
                finally:
                    wp.capture_end(stream=capture_stream)
            return
        self._wp_stream_as_torch.wait_stream(torch_stream)
        with wp.ScopedDevice(self._wp_device):
            if graph is not None:
                wp.capture_launch(graph)
            else:
                fn()
        torch_stream.wait_stream(self._wp_stream_as_torch)

    # Engine contract.

    def set_state(self, env_ids: Optional[torch.Tensor], root_pos, root_rot, root_vel, root_ang_vel,
                  dof_pos, dof_vel) -> None:
        dev, f32 = self.device, torch.float32
        root_rot = root_rot.to(dev, f32)
        dof_pos = dof_pos.to(dev, f32)
        # MuJoCo's free joint takes its angular velocity in the body frame.
        local_ang_vel = quat_rotate_inverse(root_rot, root_ang_vel.to(dev, f32))
        qpos = torch.cat([root_pos.to(dev, f32), root_rot, dof_pos], dim=-1)
        qvel = torch.cat([root_vel.to(dev, f32), local_ang_vel, dof_vel.to(dev, f32)], dim=-1)
        if env_ids is not None and env_ids.dtype == torch.bool:
            # Masked write: the host never learns which envs reset.
            chosen = env_ids.to(dev).unsqueeze(-1)
            self._qpos.copy_(torch.where(chosen, qpos, self._qpos))
            self._qvel.copy_(torch.where(chosen, qvel, self._qvel))
            self._ctrl.copy_(torch.where(chosen, dof_pos, self._ctrl))
            # a teleported world's last accelerations mean nothing
            self._qacc_warmstart.masked_fill_(chosen, 0.0)
        else:
            rows = slice(None) if env_ids is None else env_ids.to(dev, torch.long)
            if env_ids is not None and rows.numel() == 0:
                return
            self._qpos[rows] = qpos
            self._qvel[rows] = qvel
            self._ctrl[rows] = dof_pos
            self._qacc_warmstart[rows] = 0.0
        # forward runs over every world; the others recompute the values they already hold.
        self._launch(self._forward_graph, self._forward_fn)

    def set_pd_targets(self, targets: torch.Tensor) -> None:
        self._ctrl.copy_(targets.detach())

    def set_body_forces(self, forces: torch.Tensor) -> None:
        self._xfrc[:, self._body_ids, 0:3] = forces.detach().to(self.device, torch.float32)

    def step(self) -> None:
        self._launch(self._step_graph, self._step_fn)

    def capture_state(self):
        """qpos, qvel, controls, external forces and the solver's warm start of every world (exact)."""
        state = {k: getattr(self, "_" + k).detach().cpu().clone() for k in ("qpos", "qvel", "ctrl", "qacc_warmstart",
                                                                              "xfrc")}
        state["engine"] = type(self).__name__
        return state

    def restore_state(self, state) -> None:
        self._check_state_fits(state)
        for k in ("qpos", "qvel", "ctrl", "qacc_warmstart"):
            getattr(self, "_" + k).copy_(state[k].to(self.device))
        if "xfrc" in state:  # checkpoints from before pushes have none
            self._xfrc.copy_(state["xfrc"].to(self.device))
        else:
            self._xfrc.zero_()
        self._launch(self._forward_graph, self._forward_fn)

    def close(self) -> None:
        self._step_graph = None
        self._forward_graph = None
