"""Options for experiments with the training recipe, kept apart from the common options.

They work as documented but are not part of the interface every command shares
(:mod:`cellgan.cli.common`); a run configuration's ``train`` section sets the
same fields.
"""

from __future__ import annotations

import argparse


def add_pair_neighbours_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pair-neighbours",
        type=int,
        default=None,
        metavar="K",
        help="pair each real cell with one of its K nearest cells in the same image instead of a second view "
        "of itself (TrainConfig.pair_neighbours) [--config's, else 0]",
    )
