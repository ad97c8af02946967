"""Package attributes imported on first use (PEP 562), so that importing a package stays light."""

from __future__ import annotations

import importlib

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, where: dict[str, str], namespace: dict):
    """The ``__getattr__`` and ``__dir__`` of a package whose names ``where`` maps to their modules.

    Parameters
    ----------
    package : str
        The package's ``__name__`` (for error messages).
    where : dict
        Public name to the module that defines it.
    namespace : dict
        The package's ``globals()``; a name, once imported, is cached there.
    """

    def __getattr__(name: str):
        if name in where:
            value = getattr(importlib.import_module(where[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__
