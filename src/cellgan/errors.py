"""The one base of every error cellgan raises on purpose.

Every error a user can act on (a bad file, a bad option, a run directory made
with other settings) derives from :class:`CellganError`; its message names the
file or option and the problem. The command line prints it as one line, without
a traceback (``cellgan.cli.main``). Errors of bad input also derive from
``ValueError`` (and those of a broken store or download from ``RuntimeError``),
so code that catches the built-in types keeps working.
"""

from __future__ import annotations

__all__ = ["CellganError", "ConfigError", "UsageError"]


class CellganError(Exception):
    """An error the user can fix or must know about; the message says what and where."""


class ConfigError(CellganError, ValueError):
    """A configuration file or option value that cannot be used; the message names the file and key."""


class UsageError(CellganError):
    """A command-line request that cannot be carried out (bad path, conflicting options)."""
