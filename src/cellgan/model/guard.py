"""What stops a training run safely: a stop signal, and a run that diverges.

- :class:`StopSignals` turns the first SIGINT or SIGTERM into a request that the
  training loop answers at the end of the step: it saves a checkpoint, then
  raises :class:`TrainingInterrupted` saying where (a second Ctrl-C stops at once;
  the last checkpoint is intact either way, see :mod:`cellgan.model.checkpoint`).
- :func:`non_finite` names the first NaN or infinite loss or weight after a step.
  The first time, training rolls back to its last checkpoint and goes on with every
  learning rate times :data:`LR_FACTOR` (:func:`lowered_scale`, :func:`set_learning_rates`);
  a second divergence raises :class:`TrainingDiverged`: one lowering can save a run
  that a rare batch threw off, a second means the recipe itself is unstable.
"""

from __future__ import annotations

import math
import signal
import threading
from pathlib import Path

import torch

from cellgan.errors import CellganError

__all__ = [
    "LR_FACTOR",
    "StopSignals",
    "TrainingDiverged",
    "TrainingInterrupted",
    "lowered_scale",
    "non_finite",
    "set_learning_rates",
]

#: The learning rates after a divergence, as a fraction of the recipe's.
LR_FACTOR = 0.1


class TrainingInterrupted(CellganError):
    """Training stopped by a signal after saving a checkpoint; the exit status is 128 + the signal."""

    def __init__(self, message: str, *, signum: int):
        super().__init__(message)
        self.exit_status = 128 + signum


class TrainingDiverged(CellganError):
    """Training diverged again after its learning rates were lowered once."""


class StopSignals:
    """A context that records the first SIGINT or SIGTERM instead of dying of it.

    ``received`` is the signal's number once one arrived, else None. After the
    first, the default handlers are back: a second Ctrl-C interrupts at once.
    Outside the main thread (where Python cannot take signals) it records nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._record) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def _record(self, signum, frame) -> None:
        self.received = signum
        self._restore()

    def _restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def interrupted(self, manifest: Path, step: int) -> TrainingInterrupted:
        """The error to raise once the checkpoint ``manifest`` of ``step`` is saved."""
        name = signal.Signals(self.received).name
        return TrainingInterrupted(
            f"{manifest}: stopped by {name} at step {step}, checkpoint saved; resume with --resume",
            signum=self.received,
        )


def non_finite(losses: dict[str, float], modules: dict[str, torch.nn.Module]) -> str | None:
    """The first NaN or infinite loss or parameter, as ``"name = value"``; None when all are finite.

    Parameters
    ----------
    losses : dict
        A step's logged values.
    modules : dict
        Name -> network whose parameters are checked (one device sync for each).
    """
    for name, value in losses.items():
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name} = {value}"
    for prefix, module in modules.items():
        named = list(module.named_parameters())
        if torch.stack([torch.isfinite(p.detach()).all() for _, p in named]).all():
            continue
        bad = next(name for name, p in named if not torch.isfinite(p.detach()).all())
        return f"{prefix}.{bad} holds NaN or infinite values"
    return None


def lowered_scale(scale: float, *, problem: str, step: int, checkpoint_step: int, source: Path) -> float:
    """The learning-rate scale after a divergence at ``step``; raise if it was lowered already.

    Raises
    ------
    TrainingDiverged
        ``scale`` is below 1: the rates were lowered once and it diverged again.
    """
    if scale < 1:
        raise TrainingDiverged(
            f"{source}: training diverged again at step {step} ({problem}) with the learning rates "
            f"lowered to {scale:g}× the recipe's; the last good checkpoint is step {checkpoint_step}: "
            "lower lr and lr_critic in the recipe, or check the cells"
        )
    return scale * LR_FACTOR


def set_learning_rates(optimizers: dict[str, torch.optim.Optimizer], rates: dict[str, float], scale: float) -> None:
    """Set each optimiser's learning rate to its recipe rate (``rates[name]``) times ``scale``."""
    for name, optimizer in optimizers.items():
        for group in optimizer.param_groups:
            group["lr"] = rates[name] * scale
