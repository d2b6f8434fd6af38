"""MuJoCo (CPU) engine: every env is a row of a state array stepped by ``mujoco.rollout``.

``mujoco.rollout`` steps all envs in C on a thread pool, so no Python runs per env or per
substep. The body states, centre-of-mass velocity and ground contact forces the task needs are
MuJoCo sensors added to the scene here (not to the character's MJCF). MuJoCo computes sensors at
the start of a step, before integrating, so each policy step rolls out one extra physics step
and keeps its sensors (the final state's) but not its state.
"""
import os
import xml.etree.ElementTree as ET
from typing import Optional

import mujoco
import numpy as np
import torch
from mujoco import rollout

from tasks.engines.engine import Engine, EngineConfig
from tasks.utils.rotations import quat_rotate_inverse

FLOOR_NAME = "floor"
BODY_STATE_WIDTH = 13


def build_scene_xml(mjcf_path: str, with_sensors: bool = True) -> str:
    """The character's MJCF plus a floor, a light and the readout sensors, as XML text."""
    tree = ET.parse(mjcf_path)
    root = tree.getroot()
    compiler = root.find("compiler")
    if compiler is None:
        compiler = ET.SubElement(root, "compiler")
    compiler.set("meshdir", os.path.dirname(os.path.abspath(mjcf_path)))
    world = root.find("worldbody")
    ET.SubElement(world, "light", {"name": "sun", "pos": "0 0 4", "dir": "0 0 -1", "directional": "true"})
    ET.SubElement(world, "geom", {"name": FLOOR_NAME, "type": "plane", "size": "0 0 1", "contype": "0",
                                  "conaffinity": "1", "rgba": "0.8 0.8 0.8 1"})
    if with_sensors:
        bodies = [b.get("name") for b in world.iter("body")]
        sensors = ET.SubElement(root, "sensor")
        for name in bodies:
            for kind in ("framepos", "framequat", "framelinvel", "frameangvel"):
                ET.SubElement(sensors, kind, {"objtype": "xbody", "objname": name})
        ET.SubElement(sensors, "subtreelinvel", {"body": bodies[0]})
        for name in bodies:
            # MuJoCo reports the force the first object exerts on the second: floor first, so the
            # reading is the ground's force on the body (+z when standing on it).
            ET.SubElement(sensors, "contact", {"geom1": FLOOR_NAME, "body2": name, "data": "force",
                                               "reduce": "netforce", "num": "1"})
    return ET.tostring(root, encoding="unicode")


def compile_scene(mjcf_path: str, sim_dt: float, with_sensors: bool = True) -> mujoco.MjModel:
    """The scene of ``build_scene_xml`` compiled at physics step ``sim_dt``, checked to be the
    character every engine expects: a free root, then hinges, each driven by its own actuator."""
    m = mujoco.MjModel.from_xml_string(build_scene_xml(mjcf_path, with_sensors))
    m.opt.timestep = sim_dt
    if m.njnt < 1 or m.jnt_type[0] != mujoco.mjtJoint.mjJNT_FREE:
        raise ValueError("{}: the first joint must be the root's free joint".format(mjcf_path))
    if np.any(m.jnt_type[1:] != mujoco.mjtJoint.mjJNT_HINGE):
        raise ValueError("{}: every joint after the root must be a hinge".format(mjcf_path))
    if m.nu != m.njnt - 1 or np.any(m.actuator_trnid[:, 0] != np.arange(1, m.njnt)):
        raise ValueError("{}: needs one position actuator per hinge, in joint order".format(mjcf_path))
    return m


def describe_character(engine: Engine, m: mujoco.MjModel, device: torch.device) -> None:
    """Fill the Engine's body and DOF names, masses and limits from the compiled model."""
    engine.body_names = [m.body(b).name for b in range(1, m.nbody)]
    engine.dof_names = [m.joint(j).name for j in range(1, m.njnt)]
    engine.body_masses = torch.tensor(m.body_mass[1:], dtype=torch.float32, device=device)
    engine.dof_limits = torch.tensor(m.jnt_range[1:], dtype=torch.float32, device=device)


