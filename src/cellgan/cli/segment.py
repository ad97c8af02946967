"""``cellgan segment IMAGE_OR_DIR... --out RUN_DIR``: nuclei and cell patches into a cell store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cellgan.cli.common import (
    add_max_pixels_option,
    add_patch_mode_option,
    add_quiet_option,
    add_recipe_option,
    add_reinhard_reference_option,
    add_scheduler_option,
)
from cellgan.errors import UsageError


def add_segment_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``cellgan segment`` and ``cellgan cells``."""
    parser.add_argument(
        "--out", type=Path, required=True, metavar="RUN_DIR", help="run directory (cells go to RUN_DIR/cells)"
    )
    parser.add_argument(
        "--mpp",
        type=float,
        default=None,
        metavar="MICRONS_PER_PIXEL",
        help="pixel size; default: read from the file (TIFF tags), else estimated from the nuclei",
    )
    add_recipe_option(parser)
    add_patch_mode_option(
        parser,
        default=None,
        help="masked: the nucleus alone on white (the paper's); context: a crop around it; "
        "faded: that crop with all but the nucleus faded toward white; crop: a whole pre-cropped cell "
        "(cells from-folder) [the recipe's]",
    )
    parser.add_argument(
        "--context-weight",
        type=float,
        default=None,
        metavar="W",
        help="faded patches: share of the surroundings' contrast kept, 0 (white) to 1 [the recipe's]",
    )
    add_reinhard_reference_option(
        parser,
        help="normalise colours first (Reinhard) to this image, or to the most typical of "
        "the input images ('typical'), or 'none' [the recipe's]",
    )
    add_max_pixels_option(parser)
    add_quiet_option(parser)


def segment_config(args, images, *, defaults: dict | None = None):
    """The ``SegmentConfig`` of the recipe and the options given, for these image files.

    ``defaults`` lie between the recipe and the command line (``cells from-folder``
    defaults to crop patches). ``--reinhard-reference typical`` picks the reference
    among ``images`` (:func:`cellgan.segment.reference.typical_image`), ``none``
    turns the recipe's off; a bad reference becomes a UsageError.
    """
    import dataclasses

    from cellgan.config import given_options, layered_sections, recipe_sections
    from cellgan.io.images import ImageReadError
    from cellgan.io.slides import image_or_overview
    from cellgan.segment import SegmentConfig
    from cellgan.segment.reference import resolve_reference

    given = {"mpp": args.mpp, "patch_mode": args.patch_mode, "context_weight": args.context_weight}
    options = layered_sections(
        recipe_sections(args.recipe), {"segment": defaults or {}}, {"segment": given_options(given)}
    ).get("segment", {})
    asked = args.reinhard_reference if args.reinhard_reference is not None else options.get("reinhard_reference")
    asked = None if asked == "none" else asked
    try:
        reference = resolve_reference(asked, images)
        if reference is not None:
            image_or_overview(reference)
    except (ImageReadError, ValueError) as err:
        where = "--reinhard-reference" if args.reinhard_reference is not None else "the recipe's reinhard_reference"
        raise UsageError(f"{where}: {err}") from err
    if reference is not None and asked != reference:
        print(f"Reinhard reference: {reference}, the most typical of the {len(images)} images")
    return dataclasses.replace(SegmentConfig(**options), reinhard_reference=reference)


def open_store(args, config):
    """The cell store ``RUN_DIR/cells`` for ``config.patch_mode``; one it cannot create becomes a UsageError."""
    from cellgan.io.cellstore import CellStore

    try:
        return CellStore.create(args.out / "cells", patch_mode=config.patch_mode)
    except OSError as err:
        raise UsageError(str(err)) from err


def report(summary, store, *, what: str) -> int:
    """Print what a run did, the failures and the images without a cell to stderr; return 1 when something failed."""
    empty = f" ({len(summary.empty)} without a cell)" if summary.empty else ""
    print(
        f"{len(summary.done)} {what} done{empty}, {len(summary.skipped)} already done, "
        f"{len(summary.failed)} failed; {store.root} holds {len(store)} cells from {len(store.image_ids())} images"
    )
    for name, reason in summary.failed.items():
        print(f"failed: {name}: {reason}", file=sys.stderr)
    for name, reason in summary.empty.items():
        print(f"no cell: {name}: {reason}", file=sys.stderr)
    for name, reason in summary.remade.items():
        print(f"made again: {name}: {reason}", file=sys.stderr)
    return 1 if summary.failed else 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment nuclei in H&E images and cut a 32x32 patch per nucleus",
        description=(
            "Segment the nuclei of every image (PNG, TIFF, JPEG, BMP; directories are searched "
            "recursively) and write RUN_DIR/cells: one table row, one 32x32 patch, the label mask "
            "and an overlay per image. Whole-slide images (SVS, NDPI, MRXS, SCN, OME-TIFF and other "
            "pyramidal TIFF) are read tile by tile at segment.work_mpp (0.5 um per pixel); --mpp is then "
            "their level 0's pixel size, when their metadata lacks it. Images already done are skipped; "
            "a failing image is reported and the others go on (exit status 1 when any failed)."
        ),
    )
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE_OR_DIR")
    add_segment_options(parser)
    add_scheduler_option(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from cellgan.io.files import outside
    from cellgan.io.images import find_images
    from cellgan.segment import segment_images

    try:
        files = outside(find_images(args.images), args.out)  # never the outputs, if --out is inside an input folder
    except FileNotFoundError as err:
        raise UsageError(str(err)) from err
    if not files:
        raise UsageError(f"no image files found in {', '.join(map(str, args.images))}")
    config = segment_config(args, files)
    store = open_store(args, config)
    summary = segment_images(
        files, store, config, max_pixels=args.max_pixels, progress=not args.quiet, scheduler=args.scheduler
    )
    return report(summary, store, what="images")
