"""Options shared by several commands, defined once."""

from __future__ import annotations

import argparse

from cellgan.errors import UsageError


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

    ``{}`` when ``path`` is None; a bad file becomes a UsageError naming it.
    """
    from cellgan.config import ConfigError, read_yaml_sections

    if path is None:
        return {}
    try:
        return read_yaml_sections(path)
    except ConfigError as err:
        raise UsageError(str(err)) from err