class MujocoEngine(Engine):
    def __init__(self, cfg: EngineConfig):
        self.device = torch.device("cpu")
        self.num_envs = cfg.num_envs
        self.substeps = cfg.substeps
        self.model = m = compile_scene(cfg.mjcf_path, cfg.sim_dt)
        # Let a blown-up env carry NaNs to the task, which resets it and counts it, instead of
        # MuJoCo silently teleporting it back to the model's default pose.
        m.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_AUTORESET
        character_bodies = m.nbody - 1
        describe_character(self, m, self.device)

        self._spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        self._nstate = mujoco.mj_stateSize(m, self._spec)
        self._qpos_at = mujoco.mj_stateSize(m, mujoco.mjtState.mjSTATE_TIME)
        self._qvel_at = self._qpos_at + m.nq
        nthread = cfg.num_threads or os.cpu_count() or 1
        self._datas = [mujoco.MjData(m) for _ in range(nthread)]
        self._rollout = rollout.Rollout(nthread=nthread)

        mujoco.mj_resetData(m, self._datas[0])
        state0 = np.empty(self._nstate)
        mujoco.mj_getState(m, self._datas[0], state0, self._spec)
        self._state = np.tile(state0, (self.num_envs, 1))
        self._ctrl = np.zeros((self.num_envs, self.substeps + 1, m.nu))
        self._state_out = np.empty((self.num_envs, self.substeps + 1, self._nstate))
        self._sensor_out = np.empty((self.num_envs, self.substeps + 1, m.nsensordata))
        self._sensors = np.zeros((self.num_envs, m.nsensordata))

        body_end = character_bodies * BODY_STATE_WIDTH
        self._body_state = torch.zeros(self.num_envs, character_bodies, BODY_STATE_WIDTH)
        self._com_vel = torch.zeros(self.num_envs, 3)
        self._contact = torch.zeros(self.num_envs, character_bodies, 3)
        self._dof_state = torch.zeros(self.num_envs, self.num_dofs, 2)
        self._slices = (slice(0, body_end), slice(body_end, body_end + 3),
                        slice(body_end + 3, body_end + 3 + 3 * character_bodies))
        self.set_state(None, *self._default_pose())

    def _default_pose(self):
        n, d = self.num_envs, self.num_dofs
        root_pos = torch.tensor(self.model.qpos0[0:3], dtype=torch.float32).repeat(n, 1)
        root_rot = torch.tensor(self.model.qpos0[3:7], dtype=torch.float32).repeat(n, 1)
        zeros3 = torch.zeros(n, 3)
        return root_pos, root_rot, zeros3, zeros3, torch.zeros(n, d), torch.zeros(n, d)

    def _publish(self, rows) -> None:
        """Copy the numpy state and sensors of ``rows`` into the float32 torch buffers."""
        state = torch.from_numpy(self._state[rows])
        sensors = torch.from_numpy(self._sensors[rows]).float()
        nq = self.model.nq
        self._dof_state[rows, :, 0] = state[:, self._qpos_at + 7:self._qpos_at + nq].float()
        self._dof_state[rows, :, 1] = state[:, self._qvel_at + 6:self._qvel_at + 6 + self.num_dofs].float()
        self._body_state[rows] = sensors[:, self._slices[0]].view(-1, self.num_bodies, BODY_STATE_WIDTH)
        self._com_vel[rows] = sensors[:, self._slices[1]]
        self._contact[rows] = sensors[:, self._slices[2]].view(-1, self.num_bodies, 3)

    def set_state(self, env_ids: Optional[torch.Tensor], root_pos, root_rot, root_vel, root_ang_vel,
                  dof_pos, dof_vel) -> None:
        env_ids, (root_pos, root_rot, root_vel, root_ang_vel, dof_pos, dof_vel) = self.indices_and_rows(
            env_ids, (root_pos, root_rot, root_vel, root_ang_vel, dof_pos, dof_vel))
        rows = np.arange(self.num_envs) if env_ids is None else env_ids.cpu().numpy()
        if rows.size == 0:
            return
        q, v = self._qpos_at, self._qvel_at
        # MuJoCo's free joint takes its angular velocity in the body frame.
        local_ang_vel = quat_rotate_inverse(root_rot, root_ang_vel)
        block = self._state[rows]
        block[:, q:q + 3] = root_pos.cpu().numpy()
        block[:, q + 3:q + 7] = root_rot.cpu().numpy()
        block[:, q + 7:q + self.model.nq] = dof_pos.cpu().numpy()
        block[:, v:v + 3] = root_vel.cpu().numpy()
        block[:, v + 3:v + 6] = local_ang_vel.cpu().numpy()
        block[:, v + 6:v + self.model.nv] = dof_vel.cpu().numpy()
        self._state[rows] = block
        self._ctrl[rows] = dof_pos.cpu().numpy()[:, None]
        data = self._datas[0]
        for row in rows:
            mujoco.mj_setState(self.model, data, self._state[row], self._spec)
            # the state spec excludes controls: use the targets this env now holds, not the
            # scratch data's leftovers, for the force-dependent sensors (contacts)
            data.ctrl[:] = self._ctrl[row, 0]
            mujoco.mj_forward(self.model, data)
            self._sensors[row] = data.sensordata
        self._publish(rows)

    def set_pd_targets(self, targets: torch.Tensor) -> None:
        self._ctrl[:] = targets.detach().cpu().numpy()[:, None]

    def step(self) -> None:
        self._rollout.rollout(self.model, self._datas, self._state, self._ctrl, nstep=self.substeps + 1,
                              state=self._state_out, sensordata=self._sensor_out)
        self._state[:] = self._state_out[:, self.substeps - 1]
        self._sensors[:] = self._sensor_out[:, self.substeps]
        self._publish(slice(None))

    def capture_state(self):
        """The exact float64 MuJoCo states, controls and sensor readings of every env."""
        return {"engine": type(self).__name__, "state": self._state.copy(), "ctrl": self._ctrl.copy(),
                "sensors": self._sensors.copy()}

    def restore_state(self, state) -> None:
        if state.get("engine") != type(self).__name__:
            raise ValueError("engine state of {} does not fit {}".format(state.get("engine"), type(self).__name__))
        self._state[:] = state["state"]
        self._ctrl[:] = state["ctrl"]
        self._sensors[:] = state["sensors"]
        self._publish(slice(None))

    def close(self) -> None:
        self._rollout.close()
