"""From H&E images to cells: the functions behind ``cellgan segment`` and ``cellgan cells``.

- :func:`segment_image`: one image in memory → its nuclei (table, patches, mask, overlay).
- :func:`segment_images`: image files → a cell store, one shard per image, resumable.
- :func:`cells_at_points`: one cell per given centre (e.g. annotated nuclei).
- :func:`cells_from_folder`: a folder of single-cell crops → a cell store.

Stage 1 of Hu et al. (2019, PAPER.md): optional Reinhard normalisation, stain
separation, nuclei segmentation, one 32×32 patch per nucleus.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cellgan.errors import CellganError
from cellgan.io.cellstore import PATCH_SIZE, TABLE_COLUMNS
from cellgan.io.files import safe_image_id
from cellgan.io.images import find_images, read_mpp, read_rgb, to_rgb_uint8
from cellgan.segment.config import SegmentConfig
from cellgan.segment.features import cell_table, outline_mask
from cellgan.segment.nuclei import Nuclei, area_limits_px, drop_stain_artefacts, find_nuclei, nucleus_at
from cellgan.segment.patches import context_patches, faded_patches, masked_patches
from cellgan.segment.reference import resolve_reference
from cellgan.segment.stain import (
    deconvolve,
    estimate_stains,
    lab_statistics,
    off_stain_pixels,
    optical_density,
    reference_stain_matrix,
    reinhard_normalize,
)

__all__ = [
    "OUTLINE_COLOUR",
    "CellResult",
    "RunSummary",
    "SegmentationError",
    "cells_at_points",
    "cells_from_folder",
    "image_ids",
    "segment_image",
    "segment_images",
]

#: Colour of the nuclei outlines in overlays (green stands out on H&E's pink and purple).
OUTLINE_COLOUR = (0, 255, 0)

#: At most this many pixels (an even stride) go into the Macenko estimate.
_STAIN_SAMPLE_PIXELS = 250_000


class SegmentationError(CellganError, ValueError):
    """An image that cannot be segmented: blank (no tissue) or smaller than a patch."""


@dataclass(frozen=True)
class CellResult:
    """The cells of one image.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per cell, the columns of ``cellgan.io.cellstore.TABLE_COLUMNS``.
    patches : ndarray, uint8, shape (n, 32, 32, 3)
        Row i is cell ``cell_id`` i.
    label_mask : ndarray of uint32, shape (H, W)
        0 background, ``cell_id + 1`` the cell's nucleus.
    overlay : ndarray, uint8, shape (H, W, 3)
        The image with the nuclei outlined in :data:`OUTLINE_COLOUR`.
    """

    table: pd.DataFrame
    patches: np.ndarray
    label_mask: np.ndarray
    overlay: np.ndarray


@dataclass(frozen=True)
class RunSummary:
    """What a run over many images did: ids written, ids already done, failures (name → reason)."""

    done: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: dict[str, str]


# -- one image -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    rgb: np.ndarray  # after optional Reinhard normalisation
    stains: np.ndarray  # (H, W, 3) concentrations: H, E, residual
    tissue: np.ndarray  # bool (H, W): stained, and not by an artefact
    matrix: np.ndarray  # (3, 3) stain vectors: H, E, residual


@functools.lru_cache(maxsize=4)
def _reinhard_target(path: str) -> np.ndarray:
    return lab_statistics(read_rgb(path))


def _tissue(od: np.ndarray, config: SegmentConfig) -> np.ndarray:
    """Pixels whose summed optical density exceeds ``config.tissue_od``; SegmentationError when too few."""
    tissue = od.sum(axis=2) > config.tissue_od
    fraction = float(tissue.mean())
    if fraction < config.min_tissue_fraction:
        raise SegmentationError(
            f"no tissue: {100 * fraction:.3f}% of pixels have optical density above {config.tissue_od} "
            f"(blank or white image; at least {100 * config.min_tissue_fraction:g}% needed)"
        )
    return tissue


def _prepare(rgb: np.ndarray, config: SegmentConfig, *, min_side: int = PATCH_SIZE) -> _Prepared:
    rgb = to_rgb_uint8(rgb)
    height, width = rgb.shape[:2]
    if min(height, width) < min_side:
        raise SegmentationError(f"image is {width}×{height} px, smaller than a {min_side}×{min_side} patch")
    if config.reinhard_reference is not None:
        _tissue(optical_density(rgb), config)  # before normalisation stretches blank glass into tissue
        rgb = reinhard_normalize(rgb, target=_reinhard_target(str(config.reinhard_reference)))
    od = optical_density(rgb)
    tissue = _tissue(od, config)
    if config.stain_vectors == "macenko":
        stride = max(1, int(np.ceil(np.sqrt(rgb.shape[0] * rgb.shape[1] / _STAIN_SAMPLE_PIXELS))))
        matrix = estimate_stains(rgb[::stride, ::stride]).matrix
    else:
        matrix = reference_stain_matrix()
    # Pigment, dye and blood are not tissue the threshold should adapt to: they would
    # raise it above the nuclei. Tested on every second pixel each way, enough for a
    # mask that only chooses the pixels of the threshold's statistics.
    if config.max_stain_angle_deg < 90:
        off = off_stain_pixels(od[::2, ::2], max_angle_deg=config.max_stain_angle_deg, stains=matrix)
        tissue &= ~np.repeat(np.repeat(off, 2, axis=0), 2, axis=1)[:height, :width]
    return _Prepared(rgb, deconvolve(od, matrix), tissue, matrix)


def _find_nuclei(prepared: _Prepared, config: SegmentConfig) -> Nuclei:
    """:func:`find_nuclei` on the haematoxylin channel, less the stain artefacts."""
    nuclei = find_nuclei(prepared.stains[..., 0], prepared.tissue, mpp=config.mpp, config=config)
    labels = drop_stain_artefacts(
        nuclei.labels, prepared.rgb, max_angle_deg=config.max_stain_angle_deg, stains=prepared.matrix
    )
    return dataclasses.replace(nuclei, labels=labels)


def _overlay(rgb: np.ndarray, label_mask: np.ndarray) -> np.ndarray:
    overlay = rgb.copy()
    overlay[outline_mask(label_mask)] = OUTLINE_COLOUR
    return overlay


def _patches(rgb, label_mask, table, config: SegmentConfig, *, centres=None, cell_labels=None) -> np.ndarray:
    if config.patch_mode == "masked":
        bboxes = table[["bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"]].to_numpy()
        return masked_patches(rgb, label_mask, bboxes, cell_labels=cell_labels)
    if centres is None:
        centres = table[["centroid_x", "centroid_y"]].to_numpy()
    if config.patch_mode == "faded":
        return faded_patches(
            rgb,
            label_mask,
            centres,
            cell_labels=cell_labels,
            side_px=_context_side(config),
            context_weight=config.context_weight,
        )
    return context_patches(rgb, centres, side_px=_context_side(config))


def _context_side(config: SegmentConfig) -> int:
    """Side of a context crop in pixels: ``context_um`` at the known pixel size, else ``context_px``."""
    return config.context_px if config.mpp is None else max(1, int(round(config.context_um / config.mpp)))


def _finish(table: pd.DataFrame, image_id: str) -> pd.DataFrame:
    table = table.copy()
    table["image"] = image_id
    return table[list(TABLE_COLUMNS) + [c for c in table.columns if c not in TABLE_COLUMNS]]


def segment_image(rgb: np.ndarray, config: SegmentConfig | None = None, *, image_id: str) -> CellResult:
    """Segment the nuclei of one H&E image and cut one patch per nucleus.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3)
        The image, ``uint8`` RGB (other types and shapes are converted with
        :func:`cellgan.io.images.to_rgb_uint8`).
    config : SegmentConfig, optional
        Settings; ``config.mpp`` is the pixel size (None: estimated, see
        :class:`SegmentConfig`).
    image_id : str
        Written to the table's ``image`` column.

    Returns
    -------
    CellResult

    Raises
    ------
    SegmentationError
        The image is smaller than a patch, or blank.
    """
    config = SegmentConfig() if config is None else config
    prepared = _prepare(rgb, config)
    nuclei = _find_nuclei(prepared, config)
    labels = nuclei.labels
    table = cell_table(labels, prepared.stains, mpp=config.mpp, source="segment")
    patches = _patches(prepared.rgb, labels, table, config)
    return CellResult(_finish(table, image_id), patches, labels.astype(np.uint32), _overlay(prepared.rgb, labels))


def cells_at_points(
    rgb: np.ndarray,
    xy: np.ndarray,
    config: SegmentConfig | None = None,
    *,
    image_id: str,
    labels=None,
) -> CellResult:
    """One cell per given centre: table row and patch, e.g. for annotated nuclei.

    The image is segmented as by :func:`segment_image`. Each point takes the nucleus
    under it, or else the nearest within half a typical nucleus radius
    (``config.nucleus_radius_um``); else the nucleus that a threshold local to the
    point finds (:func:`cellgan.segment.nuclei.nucleus_at`: pale nuclei that the
    image-wide threshold misses); else a disc of the typical radius stands for it.
    The table's measurements are those of that nucleus (or disc), but its
    ``centroid_x``/``centroid_y`` are the given point, and
    ``label`` the given label. Masked patches show the nucleus (or disc); context
    patches are centred on the point. When several points share a nucleus each gets
    its own row and patch; the label mask shows the nucleus under the first.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3)
    xy : array_like, shape (n, 2)
        ``(x, y)`` = (column, row), 0-based pixel coordinates, inside the image.
    config : SegmentConfig, optional
    image_id : str
    labels : sequence, optional
        One label per point (stored as text; None stays None).

    Returns
    -------
    CellResult
        With ``source`` "points" in the table.

    Raises
    ------
    ValueError
        Points of the wrong shape, not finite, or outside the image; labels of the
        wrong length.
    SegmentationError
        As :func:`segment_image`.
    """
    config = SegmentConfig() if config is None else config
    rgb = to_rgb_uint8(rgb)
    points = np.asarray(xy, dtype=np.float64)
    if points.size == 0:
        points = points.reshape(0, 2)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{image_id}: points must have shape (n, 2), got {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{image_id}: points must be finite numbers")
    height, width = rgb.shape[:2]
    outside = np.any((points < -0.5) | (points > np.array([width, height]) - 0.5), axis=1)
    if outside.any():
        first = points[np.flatnonzero(outside)[0]]
        raise ValueError(
            f"{image_id}: {int(outside.sum())} point(s) outside the {width}×{height} image, "
            f"e.g. ({first[0]:g}, {first[1]:g})"
        )
    if labels is not None:
        labels = list(labels)
        if len(labels) != len(points):
            raise ValueError(f"{image_id}: {len(labels)} labels for {len(points)} points")

    prepared = _prepare(rgb, config)
    nuclei = _find_nuclei(prepared, config)
    seg = nuclei.labels
    n = len(points)
    # A point takes the nucleus under it, or one within half a typical radius (an
    # annotation's offset); the others go to _local_cell.
    hit = _nucleus_near(seg, points, 0.5 * config.nucleus_radius_um / nuclei.scale_mpp)
    found = np.flatnonzero(hit > 0)
    owner = np.full(int(seg.max()) + 1, n + 1, np.int64)  # nucleus label -> first cell id + 1
    np.minimum.at(owner, hit[found], found + 1)
    owner[owner > n] = 0
    cell_mask = owner[seg]

    full_table = cell_table(seg, prepared.stains, mpp=config.mpp, source="points")
    table = full_table.iloc[hit[found] - 1].set_axis(found)
    patches = np.full((n, PATCH_SIZE, PATCH_SIZE, 3), 255, np.uint8)
    if len(found):
        patches[found] = _patches(prepared.rgb, seg, table, config, centres=points[found], cell_labels=hit[found])
    rows = [table]
    for i in np.flatnonzero(hit == 0):
        row, patches[i] = _local_cell(prepared, points[i], nuclei, config, cell_mask, i + 1)
        rows.append(row.set_axis([i]))
    table = pd.concat(rows).sort_index() if n else full_table.iloc[:0].copy()
    table["cell_id"] = np.arange(n, dtype=np.int64)
    table["centroid_x"] = points[:, 0]
    table["centroid_y"] = points[:, 1]
    table["source"] = "points"
    table["label"] = [None if v is None else str(v) for v in labels] if labels is not None else None
    table = table.reset_index(drop=True)
    mask = cell_mask.astype(np.uint32)
    return CellResult(_finish(table, image_id), patches, mask, _overlay(prepared.rgb, mask))


def _nucleus_near(seg: np.ndarray, points: np.ndarray, radius: float) -> np.ndarray:
    """Label of the nucleus under each point, else of the nearest within ``radius``, else 0."""
    from scipy import ndimage as ndi

    if len(points) == 0:
        return np.zeros(0, np.int64)
    rows = np.clip(np.round(points[:, 1]).astype(np.int64), 0, seg.shape[0] - 1)
    cols = np.clip(np.round(points[:, 0]).astype(np.int64), 0, seg.shape[1] - 1)
    hit = seg[rows, cols].astype(np.int64)
    missing = np.flatnonzero(hit == 0)
    if len(missing) and seg.any():
        distance, (iy, ix) = ndi.distance_transform_edt(seg == 0, return_indices=True)
        near = distance[rows[missing], cols[missing]] <= radius
        m = missing[near]
        hit[m] = seg[iy[rows[m], cols[m]], ix[rows[m], cols[m]]]
    return hit


def _local_cell(prepared: _Prepared, point, nuclei, config, cell_mask: np.ndarray, label: int):
    """Table row and patch of the nucleus around ``point`` found by a local threshold
    (:func:`cellgan.segment.nuclei.nucleus_at`), else of a disc of the typical nucleus
    radius; drawn into ``cell_mask``."""
    height, width = cell_mask.shape
    radius = max(1.0, config.nucleus_radius_um / nuclei.scale_mpp)
    low, high = area_limits_px(config, mpp=nuclei.mpp, scale_mpp=nuclei.scale_mpp)
    found = nucleus_at(
        prepared.stains[..., 0],
        point,
        radius_px=radius,
        smooth_px=config.smooth_um / nuclei.scale_mpp,
        min_area_px=low,
        max_area_px=high,
    )
    if found is not None:
        region, (x0, y0) = found
    else:
        x, y = point
        x0, x1 = max(0, int(np.floor(x - radius))), min(width, int(np.ceil(x + radius)) + 1)
        y0, y1 = max(0, int(np.floor(y - radius))), min(height, int(np.ceil(y + radius)) + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        region = (xx - x) ** 2 + (yy - y) ** 2 <= radius * radius
        if not region.any():  # a point on a pixel corner: take its pixel
            region[int(np.clip(round(y), y0, y1 - 1)) - y0, int(np.clip(round(x), x0, x1 - 1)) - x0] = True
    h, w = region.shape
    local = region.astype(np.int32)
    row = cell_table(local, prepared.stains[y0 : y0 + h, x0 : x0 + w], mpp=config.mpp, source="points")
    local_bbox = row[["bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"]].to_numpy()
    for column, offset in (("bbox_x0", x0), ("bbox_x1", x0), ("bbox_y0", y0), ("bbox_y1", y0)):
        row[column] += offset
    view = cell_mask[y0 : y0 + h, x0 : x0 + w]
    view[region & (view == 0)] = label
    if config.patch_mode == "masked":  # from the window, where nothing else can hide part of the region
        patch = masked_patches(prepared.rgb[y0 : y0 + h, x0 : x0 + w], local, local_bbox)
    else:
        patch = _patches(prepared.rgb, cell_mask, row, config, centres=np.array([point]), cell_labels=np.array([label]))
    return row, patch


# -- many images ------------------------------------------------------------------------


def image_ids(paths) -> dict[Path, str]:
    """A unique, file-name-safe image id per path: its stem, or ``parent_stem`` when stems clash.

    Parameters
    ----------
    paths : iterable of str or Path

    Returns
    -------
    dict
        ``Path(path)`` → id, in the order given.
    """
    paths = [Path(p) for p in dict.fromkeys(map(Path, paths))]
    stems = Counter(safe_image_id(p.stem) for p in paths)
    ids: dict[Path, str] = {}
    used: set[str] = set()
    for p in paths:
        stem = safe_image_id(p.stem)
        candidate = stem if stems[stem] == 1 else safe_image_id(f"{p.parent.name}_{p.stem}")
        unique, k = candidate, 2
        while unique in used:
            unique, k = f"{candidate}_{k}", k + 1
        used.add(unique)
        ids[p] = unique
    return ids


def _reason(err: BaseException, path: Path) -> str:
    text = str(err)
    for prefix in (f"{path}: ", f"{path.name}: "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    if isinstance(err, ValueError):
        return text
    return f"{type(err).__name__}: {text}"


def segment_images(paths, store, config: SegmentConfig | None = None, *, progress: bool = True) -> RunSummary:
    """Segment image files into a cell store, one shard per image; resumable.

    Images already in the store (``store.has_image``) are skipped. An image that
    fails (unreadable, empty, blank, smaller than a patch, ...) is reported with the
    reason and the others go on. The pixel size is ``config.mpp`` or, when None,
    the file's own (:func:`cellgan.io.images.read_mpp`), else estimated. A
    ``config.reinhard_reference`` of ``"typical"`` is the most typical of these
    images (:func:`cellgan.segment.reference.typical_image`).

    Parameters
    ----------
    paths : iterable of str or Path
        Image files, or directories searched recursively for images.
    store : cellgan.io.cellstore.CellStore
        Must hold ``config.patch_mode`` patches.
    config : SegmentConfig, optional
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    RunSummary
        ``failed`` maps each failed file (as given) to its reason.
    """
    from tqdm.auto import tqdm

    config = SegmentConfig() if config is None else config
    if store.info.patch_mode != config.patch_mode:
        raise ValueError(
            f"{store.root}: store holds {store.info.patch_mode!r} patches, config asks for {config.patch_mode!r}"
        )
    files = find_images(paths)
    if config.reinhard_reference is not None:
        config = dataclasses.replace(config, reinhard_reference=resolve_reference(config.reinhard_reference, files))
        _reinhard_target(config.reinhard_reference)  # fail now, not once per image
    ids = image_ids(files)
    done, skipped, failed = [], [], {}
    bar = tqdm(files, desc="segment", unit="image", disable=not progress)
    for path in bar:
        image_id = ids[path]
        if store.has_image(image_id):
            skipped.append(image_id)
            continue
        bar.set_postfix_str(path.name, refresh=False)
        try:
            rgb = read_rgb(path)
            mpp = config.mpp if config.mpp is not None else read_mpp(path)
            result = segment_image(rgb, dataclasses.replace(config, mpp=mpp), image_id=image_id)
            store.write_image(
                image_id, result.table, result.patches, label_mask=result.label_mask, overlay=result.overlay
            )
        except Exception as err:  # one bad image must not stop the run; it is reported
            failed[str(path)] = _reason(err, path)
            continue
        done.append(image_id)
    return RunSummary(tuple(done), tuple(skipped), failed)


def cells_from_folder(folder, store, config: SegmentConfig | None = None, *, progress: bool = True) -> RunSummary:
    """Cells from a folder of pre-cropped single-cell images of any size.

    Each crop gives one cell. Masked patches: the nucleus segmented in the crop
    nearest its centre, or the whole crop when none is found, then the masked rule
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
    progress : bool

    Returns
    -------
    RunSummary
        Shard ids done and skipped; ``failed`` maps unreadable crops to the reason.
    """
    from tqdm.auto import tqdm

    config = SegmentConfig() if config is None else config
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a directory")
    if store.info.patch_mode != config.patch_mode:
        raise ValueError(
            f"{store.root}: store holds {store.info.patch_mode!r} patches, config asks for {config.patch_mode!r}"
        )
    groups: dict[Path, list[Path]] = {}
    for path in find_images([folder]):
        groups.setdefault(path.parent, []).append(path)
    done, skipped, failed = [], [], {}
    bar = tqdm(total=sum(len(v) for v in groups.values()), desc="cells", unit="crop", disable=not progress)
    for parent, files in groups.items():
        relative = parent.relative_to(folder)
        shard = safe_image_id("_".join(relative.parts) if relative.parts else folder.resolve().name or "cells")
        label = parent.name if relative.parts else None
        if store.has_image(shard):
            skipped.append(shard)
            bar.update(len(files))
            continue
        rows, patches = [], []
        for path in files:
            bar.update(1)
            try:
                rgb = read_rgb(path)
                mpp = config.mpp if config.mpp is not None else read_mpp(path)
                row, patch = _crop_cell(rgb, dataclasses.replace(config, mpp=mpp))
            except Exception as err:  # one bad crop must not stop the run; it is reported
                failed[str(path)] = _reason(err, path)
                continue
            row["label"] = label
            row["file"] = str(path.relative_to(folder))
            rows.append(row)
            patches.append(patch)
        if not rows:
            continue
        table = pd.concat(rows, ignore_index=True)
        table["cell_id"] = np.arange(len(table), dtype=np.int64)
        store.write_image(shard, _finish(table, shard), np.concatenate(patches))
        done.append(shard)
    bar.close()
    return RunSummary(tuple(done), tuple(skipped), failed)


def _crop_cell(rgb: np.ndarray, config: SegmentConfig) -> tuple[pd.DataFrame, np.ndarray]:
    """The table row and patch of one single-cell crop (see :func:`cells_from_folder`)."""
    height, width = rgb.shape[:2]
    centre = np.array([[(width - 1) / 2, (height - 1) / 2]])
    prepared = None
    try:
        prepared = _prepare(rgb, config, min_side=1)
    except SegmentationError:  # a blank crop: no nucleus to find, keep the whole crop
        pass
    mask = np.ones((height, width), np.int32)
    if prepared is not None:
        nuclei = _find_nuclei(prepared, config)
        hit = _nucleus_near(nuclei.labels, centre, np.hypot(height, width))
        if hit[0] > 0:
            mask = (nuclei.labels == hit[0]).astype(np.int32)
        stains = prepared.stains
    else:
        stains = np.zeros((height, width, 3), np.float32)
    row = cell_table(mask, stains, mpp=config.mpp, source="folder")
    patch = _patches(rgb, mask, row, config, centres=centre)
    return row, patch
