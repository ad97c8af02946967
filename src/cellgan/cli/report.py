"""``cellgan report RUN_DIR``: write (again) a run's self-contained HTML report."""

from __future__ import annotations

import sys
from pathlib import Path

from cellgan.cli.common import add_config_option, add_device_option
from cellgan.device import resolve_device
from cellgan.errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write RUN_DIR/report.html from a finished run",
        description=(
            "Regenerate RUN_DIR/report.html (one file, images inline, no external link) from the run's cells, "
            "model, assignments and composition, with the report options of RUN_DIR/config.yaml or --config."
        ),
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a directory written by `cellgan run`")
    add_config_option(parser, metavar="FILE.yaml", help="take the report: section from this file [RUN_DIR/config.yaml]")
    add_device_option(parser)
    parser.set_defaults(func=main)


def main(args) -> int:
    from cellgan.config import ReportConfig, read_config
    from cellgan.io.cellstore import CellStoreError
    from cellgan.pipeline import RunFiles
    from cellgan.report.html import run_warnings, write_report

    if not args.run_dir.is_dir():
        raise UsageError(f"{args.run_dir}: no such run directory")
    source = args.config if args.config is not None else RunFiles(args.run_dir).config
    config = read_config(source).report if source.is_file() or args.config else ReportConfig()
    device = resolve_device(args.device)
    try:
        path = write_report(args.run_dir, config=config, device=device)
    except (CellStoreError, ValueError) as err:  # ReportError, CompositionError, CheckpointError
        raise UsageError(str(err)) from err
    print(f"report: {path.resolve()} ({path.stat().st_size / 1e6:.1f} MB)")
    for warning in run_warnings(args.run_dir, config):
        print(f"warning: {warning}", file=sys.stderr)
    return 0
