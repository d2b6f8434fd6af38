"""The seam between the task and a physics engine.

An engine simulates ``num_envs`` copies of one MJCF character on a ground plane. Everything it
returns is a torch tensor on ``engine.device`` with the envs as the first dimension, in the
project's conventions: Z-up world, quaternions ``(w, x, y, z)``, bodies in MJCF order without
the world body, DOFs in MJCF hinge order, body states laid out as ``tasks/body_state.py`` names
them. Getters return the buffers the engine updates in place after each ``step`` or
``set_state``; callers must not write into them. The task talks to this class only; engine
modules are imported lazily by ``tasks.engines.build_engine``.
"""
import abc
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from tasks.body_state import ANG_VEL, BODY_STATE_WIDTH, LIN_VEL, POS, ROT


@dataclass(frozen=True)
class EngineConfig:
    mjcf_path: str
    num_envs: int
    sim_dt: float  # physics step (s)
    substeps: int  # physics steps per policy step
    device: str = "cpu"
    env_spacing: float = 0.0  # metres between envs (only engines that place envs in one world use it)
    headless: bool = True  # engines with a window of their own (IsaacGym) open it when False
    num_threads: int = 0  # CPU engines; 0 means all cores


class Engine(abc.ABC):
    """Subclasses call ``__init__`` with the character they compiled, hand their readout buffers
    to ``_adopt_readouts``, and implement ``set_state``, ``set_pd_targets``, ``set_body_forces`` and ``step``."""

    # Steps after a reset whose contact forces may still be from before it: the task does not end
    # an episode on ground contact during them. MuJoCo computes contacts from the state it was given.
    contact_settle_steps = 0
    # True where ``set_pd_targets``, ``step``, ``set_state`` and the getters launch only device work on
    # torch's current stream when it is capturing, so the task may record its whole step as one
    # CUDA graph (tasks/base/step_graph.py).
    capturable = False

    def __init__(self, cfg: EngineConfig, device: torch.device, body_names: Sequence[str],
                 dof_names: Sequence[str], dof_limits: torch.Tensor):
        self.device = device
        self.num_envs = cfg.num_envs
        self.substeps = cfg.substeps
        self.body_names = list(body_names)  # type: List[str]
        self.dof_names = list(dof_names)  # type: List[str]
        self.dof_limits = dof_limits.to(device, torch.float32)  # [D, 2] rad, the MJCF ranges (also where not enforced)

    @property
    def num_bodies(self) -> int:
        return len(self.body_names)

    @property
    def num_dofs(self) -> int:
        return len(self.dof_names)

    # --- what every engine implements -------------------------------------------------------

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

    @abc.abstractmethod
    def set_pd_targets(self, targets: torch.Tensor) -> None:
        """PD position targets [N, D] (rad) held over the next ``step``."""

    @abc.abstractmethod
    def set_body_forces(self, forces: torch.Tensor) -> None:
        """External forces [N, B, 3] (newtons, world frame) at each body's centre of mass, held over
        every physics step until set again; zeros end them (pushes, DeepMimic's perturbation tests)."""

    @abc.abstractmethod
    def step(self) -> None:
        """Advance every env by ``substeps`` physics steps."""

    def close(self) -> None:
        """Release engine resources (windows, GPU buffers)."""

    # --- the readouts ----------------------------------------------------------------------

    def _adopt_readouts(self, dof_state: torch.Tensor, body_state: torch.Tensor, com_velocity: torch.Tensor,
                        contact_forces: torch.Tensor) -> None:
        """The buffers the getters hand out, which the engine keeps current; shapes checked once."""
        n, b, d = self.num_envs, self.num_bodies, self.num_dofs
        for name, tensor, shape in (("dof_state", dof_state, (n, d, 2)),
                                    ("body_state", body_state, (n, b, BODY_STATE_WIDTH)),
                                    ("com_velocity", com_velocity, (n, 3)),
                                    ("contact_forces", contact_forces, (n, b, 3))):
            if tuple(tensor.shape) != shape:
                raise ValueError("{}: {} has shape {}, the contract's is {}".format(
                    type(self).__name__, name, tuple(tensor.shape), shape))
        self._dof_state = dof_state
        self._body_state = body_state
        self._com_velocity = com_velocity
        self._contact_forces = contact_forces

    def dof_state(self) -> torch.Tensor:
        """[N, D, 2]: hinge angles and angular velocities."""
        return self._dof_state

    def body_state(self) -> torch.Tensor:
        """[N, B, 13]: each body frame's position, rotation, linear and angular velocity (world)."""
        return self._body_state

    def root_state(self) -> torch.Tensor:
        """[N, 13]: the root body's row of ``body_state``."""
        return self._body_state[:, 0]

    def com_velocity(self) -> torch.Tensor:
        """[N, 3]: the character's centre-of-mass velocity (world)."""
        return self._com_velocity

    def contact_forces(self) -> torch.Tensor:
        """[N, B, 3]: net force the ground exerts on each body (world; +z for a body standing on it)."""
        return self._contact_forces

    # --- shared pieces ---------------------------------------------------------------------

    @staticmethod
    def indices_and_rows(env_ids: Optional[torch.Tensor],
                         rows: Sequence[torch.Tensor]) -> Tuple[Optional[torch.Tensor], List[torch.Tensor]]:
        """For engines that need indices: a mask becomes the indices it selects and their rows."""
        if env_ids is not None and env_ids.dtype == torch.bool:
            ids = env_ids.nonzero(as_tuple=False).flatten()
            return ids, [r[ids] for r in rows]
        return env_ids, list(rows)

    def _set_rest_state(self, root_pos: Sequence[float], root_rot: Sequence[float]) -> None:
        """Every env at rest at this root pose (wxyz), hinges at zero: the state before any reset."""
        n, d, dev = self.num_envs, self.num_dofs, self.device
        zeros3 = torch.zeros(n, 3, device=dev)
        self.set_state(None, torch.tensor(list(root_pos), dtype=torch.float32, device=dev).repeat(n, 1),
                       torch.tensor(list(root_rot), dtype=torch.float32, device=dev).repeat(n, 1), zeros3, zeros3,
                       torch.zeros(n, d, device=dev), torch.zeros(n, d, device=dev))

    def capture_state(self) -> Dict[str, Any]:
        """Everything needed to continue the simulation later (checkpoints). This default keeps
        the contract's float32 root and DOF states: a close, not bit-exact, restart; engines
        override it with their exact native state."""
        return {"engine": type(self).__name__, "root": self.root_state().detach().cpu().clone(),
                "dof": self.dof_state().detach().cpu().clone()}

    def restore_state(self, state: Dict[str, Any]) -> None:
        """Inverse of ``capture_state`` (same engine class and env count)."""
        self._check_state_fits(state)
        root, dof = state["root"].to(self.device), state["dof"].to(self.device)
        self.set_state(None, root[:, POS], root[:, ROT], root[:, LIN_VEL], root[:, ANG_VEL], dof[..., 0], dof[..., 1])

    def _check_state_fits(self, state: Dict[str, Any]) -> None:
        if state.get("engine") != type(self).__name__:
            raise ValueError("engine state of {} does not fit {}".format(state.get("engine"), type(self).__name__))


class EngineWindow(abc.ABC):
    """Optional, for an engine with a window of its own (IsaacGym, not headless): the task shows
    env 0's reference there and takes its reset key. Engines without one leave display to the
    task's MuJoCo viewer (tasks/display/viewer.py)."""

    @property
    @abc.abstractmethod
    def window_open(self) -> bool:
        """Whether the window is up (creating it can fail, closing it ends the run)."""

    @abc.abstractmethod
    def show_reference(self, body_pos: torch.Tensor) -> None:
        """Env 0's reference body positions [B, 3], drawn as a ghost from the next step on."""

    @abc.abstractmethod
    def take_reset_request(self) -> bool:
        """Whether the user asked to reset env 0 in the window since the last call."""
