"""Cells from nucleus outlines found by another detector: QuPath, StarDist, CellViT, HoVer-Net.

Those tools export their nuclei as GeoJSON (RFC 7946): QuPath and StarDist (through
QuPath) one ``Feature`` per nucleus with a ``Polygon``; CellViT one ``Feature`` per
class whose ``MultiPolygon`` holds every nucleus of that class; HoVer-Net's
converters either. :func:`read_outlines` accepts a FeatureCollection, a Feature, a
list of Features or a bare geometry; every polygon of a MultiPolygon is one
nucleus. The outlines become the label mask (:func:`outline_mask`), and the cells
are measured and cut from it as :func:`cellgan.segment.segment_image` does for the
nuclei it finds (:func:`cells_from_outlines`). Coordinates follow QuPath's
convention (pixel (r, c) covers [c, c + 1) × [r, r + 1)), as
:mod:`cellgan.report.geojson` writes them, so its export read back gives the same
nuclei.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellgan.errors import CellganError

__all__ = ["Outlines", "OutlinesError", "cells_from_outlines", "outline_mask", "read_outlines"]


class OutlinesError(CellganError, ValueError):
    """A GeoJSON file of nucleus outlines that cannot be read."""


@dataclass(frozen=True)
class Outlines:
    """Nucleus outlines read from GeoJSON.

    Attributes
    ----------
    rings : list of ndarray, shape (m, 2)
        Each nucleus's exterior ring, ``(x, y)`` in QuPath pixel coordinates.
    labels : list of str or None
        Each nucleus's class name (``properties.classification.name``), when given.
    """

    rings: list
    labels: list


def read_outlines(path) -> Outlines:
    """Read the nucleus outlines of a GeoJSON file (see the module's docstring).

    Holes are ignored (a nucleus has none); features without a polygon (points,
    lines, empty geometries) are skipped.

    Raises
    ------
    OutlinesError
        Not JSON, not GeoJSON, a malformed polygon, or no polygon at all; the
        message names the file.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OutlinesError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise OutlinesError(f"{path}: not a readable JSON file ({err})") from err
    rings, labels = [], []
    for index, feature in enumerate(_features(data, path)):
        geometry = feature.get("geometry") if feature.get("type") == "Feature" else feature
        if not isinstance(geometry, dict):
            continue
        kind = geometry.get("type")
        if kind == "Polygon":
            polygons = [geometry.get("coordinates")]
        elif kind == "MultiPolygon":
            polygons = geometry.get("coordinates")
        else:
            continue
        label = _class_name(feature)
        for polygon in polygons or []:
            rings.append(_exterior(polygon, path, index))
            labels.append(label)
    if not rings:
        raise OutlinesError(f"{path}: no Polygon or MultiPolygon outlines in it")
    return Outlines(rings, labels)


def _features(data, path: Path) -> list:
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise OutlinesError(f"{path}: FeatureCollection without a list of features")
        return features
    if isinstance(data, dict) and isinstance(data.get("type"), str):
        return [data]
    raise OutlinesError(f"{path}: not GeoJSON (expected a FeatureCollection, a Feature or a list of Features)")


def _class_name(feature: dict):
    properties = feature.get("properties") if isinstance(feature.get("properties"), dict) else {}
    classification = properties.get("classification")
    if isinstance(classification, dict) and isinstance(classification.get("name"), str):
        return classification["name"]
    return None


def _exterior(polygon, path: Path, index: int) -> np.ndarray:
    try:
        ring = np.asarray(polygon[0], dtype=np.float64)
    except (TypeError, ValueError, IndexError) as err:
        raise OutlinesError(f"{path}: feature {index} has a malformed polygon ({err})") from err
    if ring.ndim != 2 or ring.shape[1] < 2 or len(ring) < 3 or not np.all(np.isfinite(ring[:, :2])):
        raise OutlinesError(f"{path}: feature {index} has a malformed polygon (needs 3 or more finite (x, y) points)")
    return ring[:, :2]


def outline_mask(rings, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise outlines into a label mask: a pixel belongs to the ring that contains its centre.

    Where rings overlap the earlier keeps the pixel; a ring that holds no pixel
    centre inside the image is dropped.

    Parameters
    ----------
    rings : list of ndarray, shape (m, 2)
        ``(x, y)`` in QuPath pixel coordinates (pixel centres at ``c + 0.5``).
    shape : (int, int)

    Returns
    -------
    (labels, kept)
        ``labels`` int32 (H, W), nucleus i labelled i + 1 in the order kept;
        ``kept`` the index in ``rings`` of each label's ring.
    """
    from skimage.draw import polygon as fill_polygon

    labels = np.zeros(shape, np.int32)
    kept = []
    for index, ring in enumerate(rings):
        rr, cc = fill_polygon(ring[:, 1] - 0.5, ring[:, 0] - 0.5, shape=shape)
        free = labels[rr, cc] == 0
        if not free.any():
            continue
        kept.append(index)
        labels[rr[free], cc[free]] = len(kept)
    return labels, np.asarray(kept, np.int64)


def cells_from_outlines(rgb: np.ndarray, outlines: Outlines, config=None, *, image_id: str):
    """The cells of given nucleus outlines: table rows, patches, label mask and overlay.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3)
    outlines : Outlines
    config : SegmentConfig, optional
        ``mpp`` for the µm values; ``patch_mode`` (masked, faded or context).
    image_id : str

    Returns
    -------
    CellResult
        ``source`` "outlines"; ``label`` the outline's class name, for scoring only.
    """
    from cellgan.io.images import to_rgb_uint8
    from cellgan.segment.config import SegmentConfig
    from cellgan.segment.features import cell_table
    from cellgan.segment.image import CellResult, cell_patches, finish_table, overlay_outlines, prepare

    config = SegmentConfig() if config is None else config
    rgb = to_rgb_uint8(rgb)
    prepared = prepare(rgb, config)
    labels, kept = outline_mask(outlines.rings, rgb.shape[:2])
    table = cell_table(labels, prepared.stains, mpp=config.mpp, source="outlines")
    table["label"] = [outlines.labels[i] for i in kept]
    patches = cell_patches(prepared.rgb, labels, table, config)
    overlay = overlay_outlines(prepared.rgb, labels)
    return CellResult(finish_table(table, image_id), patches, labels.astype(np.uint32), overlay)
