"""The cell store: every cell's table row and its 32×32 patch, sharded per image.

Layout of a store directory (usually ``RUN_DIR/cells``)::

    store.json                  format version, patch size and mode, pixel size
    table/<image_id>.parquet    one row per cell (see ``TABLE_COLUMNS``)
    patches/<image_id>.npy      uint8 array (n_cells, 32, 32, 3); row i <-> cell_id i
    masks/<image_id>.tif        uint32 label mask (label = cell_id + 1), when segmented
    overlays/<image_id>.jpg     the image with the nuclei outlined, when segmented (JPEG, quality 90, no
                                chroma subsampling: the 1-px outlines stay sharp)

A table may carry, in its Parquet metadata (key ``cellgan.image``), what is known of
the whole image (:meth:`CellStore.read_image_info`): its size, pixel size, tissue
fraction and colour statistics. An image without cells has a table without rows.

One shard per image keeps the store appendable and lets many workers write it in
parallel (each worker owns its images) and training ranks read disjoint shards.
A shard is *done* once its table exists: the table is renamed into place last, and
every file is written under a temporary name first, so a killed run leaves no
half-written shard behind and a re-run skips the images already done.

A shard's *identity* (:func:`shard_identity`, kept in its table's Parquet metadata)
records the source files it was made from (path, size, SHA-256) and the options that
made it. "Done" means done from the same files' contents with the same options:
:meth:`CellStore.shard_status` says whether a shard is to be written, skipped, re-made
(its file changed, or other options) or refused (another file of the same name).
Writers hold the store's lock (:meth:`CellStore.writing`), so that two runs never
interleave shards.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from cellgan.errors import CellganError
from cellgan.io.files import atomic_write, load_npy, remove_temporaries
from cellgan.io.lock import folder_lock

__all__ = [
    "PATCH_SIZE",
    "TABLE_COLUMNS",
    "CellStore",
    "CellStoreError",
    "ShardStatus",
    "file_identity",
    "shard_identity",
]

PATCH_SIZE = 32
#: JPEG quality of the overlays (``overlays/<image_id>.jpg``).
OVERLAY_QUALITY = 90
#: What each format version changed; a store of an older version is refused with these.
FORMAT_CHANGES = {
    2: "the table column mean_hematoxylin became mean_haematoxylin",
    3: "context and faded patches mirror the image beyond its edge instead of padding it with white",
}
FORMAT_VERSION = max(FORMAT_CHANGES)

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
    "mpp",  # float, the pixel size (µm per pixel) the µm values use; NaN when unknown
    "mpp_source",  # "given", "file", "estimated" or "unknown" (cellgan.segment.pixel_size)
    "perimeter_px",
    "eccentricity",
    "solidity",
    "mean_haematoxylin",  # mean optical density of the stain inside the nucleus
    "mean_eosin",
    "source",  # "segment", "points" or "folder"
    "label",  # str or None
)


#: The key of a shard's identity in its table's Parquet metadata.
IDENTITY_KEY = b"cellgan.identity"
_SHARD_FOLDERS = ("table", "patches", "masks", "overlays")


class CellStoreError(CellganError, RuntimeError):
    """A cell store that is missing, corrupt or inconsistent."""


class ShardStatus(NamedTuple):
    """What to do with one shard: ``action`` is "write", "skip", "remake" or "refuse"; ``reason`` says why."""

    action: str
    reason: str | None = None


def file_identity(path: Path) -> dict:
    """A source file's resolved path, size in bytes and SHA-256."""
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return {"path": str(path.resolve()), "size": path.stat().st_size, "sha256": digest.hexdigest()}


