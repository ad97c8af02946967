"""What every benchmark shares: the machine it ran on, JSON output, keys of cached work, seeds trained side by side."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
import time
from pathlib import Path

__all__ = ["digest", "machine_info", "peak_rss_mb", "threads_per_job", "train_fresh", "write_json"]


def digest(value) -> str:
    """A short stable name for a JSON-able value (settings), to key cached work by."""
    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:10]


def threads_per_job(jobs: int) -> int:
    """The torch threads of each of ``jobs`` processes side by side: an equal share of the free cores.

    Each taking every core instead makes their threads wait for each other at every
    operation (:func:`cellgan.device.free_cpu_threads`).
    """
    from cellgan.device import free_cpu_threads

    return max(1, free_cpu_threads() // jobs)


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB since it started (Linux ``VmHWM``).

    Not ``ru_maxrss``: a process started by fork and exec (a spawned worker) inherits
    there the parent's peak, which is not its own.
    """
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):  # not Linux: the best there is (kB on Linux, bytes on macOS)
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def machine_info(device=None) -> dict:
    """Library versions, CPU count and device, so a JSON says where its numbers come from."""
    import numpy
    import scipy
    import skimage
    import sklearn
    import torch

    from cellgan import __version__

    machine = {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cellgan": __version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit-image": skimage.__version__,
        "scikit-learn": sklearn.__version__,
        "torch": torch.__version__,
    }
    if device is not None:
        device = torch.device(device)
        machine["device"] = str(device)
        if device.type == "cuda":
            machine["device_name"] = torch.cuda.get_device_name(device)
    return machine


def _finite(value):
    """JSON has no NaN: write None instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(summary: dict, path: str | Path) -> None:
    """Write a benchmark summary as strict JSON (NaN as null), atomically."""
    from cellgan.io.files import atomic_write

    text = json.dumps(_finite(summary), indent=2, default=str)
    atomic_write(Path(path), lambda p: p.write_text(text + "\n"))


def train_fresh(store_dir: Path, model_dirs, configs, *, device, jobs: int, threads: int) -> list[float]:
    """Train one GAN per config in its model directory, emptied first, ``jobs`` at a time; their seconds.

    Each run starts afresh (never a resumed one) on the cell store ``store_dir``; with
    ``jobs`` > 1 each runs in its own spawned process with ``threads`` torch threads.
    """
    model_dirs = [Path(d) for d in model_dirs]
    for model_dir in model_dirs:
        shutil.rmtree(model_dir, ignore_errors=True)
    tasks = [(str(store_dir), str(d), c.to_dict(), str(device), threads) for d, c in zip(model_dirs, configs)]
    return _map_jobs(_train_worker, tasks, jobs=jobs)


def _train_worker(task) -> float:
    """Train one seed's GAN (in a worker process when ``jobs`` > 1); return the seconds it took.

    ``task``: (cell store dir, model dir, :class:`~cellgan.model.TrainConfig` as a dict, device, torch threads).
    """
    import torch

    from cellgan.model import TrainConfig
    from cellgan.pipeline import train_stage

    store_dir, model_dir, values, device, threads = task
    torch.set_num_threads(threads)  # the workers share the free cores instead of each taking them all
    start = time.perf_counter()
    train_stage(
        Path(store_dir), Path(model_dir), TrainConfig.from_dict(values), device=torch.device(device), progress=False
    )
    return time.perf_counter() - start


def _map_jobs(function, tasks: list, *, jobs: int) -> list:
    """``function`` over ``tasks``, in ``jobs`` spawned processes when ``jobs`` > 1."""
    if jobs <= 1:
        return [function(task) for task in tasks]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(function, tasks))
