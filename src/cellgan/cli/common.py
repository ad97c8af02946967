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


def resolve_device(name: str):
    """Turn ``auto``/``cpu``/``cuda[:N]`` into a ``torch.device``, failing clearly."""
    import torch

    from cellgan.cli.main import CliError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise CliError(f"unknown device {name!r} ({err})") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CliError("--device cuda asked for, but no CUDA device is available")
    return device
