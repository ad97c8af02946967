"""``cellgan assign MODEL_DIR CELLS --out ASSIGNMENTS``: a cell type for every cell (argmax Q)."""

from __future__ import annotations

from pathlib import Path

from cellgan.cli.common import add_device_option
from cellgan.device import resolve_device
from cellgan.errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "assign",
        help="give every cell of a store its category (argmax of the trained Q head)",
        description=(
            "Write ASSIGNMENTS/assignments.parquet (image, cell_id, category, prob_0..prob_{K-1} and the "
            "cell table's columns), features.npy (the features of the trunk Q reads, same row order), "
            "meta.json and gallery.png (each category's most confident real cells)."
        ),
    )
    parser.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="directory written by `cellgan train`")
    parser.add_argument("cells", type=Path, metavar="CELLS", help="cell store (or the run directory above it)")
    parser.add_argument("--out", type=Path, required=True, metavar="ASSIGNMENTS", help="output directory")
    parser.add_argument("--batch-size", type=int, default=512, help="patches per forward pass [512]")
    parser.add_argument(
        "--neighbours",
        type=int,
        default=None,
        metavar="N",
        help="average Q over each cell and its N nearest cells before the argmax; 0: each cell alone "
        "(the paper) [the model's own: its self-labels' neighbourhood, else 0]",
    )
    add_device_option(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from cellgan.analysis.assign import write_assignments
    from cellgan.io.cellstore import CellStore
    from cellgan.report.gallery import write_assignments_gallery

    device = resolve_device(args.device)
    if not args.model_dir.is_dir():
        raise UsageError(f"{args.model_dir}: no such model directory")
    meta = write_assignments(
        args.model_dir, args.cells, args.out, device=device, batch_size=args.batch_size, neighbours=args.neighbours
    )
    write_assignments_gallery(args.out, CellStore.open(args.cells).read_patches(mmap=True))
    shares = ", ".join(
        f"{k}: {n} ({100 * n / meta['n_cells']:.1f}%)" for k, n in enumerate(meta["cells_per_category"])
    )
    print(f"{meta['n_cells']} cells from {meta['n_images']} images -> {args.out}")
    print(f"cells per category: {shares}")
    return 0
