"""Options shared by several commands, defined once."""

from __future__ import annotations

import argparse


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help="torch device: cpu, cuda, cuda:N or auto (cuda when available) [auto]",
    )


def add_seed_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="random seed [0]")


def add_pair_neighbours_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pair-neighbours",
        type=int,
        default=None,
        metavar="K",
        help="pair each real cell with one of its K nearest cells in the same image instead of a second view "
        "of itself (TrainConfig.pair_neighbours) [--config's, else 0]",
    )


def config_sections(path) -> dict:
    """The checked sections of a ``--config`` file (:func:`cellgan.config.read_yaml_sections`).

    ``{}`` when ``path`` is None; a bad file becomes a CliError naming it.
    """
    from cellgan.cli.main import CliError
    from cellgan.config import ConfigError, read_yaml_sections

    if path is None:
        return {}
    try:
        return read_yaml_sections(path)
    except ConfigError as err:
        raise CliError(str(err)) from err


def resolve_device(name: str):
    """Turn ``auto``/``cpu``/``cuda[:N]`` into a ``torch.device``, failing clearly.

    On the CPU it also sets torch's thread count to the cores that are free now
    (:func:`free_cpu_threads`).
    """
    import torch

    from cellgan.cli.main import CliError
    from cellgan.model.trainer import resolve_device as torch_device

    try:
        device = torch_device(name)
    except RuntimeError as err:
        raise CliError(f"unknown device {name!r} ({err})") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CliError("--device cuda asked for, but no CUDA device is available")
    if device.type == "cpu":
        torch.set_num_threads(free_cpu_threads())
    return device


def free_cpu_threads(*, cores: int | None = None, load: float | None = None) -> int:
    """Cores not busy with other programs: usable cores minus the 1-minute load average.

    torch uses one thread per core by default; when other programs keep some of the
    cores busy, its threads wait for each other at every operation. Measured here
    (2 cores, one busy with another job, width-32 training step): 8.6 s with 2
    threads against 0.88 s with 1.
    """
    import os

    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(cores, cores - int(round(load))))