def shard_identity(sources: dict[str, Path], options: dict) -> dict:
    """The identity of a shard made from ``sources`` (role -> file, e.g. "image", "points") with ``options``.

    ``options`` are the settings that shape the shard's cells (JSON-able; compared after
    a round trip through JSON, as stored).
    """
    identity = {"sources": {role: file_identity(path) for role, path in sources.items()}, "options": options}
    return json.loads(json.dumps(identity, sort_keys=True, default=str))


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
        for sub in _SHARD_FOLDERS:
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
        return self.root / "overlays" / f"{image_id}.jpg"

    def _older_overlay_path(self, image_id: str) -> Path:
        """Where a store written before 2026-12-05 kept the overlay (a PNG)."""
        return self.overlay_path(image_id).with_suffix(".png")

    def find_overlay(self, image_id: str) -> Path | None:
        """The image's overlay file (this store's JPEG, or an older store's PNG), None when it has none."""
        for path in (self.overlay_path(image_id), self._older_overlay_path(image_id)):
            if path.is_file():
                return path
        return None

    # -- writing ---------------------------------------------------------------
    @contextmanager
    def writing(self):
        """Hold the store's lock (:func:`cellgan.io.lock.folder_lock`) and clear what killed writers left.

        Raises
        ------
        cellgan.io.lock.FolderLocked
            Another running process writes this store.
        """
        with folder_lock(self.root):
            for sub in _SHARD_FOLDERS:
                remove_temporaries(self.root / sub)
            yield self

    def has_image(self, image_id: str, identity: dict | None = None) -> bool:
        """Whether the shard is done (and, given ``identity``, made from the same files and options)."""
        if identity is None:
            return self.table_path(image_id).is_file()
        return self.shard_status(image_id, identity).action == "skip"

    def read_identity(self, image_id: str) -> dict | None:
        """The identity a done shard was written with; None for a shard written without one."""
        import pyarrow.parquet as pq

        path = self.table_path(image_id)
        try:
            raw = (pq.read_schema(path).metadata or {}).get(IDENTITY_KEY)
            return None if raw is None else json.loads(raw)
        except Exception as err:  # pyarrow raises several types for bad files
            raise CellStoreError(f"{path}: unreadable cell table ({err})") from err

    def shard_status(self, image_id: str, identity: dict) -> ShardStatus:
        """Whether to write, skip, re-make or refuse the shard ``image_id`` for a source of ``identity``.

        Skipped: done from files of the same contents (wherever they now are) with the
        same options, or written without an identity (by an older cellgan). Re-made:
        a source file at the same path whose contents changed (a corrected points
        CSV), other source files, or other options (``--mpp``, the Reinhard reference).
        Refused: the shard was made from another file at another path (another
        image of the same name), which re-making would replace.
        """
        if not self.table_path(image_id).is_file():
            return ShardStatus("write")
        stored = self.read_identity(image_id)
        if stored is None or stored == identity:
            return ShardStatus("skip")
        old, new = stored.get("sources", {}), identity["sources"]
        for role, source in new.items():
            before = old.get(role)
            if before is None or (before["size"], before["sha256"]) == (source["size"], source["sha256"]):
                continue
            if before["path"] != source["path"]:
                return ShardStatus(
                    "refuse",
                    f"the store's shard {image_id!r} was made from another file, {before['path']}; "
                    "give the files distinct names or use another output folder",
                )
            return ShardStatus("remake", f"{source['path']} changed since shard {image_id!r} was made")
        if set(old) != set(new):
            return ShardStatus("remake", f"shard {image_id!r} was made from other files")
        changed = _changed_options(stored.get("options", {}), identity["options"])
        if changed:
            return ShardStatus("remake", f"shard {image_id!r} was made with other options ({changed})")
        return ShardStatus("skip")

    def write_image(
        self,
        image_id: str,
        table: pd.DataFrame,
        patches: np.ndarray,
        *,
        label_mask: np.ndarray | None = None,
        overlay: np.ndarray | None = None,
        identity: dict | None = None,
        image_info: dict | None = None,
    ) -> None:
        """Write one image's shard atomically (table last, so it marks completion).

        A shard re-made loses its old table first: a run killed while re-making it
        leaves it not done, never an old table beside new patches. ``identity``
        (:func:`shard_identity`) and ``image_info`` (JSON-able values) go into the
        table's Parquet metadata.
        """
        patches = np.asarray(patches)
        size = self.info.patch_size
        if patches.dtype != np.uint8 or patches.ndim != 4 or patches.shape[1:] != (size, size, 3):
            raise ValueError(f"patches must be uint8 (n, {size}, {size}, 3), got {patches.dtype} {patches.shape}")
        if len(table) != len(patches):
            raise ValueError(f"{image_id}: {len(table)} table rows but {len(patches)} patches")
        table = _normalise_table(table, image_id)
        self.table_path(image_id).unlink(missing_ok=True)
        if label_mask is not None:
            import tifffile

            mask = np.asarray(label_mask, dtype=np.uint32)
            atomic_write(
                self.mask_path(image_id),
                lambda p: tifffile.imwrite(p, mask, compression="zlib"),
            )
        if overlay is not None:
            from PIL import Image

            # JPEG, not PNG: 14x faster to write (8 % of a whole segmentation run) and a third of the size
            atomic_write(
                self.overlay_path(image_id),
                lambda p: Image.fromarray(overlay).save(p, format="JPEG", quality=OVERLAY_QUALITY, subsampling=0),
            )
            self._older_overlay_path(image_id).unlink(missing_ok=True)
        atomic_write(self.patches_path(image_id), lambda p: np.save(p, patches))
        atomic_write(self.table_path(image_id), lambda p: _write_table(table, p, identity, image_info))

    def write_image_in_parts(self, image_id: str, table: pd.DataFrame, patch_parts, *, identity: dict | None = None) -> None:
        """Write one image's shard whose patches lie in ``.npy`` files, part after part (a slide's tiles).

        The parts are read one at a time into the shard's patch array, so that memory
        holds one part whatever the image's size; ``table``'s rows follow the parts in
        order. No mask or overlay: a slide's would be the size of the slide.
        ``identity`` as in :meth:`write_image`.
        """
        size = self.info.patch_size
        parts = [Path(p) for p in patch_parts]
        rows = sum(load_npy(p, mmap=True).shape[0] for p in parts)  # the headers only
        if len(table) != rows:
            raise ValueError(f"{image_id}: {len(table)} table rows but {rows} patches")
        table = _normalise_table(table, image_id)
        self.table_path(image_id).unlink(missing_ok=True)  # re-made: not done until the new table is in place

        def write(path: Path) -> None:
            header = {"descr": "|u1", "fortran_order": False, "shape": (rows, size, size, 3)}
            with open(path, "wb") as f:
                np.lib.format.write_array_header_1_0(f, header)
                for part in parts:
                    patches = load_npy(part)
                    if patches.dtype != np.uint8 or patches.shape[1:] != (size, size, 3):
                        raise ValueError(f"{part}: patches are {patches.dtype} {patches.shape}")
                    f.write(np.ascontiguousarray(patches).tobytes())

        atomic_write(self.patches_path(image_id), write)
        atomic_write(self.table_path(image_id), lambda p: _write_table(table, p, identity))

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


