"""Export the classified cells: QuPath GeoJSON, Parquet/CSV tables, AnnData.

``export_assignments`` reads an ASSIGNMENTS directory (``assignments.parquet``,
``features.npy``, ``meta.json``) and, for the GeoJSON outlines, the label masks
of the cell store that ``meta.json`` names (or another given), and writes into DIR:

- ``geojson/<image>.geojson``: one FeatureCollection per image
  (:mod:`cellgan.report.geojson`), for *File > Import objects from file* in QuPath;
- ``cells.parquet`` / ``cells.csv``: one row per cell with its ``uuid`` (the
  GeoJSON feature's id, QuPath's object id), its category (index and name), the
  probabilities ``prob_k``, the cell table's measurements and the learned features
  ``feature_0`` ... ``feature_{W-1}``; in the CSV, text that a spreadsheet would run
  as a formula starts with ``'`` (:func:`neutralise_formulas`);
- ``cells.h5ad``: an AnnData object (X and obsm["X_cellgan"] = the learned
  features, obsm["spatial"] = the centroids, obs = the cell table with the
  category), when the optional package ``anndata`` is installed
  (see the ``anndata`` extra in pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cellgan.analysis.composition import CompositionError, read_assignments
from cellgan.errors import CellganError
from cellgan.io.cellstore import CellStore, CellStoreError
from cellgan.io.files import atomic_write, load_npy, safe_image_id
from cellgan.io.palette import category_colours, category_names
from cellgan.report.geojson import cell_id_uuid, feature_collection, write_geojson

__all__ = [
    "EXPORT_FORMATS",
    "ExportError",
    "cell_export_table",
    "export_assignments",
    "neutralise_formulas",
    "read_features",
    "with_uuids",
    "write_h5ad",
]

EXPORT_FORMATS = ("geojson", "parquet", "csv", "h5ad")
FEATURES_FILE = "features.npy"


class ExportError(CellganError, ValueError):
    """Inputs that cannot be exported, or an export format that cannot be written."""


def read_features(assignments_dir: Path, n_cells: int) -> np.ndarray:
    """Read ``features.npy`` of an ASSIGNMENTS directory and check it has ``n_cells`` rows."""
    path = Path(assignments_dir) / FEATURES_FILE
    if not path.is_file():
        raise ExportError(f"{path}: missing (the learned features of the cells)")
    try:
        features = load_npy(path)
    except (OSError, ValueError) as err:
        raise ExportError(f"{path}: unreadable array ({err})") from err
    if features.ndim != 2 or len(features) != n_cells:
        raise ExportError(f"{path}: expected ({n_cells}, W) features for {n_cells} cells, got shape {features.shape}")
    return features


def cell_export_table(
    table: pd.DataFrame, features: np.ndarray, *, categories: int, names: list[str] | None = None
) -> pd.DataFrame:
    """Return the cell table with ``uuid``, ``category_name`` and ``feature_0`` ... ``feature_{W-1}`` added."""
    labels = np.asarray(category_names(categories, names), dtype=object)
    out = with_uuids(table)
    position = out.columns.get_loc("category") + 1
    out.insert(position, "category_name", labels[out["category"].to_numpy(dtype=np.int64)])
    columns = [f"feature_{j}" for j in range(features.shape[1])]
    feature_columns = pd.DataFrame(features.astype(np.float32), columns=columns)
    return pd.concat([out, feature_columns], axis=1)


def with_uuids(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` (index reset) with each cell's ``uuid`` after ``cell_id``."""
    out = table.reset_index(drop=True).copy()
    uuids = [cell_id_uuid(str(image), cell_id) for image, cell_id in zip(out["image"], out["cell_id"])]
    out.insert(out.columns.get_loc("cell_id") + 1, "uuid", uuids)
    return out


#: What a spreadsheet reads as the start of a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(table: pd.DataFrame) -> pd.DataFrame:
    """Return ``table`` with ``'`` put before every text cell a spreadsheet would run as a formula.

    A label or category name such as ``=HYPERLINK(...)`` would otherwise become a
    live formula when ``cells.csv`` is opened in Excel or LibreOffice. Numbers are
    left alone (a negative number is not text).
    """
    out = table.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v)
    return out


