"""The cell table: shape and stain measurements of every labelled nucleus, vectorised.

Every measurement is computed for all nuclei at once from the label image with
``numpy.bincount`` over the labelled pixels, with no per-object Python loop (the
convex hulls behind ``solidity`` too: :func:`_convex_pixel_counts`). The definitions
follow :func:`skimage.measure.regionprops` so the numbers can be compared with other
tools.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

__all__ = ["cell_table", "outline_mask", "region_measurements"]

# skimage.measure.perimeter (4-connectivity): the weight of a border pixel given the
# code 1 + 2·(4-neighbours on the border) + 10·(diagonal neighbours on the border).
_PERIMETER_WEIGHTS = np.zeros(50)
_PERIMETER_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1.0
_PERIMETER_WEIGHTS[[21, 33]] = np.sqrt(2.0)
_PERIMETER_WEIGHTS[[13, 23]] = (1.0 + np.sqrt(2.0)) / 2.0


def outline_mask(labels: np.ndarray) -> np.ndarray:
    """Pixels of a nucleus with a 4-neighbour outside it (the inner outline), bool."""
    labels = np.asarray(labels)
    pad = np.pad(labels, 1)
    centre = pad[1:-1, 1:-1]
    edge = np.zeros(labels.shape, bool)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        edge |= pad[1 + dy : pad.shape[0] - 1 + dy, 1 + dx : pad.shape[1] - 1 + dx] != centre
    return edge & (labels > 0)


def region_measurements(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Geometry of the nuclei of a label image whose labels are 1..n.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        0 background; every label in 1..n present.

    Returns
    -------
    dict of ndarray, each of length n (row i ↔ label i + 1)
        ``centroid_x``, ``centroid_y`` (pixel centres), ``bbox_x0``, ``bbox_y0``
        (inclusive), ``bbox_x1``, ``bbox_y1`` (exclusive), ``area_px``,
        ``perimeter_px`` (as ``skimage.measure.perimeter`` with 4-connectivity),
        ``eccentricity`` (of the ellipse with the same second moments), ``solidity``
        (area over the pixel count of the convex hull of the pixel centres).
    """
    labels = np.asarray(labels)
    n = int(labels.max()) if labels.size else 0
    if n == 0:
        empty = np.zeros(0)
        return {k: empty for k in _GEOMETRY}
    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs].astype(np.intp)
    area = np.bincount(lab, minlength=n + 1)[1:].astype(np.float64)
    if np.any(area == 0):
        raise ValueError("labels must be 1..n with every label present")
    cx = np.bincount(lab, weights=xs, minlength=n + 1)[1:] / area
    cy = np.bincount(lab, weights=ys, minlength=n + 1)[1:] / area
    dx = xs - cx[lab - 1]
    dy = ys - cy[lab - 1]
    mxx = np.bincount(lab, weights=dx * dx, minlength=n + 1)[1:] / area
    myy = np.bincount(lab, weights=dy * dy, minlength=n + 1)[1:] / area
    mxy = np.bincount(lab, weights=dx * dy, minlength=n + 1)[1:] / area
    half_trace = (mxx + myy) / 2
    root = np.sqrt(((mxx - myy) / 2) ** 2 + mxy**2)
    major, minor = half_trace + root, np.maximum(half_trace - root, 0.0)
    eccentricity = np.where(major > 0, np.sqrt(1.0 - minor / np.where(major > 0, major, 1.0)), 0.0)

    slices = ndi.find_objects(labels, max_label=n)
    bbox = np.array([(s[1].start, s[0].start, s[1].stop, s[0].stop) for s in slices], dtype=np.int64)
    perimeter, border_y, border_x, border_lab = _perimeter(labels, n)
    solidity = area / _convex_pixel_counts(border_y, border_x, border_lab, n, area)
    return {
        "centroid_x": cx,
        "centroid_y": cy,
        "bbox_x0": bbox[:, 0],
        "bbox_y0": bbox[:, 1],
        "bbox_x1": bbox[:, 2],
        "bbox_y1": bbox[:, 3],
        "area_px": area,
        "perimeter_px": perimeter,
        "eccentricity": eccentricity,
        "solidity": np.minimum(solidity, 1.0),
    }


_GEOMETRY = (
    "centroid_x",
    "centroid_y",
    "bbox_x0",
    "bbox_y0",
    "bbox_x1",
    "bbox_y1",
    "area_px",
    "perimeter_px",
    "eccentricity",
    "solidity",
)


def _perimeter(labels: np.ndarray, n: int):
    """skimage's 4-connectivity perimeter of every label, and the border pixels."""
    pad = np.pad(labels, 1).astype(np.int64, copy=False)
    width = pad.shape[1]
    flat = pad.ravel()
    idx = np.flatnonzero(flat)
    lab = flat[idx]
    four = (-1, 1, -width, width)
    border = np.zeros(len(idx), bool)
    for offset in four:
        border |= flat[idx + offset] != lab
    bidx, blab = idx[border], lab[border]
    border_map = np.zeros_like(flat)
    border_map[bidx] = blab
    code = np.ones(len(bidx), np.int64)
    for offset in four:
        code += 2 * (border_map[bidx + offset] == blab)
    for offset in (-width - 1, -width + 1, width - 1, width + 1):
        code += 10 * (border_map[bidx + offset] == blab)
    perimeter = np.bincount(blab, weights=_PERIMETER_WEIGHTS[code], minlength=n + 1)[1:]
    return perimeter, bidx // width - 1, bidx % width - 1, blab


