"""``cellgan compose ASSIGNMENTS --out COMPOSITION``: cell-type proportions per image."""

from __future__ import annotations

from pathlib import Path

from cellgan.errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compose",
        help="count each image's cells per category and their proportions (the paper's image feature)",
        description="Write COMPOSITION/composition.csv and .parquet: image, n_cells, count_k, prop_k.",
    )
    parser.add_argument("assignments", type=Path, metavar="ASSIGNMENTS", help="directory written by `cellgan assign`")
    parser.add_argument("--out", type=Path, required=True, metavar="COMPOSITION", help="output directory")
    parser.set_defaults(func=run)


def run(args) -> int:
    from cellgan.analysis.composition import CompositionError, composition, read_assignments, write_composition

    table, meta = read_assignments(args.assignments)
    try:
        result = composition(table, categories=int(meta["categories"]))
    except CompositionError as err:
        raise UsageError(f"{args.assignments}: {err}") from err
    paths = write_composition(result, args.out)
    print(
        f"{len(result)} images, {int(result['n_cells'].sum())} cells, {meta['categories']} categories"
        f" -> {', '.join(str(p) for p in paths)}"
    )
    return 0
