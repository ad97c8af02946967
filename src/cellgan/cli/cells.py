"""``cellgan cells from-points|from-geojson|from-folder``: cells at given centres, of given outlines, or from crops."""

from __future__ import annotations

from pathlib import Path

from cellgan.cli.segment import add_segment_options, open_store, report, segment_config
from cellgan.errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "cells",
        help="cells at given centres (from-points), of given outlines (from-geojson) or from single-cell crops (from-folder)",
    )
    sub = parser.add_subparsers(dest="cells_command", metavar="SOURCE", required=True)

    one_image = (
        (
            "from-points",
            "one cell per point of a CSV (columns x, y, optional label; 0-based pixels)",
            "Write one cell per row of CSV into RUN_DIR/cells: masked patches show the nucleus "
            "segmented around the point (a disc of typical nucleus size when none is found), "
            "context patches are centred on the point; the label column is kept for scoring.",
            ("--points", "CSV", "columns x, y and optional label"),
            run_points,
        ),
        (
            "from-geojson",
            "one cell per nucleus outline of a GeoJSON export (QuPath, StarDist, CellViT, HoVer-Net)",
            "Write one cell per outline of FILE into RUN_DIR/cells, the outlines as the nuclei's masks "
            "(a FeatureCollection, a Feature or a list of Features; Polygon or MultiPolygon, each polygon one "
            "nucleus); a feature's classification name becomes the cells' label (for scoring only).",
            ("--geojson", "FILE", "the nuclei's outlines"),
            run_outlines,
        ),
    )
    for name, help_text, description, (option, metavar, option_help), func in one_image:
        command = sub.add_parser(name, help=help_text, description=description)
        command.add_argument("image", type=Path, metavar="IMAGE")
        command.add_argument(option, type=Path, required=True, metavar=metavar, help=option_help)
        add_segment_options(command)
        command.set_defaults(func=func)

    folder = sub.add_parser(
        "from-folder",
        help="one cell per image file of a folder of pre-cropped single cells",
        description=(
            "Write one cell per crop into RUN_DIR/cells, one shard per folder; a sub-folder's "
            "name becomes the cells' label (for scoring only). Each patch is the whole crop, scaled "
            "to 32x32 keeping its aspect ratio (--patch-mode crop), unless --patch-mode asks for another."
        ),
    )
    folder.add_argument("folder", type=Path, metavar="DIR")
    add_segment_options(folder)
    folder.set_defaults(func=run_folder)


def read_points(path: Path):
    """``(xy, labels)`` from a CSV with columns x, y and optionally label; errors name the file.

    A point given twice is refused: in a detection CSV it is a mistake, and it
    would make two cells of one nucleus.
    """
    import numpy as np
    import pandas as pd

    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise UsageError(f"{path}: not a readable CSV ({err})") from err
    missing = [c for c in ("x", "y") if c not in frame.columns]
    if missing:
        raise UsageError(f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(map(str, frame.columns))})")
    try:
        xy = frame[["x", "y"]].to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as err:
        raise UsageError(f"{path}: columns x and y must be numbers ({err})") from err
    if not np.all(np.isfinite(xy)):
        raise UsageError(f"{path}: columns x and y must be finite numbers")
    repeated = frame.duplicated(subset=["x", "y"], keep=False).to_numpy()
    if repeated.any():
        first = np.flatnonzero(repeated)[0]
        same = np.flatnonzero(np.all(xy == xy[first], axis=1))
        lines = " and ".join(str(i + 2) for i in same[:3])  # line 1 is the header
        raise UsageError(f"{path}: lines {lines} give the same point ({xy[first, 0]:g}, {xy[first, 1]:g}); remove the repeats")
    labels = None
    if "label" in frame.columns:
        labels = [None if pd.isna(v) else str(v) for v in frame["label"]]
    return xy, labels


def run_points(args) -> int:
    from cellgan.segment import cells_at_points

    xy, labels = read_points(args.points)
    return _cells_of_one_image(
        args,
        lambda rgb, config, image_id: cells_at_points(rgb, xy, config, image_id=image_id, labels=labels),
        sources={"points": args.points},
    )


def run_outlines(args) -> int:
    from cellgan.segment.outlines import cells_from_outlines, read_outlines

    outlines = read_outlines(args.geojson)
    return _cells_of_one_image(
        args,
        lambda rgb, config, image_id: cells_from_outlines(rgb, outlines, config, image_id=image_id),
        sources={"geojson": args.geojson},
    )


def _cells_of_one_image(args, make, *, sources: dict) -> int:
    """Write the cells ``make(rgb, config, image_id)`` finds in ``args.image`` into the store.

    Once: done again only when the image, the file of cells (``sources``) or the options changed.
    """
    import dataclasses

    from cellgan.fields import as_dict
    from cellgan.io.files import safe_image_id
    from cellgan.io.images import read_rgb
    from cellgan.segment import RunSummary
    from cellgan.segment.batch import pixel_sizes, shard_to_write

    config = segment_config(args, [args.image])
    store = open_store(args, config)
    image_id = safe_image_id(args.image.stem)
    sources = {"image": args.image, **sources}
    summary = {"skipped": [], "failed": {}, "remade": {}}
    with store.writing():
        identity = shard_to_write(store, image_id, sources, as_dict(config), name=str(args.image), summary=summary)
        if identity is None:
            return report(RunSummary((), tuple(summary["skipped"]), summary["failed"]), store, what="images")
        rgb = read_rgb(args.image, max_pixels=args.max_pixels)
        mpp, source = pixel_sizes([args.image], config, max_pixels=args.max_pixels)[args.image]
        try:
            result = make(rgb, dataclasses.replace(config, mpp=mpp), image_id)
        except ValueError as err:
            raise UsageError(f"{args.image}: {err}") from err
        table = result.table.assign(mpp_source=source)
        store.write_image(
            image_id, table, result.patches, label_mask=result.label_mask, overlay=result.overlay, identity=identity
        )
    return report(RunSummary((image_id,), (), {}, remade=summary["remade"]), store, what="images")


def run_folder(args) -> int:
    from cellgan.io.files import outside
    from cellgan.io.images import find_images
    from cellgan.segment import cells_from_folder

    if not args.folder.is_dir():
        raise UsageError(f"{args.folder}: not a directory")
    config = segment_config(args, outside(find_images([args.folder]), args.out), defaults={"patch_mode": "crop"})
    store = open_store(args, config)
    summary = cells_from_folder(args.folder, store, config, max_pixels=args.max_pixels, progress=not args.quiet)
    if not summary.done and not summary.skipped and not summary.failed:
        raise UsageError(f"{args.folder}: no image files found")
    return report(summary, store, what="folders")
