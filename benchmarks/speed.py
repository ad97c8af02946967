"""Seconds per generator iteration of the paper's recipe and of this project's, on any device.

Usage: python benchmarks/speed.py CELLS --device cuda --json OUT [--iterations N]

CELLS is a cell store (``cellgan segment`` writes one); its real patches feed the
batches. Each recipe runs ``--iterations`` generator iterations (each: its critic
steps, then the generator and Q updates) after 5 warm-up ones; the JSON gives the
median seconds per iteration and the critic's images per second. The recipes with
self-labels use random targets (the speed does not depend on them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from cellgan.config import resolve_config
from cellgan.device import resolve_device
from cellgan.io.cellstore import CellStore
from cellgan.io.files import atomic_write
from cellgan.model import TrainConfig
from cellgan.model.data import PatchSampler
from cellgan.model.trainer import _train_step, build_models, build_optimizers

WARM_UP = 5


def recipes(categories: int) -> dict[str, TrainConfig]:
    """The timed recipes: the paper's at widths 128 and 64, the default and own-Q ones at 32 and 128."""
    own_q = dict(lambda_self_label=1.0, self_label_neighbours=0, separate_q=True)
    paper = resolve_config(recipe="paper", overrides={"train": {"categories": categories}}).train
    return {
        "paper_w128_5critic": paper,
        "paper_w64_5critic": dataclasses.replace(paper, width=64),
        "default_w32": TrainConfig(categories=categories),
        "default_w128": TrainConfig(categories=categories, width=128),
        "own_q_w32": TrainConfig(categories=categories, **own_q),
        "own_q_w128": TrainConfig(categories=categories, width=128, **own_q),
    }


def seconds_per_iteration(config: TrainConfig, patches, device: torch.device, iterations: int) -> float:
    """Median wall-clock seconds of one generator iteration of ``config`` on ``device``."""
    generator, critic = build_models(config, device)
    optimizers = build_optimizers(generator, critic, config)
    sampler = PatchSampler(patches, batch_size=config.batch_size, seed=0, pairs=config.lambda_pair > 0, device=device)
    targets = torch.randint(0, config.categories, (len(patches),), device=device) if config.lambda_self_label else None
    times = []
    for step in range(WARM_UP + iterations):
        _synchronise(device)
        tic = time.perf_counter()
        _train_step(generator, critic, optimizers, sampler, step, config, self_labels=targets)
        _synchronise(device)
        times.append(time.perf_counter() - tic)
    return statistics.median(times[WARM_UP:])


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cells", type=Path)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    device = resolve_device(args.device)
    patches = CellStore.open(args.cells).read_patches()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    out = {"device": name, "torch": torch.__version__, "threads": torch.get_num_threads(), "cells": len(patches),
           "iterations": args.iterations, "recipes": {}}
    for label, config in recipes(4).items():
        median = seconds_per_iteration(config, patches, device, args.iterations)
        out["recipes"][label] = {
            "width": config.width,
            "critic_steps": config.critic_steps,
            "batch": config.batch_size,
            "seconds_per_iteration_median": median,
            "critic_images_per_second": config.critic_steps * config.batch_size * 2 / median,
        }
        print(f"{label}: {median:.4f} s per iteration", flush=True)
    atomic_write(args.json, lambda p: p.write_text(json.dumps(out, indent=1)))


if __name__ == "__main__":
    main()
