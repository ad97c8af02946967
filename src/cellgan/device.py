"""Where the networks run: the torch device, and the CPU threads to use.

:func:`resolve_device` turns the ``--device`` value (``auto``, ``cpu``,
``cuda``, ``cuda:N``) into a ``torch.device``; on the CPU it also sets torch's
thread count to the cores not busy with other programs (:func:`free_cpu_threads`).
"""

from __future__ import annotations

import os

from cellgan.errors import UsageError

__all__ = ["free_cpu_threads", "resolve_device"]


def resolve_device(name, *, set_threads: bool = True):
    """The ``torch.device`` for ``name``, failing clearly on one that cannot be used.

    Parameters
    ----------
    name : str or torch.device
        ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
    set_threads : bool
        On the CPU, set torch's thread count to :func:`free_cpu_threads`.

    Raises
    ------
    UsageError
        An unknown device, or CUDA asked for where there is none.
    """
    import torch

    if isinstance(name, str) and name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UsageError(f"unknown device {name!r} ({err})") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but no CUDA device is available")
    if device.type == "cpu" and set_threads:
        torch.set_num_threads(free_cpu_threads())
    return device


def free_cpu_threads(*, cores: int | None = None, load: float | None = None) -> int:
    """Cores not busy with other programs: usable cores minus the 1-minute load average.

    torch uses one thread per core by default; when other programs keep some of the
    cores busy, its threads wait for each other at every operation. Measured here
    (2 cores, one busy with another job, width-32 training step): 8.6 s with 2
    threads against 0.88 s with 1.
    """
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(cores, cores - int(round(load))))
