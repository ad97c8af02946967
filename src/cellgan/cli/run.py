"""``cellgan run [IMAGES...] --out RUN_DIR``: every stage, from H&E images to the report.

The stages, their markers and the run directory's layout are
:mod:`cellgan.pipeline`'s; this command reads the options, builds the run
configuration and calls :func:`cellgan.pipeline.run_pipeline`.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import fields
from pathlib import Path

from cellgan.cli.common import (
    add_device_option,
    add_max_pixels_option,
    add_recipe_option,
    add_scheduler_option,
    add_seed_option,
)
from cellgan.device import resolve_device
from cellgan.errors import CellganError, UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="the whole pipeline: segment, train, assign, compose, export, report",
        description=(
            "Find the cell types in H&E images without labels and write RUN_DIR/report.html. "
            "Each stage is skipped when already done, so an interrupted run continues where it stopped. "
            "Without IMAGES, the 11 bone-marrow images of Hu et al.'s Dataset A are used "
            "(../shared/data/bm_graz, or downloaded once into ~/.cache/cellgan). "
            "Under torchrun (torchrun --nproc_per_node N -m cellgan run ...) rank 0 runs every stage and "
            "every rank joins the training (DistributedDataParallel)."
        ),
    )
    parser.add_argument("images", nargs="*", type=Path, metavar="IMAGES", help="image files or directories")
    parser.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run directory")
    add_recipe_option(parser)
    parser.add_argument("--config", type=Path, metavar="FILE.yaml", help="stage options over the recipe's (see cellgan.config)")
    parser.add_argument("--categories", type=int, metavar="K", help="number of cell categories [train.categories]")
    parser.add_argument(
        "--mpp", type=float, metavar="MICRONS_PER_PIXEL", help="pixel size [segment.mpp; else the TIFF tags, else estimated]"
    )
    parser.add_argument(
        "--iterations", type=int, metavar="N", help="the training's length: N generator iterations [train.iterations]"
    )
    parser.add_argument(
        "--minutes",
        type=float,
        metavar="M",
        help="stop training after M minutes at most; alone, train for M minutes [10 without --iterations]",
    )
    parser.add_argument(
        "--image-labels",
        type=Path,
        metavar="CSV",
        help="image labels (columns image,label), only to score the image classification the report shows",
    )
    add_max_pixels_option(parser)
    add_scheduler_option(parser)
    add_device_option(parser)
    add_seed_option(parser)
    parser.set_defaults(func=main, seed=None)


def main(args) -> int:
    from cellgan.config import resolve_config
    from cellgan.model.distributed import process_group
    from cellgan.pipeline import RunFiles, default_images, read_marker, run_pipeline
    from cellgan.report.html import run_warnings

    overrides = _seed_overrides(args.seed) if args.seed is not None else {}
    overrides.setdefault("train", {}).update(categories=args.categories)
    overrides.setdefault("segment", {}).update(mpp=args.mpp)
    overrides.setdefault("compose", {}).update(image_labels=None if args.image_labels is None else str(args.image_labels))
    config = resolve_config(args.config, overrides, recipe=args.recipe)
    if args.iterations is not None or args.minutes is not None:  # the lengths given replace both lengths
        length = {"iterations": args.iterations, "minutes": args.minutes}
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, **length))
    device = resolve_device(args.device)
    files = RunFiles(args.out)
    try:
        with process_group(device) as (ranks, device):  # under torchrun: rank 0 runs the stages, all ranks train
            # The default images are rank 0's to fetch: the other ranks read only the cell store.
            images = _expand(args.images) if args.images else default_images() if ranks.leads else []
            failed = run_pipeline(
                images, files.root, config, device=device, max_pixels=args.max_pixels, scheduler=args.scheduler
            )
    except CellganError:
        raise
    except (FileNotFoundError, ValueError) as err:  # plain input errors of the libraries the stages call
        raise UsageError(str(err)) from err
    if not ranks.leads:
        return 0
    print(f"report: {files.report.resolve()}")
    for warning in run_warnings(files.root, config.report):
        print(f"warning: {warning}", file=sys.stderr)
    empty = read_marker(files.sources).get("empty", {})
    if empty:
        print(f"{len(empty)} image(s) hold no cell:")
        for name, reason in empty.items():
            print(f"  {name}: {reason}")
    if failed:
        print(f"{len(failed)} image(s) could not be segmented (see {files.sources}):")
        for name, reason in failed.items():
            print(f"  {name}: {reason}")
        return 1
    return 0


def _expand(paths: list[Path]) -> list[Path]:
    from cellgan.io.images import find_images

    found = find_images(paths)
    if not found:
        raise UsageError(f"no image files in {', '.join(str(p) for p in paths)}")
    return found


def _seed_overrides(seed: int) -> dict:
    """``--seed`` sets the seed of every stage that has one."""
    from cellgan.config import stage_config_types

    return {
        section: {"seed": seed}
        for section, cls in stage_config_types().items()
        if "seed" in {f.name for f in fields(cls)}
    }
