"""MuJoCo (CPU) engine: every env is a row of a state array stepped by ``mujoco.rollout``.

``mujoco.rollout`` steps all envs in C on a thread pool, so no Python runs per env or per
substep. The body states, centre-of-mass velocity and ground contact forces the task needs are
MuJoCo sensors of the scene (tasks/engines/mujoco_scene.py), not of the character's MJCF. MuJoCo
computes sensors at the start of a step, before integrating, so each policy step rolls out one
extra physics step and keeps its sensors (the final state's) but not its state.
"""
import os
from typing import Optional

import mujoco
import numpy as np
import torch
from mujoco import rollout

from tasks.body_state import BODY_STATE_WIDTH
from tasks.engines.engine import Engine, EngineConfig
from tasks.engines.mujoco_scene import character_description, compile_scene
from tasks.rotations import quat_rotate_inverse


class MujocoEngine(Engine):
    def __init__(self, cfg: EngineConfig):
        self.model = m = compile_scene(cfg.mjcf_path, cfg.sim_dt)
        body_names, dof_names, dof_limits = character_description(m)
        super().__init__(cfg, torch.device("cpu"), body_names, dof_names, torch.from_numpy(dof_limits))
        # Let a blown-up env carry NaNs to the task, which resets it and counts it, instead of
        # MuJoCo silently teleporting it back to the model's default pose.
        m.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_AUTORESET

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
        # External forces (xfrc_applied rows: force, torque per model body) go in with the controls
        # while any is set; without them the rollout takes the controls alone, as before.
        self._xfrc = np.zeros((self.num_envs, m.nbody, 6))
        self._body_ids = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, b) for b in body_names])
        self._pushing = False

        body_end = self.num_bodies * BODY_STATE_WIDTH
        self._adopt_readouts(torch.zeros(self.num_envs, self.num_dofs, 2),
                             torch.zeros(self.num_envs, self.num_bodies, BODY_STATE_WIDTH),
                             torch.zeros(self.num_envs, 3), torch.zeros(self.num_envs, self.num_bodies, 3))
        self._slices = (slice(0, body_end), slice(body_end, body_end + 3),
                        slice(body_end + 3, body_end + 3 + 3 * self.num_bodies))
        self._set_rest_state(m.qpos0[0:3], m.qpos0[3:7])

    def _publish(self, rows) -> None:
        """Copy the numpy state and sensors of ``rows`` into the float32 torch buffers."""
        state = torch.from_numpy(self._state[rows])
        sensors = torch.from_numpy(self._sensors[rows]).float()
        nq = self.model.nq
        self._dof_state[rows, :, 0] = state[:, self._qpos_at + 7:self._qpos_at + nq].float()
        self._dof_state[rows, :, 1] = state[:, self._qvel_at + 6:self._qvel_at + 6 + self.num_dofs].float()
        self._body_state[rows] = sensors[:, self._slices[0]].view(-1, self.num_bodies, BODY_STATE_WIDTH)
        self._com_velocity[rows] = sensors[:, self._slices[1]]
        self._contact_forces[rows] = sensors[:, self._slices[2]].view(-1, self.num_bodies, 3)

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
            data.xfrc_applied[:] = self._xfrc[row]
            mujoco.mj_forward(self.model, data)
            self._sensors[row] = data.sensordata
        self._publish(rows)

    def set_pd_targets(self, targets: torch.Tensor) -> None:
        self._ctrl[:] = targets.detach().cpu().numpy()[:, None]

    def set_body_forces(self, forces: torch.Tensor) -> None:
        self._xfrc[:, self._body_ids, 0:3] = forces.detach().cpu().double().numpy()
        self._pushing = bool(self._xfrc.any())

    def step(self) -> None:
        if self._pushing:
            xfrc = np.broadcast_to(self._xfrc.reshape(self.num_envs, 1, -1),
                                   (self.num_envs, self.substeps + 1, self._xfrc[0].size))
            self._rollout.rollout(self.model, self._datas, self._state, np.concatenate([self._ctrl, xfrc], axis=-1),
                                  control_spec=mujoco.mjtState.mjSTATE_CTRL | mujoco.mjtState.mjSTATE_XFRC_APPLIED,
                                  nstep=self.substeps + 1, state=self._state_out, sensordata=self._sensor_out)
        else:
            self._rollout.rollout(self.model, self._datas, self._state, self._ctrl, nstep=self.substeps + 1,
                                  state=self._state_out, sensordata=self._sensor_out)
        self._state[:] = self._state_out[:, self.substeps - 1]
        self._sensors[:] = self._sensor_out[:, self.substeps]
        self._publish(slice(None))

    def capture_state(self):
        """The exact float64 MuJoCo states, controls and sensor readings of every env (as tensors)."""
        return {"engine": type(self).__name__, "state": torch.from_numpy(self._state.copy()),
                "ctrl": torch.from_numpy(self._ctrl.copy()), "sensors": torch.from_numpy(self._sensors.copy()),
                "xfrc": torch.from_numpy(self._xfrc.copy())}

    def restore_state(self, state) -> None:
        self._check_state_fits(state)
        self._state[:] = state["state"].numpy()
        self._ctrl[:] = state["ctrl"].numpy()
        self._sensors[:] = state["sensors"].numpy()
        self._xfrc[:] = state["xfrc"].numpy() if "xfrc" in state else 0.0  # checkpoints from before pushes
        self._pushing = bool(self._xfrc.any())
        self._publish(slice(None))

    def close(self) -> None:
        self._rollout.close()
