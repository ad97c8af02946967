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
      names: [lymphocyte, erythroblast, myeloid, other]   # one per category

Every section is optional and so is every key in it. A value comes from, in
order of precedence: the command line, the file, the *recipe* (a named file of
the same form shipped with cellgan, :func:`recipe_sections`; ``default`` unless
``--recipe`` names another), the run's own defaults (:data:`RUN_DEFAULTS`, a
training time that suits a first run on a CPU) and the stage's dataclass
defaults (the paper's networks; a recipe says where it departs from them). An unknown section or key, or a value of
the wrong type, is an error naming the file and the key; so are a key given
twice, a YAML alias (``*name``) and a file over 1 MB or not in UTF-8
(:func:`read_yaml`). A run writes the configuration it resolved to
``RUN_DIR/config.yaml``, which :func:`read_config` reads back with the same
checks, so a run can be repeated from its own record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cellgan.errors import ConfigError
from cellgan.fields import as_dict, check_types, coerce, field_hints, shown
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
    "DEFAULT_RECIPE",
    "MAX_BATCH_SIZE",
    "MAX_CONFIG_BYTES",
    "RECIPES_DIR",
    "given_options",
    "layered_sections",
    "read_config",
    "recipe_names",
    "recipe_path",
    "recipe_sections",
    "read_train_options",
    "read_yaml",
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
#: (benchmarks/README.md, training speed).
RUN_DEFAULTS: dict[str, dict[str, Any]] = {"train": {"minutes": 10.0}}

#: The largest batch of patches (training or assignment): every batch is held in memory.
MAX_BATCH_SIZE = 65536


@dataclass(frozen=True)
class AssignConfig:
    """Options of the assignment stage (argmax Q of every real cell).

    Parameters
    ----------
    batch_size : int
        Cells per forward pass of the critic; only memory and speed depend on it.
    neighbours : int, optional
        Q's probabilities are averaged over each cell and this many nearest cells of
        its image before the argmax; 0 reads each cell alone (Hu et al.); None, the
        model's own: its self-labels' neighbourhood, else 0
        (:func:`cellgan.analysis.assign.reading_neighbours`).
    """

    batch_size: int = 512
    neighbours: int | None = None

    def __post_init__(self):
        check_types(self)
        if self.neighbours is not None and self.neighbours < 0:
            raise ValueError(f"neighbours must be at least 0, got {self.neighbours}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.batch_size > MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be at most {MAX_BATCH_SIZE} (every batch is held in memory), got {self.batch_size}")


@dataclass(frozen=True)
class ComposeConfig:
    """Options of the composition stage.

    The composition is the paper's proportion vector P_i = X_i / sum X (Hu et al.,
    Sec. III-D), which has no free parameter. The stage then classifies the
    images (:func:`cellgan.analysis.image_classification.classify_run`): without
    labels the paper's k-means with k = 2, with them cross-validated classifiers.

    Parameters
    ----------
    image_labels : str, optional
        A CSV of image labels (columns ``image``, ``label``), used only to score.
    """

    image_labels: str | None = None

    def __post_init__(self):
        check_types(self)


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
        check_types(self)
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
        shrunk before the outlines are drawn, so outlines stay two pixels wide).
    gallery_cells : int
        Real cells in each of a category's galleries: those the Q head is most
        sure of, random members, and those it is least sure of.
    sweep_columns : int
        Noise vectors of the generator sweep: each column keeps z fixed and each
        row sets the categorical code c, as in the paper's figures.
    seed : int
        Seed of the sweep's noise and of the random members shown.
    names : tuple of str or None
        The name of each category, in category order (``train.categories`` of them):
        the report, the composition's columns, the GeoJSON classification and the
        exported tables use them. None: "Category 0", "Category 1", ...
    min_iterations : int
        The generator iterations below which the run is reported as too short for its
        recipe (a warning from ``cellgan run`` and a red note in the report); the
        recipes set it (``src/cellgan/recipes/*.yaml``).
    """

    overlay_images: int = 4
    overlay_size: int = 800
    gallery_cells: int = 16
    sweep_columns: int = 12
    seed: int = 0
    names: tuple[str, ...] | None = None
    min_iterations: int = 0

    def __post_init__(self):
        check_types(self)
        for name in ("overlay_size", "gallery_cells", "sweep_columns"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("overlay_images", "min_iterations"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be at least 0, got {getattr(self, name)}")
        if self.names is not None:
            from cellgan.io.palette import category_names

            category_names(len(self.names), list(self.names))  # non-empty and distinct


@dataclass(frozen=True)
class RunConfig:
    """The resolved configuration of a run: one dataclass instance per stage."""

    segment: Any
    train: Any
    assign: AssignConfig
    compose: ComposeConfig
    export: ExportConfig
    report: ReportConfig

    def __post_init__(self):
        names, categories = self.report.names, getattr(self.train, "categories", None)
        if names is not None and categories is not None and len(names) != categories:
            raise ConfigError(f"report.names gives {len(names)} names for {categories} categories (train.categories)")


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
    data = read_yaml(path)
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


#: The recipes shipped with cellgan, one ``NAME.yaml`` each (``--recipe NAME``).
RECIPES_DIR = Path(__file__).resolve().parent / "recipes"

#: The recipe a command uses when none is named.
DEFAULT_RECIPE = "default"


def recipe_names() -> list[str]:
    """The names of the shipped recipes, sorted."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def recipe_path(recipe: str | Path) -> Path:
    """The file of a recipe: a shipped recipe's name, or the path of a YAML file of the same form.

    Raises
    ------
    ConfigError
        Neither a shipped recipe nor an existing file; the message lists the shipped ones.
    """
    if str(recipe) in recipe_names():
        return RECIPES_DIR / f"{recipe}.yaml"
    path = Path(recipe)
    if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
        return path
    raise ConfigError(f"unknown recipe {str(recipe)!r}: name one of {', '.join(recipe_names())}, or a YAML file")


def recipe_sections(recipe: str | Path | None = DEFAULT_RECIPE, **kwargs) -> dict[str, dict]:
    """The checked sections of a recipe (:func:`recipe_path`, :func:`read_yaml_sections`); ``{}`` for None."""
    return {} if recipe is None else read_yaml_sections(recipe_path(recipe), **kwargs)


def layered_sections(*layers: dict[str, dict]) -> dict[str, dict]:
    """Sections laid over each other, later layers winning key by key."""
    merged: dict[str, dict] = {}
    for layer in layers:
        for section, values in layer.items():
            merged.setdefault(section, {}).update(values or {})
    return merged


def given_options(options: dict) -> dict:
    """The command-line options that were given: those not None."""
    return {key: value for key, value in options.items() if value is not None}


#: The largest configuration file read, in bytes; a real one is a few hundred.
MAX_CONFIG_BYTES = 1 << 20


def read_yaml(path: Path) -> Any:
    """The parsed content of a YAML (or JSON) file: the one place a configuration file is read.

    The file must be UTF-8 text of at most :data:`MAX_CONFIG_BYTES` bytes; YAML
    aliases (``*name``, which can multiply a small file into billions of values)
    and a key given twice in one mapping are refused.

    Raises
    ------
    ConfigError
        The file cannot be read, is too large, not UTF-8, not YAML, or has an
        alias or a duplicate key; the message names the file (and the line).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the configuration file ({err.strerror or err})") from err
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES >> 20} MB, not a configuration file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {data[err.start]:#04x} at offset {err.start})") from None
    try:
        return yaml.load(text, Loader=_ConfigLoader)
    except _Refused as err:
        raise ConfigError(f"{path}, line {err.line}: {err}") from None
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML ({where}{problem})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a configuration file") from None


class _Refused(yaml.YAMLError):
    """YAML that parses but that a configuration file may not hold; ``line`` is 1-based."""

    def __init__(self, message: str, mark):
        super().__init__(message)
        self.line = mark.line + 1


class _ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` refusing aliases and duplicate keys."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(f"YAML alias *{event.anchor}: aliases are not allowed in a configuration file", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (list, dict)):
                continue  # unhashable: SafeLoader refuses it itself
            if key in seen:
                raise _Refused(f"duplicate key {shown(key)}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_train_options(path: Path) -> Any:
    """The training options of a file: its ``train`` section (a run or benchmark configuration), else all of it.

    The options are checked by :meth:`cellgan.model.TrainConfig.from_dict`; an empty
    file gives ``{}``.
    """
    data = read_yaml(path)
    if isinstance(data, dict) and isinstance(data.get("train"), dict):
        return dict(data["train"])
    return data or {}


def resolve_config(
    config_file: Path | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    *,
    recipe: str | Path | None = DEFAULT_RECIPE,
    stage_types: dict[str, type] | None = None,
) -> RunConfig:
    """Build the run configuration: command line over file over recipe over run defaults over stage defaults.

    Parameters
    ----------
    config_file : Path, optional
        A YAML file read by :func:`read_yaml_sections`.
    recipe : str or Path or None
        A shipped recipe's name or a recipe file (:func:`recipe_path`); None, the
        stage defaults alone.
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
    if recipe is not None:
        layers.append((f"recipe {recipe}", recipe_sections(recipe, stage_types=stage_types)))
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
    return {name: as_dict(getattr(config, name)) for name in STAGES}


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
    hints = field_hints(cls)
    if key not in hints:
        known = ", ".join(hints) or "none"
        raise ConfigError(f"{where}: unknown key {key!r} in section {section!r}; known keys: {known}")
    try:
        return coerce(value, hints[key])
    except TypeError as err:
        raise ConfigError(f"{where}: {section}.{key}: {err}") from None
