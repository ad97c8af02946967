"""One cell per given centre (e.g. annotated nuclei): :func:`cells_at_points`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellgan.io.cellstore import PATCH_SIZE
from cellgan.io.images import to_rgb_uint8
from cellgan.segment.config import SegmentConfig
from cellgan.segment.features import cell_table
from cellgan.segment.image import (
    CellResult,
    Prepared,
    cell_patches,
    finish_table,
    overlay_outlines,
    prepare,
    prepared_nuclei,
)
from cellgan.segment.nuclei import area_limits_px, nucleus_at, nucleus_near
from cellgan.segment.patches import masked_patches

__all__ = ["cells_at_points"]


def _validate_points(xy, labels, shape: tuple[int, ...], image_id: str) -> tuple[np.ndarray, list | None]:
    """``xy`` as a float (n, 2) array inside an image of ``shape``, and ``labels`` as a list.

    Raises
    ------
    ValueError
        Points of the wrong shape, not finite, or outside the image; labels of the
        wrong length.
    """
    points = np.asarray(xy, dtype=np.float64)
    if points.size == 0:
        points = points.reshape(0, 2)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{image_id}: points must have shape (n, 2), got {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{image_id}: points must be finite numbers")
    height, width = shape[:2]
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
    return points, labels


def cells_at_points(
    rgb: np.ndarray,
    xy: np.ndarray,
    config: SegmentConfig | None = None,
    *,
    image_id: str,
    labels=None,
) -> CellResult:
    """One cell per given centre: table row and patch, e.g. for annotated nuclei.

    The image is segmented as by :func:`~cellgan.segment.image.segment_image`. Each
    point takes the nucleus under it, or else the nearest within half a typical
    nucleus radius (``config.nucleus_radius_um``); else the nucleus that a threshold
    local to the point finds (:func:`cellgan.segment.nuclei.nucleus_at`: pale nuclei
    that the image-wide threshold misses); else a disc of the typical radius stands
    for it. The table's measurements are those of that nucleus (or disc), but its
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
        As :func:`~cellgan.segment.image.segment_image`.
    """
    config = SegmentConfig() if config is None else config
    rgb = to_rgb_uint8(rgb)
    points, labels = _validate_points(xy, labels, rgb.shape, image_id)

    prepared = prepare(rgb, config)
    nuclei = prepared_nuclei(prepared, config)
    seg = nuclei.labels
    n = len(points)
    # A point takes the nucleus under it, or one within half a typical radius (an
    # annotation's offset); the others go to _local_cell.
    hit = nucleus_near(seg, points, 0.5 * config.nucleus_radius_um / nuclei.scale_mpp)
    found = np.flatnonzero(hit > 0)
    owner = np.full(int(seg.max()) + 1, n + 1, np.int64)  # nucleus label -> first cell id + 1
    np.minimum.at(owner, hit[found], found + 1)
    owner[owner > n] = 0
    cell_mask = owner[seg]

    full_table = cell_table(seg, prepared.stains, mpp=config.mpp, source="points")
    table = full_table.iloc[hit[found] - 1].set_axis(found)
    patches = np.full((n, PATCH_SIZE, PATCH_SIZE, 3), 255, np.uint8)
    if len(found):
        patches[found] = cell_patches(prepared.rgb, seg, table, config, centres=points[found], cell_labels=hit[found])
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
    return CellResult(finish_table(table, image_id), patches, mask, overlay_outlines(prepared.rgb, mask))


def _disc(point, radius: float, shape: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """A disc of ``radius`` around ``point``, clipped to ``shape``: (mask of its window, (x0, y0)).

    A disc that covers no pixel centre (a point on a pixel corner) is the point's pixel.
    """
    height, width = shape
    x, y = point
    x0, x1 = max(0, int(np.floor(x - radius))), min(width, int(np.ceil(x + radius)) + 1)
    y0, y1 = max(0, int(np.floor(y - radius))), min(height, int(np.ceil(y + radius)) + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    region = (xx - x) ** 2 + (yy - y) ** 2 <= radius * radius
    if not region.any():
        region[int(np.clip(round(y), y0, y1 - 1)) - y0, int(np.clip(round(x), x0, x1 - 1)) - x0] = True
    return region, (x0, y0)


def _local_cell(prepared: Prepared, point, nuclei, config, cell_mask: np.ndarray, label: int):
    """Table row and patch of the nucleus around ``point`` found by a local threshold
    (:func:`cellgan.segment.nuclei.nucleus_at`), else of a disc of the typical nucleus
    radius; drawn into ``cell_mask``."""
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
    region, (x0, y0) = found if found is not None else _disc(point, radius, cell_mask.shape)
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
        centre, cell_label = np.array([point]), np.array([label])
        patch = cell_patches(prepared.rgb, cell_mask, row, config, centres=centre, cell_labels=cell_label)
    return row, patch
