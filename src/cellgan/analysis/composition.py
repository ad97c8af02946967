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
``n_cells``, the densities ``density_image_per_mm2`` and ``density_tissue_per_mm2``
(when the images' sizes are known), ``count_0`` ... ``count_{K-1}``, ``prop_0`` ...
``prop_{K-1}`` (with category names, ``report.names`` of the run configuration,
``count_<name>`` and ``prop_<name>`` instead, in category order), and ``image_features.csv`` / ``.parquet``
(:mod:`cellgan.analysis.image_features`). An image without cells (blank glass,
tissue without a nucleus) has a row with ``n_cells`` 0 and every proportion 0.
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
    "cell_densities",
    "compose",
    "composition",
    "proportion_columns",
    "read_assignments",
    "read_composition",
    "read_image_features",
    "write_composition",
]

ASSIGNMENTS_FILE = "assignments.parquet"
META_FILE = "meta.json"
COMPOSITION_FILES = ("composition.csv", "composition.parquet")
FEATURE_FILES = ("image_features.csv", "image_features.parquet")


class CompositionError(CellganError, ValueError):
    """An assignments or composition table that is missing or malformed."""


def category_suffixes(categories: int, names=None) -> list[str]:
    """The part after ``count_`` and ``prop_`` of each category's columns: its name, else its index."""
    return [str(k) for k in range(int(categories))] if names is None else [str(n) for n in names]


def composition(
    assignments: pd.DataFrame, *, categories: int, names=None, image_info: pd.DataFrame | None = None
) -> pd.DataFrame:
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
    image_info : DataFrame, optional
        Every image of the run, indexed by image
        (:meth:`cellgan.io.cellstore.CellStore.read_image_info`): its images without
        cells get rows too, and with ``height``, ``width``, ``mpp`` and
        ``tissue_fraction`` the densities are added (:func:`cell_densities`).

    Returns
    -------
    DataFrame
        One row per image (those of ``image_info``, else those with cells), sorted
        by image, with ``image``, ``n_cells``, the densities when known,
        ``count_0`` ... ``count_{K-1}`` (int64) and ``prop_0`` ... ``prop_{K-1}``
        (float64, summing to 1; all 0 for an image without cells), the paper's
        P_i = X_i / sum X.
    """
    categories = int(categories)
    if categories < 1:
        raise CompositionError(f"categories must be at least 1, got {categories}")
    missing = [c for c in ("image", "category") if c not in assignments.columns]
    if missing:
        raise CompositionError(f"assignments table lacks columns {missing}")
    category = _category_codes(assignments["category"], categories)
    images = assignments["image"].astype(str).to_numpy()
    known = [] if image_info is None else image_info.index.astype(str).tolist()
    images_found = np.unique(np.asarray([*images, *known], dtype=str))
    image_codes = np.searchsorted(images_found, np.asarray(images, dtype=str))
    counts = np.bincount(image_codes * categories + category, minlength=len(images_found) * categories)
    counts = counts.reshape(len(images_found), categories).astype(np.int64)
    n_cells = counts.sum(axis=1)
    props = counts / np.maximum(n_cells, 1)[:, None]
    suffixes = category_suffixes(categories, names)
    if len(suffixes) != categories:
        raise CompositionError(f"{len(suffixes)} category names for {categories} categories")
    table = {"image": images_found, "n_cells": n_cells}
    if image_info is not None and {"height", "width", "mpp", "tissue_fraction"} <= set(image_info.columns):
        info = image_info.copy()
        info.index = info.index.astype(str)
        table.update(cell_densities(n_cells, info.reindex(images_found)))
    table.update({f"count_{s}": counts[:, k] for k, s in enumerate(suffixes)})
    table.update({f"prop_{s}": props[:, k] for k, s in enumerate(suffixes)})
    return pd.DataFrame(table)


def cell_densities(n_cells: np.ndarray, info: pd.DataFrame) -> dict[str, np.ndarray]:
    """Cells per mm² of each image, and of its tissue.

    Parameters
    ----------
    n_cells : ndarray, shape (n,)
        The cells of each image.
    info : DataFrame
        Row i for image i: ``height``, ``width`` (pixels), ``mpp`` (µm per pixel) and
        ``tissue_fraction`` (the share of stained pixels).

    Returns
    -------
    dict
        ``density_image_per_mm2`` (NaN where the pixel size is unknown) and
        ``density_tissue_per_mm2`` (0 for an image without tissue, which has no cell).
    """
    mpp = pd.to_numeric(info["mpp"], errors="coerce").to_numpy(dtype=np.float64)
    pixels = info["height"].to_numpy(dtype=np.float64) * info["width"].to_numpy(dtype=np.float64)
    area_mm2 = pixels * mpp**2 / 1e6
    tissue_mm2 = area_mm2 * info["tissue_fraction"].to_numpy(dtype=np.float64)
    n_cells = np.asarray(n_cells, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        image = n_cells / area_mm2
        tissue = np.where(tissue_mm2 > 0, n_cells / tissue_mm2, np.where(np.isnan(tissue_mm2), np.nan, 0.0))
    return {"density_image_per_mm2": image, "density_tissue_per_mm2": tissue}


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


def compose(
    assignments_dir: Path, out_dir: Path, *, cells_dir: Path | None = None, names=None
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Write a COMPOSITION directory from an ASSIGNMENTS directory and its cell store.

    The cell store (``cells_dir``, else the one ``meta.json`` names) lists every
    image, those without cells too, and what is known of each
    (:meth:`cellgan.io.cellstore.CellStore.read_image_info`): with it the
    composition has densities and the image features
    (:func:`cellgan.analysis.image_features.image_features`) are written; without
    it (a store moved away, or one of pre-cropped cells) only the images with
    cells are composed. ``names``: the categories' names (:func:`composition`).

    Returns
    -------
    composition : DataFrame
    features : DataFrame or None
        The image features, None when the store holds no image info.
    """
    from cellgan.analysis.image_features import image_features
    from cellgan.io.cellstore import CellStore, CellStoreError

    table, meta = read_assignments(assignments_dir)
    categories = int(meta["categories"])
    store_dir = cells_dir if cells_dir is not None else meta.get("cells")
    info = None
    if store_dir is not None:
        try:
            info = CellStore.open(store_dir).read_image_info()
        except CellStoreError:
            if cells_dir is not None:
                raise
    comp = composition(table, categories=categories, names=names, image_info=info)
    features = None
    if info is not None and {"height", "width", "mpp", "tissue_fraction"} <= set(info.columns):
        features = image_features(table, info, categories=categories, cell_features=_cell_features(assignments_dir))
    write_composition(comp, out_dir, features=features)
    return comp, features


