"""``cellgan evaluate ASSIGNMENTS [--labels LABELS] [--json OUT]``: score categories against labels."""

from __future__ import annotations

import json
from pathlib import Path

from cellgan.cli.common import add_json_option, int_at_least


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score the categories against reference labels (clustering scores and a linear probe)",
        description=(
            "Print and optionally write the clustering scores (Hungarian accuracy, ARI, NMI, AMI and Hu et "
            "al.'s purity, entropy and F-score) of the categories against reference labels, and the "
            "accuracy of a logistic regression on the features, cross-validated by image. Labels are "
            "used only here. Cells without a label are left out."
        ),
    )
    parser.add_argument("assignments", type=Path, metavar="ASSIGNMENTS", help="directory written by `cellgan assign`")
    parser.add_argument(
        "--labels",
        type=Path,
        metavar="LABELS",
        help="CSV or Parquet with columns image, cell_id, label [default: the cell table's label column]",
    )
    add_json_option(parser, help="also write the results here as JSON")
    parser.add_argument(
        "--folds", type=int_at_least(2), default=5, help="folds of the linear probe, split by image (by cell when a class is in one image only) [5]"
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from cellgan.analysis.assign import evaluate_assignments
    from cellgan.io.files import atomic_write

    result = evaluate_assignments(args.assignments, labels=args.labels, probe_folds=args.folds)
    print(format_evaluation(result))
    if args.json is not None:
        atomic_write(args.json, lambda p: p.write_text(json.dumps(result, indent=2)))
        print(f"-> {args.json}")
    return 0


def format_evaluation(result: dict) -> str:
    """The evaluation as a few lines of text."""
    lines = [
        f"{result['n_labelled']} of {result['n_cells']} cells labelled; "
        f"{result['categories']} categories, {len(result['class_sizes'])} classes",
        "cells per category: " + " / ".join(str(n) for n in result["cells_per_category"]),
        "  ".join(f"{key} {value:.3f}" for key, value in result["scores"].items()),
    ]
    probe = result["linear_probe"]
    if "error" in probe:
        lines.append(f"linear probe: not run ({probe['error']})")
    else:
        lines.append(
            f"linear probe ({probe['folds']} folds by {probe['split']}): accuracy {probe['acc']:.3f} ± "
            f"{probe['acc_std']:.3f} (majority class {probe['majority_acc']:.3f})"
        )
        if probe["split"] == "cell":
            lines.append(f"  split by cell, not by image: {probe['split_reason']}")
    return "\n".join(lines)
