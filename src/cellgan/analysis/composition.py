"""Per-image cell-type composition: the image-level feature of Hu et al.

Every nucleus of an image is given a category by the Q head; the image is then
described by the proportion vector P_i = X_i / sum_j X_j over the K categories,
where X_i is the number of its nuclei in category i (Hu et al., JBHI 2019,
Sec. III-D). These vectors feed the image-level clustering and classification
of :mod:`cellgan.analysis.image_classification`.

An ASSIGNMENTS directory (written by ``cellgan assign``) holds
``assignments.parquet`` (one row per cell: ``image``, ``cell_id``, ``category``,
``prob_0`` ... ``prob_{K-1}`` and the cell table's columns), ``features.npy`` and
``meta.json`` (``{"categories": K, ...}``). A COMPOSITION directory holds
``composition.csv`` and ``composition.parquet`` with the columns ``image``,
``n_cells``, ``count_0`` ... ``count_{K-1}``, ``prop_0`` ... ``prop_{K-1}``; with
category names (``report.names`` of the run configuration) ``count_<name>`` and
``prop_<name>`` instead, in category order.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cellgan.errors import CellganError
from cellgan.io.files import atomic_write

__all__ = [
    "CompositionError",
    "category_suffixes",
    "composition",
    "proportion_columns",
    "read_assignments",
    "read_composition",
    "write_composition",
]

ASSIGNMENTS_FILE = "assignments.parquet"
META_FILE = "meta.json"
COMPOSITION_FILES = ("composition.csv", "composition.parquet")


class CompositionError(CellganError, ValueError):
    """An assignments or composition table that is missing or malformed."""


def category_suffixes(categories: int, names=None) -> list[str]:
    """The part after ``count_`` and ``prop_`` of each category's columns: its name, else its index."""
    return [str(k) for k in range(int(categories))] if names is None else [str(n) for n in names]


def composition(assignments: pd.DataFrame, *, categories: int, names=None) -> pd.DataFrame:
    """Count the cells of each category in each image and their proportions.

    Parameters
    ----------
    assignments : DataFrame
        One row per cell, with at least the columns ``image`` and ``category``
        (an integer in 0..K-1).
    categories : int
        Number of categories K. Every category gets its columns, also when no
        cell of any image falls in it.
    names : list of str, optional
        Category names, one per category: the columns are then ``count_<name>``
        and ``prop_<name>`` (:func:`category_suffixes`).

    Returns
    -------
    DataFrame
        One row per image that has cells, sorted by image, with ``image``,
        ``n_cells``, ``count_0`` ... ``count_{K-1}`` (int64) and ``prop_0`` ...
        ``prop_{K-1}`` (float64, summing to 1), the paper's P_i = X_i / sum X.
    """
    categories = int(categories)
    if categories < 1:
        raise CompositionError(f"categories must be at least 1, got {categories}")
    missing = [c for c in ("image", "category") if c not in assignments.columns]
    if missing:
        raise CompositionError(f"assignments table lacks columns {missing}")
    category = _category_codes(assignments["category"], categories)
    images = assignments["image"].astype(str).to_numpy()
    images_found, image_codes = np.unique(images, return_inverse=True)
    counts = np.bincount(image_codes * categories + category, minlength=len(images_found) * categories)
    counts = counts.reshape(len(images_found), categories).astype(np.int64)
    n_cells = counts.sum(axis=1)
    props = counts / np.maximum(n_cells, 1)[:, None]
    suffixes = category_suffixes(categories, names)
    if len(suffixes) != categories:
        raise CompositionError(f"{len(suffixes)} category names for {categories} categories")
    table = {"image": images_found, "n_cells": n_cells}
    table.update({f"count_{s}": counts[:, k] for k, s in enumerate(suffixes)})
    table.update({f"prop_{s}": props[:, k] for k, s in enumerate(suffixes)})
    return pd.DataFrame(table)


def _category_codes(column: pd.Series, categories: int) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 0) | (values >= categories)
    if bad.any():
        example = column[bad].iloc[0]
        raise CompositionError(
            f"{int(bad.sum())} cells have a category outside 0..{categories - 1} (e.g. {example!r})"
        )
    return values.astype(np.int64)


