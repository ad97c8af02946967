"""The cell store: every cell's table row and its 32×32 patch, sharded per image.

Layout of a store directory (usually ``RUN_DIR/cells``)::

    store.json                  format version, patch size and mode, pixel size
    table/<image_id>.parquet    one row per cell (see ``TABLE_COLUMNS``)
    patches/<image_id>.npy      uint8 array (n_cells, 32, 32, 3); row i <-> cell_id i
    masks/<image_id>.tif        uint32 label mask (label = cell_id + 1), when segmented
    overlays/<image_id>.png     the image with the nuclei outlined, when segmented

A table may carry, in its Parquet metadata (key ``cellgan.image``), what is known of
the whole image (:meth:`CellStore.read_image_info`): its size, pixel size, tissue
fraction and colour statistics. An image without cells has a table without rows.

One shard per image keeps the store appendable and lets many workers write it in
parallel (each worker owns its images) and training ranks read disjoint shards.
A shard is *done* once its table exists: the table is renamed into place last, and
every file is written under a temporary name first, so a killed run leaves no
half-written shard behind and a re-run skips the images already done.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cellgan.errors import CellganError
from cellgan.io.files import atomic_write, load_npy

__all__ = [
    "PATCH_SIZE",
    "TABLE_COLUMNS",
    "CellStore",
    "CellStoreError",
]

PATCH_SIZE = 32
#: Version 2: the table column ``mean_hematoxylin`` became ``mean_haematoxylin``.
FORMAT_VERSION = 2

#: Columns every shard's table has, in this order. ``label`` is an optional
#: ground-truth or user label, used for scoring only, never for training.
TABLE_COLUMNS = (
    "image",  # image id (str)
    "cell_id",  # int, 0..n-1 within the image; index into the image's patch array
    "centroid_x",  # float, column in pixels
    "centroid_y",  # float, row in pixels
    "bbox_x0",  # int, inclusive
    "bbox_y0",
    "bbox_x1",  # int, exclusive
    "bbox_y1",
    "area_px",  # float
    "area_um2",  # float, NaN when the pixel size is unknown
    "perimeter_px",
    "eccentricity",
    "solidity",
    "mean_haematoxylin",  # mean optical density of the stain inside the nucleus
    "mean_eosin",
    "source",  # "segment", "points" or "folder"
    "label",  # str or None
)


class CellStoreError(CellganError, RuntimeError):
    """A cell store that is missing, corrupt or inconsistent."""


@dataclass(frozen=True)
class StoreInfo:
    patch_size: int = PATCH_SIZE
    patch_mode: str = "masked"
    format_version: int = FORMAT_VERSION


class CellStore:
    """A directory of per-image cell shards. Open with :meth:`create` or :meth:`open`."""

    def __init__(self, root: Path, info: StoreInfo):
        self.root = Path(root)
        self.info = info

    # -- opening ---------------------------------------------------------------
    @classmethod
    def create(cls, root: Path, *, patch_mode: str) -> "CellStore":
        """Open the store at ``root``, creating it if needed.

        An existing store must have been made with the same ``patch_mode``: mixing
        masked and context patches in one store would make them incomparable.
        """
        root = Path(root)
        meta = root / "store.json"
        if meta.exists():
            store = cls.open(root)
            if store.info.patch_mode != patch_mode:
                raise CellStoreError(
                    f"{root}: store holds {store.info.patch_mode!r} patches, "
                    f"refusing to add {patch_mode!r} patches"
                )
            return store
        info = StoreInfo(patch_mode=patch_mode)
        for sub in ("table", "patches", "masks", "overlays"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        atomic_write(meta, lambda p: p.write_text(json.dumps(info.__dict__, indent=2)))
        return cls(root, info)

    @classmethod
    def open(cls, path: Path) -> "CellStore":
        """Open an existing store given its directory or the run directory above it."""
        path = Path(path)
        for root in (path, path / "cells"):
            meta = root / "store.json"
            if meta.is_file():
                try:
                    info = StoreInfo(**json.loads(meta.read_text()))
                except (ValueError, TypeError) as err:
                    raise CellStoreError(f"{meta}: unreadable store metadata ({err})") from err
                except RecursionError:
                    raise CellStoreError(f"{meta}: unreadable store metadata (nested too deeply)") from None
                if info.format_version != FORMAT_VERSION:
                    raise CellStoreError(_version_message(meta, info.format_version))
                return cls(root, info)
        raise CellStoreError(f"{path}: no cell store here (expected {path}/store.json or {path}/cells/store.json)")

    # -- paths -----------------------------------------------------------------
    def table_path(self, image_id: str) -> Path:
        return self.root / "table" / f"{image_id}.parquet"

    def patches_path(self, image_id: str) -> Path:
        return self.root / "patches" / f"{image_id}.npy"

    def mask_path(self, image_id: str) -> Path:
        return self.root / "masks" / f"{image_id}.tif"

    def overlay_path(self, image_id: str) -> Path:
        return self.root / "overlays" / f"{image_id}.png"

    # -- writing ---------------------------------------------------------------
    def has_image(self, image_id: str) -> bool:
        return self.table_path(image_id).is_file()

    def write_image(
        self,
        image_id: str,
        table: pd.DataFrame,
        patches: np.ndarray,
        *,
        label_mask: np.ndarray | None = None,
        overlay: np.ndarray | None = None,
        image_info: dict | None = None,
    ) -> None:
        """Write one image's shard atomically (table last, so it marks completion).

        ``image_info`` (JSON-able values) goes into the table's Parquet metadata.
        """
        patches = np.asarray(patches)
        size = self.info.patch_size
        if patches.dtype != np.uint8 or patches.ndim != 4 or patches.shape[1:] != (size, size, 3):
            raise ValueError(f"patches must be uint8 (n, {size}, {size}, 3), got {patches.dtype} {patches.shape}")
        if len(table) != len(patches):
            raise ValueError(f"{image_id}: {len(table)} table rows but {len(patches)} patches")
        table = _normalise_table(table, image_id)
        if label_mask is not None:
            import tifffile

            mask = np.asarray(label_mask, dtype=np.uint32)
            atomic_write(
                self.mask_path(image_id),
                lambda p: tifffile.imwrite(p, mask, compression="zlib"),
            )
        if overlay is not None:
            from PIL import Image

            atomic_write(self.overlay_path(image_id), lambda p: Image.fromarray(overlay).save(p, format="PNG", compress_level=1))
        atomic_write(self.patches_path(image_id), lambda p: np.save(p, patches))
        atomic_write(self.table_path(image_id), lambda p: _write_table(table, p, image_info))

    # -- reading ---------------------------------------------------------------
    def image_ids(self) -> list[str]:
        """Ids of the images whose shard is complete, sorted."""
        return sorted(p.stem for p in (self.root / "table").glob("*.parquet") if not p.name.startswith("."))

    def read_table(self, image_ids: list[str] | None = None) -> pd.DataFrame:
        """All cells of ``image_ids`` (default: every image), shard after shard."""
        ids = self.image_ids() if image_ids is None else list(image_ids)
        frames = []
        for image_id in ids:
            path = self.table_path(image_id)
            try:
                frames.append(pd.read_parquet(path))
            except Exception as err:  # pyarrow raises several types for bad files
                raise CellStoreError(f"{path}: unreadable cell table ({err})") from err
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in TABLE_COLUMNS})
        return pd.concat(frames, ignore_index=True)

    def read_patches(self, image_ids: list[str] | None = None, *, mmap: bool = False) -> np.ndarray:
        """Patches aligned with :meth:`read_table` for the same ``image_ids``.

        Raises
        ------
        CellStoreError
            A shard's patch array is unreadable, is not uint8 (n, 32, 32, 3), or
            has another number of rows than its table; the message names the file.
        """
        ids = self.image_ids() if image_ids is None else list(image_ids)
        size = self.info.patch_size
        arrays = []
        for image_id in ids:
            path = self.patches_path(image_id)
            try:
                patches = load_npy(path, mmap=mmap)
            except (OSError, ValueError) as err:
                raise CellStoreError(f"{path}: unreadable patch array ({err})") from err
            if patches.dtype != np.uint8 or patches.shape[1:] != (size, size, 3):
                raise CellStoreError(
                    f"{path}: patches are {patches.dtype} {patches.shape}, the store needs uint8 (n, {size}, {size}, 3)"
                )
            rows = self._table_rows(image_id)
            if len(patches) != rows:
                raise CellStoreError(f"{path}: {len(patches)} patches but {rows} rows in {self.table_path(image_id)}")
            arrays.append(patches)
        if not arrays:
            return np.zeros((0, size, size, 3), np.uint8)
        return np.concatenate(arrays, axis=0)

    def read_image_info(self, image_ids: list[str] | None = None) -> pd.DataFrame:
        """What each shard's table keeps of its whole image (see ``write_image``).

        Returns
        -------
        DataFrame
            One row per image of ``image_ids`` (default: every image), indexed by
            image, one column per key any of them has (NaN where an image lacks it,
            as the shards of ``cells from-folder`` and ``from-points`` do).
        """
        import pyarrow.parquet as pq

        ids = self.image_ids() if image_ids is None else list(image_ids)
        rows = []
        for image_id in ids:
            path = self.table_path(image_id)
            try:
                metadata = pq.read_schema(path).metadata or {}
                rows.append(json.loads(metadata.get(_IMAGE_INFO_KEY, b"{}")))
            except Exception as err:  # pyarrow raises several types for bad files
                raise CellStoreError(f"{path}: unreadable cell table ({err})") from err
        return pd.DataFrame(rows, index=pd.Index(ids, name="image"))

    def _table_rows(self, image_id: str) -> int:
        """The number of rows of a shard's table, from the Parquet footer alone."""
        import pyarrow.parquet as pq

        path = self.table_path(image_id)
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception as err:  # pyarrow raises several types for bad files
            raise CellStoreError(f"{path}: unreadable cell table ({err})") from err

    def read_mask(self, image_id: str) -> np.ndarray | None:
        path = self.mask_path(image_id)
        if not path.is_file():
            return None
        import tifffile

        return tifffile.imread(path)

    def __len__(self) -> int:
        return sum(len(pd.read_parquet(self.table_path(i), columns=["cell_id"])) for i in self.image_ids())

    def __repr__(self) -> str:
        return f"CellStore({str(self.root)!r}, images={len(self.image_ids())}, mode={self.info.patch_mode!r})"