def _cell_features(assignments_dir: Path) -> np.ndarray | None:
    """The features Q reads of each assigned cell (``features.npy``), None when the directory has none."""
    path = Path(assignments_dir) / "features.npy"
    if not path.is_file():
        return None
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise CompositionError(f"{path}: unreadable features ({err})") from err


def write_composition(table: pd.DataFrame, out_dir: Path, *, features: pd.DataFrame | None = None) -> list[Path]:
    """Write ``composition.csv`` and ``.parquet`` (and the image features' when given) atomically."""
    out_dir = Path(out_dir)
    written = []
    for frame, names in ((table, COMPOSITION_FILES), (features, FEATURE_FILES)):
        if frame is None:
            continue
        csv_path, parquet_path = (out_dir / name for name in names)
        atomic_write(csv_path, lambda p: frame.to_csv(p, index=False))
        atomic_write(parquet_path, lambda p: frame.to_parquet(p, index=False))
        written += [csv_path, parquet_path]
    return written


def read_image_features(path: Path) -> pd.DataFrame:
    """Read the image-feature table of a COMPOSITION directory (or the .parquet/.csv file itself)."""
    path = Path(path)
    if path.is_dir():
        found = [path / name for name in reversed(FEATURE_FILES) if (path / name).is_file()]
        if not found:
            raise CompositionError(
                f"{path}: no image_features.parquet or .csv here (composed from a cell store without image info?)"
            )
        path = found[0]
    if not path.is_file():
        raise CompositionError(f"{path}: no such file or directory")
    try:
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"image": str})
    except Exception as err:  # pandas and pyarrow raise several types for bad files
        raise CompositionError(f"{path}: unreadable image-feature table ({err})") from err
    if "image" not in table.columns:
        raise CompositionError(f"{path}: image-feature table lacks the column 'image'")
    values = table.drop(columns=["image"]).to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise CompositionError(f"{path}: image features must be finite")
    table["image"] = table["image"].astype(str)
    return table


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
