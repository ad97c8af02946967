"""Training throughput on one process and on N DDP ranks (gloo, CPU): critic images per second.

Each rank is a process started here the way ``torchrun`` starts it (its ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` … in the environment, then
:func:`cellgan.model.distributed.process_group`), and trains the default recipe (or
another) on real cells: the bone-marrow images of Hu et al.'s Dataset A
(:func:`cellgan.pipeline.default_images`), segmented once into a temporary cell store,
or a given store. One rank runs the plain single-process loop, so ``ranks=1`` is what a
user gets without torchrun.

Throughput counts what the critic sees: every rank's real cells per critic update,
``ranks × batch_size × critic_steps × iterations``, over the training seconds of rank 0
(:attr:`cellgan.model.TrainResult.elapsed_seconds`: the steps, their collectives included;
starting the processes, reading the store and the self-labels excluded). On a shared
machine the wall clock says more about the other programs than about DDP, so the CPU
seconds of every rank's process during :func:`cellgan.model.train` are summed too
(``critic_images_per_cpu_second``): equal figures for 1 and N ranks mean that DDP adds no
work, and that N free cores would train N times faster.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path

__all__ = ["ddp_training_throughput", "IMAGES"]

#: Bone-marrow images segmented for the benchmark when no cell store is given.
IMAGES = 2


def ddp_training_throughput(
    ranks: int,
    iterations: int,
    width: int,
    batch_size: int,
    *,
    cells: Path | str | None = None,
    recipe: str = "default",
    threads_per_rank: int = 1,
) -> dict:
    """Train ``iterations`` generator iterations on ``ranks`` CPU processes and time them.

    Parameters
    ----------
    ranks : int
        Processes; 1 runs the single-process loop, more run DDP over gloo.
    iterations : int
        Generator iterations (each ``critic_steps`` critic updates, then G and Q).
    width, batch_size : int
        The networks' channels and the real cells per critic update on each rank.
    cells : path or None
        A cell store to train on; None segments :data:`IMAGES` of the default images
        with the recipe's segmentation options into a temporary store.
    recipe : str
        The recipe whose ``train:`` (and ``segment:``) options are used.
    threads_per_rank : int
        torch CPU threads of each process (1: ranks compare as cores).

    Returns
    -------
    dict
        ``ranks``, ``iterations``, ``seconds``, ``critic_images_per_second``,
        ``seconds_per_iteration``, ``cpu_seconds`` (all ranks, set-up inside ``train``
        included), ``critic_images_per_cpu_second``, and the settings (``width``, ``batch_size``,
        ``critic_steps``, ``threads_per_rank``, ``recipe``, ``cells``).
    """
    import torch.multiprocessing as mp

    from cellgan.config import recipe_sections
    from cellgan.io.cellstore import CellStore
    from cellgan.model import TrainConfig

    if ranks < 1 or iterations < 1:
        raise ValueError(f"ranks and iterations must be at least 1, got {ranks} and {iterations}")
    sections = recipe_sections(recipe)
    options = {**sections.get("train", {}), "width": width, "batch_size": batch_size, "iterations": iterations}
    options.update(minutes=None, checkpoint_every=None, checkpoint_seconds=None, sample_every=iterations)
    config = TrainConfig.from_dict(options, source=f"recipe {recipe}")
    with tempfile.TemporaryDirectory(prefix="cellgan-scale-") as scratch:
        scratch = Path(scratch)
        store = Path(cells) if cells is not None else _segment_default_images(scratch / "cells", sections)
        n_cells = len(CellStore.open(store))
        args = (ranks, _free_port(), str(store), json.dumps(config.to_dict()), str(scratch), threads_per_rank)
        mp.spawn(_rank, args=args, nprocs=ranks)
        timings = [json.loads((scratch / f"rank_{r}.json").read_text()) for r in range(ranks)]
    seconds, cpu_seconds = timings[0]["seconds"], sum(t["cpu_seconds"] for t in timings)
    images = ranks * batch_size * config.critic_steps * iterations
    return {
        "ranks": ranks,
        "iterations": iterations,
        "seconds": seconds,
        "critic_images_per_second": images / seconds,
        "seconds_per_iteration": seconds / iterations,
        "cpu_seconds": cpu_seconds,
        "critic_images_per_cpu_second": images / cpu_seconds,
        "width": width,
        "batch_size": batch_size,
        "critic_steps": config.critic_steps,
        "threads_per_rank": threads_per_rank,
        "recipe": recipe,
        "cells": n_cells,
        "device": "cpu",
    }


def _segment_default_images(store: Path, sections: dict) -> Path:
    from cellgan.pipeline import default_images, segment_stage
    from cellgan.segment import SegmentConfig

    images = default_images(log=lambda _: None)[:IMAGES]
    segment_stage(images, store, SegmentConfig(**{"mpp": 0.3, **sections.get("segment", {})}), progress=False)
    return store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, ranks: int, port: int, store: str, config_json: str, scratch: str, threads: int) -> None:
    """One training process, started with the variables torchrun would give it."""
    import torch

    from cellgan.io.cellstore import CellStore
    from cellgan.model import TrainConfig, train
    from cellgan.model.distributed import process_group

    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(ranks),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(ranks),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    cells = CellStore.open(Path(store))
    patches, table = cells.read_patches(), cells.read_table()
    config = TrainConfig.from_dict(json.loads(config_json))
    torch.set_num_threads(threads)
    with process_group(torch.device("cpu"), share_cpu_threads=False) as (_, device):
        cpu = time.process_time()
        result = train(patches, Path(scratch) / "model", config, device=device, progress=False, table=table)
        cpu = time.process_time() - cpu
    timing = {"seconds": result.elapsed_seconds, "cpu_seconds": cpu}
    (Path(scratch) / f"rank_{rank}.json").write_text(json.dumps(timing))
