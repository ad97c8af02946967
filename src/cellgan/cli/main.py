"""The ``cellgan`` program: a registry of sub-commands, each in its own module.

Every command module defines ``register(subparsers)``, which adds its parser and
sets ``func`` to a function taking the parsed arguments and returning an exit
status. Heavy imports (torch, scikit-learn) happen inside those functions so that
``cellgan --help`` stays fast. A :class:`~cellgan.errors.CellganError`, or an
I/O error (a read-only folder, a full disk), is printed as one line
``cellgan COMMAND: error: ...`` and gives exit status 2 (or the error's own
``exit_status``: 128 + the signal for training stopped by one).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cellgan.errors import CellganError

#: Command modules under ``cellgan.cli``, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "run",
    "segment",
    "cells",
    "train",
    "assign",
    "evaluate",
    "compose",
    "classify_images",
    "export",
    "report",
    "bench",
)


def build_parser() -> argparse.ArgumentParser:
    from cellgan import __version__

    parser = argparse.ArgumentParser(
        prog="cellgan",
        description="Find the cell types in H&E images without labels (Hu et al., IEEE JBHI 2019).",
    )
    parser.add_argument("--version", action="version", version=f"cellgan {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"cellgan.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except CellganError as err:
        print(f"cellgan {args.command}: error: {err}", file=sys.stderr)
        return getattr(err, "exit_status", 2)
    except OSError as err:  # an I/O failure outside cellgan's own checks (a read-only folder, a full disk)
        where = f"{err.filename}: " if err.filename else ""
        print(f"cellgan {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
