"""``cellgan cells from-points|from-folder``: cells at given centres, or from single-cell crops."""

from __future__ import annotations

from pathlib import Path

from cellgan.cli.segment import add_segment_options, open_store, report, segment_config
from cellgan.errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "cells",
        help="cells at given centres (from-points) or from a folder of single-cell crops (from-folder)",
    )
    sub = parser.add_subparsers(dest="cells_command", metavar="SOURCE", required=True)

    points = sub.add_parser(
        "from-points",
        help="one cell per point of a CSV (columns x, y, optional label; 0-based pixels)",
        description=(
            "Write one cell per row of CSV into RUN_DIR/cells: masked patches show the nucleus "
            "segmented around the point (a disc of typical nucleus size when none is found), "
            "context patches are centred on the point; the label column is kept for scoring."
        ),
    )
    points.add_argument("image", type=Path, metavar="IMAGE")
    points.add_argument("--points", type=Path, required=True, metavar="CSV", help="columns x, y and optional label")
    add_segment_options(points)
    points.set_defaults(func=run_points)

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
    from cellgan.fields import as_dict
    from cellgan.io.files import safe_image_id
    from cellgan.io.images import read_mpp, read_rgb
    from cellgan.segment import RunSummary, cells_at_points
    from cellgan.segment.batch import shard_to_write

    xy, labels = read_points(args.points)
    config = segment_config(args, [args.image])
    store = open_store(args, config)
    image_id = safe_image_id(args.image.stem)
    sources = {"image": args.image, "points": args.points}
    summary = {"skipped": [], "failed": {}, "remade": {}}
    with store.writing():
        identity = shard_to_write(store, image_id, sources, as_dict(config), name=str(args.image), summary=summary)
        if identity is None:
            return report(RunSummary((), tuple(summary["skipped"]), summary["failed"]), store, what="images")
        rgb = read_rgb(args.image, max_pixels=args.max_pixels)
        if config.mpp is None:
            import dataclasses

            config = dataclasses.replace(config, mpp=read_mpp(args.image))
        try:
            result = cells_at_points(rgb, xy, config, image_id=image_id, labels=labels)
        except ValueError as err:
            raise UsageError(f"{args.image}: {err}") from err
        store.write_image(
            image_id, result.table, result.patches, label_mask=result.label_mask, overlay=result.overlay, identity=identity
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