#: The Parquet metadata key of a table's image info.
_IMAGE_INFO_KEY = b"cellgan.image"


def _write_table(table: pd.DataFrame, path: Path, image_info: dict | None) -> None:
    """``table`` as Parquet at ``path``, with ``image_info`` in its metadata when given."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    if image_info is not None:
        metadata = {**(arrow.schema.metadata or {}), _IMAGE_INFO_KEY: json.dumps(image_info).encode()}
        arrow = arrow.replace_schema_metadata(metadata)
    pq.write_table(arrow, path)


def _version_message(meta: Path, version) -> str:
    """Why a store of another format version cannot be opened, and what to do."""
    if isinstance(version, int) and version < FORMAT_VERSION:
        return (
            f"{meta}: cell store of format version {version}, made by an older cellgan; this one reads "
            f"version {FORMAT_VERSION} (its cell table's columns changed): re-run segmentation "
            "(cellgan segment / cellgan cells) into a new directory, or delete this store first"
        )
    return f"{meta}: unsupported format version {version} (this cellgan reads version {FORMAT_VERSION})"


_FLOAT_COLUMNS = {
    "centroid_x",
    "centroid_y",
    "area_px",
    "area_um2",
    "perimeter_px",
    "eccentricity",
    "solidity",
    "mean_haematoxylin",
    "mean_eosin",
}
_INT_COLUMNS = {"cell_id", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"}


def _dtype(column: str):
    if column in _FLOAT_COLUMNS:
        return "float64"
    if column in _INT_COLUMNS:
        return "int64"
    return "object"


def _normalise_table(table: pd.DataFrame, image_id: str) -> pd.DataFrame:
    """Check and order a shard table: every column present, cell ids 0..n-1."""
    missing = [c for c in TABLE_COLUMNS if c not in table.columns and c not in ("label", "area_um2", "image")]
    if missing:
        raise ValueError(f"{image_id}: cell table lacks columns {missing}")
    table = table.copy()
    table["image"] = image_id
    if "area_um2" not in table.columns:
        table["area_um2"] = np.nan
    if "label" not in table.columns:
        table["label"] = None
    if not np.array_equal(table["cell_id"].to_numpy(), np.arange(len(table))):
        raise ValueError(f"{image_id}: cell_id must be 0..n-1 in order")
    for column in TABLE_COLUMNS:
        if column in _FLOAT_COLUMNS:
            table[column] = table[column].astype("float64")
        elif column in _INT_COLUMNS:
            table[column] = table[column].astype("int64")
    table["label"] = table["label"].astype(object).where(table["label"].notna(), None)
    extra = [c for c in table.columns if c not in TABLE_COLUMNS]
    return table[list(TABLE_COLUMNS) + extra]
