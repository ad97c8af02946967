"""``cellgan compose ASSIGNMENTS --out COMPOSITION``: cell-type proportions and image features per image."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compose",
        help="count each image's cells per category and their proportions (the paper's image feature)",
        description=(
            "Write COMPOSITION/composition.csv and .parquet (image, n_cells, densities, count_k, prop_k) and "
            "image_features.csv and .parquet (named features per image, cellgan.analysis.image_features). "
            "Images without cells get rows too."
        ),
    )
    parser.add_argument("assignments", type=Path, metavar="ASSIGNMENTS", help="directory written by `cellgan assign`")
    parser.add_argument("--out", type=Path, required=True, metavar="COMPOSITION", help="output directory")
    parser.add_argument(
        "--cells", type=Path, metavar="CELLS", help="the cell store [the one the assignments were made from]"
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from cellgan.analysis.composition import compose

    result, features = compose(args.assignments, args.out, cells_dir=args.cells)
    empty = int((result["n_cells"] == 0).sum())
    categories = len([c for c in result.columns if str(c).startswith("prop_")])
    print(
        f"{len(result)} images, {int(result['n_cells'].sum())} cells, {categories} categories, {empty} images without cells"
        + ("" if features is not None else " (no image info in the cell store: no image features)")
        + f" -> {args.out}"
    )
    return 0
