"""A folder of pre-cropped single-cell images → a cell store: :func:`cells_from_folder`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from cellgan.fields import as_dict
from cellgan.io.files import outside, safe_image_id
from cellgan.io.images import DEFAULT_MAX_PIXELS, find_images, read_mpp, read_rgb
from cellgan.segment.batch import RunSummary, check_patch_mode, failure_reason, shard_to_write
from cellgan.segment.config import SegmentConfig
from cellgan.segment.features import cell_table
from cellgan.segment.image import NotHAndEError, SegmentationError, cell_patches, finish_table, prepare, prepared_nuclei
from cellgan.segment.nuclei import nucleus_near
from cellgan.segment.patches import whole_crop_patch

__all__ = ["cells_from_folder"]


def _crops_by_folder(folder: Path, store_root: Path) -> dict[Path, list[Path]]:
    """The images under ``folder`` but outside the store, grouped by the directory that holds them."""
    groups: dict[Path, list[Path]] = {}
    for path in outside(find_images([folder]), store_root):
        groups.setdefault(path.parent, []).append(path)
    return groups


def _shard_and_label(parent: Path, folder: Path) -> tuple[str, str | None]:
    """The shard id of the crops in ``parent`` (its path under ``folder``) and their label (its name)."""
    relative = parent.relative_to(folder)
    shard = safe_image_id("_".join(relative.parts) if relative.parts else folder.resolve().name or "cells")
    return shard, parent.name if relative.parts else None


def cells_from_folder(
    folder, store, config: SegmentConfig | None = None, *, max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = True
) -> RunSummary:
    """Cells from a folder of pre-cropped single-cell images of any size.

    Each crop gives one cell. Crop patches (the default): the whole crop is the cell,
    scaled to 32×32 keeping its aspect ratio (:func:`~cellgan.segment.patches.whole_crop_patch`):
    nothing of the cell is lost to a missed or fragmented nucleus, whatever the crop's
    scale. The table still measures the nucleus found nearest the crop's centre (the
    whole crop when none is). Masked patches: that nucleus, then the masked rule
    (scaled down keeping the aspect ratio if larger than 32 px). Context patches: a
    crop of ``context_um`` (or ``context_px``) around the crop's centre, white beyond
    it. The crops of each folder form one shard, named after the folder's path under
    ``folder``; a sub-folder's name is the cells' ``label`` (for scoring only), and
    the extra table column ``file`` holds each crop's path relative to ``folder``.

    Parameters
    ----------
    folder : str or Path
    store : cellgan.io.cellstore.CellStore
    config : SegmentConfig, optional
        Default: ``SegmentConfig(patch_mode="crop")``.
    max_pixels : int
        The pixel budget of each crop (:func:`cellgan.io.images.read_rgb`).
    progress : bool

    Returns
    -------
    RunSummary
        Shard ids done and skipped; ``failed`` maps unreadable crops, and those that
        are not H&E (:class:`~cellgan.segment.image.NotHAndEError`), to the reason.
    """
    from tqdm.auto import tqdm

    config = SegmentConfig(patch_mode="crop") if config is None else config
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a directory")
    check_patch_mode(store, config)
    groups = _crops_by_folder(folder, store.root)
    done, options, summary = [], as_dict(config), {"skipped": [], "failed": {}, "remade": {}}
    failed = summary["failed"]
    bar = tqdm(total=sum(len(v) for v in groups.values()), desc="cells", unit="crop", disable=not progress)
    with store.writing():
        for parent, files in groups.items():
            shard = _folder_shard(store, parent, files, folder, config, options, summary, max_pixels=max_pixels)
            bar.update(len(files))
            if shard is not None:
                done.append(shard)
    bar.close()
    return RunSummary(tuple(done), tuple(summary["skipped"]), failed, remade=summary["remade"])


def _folder_shard(store, parent: Path, files, folder: Path, config, options, summary, *, max_pixels) -> str | None:
    """Write the shard of the crops ``files`` of ``parent`` unless done; return its id when written."""
    shard, label = _shard_and_label(parent, folder)
    sources = {f"crop:{path.relative_to(folder)}": path for path in files}
    identity = shard_to_write(store, shard, sources, options, name=str(parent), summary=summary)
    if identity is None:
        return None
    rows, patches = [], []
    for path in files:
        try:
            rgb = read_rgb(path, max_pixels=max_pixels)
            mpp = config.mpp if config.mpp is not None else read_mpp(path)
            row, patch = _crop_cell(rgb, dataclasses.replace(config, mpp=mpp))
        except Exception as err:  # one bad crop must not stop the run; it is reported
            summary["failed"][str(path)] = failure_reason(err, path)
            continue
        if config.mpp is None and mpp is not None:
            row["mpp_source"] = "file"
        row["label"] = label
        row["file"] = str(path.relative_to(folder))
        rows.append(row)
        patches.append(patch)
    if not rows:
        return None
    table = pd.concat(rows, ignore_index=True)
    table["cell_id"] = np.arange(len(table), dtype=np.int64)
    store.write_image(shard, finish_table(table, shard), np.concatenate(patches), identity=identity)
    return shard


def _crop_cell(rgb: np.ndarray, config: SegmentConfig) -> tuple[pd.DataFrame, np.ndarray]:
    """The table row and patch of one single-cell crop (see :func:`cells_from_folder`)."""
    height, width = rgb.shape[:2]
    centre = np.array([[(width - 1) / 2, (height - 1) / 2]])
    prepared = None
    try:
        prepared = prepare(rgb, config, min_side=1)
    except NotHAndEError:
        raise
    except SegmentationError:  # a blank crop: no nucleus to find, keep the whole crop
        pass
    mask = np.ones((height, width), np.int32)
    if prepared is not None:
        nuclei = prepared_nuclei(prepared, config)
        hit = nucleus_near(nuclei.labels, centre, np.hypot(height, width))
        if hit[0] > 0:
            mask = (nuclei.labels == hit[0]).astype(np.int32)
        stains = prepared.stains
    else:
        stains = np.zeros((height, width, 3), np.float32)
    row = cell_table(mask, stains, mpp=config.mpp, source="folder")
    if config.patch_mode == "crop":
        return row, whole_crop_patch(rgb)[None]
    patch = cell_patches(rgb, mask, row, config, centres=centre)
    return row, patch
