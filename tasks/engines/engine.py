"""The seam between the task and a physics engine.

An engine simulates ``num_envs`` copies of one MJCF character on a ground plane. Everything it
returns is a torch tensor on ``engine.device`` with the envs as the first dimension, in the
project's conventions: Z-up world, quaternions ``(w, x, y, z)``, bodies in MJCF order without
the world body, DOFs in MJCF hinge order. Getters return views of buffers the engine updates in
place after each ``step`` or ``set_state``; callers must not write into them. The task talks to
this class only; engine modules are imported lazily by ``tasks.engines.build_engine``.
"""
import abc
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch


@dataclass(frozen=True)
class EngineConfig:
    mjcf_path: str
    num_envs: int
    sim_dt: float  # physics step (s)
    substeps: int  # physics steps per policy step
    device: str = "cpu"
    env_spacing: float = 0.0  # metres between envs (only engines that place envs in one world use it)
    headless: bool = True  # engines with a viewer of their own (IsaacGym) open it when False
    num_threads: int = 0  # CPU engines; 0 means all cores


class Engine(abc.ABC):
    device: torch.device
    num_envs: int
    body_names: List[str]
    dof_names: List[str]
    body_masses: torch.Tensor  # [B] kg
    dof_limits: torch.Tensor  # [D, 2] rad, the MJCF ranges (also where not enforced)

    @property
    def num_bodies(self) -> int:
        return len(self.body_names)

    @property
    def num_dofs(self) -> int:
        return len(self.dof_names)

    @abc.abstractmethod
    def set_state(self, env_ids: Optional[torch.Tensor], root_pos: torch.Tensor, root_rot: torch.Tensor,
                  root_vel: torch.Tensor, root_ang_vel: torch.Tensor, dof_pos: torch.Tensor,
                  dof_vel: torch.Tensor) -> None:
        """Teleport envs and refresh their body states and contacts.

        ``env_ids``: None (all envs), a 1-D long tensor of env indices with one state row per
        index, or a bool mask [N] with N state rows of which the unmasked ones are ignored. A
        mask lets a GPU engine reset envs without the host learning which (no synchronisation).
        Velocities are world-frame linear and angular velocities of the root body frame.
        """

    @staticmethod
    def indices_and_rows(env_ids: Optional[torch.Tensor],
                         rows: Sequence[torch.Tensor]) -> Tuple[Optional[torch.Tensor], List[torch.Tensor]]:
        """For engines that need indices: a mask becomes the indices it selects and their rows."""
        if env_ids is not None and env_ids.dtype == torch.bool:
            ids = env_ids.nonzero(as_tuple=False).flatten()
            return ids, [r[ids] for r in rows]
        return env_ids, list(rows)

    @abc.abstractmethod
    def set_pd_targets(self, targets: torch.Tensor) -> None:
        """PD position targets [N, D] (rad) held over the next ``step``."""

    @abc.abstractmethod
    def step(self) -> None:
        """Advance every env by ``substeps`` physics steps."""

    def root_state(self) -> torch.Tensor:
        """[N, 13]: position, rotation wxyz, linear velocity, angular velocity (world frame)."""
        return self.body_state()[:, 0]

    # An engine with a window of its own (IsaacGym, not headless) shows env 0's reference there;
    # for the others the task's MuJoCo viewer does (tasks/utils/viewer.py) and these do nothing.
    @property
    def has_viewer(self) -> bool:
        return False

    def show_reference(self, body_pos: torch.Tensor) -> None:
        """Env 0's reference body positions [B, 3], drawn as a ghost from the next step on."""

    def take_reset_request(self) -> bool:
        """Whether the user asked to reset env 0 in the engine's window since the last call."""
        return False

    # The readouts: each engine keeps these buffers current after every ``step`` and
    # ``set_state``; the getters hand out the buffers themselves (no copies).
    _dof_state: torch.Tensor
    _body_state: torch.Tensor
    _com_vel: torch.Tensor
    _contact: torch.Tensor

    def dof_state(self) -> torch.Tensor:
        """[N, D, 2]: hinge angles and angular velocities."""
        return self._dof_state

    def body_state(self) -> torch.Tensor:
        """[N, B, 13]: each body frame's position, rotation, linear and angular velocity (world)."""
        return self._body_state

    def com_velocity(self) -> torch.Tensor:
        """[N, 3]: the character's centre-of-mass velocity (world)."""
        return self._com_vel

    def contact_forces(self) -> torch.Tensor:
        """[N, B, 3]: net force the ground exerts on each body (world; +z for a body standing on it)."""
        return self._contact

    def capture_state(self) -> Dict[str, Any]:
        """Everything needed to continue the simulation later (checkpoints). This default keeps
        the contract's float32 root and DOF states: a close, not bit-exact, restart; engines
        override it with their exact native state."""
        return {"engine": type(self).__name__, "root": self.root_state().detach().cpu().clone(),
                "dof": self.dof_state().detach().cpu().clone()}

    def restore_state(self, state: Dict[str, Any]) -> None:
        """Inverse of ``capture_state`` (same engine class and env count)."""
        if state.get("engine") != type(self).__name__:
            raise ValueError("engine state of {} does not fit {}".format(state.get("engine"), type(self).__name__))
        root, dof = state["root"].to(self.device), state["dof"].to(self.device)
        self.set_state(None, root[:, 0:3], root[:, 3:7], root[:, 7:10], root[:, 10:13], dof[..., 0], dof[..., 1])

    def close(self) -> None:
        """Release engine resources (windows, GPU buffers)."""