def write_h5ad(table: pd.DataFrame, features: np.ndarray, path: Path, *, categories: int, names=None) -> None:
    """Write the cells as an AnnData ``.h5ad`` file (needs the package ``anndata``).

    X and ``obsm["X_cellgan"]`` hold the learned features (the scanpy convention
    ``X_<method>`` for an embedding); ``obsm["spatial"]`` the (n, 2) centroids
    ``(x, y)`` in pixels (squidpy's key); ``obs`` the cell table with ``uuid`` and
    ``category`` as a categorical of the category names; ``obsm["probabilities"]``
    the (n, K) probabilities; ``uns["category_colors"]`` the palette as hex strings
    (scanpy's ``<key>_colors``).
    """
    anndata = _import_anndata()
    labels = category_names(categories, names)
    obs = with_uuids(table)
    obs.index = (obs["image"].astype(str) + "/" + obs["cell_id"].astype(str)).to_numpy()
    obs["category"] = pd.Categorical.from_codes(obs["category"].to_numpy(dtype=np.int64), categories=labels)
    if "label" in obs.columns:  # None and str mixed: a nullable string column writes cleanly
        obs["label"] = obs["label"].astype("string")
    prob_columns = [f"prob_{k}" for k in range(categories)]
    features = features.astype(np.float32)
    adata = anndata.AnnData(
        X=features,
        obs=obs.drop(columns=prob_columns),
        obsm={
            "X_cellgan": features,
            "spatial": obs[["centroid_x", "centroid_y"]].to_numpy(dtype=np.float64),
            "probabilities": obs[prob_columns].to_numpy(dtype=np.float32),
        },
        uns={"category_colors": ["#%02x%02x%02x" % tuple(c) for c in category_colours(categories).tolist()]},
    )
    # pandas 3 makes text columns nullable strings, which anndata writes only when allowed
    with anndata.settings.override(allow_write_nullable_strings=True):
        atomic_write(Path(path), lambda p: adata.write_h5ad(p))


def _import_anndata():
    try:
        import anndata
    except ImportError as err:
        raise ExportError(
            "writing .h5ad needs the optional package 'anndata', which is not installed "
            "(pip install --no-deps anndata==0.12.19, then: pip install h5py zarr natsort array-api-compat "
            "legacy-api-wrap scverse-misc)"
        ) from err
    return anndata


def export_assignments(
    assignments_dir: Path,
    out_dir: Path,
    *,
    cells_dir: Path | None = None,
    formats: tuple[str, ...] = ("geojson", "parquet", "csv"),
    names: list[str] | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
) -> dict[str, list[Path]]:
    """Export an ASSIGNMENTS directory in the given formats.

    Parameters
    ----------
    assignments_dir : Path
        Directory written by ``cellgan assign``.
    out_dir : Path
        Output directory (created).
    cells_dir : Path, optional
        The cell store (or its run directory), whose label masks give the
        nucleus outlines for ``geojson``; default: the store ``meta.json`` names.
        Cells of an image without a mask are drawn as circles.
    formats : tuple of str
        Any of :data:`EXPORT_FORMATS`.
    names : list of str, optional
        Category names, one per category (default ``"Category k"``).
    offset : (float, float)
        ``(x, y)`` added to the GeoJSON coordinates: the tile's corner in its slide.

    Returns
    -------
    dict
        format -> the files written.
    """
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown or not formats:
        raise ExportError(f"unknown export formats {unknown or list(formats)}; choose from {', '.join(EXPORT_FORMATS)}")
    if "h5ad" in formats:
        _import_anndata()  # fail before writing anything else
    try:
        table, meta = read_assignments(assignments_dir)
    except CompositionError as err:
        raise ExportError(str(err)) from err
    categories = int(meta["categories"])
    names = category_names(categories, names)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    if "geojson" in formats:
        cells_dir = meta.get("cells") if cells_dir is None else cells_dir
        if cells_dir is None:
            raise ExportError(
                f"{assignments_dir}: meta.json names no cell store; the geojson export needs one (--cells) "
                "for the nucleus outlines"
            )
        try:
            store = CellStore.open(cells_dir)
        except CellStoreError as err:
            raise ExportError(str(err)) from err
        written["geojson"] = []
        for image, cells in table.groupby("image", sort=True):
            image = str(image)
            if safe_image_id(image) != image:
                raise ExportError(f"{assignments_dir}: image id {image!r} is not a safe file name")
            collection = feature_collection(
                cells, categories=categories, label_mask=store.read_mask(image), names=names, offset=offset
            )
            path = out_dir / "geojson" / f"{image}.geojson"
            write_geojson(collection, path)
            written["geojson"].append(path)
    tabular = [f for f in ("parquet", "csv", "h5ad") if f in formats]
    if tabular:
        features = read_features(assignments_dir, len(table))
    if "parquet" in formats or "csv" in formats:
        cells_table = cell_export_table(table, features, categories=categories, names=names)
        if "parquet" in formats:
            path = out_dir / "cells.parquet"
            atomic_write(path, lambda p: cells_table.to_parquet(p, index=False))
            written["parquet"] = [path]
        if "csv" in formats:
            path = out_dir / "cells.csv"
            atomic_write(path, lambda p: neutralise_formulas(cells_table).to_csv(p, index=False))
            written["csv"] = [path]
    if "h5ad" in formats:
        path = out_dir / "cells.h5ad"
        write_h5ad(table, features, path, categories=categories, names=names)
        written["h5ad"] = [path]
    return written
