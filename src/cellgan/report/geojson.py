"""QuPath-readable GeoJSON of the classified nuclei, one FeatureCollection per image.

Each nucleus becomes a GeoJSON ``Feature`` (RFC 7946) whose geometry is its
outline ``Polygon`` traced from the cell store's label mask, and whose
``properties`` follow what QuPath (0.4 and later) writes and reads back with
*File > Import objects from file*: ``objectType`` ("detection"),
``classification`` (``name`` and ``color`` [r, g, b]), ``measurements`` (a
name -> number map) and ``isLocked``. The feature ``id`` is a UUID (QuPath keeps
it as the object's id), derived from the image and cell id so it is the same on
every export.

Coordinates are image pixels with QuPath's convention: the pixel in row r and
column c covers [c, c + 1) x [r, r + 1), so an outline traced through the
pixel centres of scikit-image is shifted by half a pixel; an ``offset`` moves
them into the slide's frame when the image is a tile cut from a slide.
Besides QuPath's keys, ``properties`` hold ``image``, ``cell_id`` (to join edits
made in QuPath back to the cell table), and the pixel size the µm values used,
``mpp`` and ``mpp_source`` (given, file or estimated).
"""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from cellgan.errors import CellganError
from cellgan.io.files import atomic_write
from cellgan.io.palette import category_colours, category_names

__all__ = [
    "GeoJSONError",
    "cell_id_uuid",
    "cell_outlines",
    "circle_ring",
    "feature_collection",
    "write_geojson",
]

#: Namespace of the per-cell UUIDs (uuid5 of "<image>/<cell_id>").
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/cellgan/cellgan/cells")

#: Outline simplification tolerance in pixels: drops only the collinear and
#: nearly collinear points of the traced contour, keeping the area within 1%.
SIMPLIFY_TOLERANCE = 0.25

#: Radius in pixels of the circle given to a cell that has no outline and no area.
DEFAULT_RADIUS = 5.0

#: Cell-table columns exported as QuPath measurements, with their names there (QuPath's own
#: spelling, "Hematoxylin", so they sit beside the measurements QuPath makes).
MEASUREMENTS = {
    "area_px": "Area px^2",
    "area_um2": "Area µm^2",
    "perimeter_px": "Perimeter px",
    "eccentricity": "Eccentricity",
    "solidity": "Solidity",
    "mean_haematoxylin": "Hematoxylin OD mean",
    "mean_eosin": "Eosin OD mean",
}


class GeoJSONError(CellganError, ValueError):
    """A cell table or label mask that cannot be turned into GeoJSON."""


def cell_id_uuid(image: str, cell_id: int) -> str:
    """Return the stable UUID string of a cell (the same on every export)."""
    return str(uuid.uuid5(_NAMESPACE, f"{image}/{int(cell_id)}"))


def cell_outlines(label_mask: np.ndarray, *, tolerance: float = SIMPLIFY_TOLERANCE) -> dict[int, np.ndarray]:
    """Trace the outline of every labelled object of a label mask.

    Each object is cut out with its bounding box, padded by one pixel so that
    its contour closes, and traced with ``skimage.measure.find_contours`` at
    level 0.5; the longest contour is its exterior (holes and detached
    fragments are left out). The ring is then simplified with
    ``approximate_polygon`` and oriented counter-clockwise.

    Parameters
    ----------
    label_mask : ndarray of int, shape (H, W)
        0 = background, label l > 0 = one object.
    tolerance : float
        Simplification tolerance in pixels.

    Returns
    -------
    dict
        label -> closed ring, float array (m, 2) of (x, y) in QuPath pixel
        coordinates, first point == last point, m >= 4, counter-clockwise.
    """
    from scipy import ndimage
    from skimage.measure import approximate_polygon, find_contours

    label_mask = np.asarray(label_mask)
    if label_mask.ndim != 2 or not np.issubdtype(label_mask.dtype, np.integer):
        raise GeoJSONError(f"label mask must be a 2-d integer array, got {label_mask.dtype} {label_mask.shape}")
    if label_mask.size and label_mask.min() < 0:
        raise GeoJSONError("label mask has negative labels")
    rings = {}
    for index, box in enumerate(ndimage.find_objects(label_mask)):
        if box is None:
            continue
        label = index + 1
        crop = np.pad(label_mask[box] == label, 1).astype(np.float32)
        contour = max(find_contours(crop, 0.5), key=len)
        if tolerance > 0:
            simplified = approximate_polygon(contour, tolerance)
            if len(simplified) >= 4:
                contour = simplified
        # (row, col) in the padded crop -> (x, y) in the image, pixel corners at integers
        xy = contour[:, ::-1] + np.array([box[1].start - 0.5, box[0].start - 0.5])
        rings[label] = _closed_ccw(xy)
    return rings


def circle_ring(x: float, y: float, radius: float, *, vertices: int = 16) -> np.ndarray:
    """Return a closed counter-clockwise ring approximating a circle.

    Parameters
    ----------
    x, y : float
        Centre, in the same pixel-centre coordinates as the cell table's
        ``centroid_x`` / ``centroid_y`` (shifted by half a pixel like outlines).
    radius : float
        Radius in pixels.
    vertices : int
        Number of distinct vertices.
    """
    if not (radius > 0 and math.isfinite(radius)):
        raise GeoJSONError(f"circle radius must be positive and finite, got {radius}")
    angles = np.linspace(0.0, 2.0 * np.pi, vertices, endpoint=False)
    xy = np.column_stack([x + 0.5 + radius * np.cos(angles), y + 0.5 + radius * np.sin(angles)])
    return _closed_ccw(xy)