def _write_table(table: pd.DataFrame, path: Path, identity: dict | None, image_info: dict | None = None) -> None:
    """Write a shard's table as Parquet, its identity and image info in the file's metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    metadata = dict(arrow.schema.metadata or {})
    if identity is not None:
        metadata[IDENTITY_KEY] = json.dumps(identity)
    if image_info is not None:
        metadata[_IMAGE_INFO_KEY] = json.dumps(image_info).encode()
    pq.write_table(arrow.replace_schema_metadata(metadata), path)


def _changed_options(old: dict, new: dict) -> str:
    """The options that differ, as ``name: old -> new``, comma-separated (empty when none do)."""
    names = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in names)


def _version_message(meta: Path, version) -> str:
    """Why a store of another format version cannot be opened, and what to do."""
    if isinstance(version, int) and version < FORMAT_VERSION:
        changes = "; ".join(change for number, change in FORMAT_CHANGES.items() if number > version)
        return (
            f"{meta}: cell store of format version {version}, made by an older cellgan; this one reads "
            f"version {FORMAT_VERSION} ({changes}): re-run segmentation "
            "(cellgan segment / cellgan cells) into a new directory, or delete this store first"
        )
    return f"{meta}: unsupported format version {version} (this cellgan reads version {FORMAT_VERSION})"


_FLOAT_COLUMNS = {
    "centroid_x",
    "centroid_y",
    "area_px",
    "area_um2",
    "mpp",
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
    optional = ("label", "area_um2", "mpp", "mpp_source", "image")
    missing = [c for c in TABLE_COLUMNS if c not in table.columns and c not in optional]
    if missing:
        raise ValueError(f"{image_id}: cell table lacks columns {missing}")
    table = table.copy()
    table["image"] = image_id
    for column in ("area_um2", "mpp"):
        if column not in table.columns:
            table[column] = np.nan
    if "mpp_source" not in table.columns:
        table["mpp_source"] = np.where(table["mpp"].notna(), "given", "unknown")
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
