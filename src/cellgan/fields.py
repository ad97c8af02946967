"""The fields of the settings dataclasses: their type checks and their plain-data form.

Every settings dataclass (``SegmentConfig``, ``TrainConfig``, the run stages'
configurations in :mod:`cellgan.config`) calls :func:`check_types` first in its
``__post_init__``, so that the types written in its annotations are the only
type checks; ``__post_init__`` itself checks only ranges and relations between
fields. :func:`as_dict` turns any of them into YAML- and JSON-ready data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import reprlib
import types
import typing
from pathlib import Path
from typing import Any

from cellgan.errors import ConfigError

__all__ = ["SHOWN_CHARS", "as_dict", "check_types", "coerce", "field_hints", "settings_digest", "shown", "type_name"]

#: The most characters of a value an error message shows.
SHOWN_CHARS = 80

_REPR = reprlib.Repr()  # keyword arguments need Python 3.12
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 3, 8, 8, 8
_REPR.maxstring = _REPR.maxother = SHOWN_CHARS


def field_hints(cls: type) -> dict[str, Any]:
    """The annotation of each init field of dataclass ``cls``, ``Any`` where it cannot be resolved."""
    try:
        hints = typing.get_type_hints(cls)
    except NameError:  # an annotation that names a type its module cannot see
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def check_types(instance) -> None:
    """Check every field of a (frozen) dataclass against its annotation, in place.

    Lists become tuples where the annotation is a tuple, and integers floats where
    it is a float.

    Raises
    ------
    ConfigError
        ``"<field> must be <type>, got <value>"`` for the first field of the wrong type.
    """
    for name, hint in field_hints(type(instance)).items():
        value = getattr(instance, name)
        try:
            checked = coerce(value, hint)
        except TypeError:
            raise ConfigError(f"{name} must be {type_name(hint)}, got {shown(value)}") from None
        object.__setattr__(instance, name, checked)


def shown(value: Any) -> str:
    """The repr of ``value`` for an error message, at most :data:`SHOWN_CHARS` characters.

    Its cost is bounded too: nested and long containers are cut before they are
    written out (:mod:`reprlib`), so a huge or self-repeating value from a file
    cannot fill the memory of the message that refuses it.
    """
    text = _REPR.repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def coerce(value: Any, hint: Any) -> Any:
    """Return ``value`` if it fits the type ``hint`` (ints pass as floats, lists as tuples).

    Raises
    ------
    TypeError
        ``"expected <type>, got <value>"``.
    """
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, hint)
    if origin is typing.Literal:
        if value in typing.get_args(hint):
            return value
        raise TypeError(f"expected {type_name(hint)}, got {shown(value)}")
    if origin in (tuple, list):
        return _coerce_sequence(value, hint)
    if hint in _CHECKS:
        if _CHECKS[hint](value):
            return float(value) if hint is float else value
        raise TypeError(f"expected {type_name(hint)}, got {shown(value)}")
    if isinstance(hint, type) and (isinstance(value, hint) or hint.__module__ != "builtins"):
        return value  # a type of its own: its class checks it
    raise TypeError(f"expected {type_name(hint)}, got {shown(value)}")


def _coerce_union(value: Any, hint: Any) -> Any:
    for option in typing.get_args(hint):
        try:
            return coerce(value, option)
        except TypeError:
            continue
    raise TypeError(f"expected {type_name(hint)}, got {shown(value)}")


def _coerce_sequence(value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"expected a list, got {shown(value)}")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise TypeError(f"expected a list of {len(args)} values, got {shown(value)}")
        items = [coerce(v, a) for v, a in zip(value, args)]
    else:
        items = [coerce(v, args[0] if args else Any) for v in value]
    return tuple(items) if origin is tuple else items


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_CHECKS = {
    type(None): lambda value: value is None,
    bool: lambda value: isinstance(value, bool),
    int: lambda value: isinstance(value, int) and not isinstance(value, bool),
    float: _is_number,
    str: lambda value: isinstance(value, str),
}

_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}


def type_name(hint: Any) -> str:
    """How a type reads in an error message: ``float | None`` -> "a number or null"."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(option) for option in typing.get_args(hint))
    if origin is typing.Literal:
        return f"one of {list(typing.get_args(hint))}"
    if origin in (tuple, list):
        return "a list"
    return _TYPE_NAMES.get(hint) or getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def as_dict(instance) -> dict[str, Any]:
    """A dataclass as plain data: nested dicts, tuples as lists, paths as strings."""
    return _plain(dataclasses.asdict(instance))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def settings_digest(value) -> str:
    """A short stable name for JSON-ready settings (e.g. :func:`as_dict`'s): SHA-256 of their sorted JSON, 16 hex digits."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]
