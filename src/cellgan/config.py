"""The run configuration: one YAML file with one section per stage.

A configuration file for ``cellgan run --config FILE.yaml`` looks like::

    segment:            # fields of cellgan.segment.SegmentConfig
      mpp: 0.25
    train:              # fields of cellgan.model.TrainConfig
      categories: 5
      minutes: 20
    assign:             # fields of AssignConfig below
      batch_size: 512
    report:             # fields of ReportConfig below
      overlay_images: 2

Every section is optional and so is every key in it. A value comes from, in
order of precedence: the command line, the file, the run's own defaults
(:data:`RUN_DEFAULTS`, a training time that suits a first run on a CPU) and the
stage's dataclass defaults. An unknown section or key, or a value of the wrong
type, is an error naming the file and the key. A run writes the configuration it
resolved to ``RUN_DIR/config.yaml``, which :func:`read_config` reads back with
the same checks, so a run can be repeated from its own record.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cellgan.errors import ConfigError
from cellgan.io.files import atomic_write

__all__ = [
    "RUN_DEFAULTS",
    "STAGES",
    "AssignConfig",
    "ComposeConfig",
    "ConfigError",
    "ExportConfig",
    "ReportConfig",
    "RunConfig",
    "config_to_dict",
    "read_config",
    "read_yaml_sections",
    "resolve_config",
    "stage_config_types",
    "write_config",
]

#: The stages of ``cellgan run``, in the order they run; each is a YAML section.
STAGES = ("segment", "train", "assign", "compose", "export", "report")

#: Where ``cellgan run`` departs from a stage's own defaults. Ten minutes of
#: training keeps the whole default run (11 bone-marrow images) within about a
#: quarter of an hour on a 2-core CPU; the paper's schedule takes hours there
#: (FINDINGS.md).
RUN_DEFAULTS: dict[str, dict[str, Any]] = {"train": {"minutes": 10.0}}


@dataclass(frozen=True)
class AssignConfig:
    """Options of the assignment stage (argmax Q of every real cell).

    Parameters
    ----------
    batch_size : int
        Cells per forward pass of the critic; only memory and speed depend on it.
    """

    batch_size: int = 512

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


@dataclass(frozen=True)
class ComposeConfig:
    """Options of the composition stage.

    The composition is the paper's proportion vector P_i = X_i / sum X (Hu et al.,
    Sec. III-D), which has no free parameter; the section exists so that every
    stage has one, and it accepts no key.
    """


@dataclass(frozen=True)
class ExportConfig:
    """Options of the export stage.

    Parameters
    ----------
    formats : tuple of str
        Any of ``geojson`` (one QuPath FeatureCollection per image), ``parquet``,
        ``csv`` (the cell table with categories, probabilities and features) and
        ``h5ad`` (AnnData; needs the optional ``anndata`` package).
    """

    formats: tuple[str, ...] = ("geojson", "parquet", "csv")

    def __post_init__(self):
        known = {"geojson", "parquet", "csv", "h5ad"}
        unknown = [f for f in self.formats if f not in known]
        if unknown or not self.formats:
            raise ValueError(f"formats must be a non-empty list of {sorted(known)}, got {list(self.formats)}")


@dataclass(frozen=True)
class ReportConfig:
    """Options of the HTML report.

    Parameters
    ----------
    overlay_images : int
        How many images are shown with every nucleus outlined in its category's colour.
    overlay_size : int
        Longest side, in pixels, of each overlay in the report (larger images are
        shrunk before the outlines are drawn, so outlines stay one pixel wide).
    gallery_cells : int
        Real cells shown per category, those the Q head is most sure of.
    sweep_columns : int
        Noise vectors of the generator sweep: each column keeps z fixed and each
        row sets the categorical code c, as in the paper's figures.
    seed : int
        Seed of the sweep's noise.
    """

    overlay_images: int = 4
    overlay_size: int = 800
    gallery_cells: int = 16
    sweep_columns: int = 12
    seed: int = 0

    def __post_init__(self):
        for name in ("overlay_size", "gallery_cells", "sweep_columns"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.overlay_images < 0:
            raise ValueError(f"overlay_images must be at least 0, got {self.overlay_images}")


@dataclass(frozen=True)
class RunConfig:
    """The resolved configuration of a run: one dataclass instance per stage."""

    segment: Any
    train: Any
    assign: AssignConfig
    compose: ComposeConfig
    export: ExportConfig
    report: ReportConfig


def stage_config_types() -> dict[str, type]:
    """Return the configuration dataclass of each stage, keyed by section name."""
    from cellgan.model import TrainConfig
    from cellgan.segment import SegmentConfig

    return {
        "segment": SegmentConfig,
        "train": TrainConfig,
        "assign": AssignConfig,
        "compose": ComposeConfig,
        "export": ExportConfig,
        "report": ReportConfig,
    }


def read_yaml_sections(path: Path, *, stage_types: dict[str, type] | None = None) -> dict[str, dict]:
    """Read a configuration file and check its sections and keys.

    Parameters
    ----------
    path : Path
        A YAML file whose top level maps section names (:data:`STAGES`) to mappings.
    stage_types : dict, optional
        Section name to dataclass; default :func:`stage_config_types`.

    Returns
    -------
    dict
        Section name to ``{key: value}``, only for the sections the file has.

    Raises
    ------
    ConfigError
        The file is missing or not YAML, a section or key is unknown, or a value
        has the wrong type; the message names the file and the key.
    """
    path = Path(path)
    stage_types = stage_config_types() if stage_types is None else stage_types
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the configuration file ({err.strerror or err})") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections {list(stage_types)}, got {type(data).__name__}")
    sections: dict[str, dict] = {}
    for section, values in data.items():
        if section not in stage_types:
            raise ConfigError(f"{path}: unknown section {section!r}; known sections: {', '.join(stage_types)}")
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: section {section!r} must be a mapping of keys to values")
        sections[section] = {
            key: _check_value(value, stage_types[section], section, key, where=str(path))
            for key, value in values.items()
        }
    return sections


def resolve_config(
    config_file: Path | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    *,
    stage_types: dict[str, type] | None = None,
) -> RunConfig:
    """Build the run configuration: command line over file over run defaults over stage defaults.

    Parameters
    ----------
    config_file : Path, optional
        A YAML file read by :func:`read_yaml_sections`.
    overrides : dict, optional
        Section name to ``{key: value}`` from the command line; ``None`` values
        are ignored (an option the user did not give).
    stage_types : dict, optional
        Section name to dataclass; default :func:`stage_config_types`.

    Returns
    -------
    RunConfig
    """
    stage_types = stage_config_types() if stage_types is None else stage_types
    layers: list[tuple[str, dict[str, dict]]] = [("run defaults", RUN_DEFAULTS)]
    if config_file is not None:
        layers.append((str(config_file), read_yaml_sections(config_file, stage_types=stage_types)))
    if overrides:
        given = {s: {k: v for k, v in values.items() if v is not None} for s, values in overrides.items()}
        layers.append(("the command line", given))
    merged: dict[str, dict[str, Any]] = {name: {} for name in STAGES}
    origins: dict[str, list[str]] = {name: [] for name in STAGES}
    for where, sections in layers:
        for section, values in sections.items():
            if section not in stage_types:
                raise ConfigError(f"{where}: unknown section {section!r}")
            for key, value in values.items():
                merged[section][key] = _check_value(value, stage_types[section], section, key, where=where)
            if values and where not in origins[section]:
                origins[section].append(where)
    return _build(merged, stage_types, origins=origins)


def config_to_dict(config: RunConfig) -> dict[str, dict[str, Any]]:
    """Return ``config`` as plain YAML-ready data: one mapping per section, tuples as lists."""
    return {name: _plain(dataclasses.asdict(getattr(config, name))) for name in STAGES}


def write_config(config: RunConfig, path: Path) -> None:
    """Write the full resolved configuration as YAML, atomically."""
    text = "# cellgan run: the resolved configuration of this run (every key, every stage)\n"
    text += yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=False)
    atomic_write(Path(path), lambda p: p.write_text(text))


def read_config(path: Path, *, stage_types: dict[str, type] | None = None) -> RunConfig:
    """Read a configuration file (e.g. a run's ``config.yaml``) over the stage defaults only."""
    stage_types = stage_config_types() if stage_types is None else stage_types
    sections = read_yaml_sections(path, stage_types=stage_types)
    merged = {name: dict(sections.get(name, {})) for name in STAGES}
    return _build(merged, stage_types, origins={name: [str(path)] for name in STAGES})


def _build(merged: dict[str, dict], stage_types: dict[str, type], *, origins: dict[str, list[str]]) -> RunConfig:
    """Make each stage's dataclass; a value it rejects is blamed on the sources that set the section."""
    built = {}
    for name in STAGES:
        try:
            built[name] = stage_types[name](**merged[name])
        except (TypeError, ValueError) as err:
            where = " and ".join(origins[name]) or "the defaults"
            raise ConfigError(f"{where}: section {name!r}: {err}") from err
    return RunConfig(**built)


def _check_value(value: Any, cls: type, section: str, key: str, *, where: str) -> Any:
    """Check ``value`` against the annotation of field ``key`` of ``cls``; lists become tuples."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    if key not in fields:
        known = ", ".join(fields) or "none"
        raise ConfigError(f"{where}: unknown key {key!r} in section {section!r}; known keys: {known}")
    try:
        hint = typing.get_type_hints(cls).get(key, Any)
    except NameError:  # an annotation that names a type this module cannot see
        hint = Any
    try:
        return _coerce(value, hint)
    except TypeError as err:
        raise ConfigError(f"{where}: {section}.{key}: {err}") from None


def _coerce(value: Any, hint: Any) -> Any:
    """Return ``value`` if it fits the type ``hint`` (ints pass as floats, lists as tuples)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _coerce(value, option)
            except TypeError:
                continue
        raise TypeError(f"expected {_type_name(hint)}, got {value!r}")
    if origin is typing.Literal:
        if value in typing.get_args(hint):
            return value
        raise TypeError(f"expected one of {list(typing.get_args(hint))}, got {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"expected a list, got {value!r}")
        args = typing.get_args(hint)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise TypeError(f"expected a list of {len(args)} values, got {value!r}")
            items = [_coerce(v, a) for v, a in zip(value, args)]
        else:
            items = [_coerce(v, args[0] if args else Any) for v in value]
        return tuple(items) if origin is tuple else items
    if hint is type(None):
        if value is None:
            return None
        raise TypeError(f"expected null, got {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise TypeError(f"expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError(f"expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError(f"expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise TypeError(f"expected a string, got {value!r}")
    if isinstance(hint, type) and isinstance(value, hint):
        return value
    if isinstance(hint, type) and hint.__module__ != "builtins":
        return value  # a type this module does not know how to check; the dataclass checks it
    raise TypeError(f"expected {_type_name(hint)}, got {value!r}")


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}


def _type_name(hint: Any) -> str:
    """How a type reads in an error message: ``float | None`` -> "a number or null"."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(option) for option in typing.get_args(hint))
    if typing.get_origin(hint) in (tuple, list):
        return "a list"
    return _TYPE_NAMES.get(hint) or getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
