"""``cellgan export ASSIGNMENTS --cells CELLS --out DIR``: QuPath GeoJSON and cell tables."""

from __future__ import annotations

from pathlib import Path

from cellgan.errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export the classified cells: QuPath GeoJSON per image, Parquet/CSV table, AnnData .h5ad",
        description=(
            "Write DIR/geojson/<image>.geojson (one QuPath detection per nucleus, outlined from the cell store's "
            "label masks, classified and coloured by category), DIR/cells.parquet and DIR/cells.csv (category, "
            "probabilities, measurements, learned features), and DIR/cells.h5ad when asked (needs anndata)."
        ),
    )
    parser.add_argument("assignments", type=Path, metavar="ASSIGNMENTS", help="directory written by `cellgan assign`")
    parser.add_argument(
        "--cells", type=Path, metavar="CELLS", help="the cell store (or run directory); needed for geojson"
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
    parser.set_defaults(func=run)


def run(args) -> int:
    from cellgan.report.export import export_assignments

    formats = tuple(f.strip().lower() for f in args.format.split(",") if f.strip())
    names = None if args.names is None else [n.strip() for n in args.names.split(",")]
    try:
        written = export_assignments(args.assignments, args.out, cells_dir=args.cells, formats=formats, names=names)
    except ValueError as err:  # ExportError, GeoJSONError, bad category names
        raise UsageError(str(err)) from err
    for fmt, paths in written.items():
        where = paths[0] if len(paths) == 1 else f"{len(paths)} files in {paths[0].parent}" if paths else "no images"
        print(f"{fmt}: {where}")
    return 0
