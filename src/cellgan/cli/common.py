"""Options shared by several commands, defined once; each command words its own help where it differs."""

from __future__ import annotations

import argparse
from pathlib import Path

from cellgan.segment.config import PATCH_MODES


def int_at_least(minimum: int):
    """An argparse type: an integer of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from err
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


#: An argparse type: an integer of at least 1.
positive_int = int_at_least(1)


def pixel_count(text: str) -> int:
    """An argparse type: a whole number of pixels, at least 1; ``2.5e8`` is accepted."""
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from err
    if not value.is_integer() or value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text}")
    return int(value)


def add_max_pixels_option(parser: argparse.ArgumentParser) -> None:
    """``--max-pixels N``: the pixel budget of an image, checked from its header before decoding."""
    from cellgan.io.images import DEFAULT_MAX_PIXELS

    parser.add_argument(
        "--max-pixels",
        type=pixel_count,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help="refuse images of more than N pixels (width x height) without decoding them; segmenting takes "
        f"about 80 bytes of memory per pixel [{DEFAULT_MAX_PIXELS:.0e}]",
    )


def add_scheduler_option(parser: argparse.ArgumentParser) -> None:
    """``--scheduler serial|local:N|tcp://ADDRESS``: what runs the segmentation's tasks (images, slide tiles)."""
    parser.add_argument(
        "--scheduler",
        default="serial",
        metavar="serial|local:N|tcp://ADDRESS",
        help="run the segmentation's tasks (one per image, one per slide tile) here one by one, on a local Dask "
        "cluster of N worker processes, or on the Dask scheduler at ADDRESS (its workers must see the same paths); "
        "the cells are the same whichever [serial]",
    )


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help="torch device: cpu, cuda, cuda:N or auto (cuda when available) [auto]",
    )


def add_seed_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="random seed [0]")


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_config_option(parser: argparse.ArgumentParser, *, help: str, metavar: str = "YAML") -> None:
    """``--config YAML``: a configuration file (read by :mod:`cellgan.config`)."""
    parser.add_argument("--config", type=Path, metavar=metavar, help=help)


def add_recipe_option(parser: argparse.ArgumentParser) -> None:
    """``--recipe NAME|FILE.yaml``: the shipped recipe (or recipe file) under the other options."""
    from cellgan.config import DEFAULT_RECIPE, recipe_names

    parser.add_argument(
        "--recipe",
        default=DEFAULT_RECIPE,
        metavar="NAME",
        help=f"the recipe: {', '.join(recipe_names())}, or a YAML file of the same form; --config and the "
        f"options given here override it [{DEFAULT_RECIPE}]",
    )


def add_data_root_option(parser: argparse.ArgumentParser, *, help: str) -> None:
    """``--data-root DIR``: the folder holding the public datasets (required)."""
    parser.add_argument("--data-root", type=Path, required=True, help=help)


def add_json_option(parser: argparse.ArgumentParser, *, help: str, required: bool = False) -> None:
    """``--json OUT``: where to write a result as JSON."""
    parser.add_argument("--json", type=Path, required=required, metavar="OUT", help=help)


def add_patch_mode_option(parser: argparse.ArgumentParser, *, default: str | None, help: str) -> None:
    """``--patch-mode``: one of :data:`cellgan.segment.config.PATCH_MODES`."""
    parser.add_argument("--patch-mode", choices=PATCH_MODES, default=default, help=help)


def add_reinhard_reference_option(parser: argparse.ArgumentParser, *, help: str) -> None:
    """``--reinhard-reference IMG|typical``: the image to normalise colours to, off by default."""
    parser.add_argument("--reinhard-reference", default=None, metavar="IMG|typical", help=help)
