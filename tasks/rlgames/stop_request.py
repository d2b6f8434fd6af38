"""SIGTERM and SIGUSR1 for a training run, from its first moment to its last.

SLURM sends SIGTERM before it kills a job (``sbatch --signal=USR1@<s>`` sends SIGUSR1), torchrun
forwards it to its workers. Before training starts nothing has been learned, so the run stops at
once with code 0 and says so; once the agent trains, the handler only sets a flag, which the agent
reads at the next epoch boundary to write a checkpoint and return (tasks/rlgames/checkpointing.py).
No torch here: train.py installs this first thing, before IsaacGym must be imported.
"""
import signal
from typing import Any, Iterable, List, Optional

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1") if hasattr(signal, name))


class StopRequest:
    """The stop signals' handler: exit during start-up, a flag (safe at any point) while training."""

    def __init__(self):
        self.signum: Optional[int] = None
        self.training = False
        self._previous: List[Any] = []

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def stopped_during_start_up(self) -> bool:
        """A signal came before training: the SystemExit it raised may reach the caller as another
        error (raised inside a C extension's import, it comes out as ImportError)."""
        return self.requested and not self.training

    def install(self, signals: Iterable[int] = STOP_SIGNALS) -> "StopRequest":
        for signum in signals:
            self._previous.append((signum, signal.signal(signum, self._handle)))
        return self

    def uninstall(self) -> None:
        while self._previous:
            signum, handler = self._previous.pop()
            signal.signal(signum, handler)

    def start_training(self) -> None:
        """From now on a signal waits for the epoch boundary, where the agent checkpoints."""
        self.training = True

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if not self.training:
            print("received {} during start-up: nothing trained yet, nothing to save; exiting".format(name),
                  flush=True)
            self.signum = signum
            raise SystemExit(0)
        if self.signum is None:
            print("received {}: stopping after this epoch with a checkpoint".format(name), flush=True)
        self.signum = signum