def _convex_pixel_counts(ys, xs, lab, n: int, area: np.ndarray) -> np.ndarray:
    """Pixels (lattice points) inside or on the convex hull of each label's pixels, all labels at once.

    ``ys``, ``xs``, ``lab``: a label's border pixels (they hold its rows' first and
    last pixels, which span the same hull as all of its pixels). The hull of a
    label is bounded by the convex chain of its rows' first pixels on the left, the
    concave chain of their last pixels on the right, and its first and last rows;
    by Pick's theorem a lattice polygon of area A with B lattice points on its
    boundary covers A + B/2 + 1 lattice points. A label whose pixels are collinear
    (no area) counts its own pixels, as does a hull covering fewer than the label.
    """
    order = np.lexsort((xs, ys, lab))
    ys, xs, lab = ys[order].astype(np.int64), xs[order].astype(np.int64), lab[order]
    row_start = np.flatnonzero(np.r_[True, (lab[1:] != lab[:-1]) | (ys[1:] != ys[:-1])])
    row_end = np.r_[row_start[1:] - 1, len(lab) - 1]
    y, label = ys[row_start], lab[row_start]
    first_x, last_x = xs[row_start], xs[row_end]
    twice_area = np.zeros(n + 1, np.int64)
    boundary = np.zeros(n + 1, np.int64)
    for x, side in ((first_x, -1), (last_x, 1)):
        keep = _hull_chain(y, x, label, side)
        cy, cx, cl = y[keep], x[keep], label[keep]
        edge = cl[1:] == cl[:-1]
        dy, dx = (cy[1:] - cy[:-1])[edge], (cx[1:] - cx[:-1])[edge]
        np.add.at(twice_area, cl[1:][edge], side * (cx[1:] + cx[:-1])[edge] * dy)  # trapezoids under the chain
        np.add.at(boundary, cl[1:][edge], np.gcd(np.abs(dx), dy))
    top = np.flatnonzero(np.r_[True, label[1:] != label[:-1]])
    bottom = np.r_[top[1:] - 1, len(label) - 1]
    np.add.at(boundary, label[top], last_x[top] - first_x[top])
    np.add.at(boundary, label[bottom], last_x[bottom] - first_x[bottom])
    twice_area, boundary = twice_area[1:], boundary[1:]
    return np.where(twice_area > 0, np.maximum(area, (twice_area + boundary) / 2 + 1), area)


def _hull_chain(u: np.ndarray, v: np.ndarray, group: np.ndarray, side: int) -> np.ndarray:
    """Which points are vertices of each group's hull chain in the (u, v) plane, u increasing within a group.

    ``side`` -1: the lower chain (the greatest convex function under the points);
    +1: the upper chain. A point not strictly beyond the chord between its kept
    neighbours is no vertex; such points are dropped, all at once, until none is
    left. A group's first and last points are always kept.
    """
    keep = np.ones(len(u), bool)
    while True:
        kept = np.flatnonzero(keep)
        g = group[kept]
        inner = np.flatnonzero((g[1:-1] == g[:-2]) & (g[1:-1] == g[2:])) + 1
        p, a, b = kept[inner], kept[inner - 1], kept[inner + 1]
        beyond = (v[p] - v[a]) * (u[b] - u[a]) - (v[b] - v[a]) * (u[p] - u[a])
        drop = side * beyond <= 0
        if not drop.any():
            return keep
        keep[p[drop]] = False


def cell_table(
    labels: np.ndarray,
    stains: np.ndarray,
    *,
    mpp: float | None,
    source: str = "segment",
) -> pd.DataFrame:
    """The cell table (``cellgan.io.cellstore.TABLE_COLUMNS`` less ``image``) of a label image.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Nuclei labelled 1..n; row i is label i + 1 (``cell_id`` i).
    stains : ndarray of float, shape (H, W, >=2)
        Stain concentrations (optical density), channel 0 haematoxylin, 1 eosin.
    mpp : float or None
        Micrometres per pixel for ``area_um2`` and the ``mpp`` column; NaN when None.
        Its ``mpp_source`` is "given" ("unknown" when None); the callers that read
        the pixel size from the file or estimate it say so.
    source : str
        The ``source`` column ("segment", "points" or "folder").

    Returns
    -------
    pandas.DataFrame
        One row per nucleus; ``label`` is None.
    """
    geometry = region_measurements(labels)
    n = len(geometry["area_px"])
    table = pd.DataFrame({"cell_id": np.arange(n, dtype=np.int64), **geometry})
    if n:
        ys, xs = np.nonzero(labels)
        lab = labels[ys, xs].astype(np.intp)
        area = geometry["area_px"]
        for column, channel in (("mean_haematoxylin", 0), ("mean_eosin", 1)):
            total = np.bincount(lab, weights=stains[ys, xs, channel], minlength=n + 1)[1:]
            table[column] = total / area
    else:
        table["mean_haematoxylin"] = np.zeros(0)
        table["mean_eosin"] = np.zeros(0)
    table["area_um2"] = table["area_px"] * mpp**2 if mpp is not None else np.nan
    table["mpp"] = np.nan if mpp is None else float(mpp)
    table["mpp_source"] = "unknown" if mpp is None else "given"
    table["source"] = source
    table["label"] = None
    return table