def proportion_columns(table: pd.DataFrame) -> list[str]:
    """Return the ``prop_`` columns of a composition table in category order (the table's, for named ones)."""
    found = [str(c) for c in table.columns if str(c).startswith("prop_")]
    if found and all(re.fullmatch(r"prop_\d+", c) for c in found):
        columns = [f"prop_{k}" for k in range(len(found))]
        if set(columns) == set(found):
            return columns
    elif found:
        return found
    raise CompositionError(
        f"composition table needs columns prop_0..prop_(K-1) or prop_<name>, has {list(table.columns)}"
    )


def read_assignments(path: Path) -> tuple[pd.DataFrame, dict]:
    """Read an ASSIGNMENTS directory's cell table and metadata.

    Returns
    -------
    table : DataFrame
        ``assignments.parquet``.
    meta : dict
        ``meta.json``; ``meta["categories"]`` is K.
    """
    path = Path(path)
    table_path, meta_path = path / ASSIGNMENTS_FILE, path / META_FILE
    for required in (table_path, meta_path):
        if not required.is_file():
            raise CompositionError(f"{path}: not an assignments directory ({required.name} missing)")
    try:
        meta = json.loads(meta_path.read_text())
        categories = int(meta["categories"])
    except (ValueError, KeyError, TypeError) as err:
        raise CompositionError(f"{meta_path}: unreadable metadata, need {{'categories': K}} ({err})") from err
    if categories < 1:
        raise CompositionError(f"{meta_path}: categories must be at least 1, got {categories}")
    try:
        table = pd.read_parquet(table_path)
    except Exception as err:  # pyarrow raises several types for bad files
        raise CompositionError(f"{table_path}: unreadable table ({err})") from err
    missing = [c for c in ("image", "cell_id", "category") if c not in table.columns]
    missing += [f"prob_{k}" for k in range(categories) if f"prob_{k}" not in table.columns]
    if missing:
        raise CompositionError(f"{table_path}: lacks columns {missing}")
    return table, meta


def write_composition(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write ``composition.csv`` and ``composition.parquet`` atomically into ``out_dir``."""
    out_dir = Path(out_dir)
    csv_path, parquet_path = (out_dir / name for name in COMPOSITION_FILES)
    atomic_write(csv_path, lambda p: table.to_csv(p, index=False))
    atomic_write(parquet_path, lambda p: table.to_parquet(p, index=False))
    return [csv_path, parquet_path]


def read_composition(path: Path) -> pd.DataFrame:
    """Read a composition table from a COMPOSITION directory or a .csv/.parquet file."""
    path = Path(path)
    if path.is_dir():
        candidates = [path / name for name in reversed(COMPOSITION_FILES)]
        found = [p for p in candidates if p.is_file()]
        if not found:
            raise CompositionError(f"{path}: no composition.parquet or composition.csv here")
        path = found[0]
    elif not path.is_file():
        raise CompositionError(f"{path}: no such file or directory")
    try:
        if path.suffix == ".parquet":
            table = pd.read_parquet(path)
        elif path.suffix == ".csv":
            table = pd.read_csv(path, dtype={"image": str})
        else:
            raise CompositionError(f"{path}: expected a .csv or .parquet composition table")
    except CompositionError:
        raise
    except Exception as err:
        raise CompositionError(f"{path}: unreadable composition table ({err})") from err
    if "image" not in table.columns:
        raise CompositionError(f"{path}: composition table lacks the column 'image'")
    try:
        columns = proportion_columns(table)
    except CompositionError as err:
        raise CompositionError(f"{path}: {err}") from None
    props = table[columns].to_numpy(dtype=np.float64)
    if not np.isfinite(props).all() or (props < 0).any():
        raise CompositionError(f"{path}: proportions must be finite and non-negative")
    if table["image"].duplicated().any():
        dup = table.loc[table["image"].duplicated(), "image"].iloc[0]
        raise CompositionError(f"{path}: image {dup!r} appears twice")
    table["image"] = table["image"].astype(str)
    return table
