"""``cellgan export ASSIGNMENTS --out DIR``: QuPath GeoJSON and cell tables."""

from __future__ import annotations

from pathlib import Path

from cellgan.errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export the classified cells: QuPath GeoJSON per image, Parquet/CSV table, AnnData .h5ad",
        description=(
            "Write DIR/geojson/<image>.geojson (one QuPath detection per nucleus, outlined from the cell store's "
            "label masks, classified and coloured by category), DIR/cells.parquet and DIR/cells.csv (uuid, category, "
            "probabilities, measurements, learned features), and DIR/cells.h5ad when asked (needs anndata)."
        ),
    )
    parser.add_argument("assignments", type=Path, metavar="ASSIGNMENTS", help="directory written by `cellgan assign`")
    parser.add_argument(
        "--cells", type=Path, metavar="CELLS", help="the cell store (or run directory) [the one the assignments name]"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    parser.add_argument(
        "--format",
        default="geojson,parquet,csv",
        metavar="LIST",
        help="comma-separated formats among geojson, parquet, csv, h5ad [geojson,parquet,csv]",
    )
    parser.add_argument(
        "--names",
        metavar="LIST",
        help="comma-separated category names, in category order [Category 0, Category 1, ...]",
    )
    parser.add_argument(
        "--offset",
        type=parse_offset,
        default=(0.0, 0.0),
        metavar="X,Y",
        help="added to the GeoJSON coordinates: the images' top-left corner in the slide they were cut from [0,0]",
    )
    parser.set_defaults(func=run)


def parse_offset(text: str) -> tuple[float, float]:
    """``"X,Y"`` -> (x, y), two finite numbers."""
    import argparse
    import math

    parts = text.split(",")
    try:
        x, y = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected two numbers X,Y") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise argparse.ArgumentTypeError(f"{text!r}: X and Y must be finite")
    return x, y


def run(args) -> int:
    from cellgan.report.export import export_assignments

    formats = tuple(f.strip().lower() for f in args.format.split(",") if f.strip())
    names = None if args.names is None else [n.strip() for n in args.names.split(",")]
    try:
        written = export_assignments(
            args.assignments, args.out, cells_dir=args.cells, formats=formats, names=names, offset=args.offset
        )
    except ValueError as err:  # ExportError, GeoJSONError, bad category names
        raise UsageError(str(err)) from err
    for fmt, paths in written.items():
        where = paths[0] if len(paths) == 1 else f"{len(paths)} files in {paths[0].parent}" if paths else "no images"
        print(f"{fmt}: {where}")
    return 0