def _closed_ccw(xy: np.ndarray) -> np.ndarray:
    """Close a ring (last point = first) and orient it counter-clockwise (RFC 7946).

    Counter-clockwise means a positive shoelace area in the (x, y) coordinates
    as written, the GeoJSON convention.
    """
    xy = np.round(np.asarray(xy, dtype=np.float64), 3)
    if not np.array_equal(xy[0], xy[-1]):
        xy = np.vstack([xy, xy[:1]])
    if _signed_area(xy) < 0:
        xy = xy[::-1].copy()
    return xy


def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))


def feature_collection(
    cells: pd.DataFrame,
    *,
    categories: int,
    label_mask: np.ndarray | None = None,
    names: list[str] | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
) -> dict:
    """Build the GeoJSON FeatureCollection of one image's classified cells.

    Parameters
    ----------
    cells : DataFrame
        The image's rows of an assignments table: ``image``, ``cell_id``,
        ``category``, ``prob_0`` ... ``prob_{K-1}``, ``centroid_x``,
        ``centroid_y`` and, where present, the measurements of
        :data:`MEASUREMENTS`.
    categories : int
        Number of categories K.
    label_mask : ndarray, optional
        The image's label mask (label = cell_id + 1). A cell whose label is not
        in it, or every cell when there is no mask (cells from points, slides), gets a
        16-gon of its area (or of radius :data:`DEFAULT_RADIUS`) at its centroid; a
        slide's cell at its level-0 centroid (``slide_x``, ``slide_y``), where QuPath
        puts it on the slide.
    names : list of str, optional
        Category names (default ``"Category k"``).
    offset : (float, float)
        ``(x, y)`` added to every coordinate: the tile's top-left corner in the
        slide it was cut from.

    Returns
    -------
    dict
        ``{"type": "FeatureCollection", "features": [...]}``, one feature per
        cell in ``cells`` order.
    """
    required = ["image", "cell_id", "category", "centroid_x", "centroid_y"]
    required += [f"prob_{k}" for k in range(categories)]
    missing = [c for c in required if c not in cells.columns]
    if missing:
        raise GeoJSONError(f"cell table lacks columns {missing}")
    labels = category_names(categories, names)
    colours = category_colours(categories).tolist()
    outlines = {} if label_mask is None else cell_outlines(label_mask)
    probs = cells[[f"prob_{k}" for k in range(categories)]].to_numpy(dtype=np.float64)
    measured = [c for c in MEASUREMENTS if c in cells.columns]
    shift = np.asarray(offset, dtype=np.float64)
    features = []
    for row, prob in zip(cells.itertuples(index=False), probs):
        cell = row._asdict()
        category = int(cell["category"])
        if not 0 <= category < categories:
            raise GeoJSONError(
                f"cell {cell['image']}/{cell['cell_id']}: category {category} outside 0..{categories - 1}"
            )
        ring = outlines.get(int(cell["cell_id"]) + 1)
        if ring is None and _finite(cell.get("slide_x", np.nan)):  # a slide's cell: in level-0 pixels, for QuPath
            level0 = (cell["slide_x"] + 0.5) / (cell["centroid_x"] + 0.5)  # level-0 pixels per working pixel
            ring = circle_ring(cell["slide_x"], cell["slide_y"], _radius(cell.get("area_px")) * level0)
        elif ring is None:
            ring = circle_ring(cell["centroid_x"], cell["centroid_y"], _radius(cell.get("area_px")))
        ring = ring + shift
        measurements = {MEASUREMENTS[c]: _short(cell[c]) for c in measured if _finite(cell[c])}
        measurements["Probability"] = _short(prob[category])
        measurements.update({f"Probability {labels[k]}": _short(p) for k, p in enumerate(prob)})
        features.append(
            {
                "type": "Feature",
                "id": cell_id_uuid(str(cell["image"]), cell["cell_id"]),
                "geometry": {"type": "Polygon", "coordinates": [ring.tolist()]},
                "properties": {
                    "objectType": "detection",
                    "classification": {"name": labels[category], "color": colours[category]},
                    "measurements": measurements,
                    "isLocked": False,
                    "image": str(cell["image"]),
                    "cell_id": int(cell["cell_id"]),
                    **_pixel_size(cell),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _short(value) -> float:
    """A measurement to 4 significant digits: finer is noise, and 16-digit floats a third of the file."""
    return float(f"{float(value):.4g}")


def _pixel_size(cell: dict) -> dict:
    """``mpp`` (when known) and ``mpp_source`` of a cell's row, for its properties."""
    mpp = cell.get("mpp")
    source = cell.get("mpp_source")
    out = {"mpp": _short(mpp)} if _finite(mpp) else {}
    if isinstance(source, str):
        out["mpp_source"] = source
    return out


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _radius(area) -> float:
    return math.sqrt(float(area) / math.pi) if _finite(area) and float(area) > 0 else DEFAULT_RADIUS


def write_geojson(collection: dict, path: Path) -> None:
    """Write a FeatureCollection atomically as strict JSON (no NaN)."""
    text = json.dumps(collection, allow_nan=False, separators=(",", ":"))
    atomic_write(Path(path), lambda p: p.write_text(text, encoding="utf-8"))
