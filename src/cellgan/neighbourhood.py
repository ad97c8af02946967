"""Each cell's nearest cells in its own image, and descriptions of its neighbourhood.

:func:`nearest_cells` gives the partners of spatial pairs (the pair term) and the
neighbourhoods over which :func:`neighbourhood_pixels` averages each cell's
description (pixels, nucleus moments, crowding; the self-labels of :mod:`cellgan.model.self_labels`, and the
neighbourhood k-means baseline of :mod:`cellgan.analysis.baselines`). Nothing
here needs torch.

Cell types in tissue come in neighbourhoods (glands of epithelial cells, stroma
of fibroblasts, lymphoid aggregates): on CRCHistoPhenotypes a cell and its
nearest labelled cell share the labelled type 78 % of the time (75 % for one of
its three nearest), against 29 % for two cells drawn at random.
A pair term that asks a cell and a neighbour to fall in the same category
(:class:`~cellgan.model.data.PatchSampler` with ``partners``) therefore rewards
what a tissue neighbourhood has in common, rather than any detail that two
views of one nucleus share (its exact size, its outline). This is not in Hu et
al. 2019; it is the spatial-coherence prior of cell-graph methods, used here
without labels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from cellgan.errors import CellganError

__all__ = [
    "PIXEL_COMPONENTS",
    "PLACE_FEATURES",
    "NeighbourError",
    "crowding",
    "edge_corrected",
    "nearest_cells",
    "neighbourhood_average",
    "neighbourhood_pixels",
    "nucleus_moments",
    "pixel_pca",
    "place_description",
]

#: The cell-table columns that place a cell (see docs/ARCHITECTURE.md).
POSITION_COLUMNS = ("image", "centroid_x", "centroid_y")


class NeighbourError(CellganError, ValueError):
    """A cell table that does not say where its cells are."""


def nearest_cells(table: pd.DataFrame, k: int) -> np.ndarray:
    """The row numbers of each cell's ``k`` nearest cells in the same image.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per cell, in patch order, with ``image``, ``centroid_x`` and
        ``centroid_y`` (pixels).
    k : int
        Neighbours per cell, k ≥ 1.

    Returns
    -------
    np.ndarray
        int64 (n, k), nearest first. A cell whose image holds fewer than k
        other cells repeats its farthest neighbour to fill its row, and a cell
        alone in its image is its own partner.
    """
    if k < 1:
        raise NeighbourError(f"k must be at least 1, got {k}")
    missing = [c for c in POSITION_COLUMNS if c not in table.columns]
    if missing:
        raise NeighbourError(f"the cell table lacks the position columns {missing}")
    xy = table[["centroid_x", "centroid_y"]].to_numpy(dtype=np.float64)
    if not np.isfinite(xy).all():
        raise NeighbourError(f"{int((~np.isfinite(xy)).any(axis=1).sum())} cells have no finite centroid")
    out = np.empty((len(table), k), dtype=np.int64)
    images = table["image"].to_numpy()
    for image in pd.unique(images):
        rows = np.flatnonzero(images == image)
        out[rows] = rows[_nearest_within(xy[rows], k)]
    return out


def _nearest_within(xy: np.ndarray, k: int) -> np.ndarray:
    """(m, k) positions in ``xy`` of each point's k nearest other points (itself when alone)."""
    m = len(xy)
    if m == 1:
        return np.zeros((1, k), dtype=np.int64)
    found = min(k, m - 1)
    _, idx = cKDTree(xy).query(xy, k=found + 1)
    idx = _drop_self(np.asarray(idx).reshape(m, found + 1))
    return np.concatenate([idx, np.repeat(idx[:, -1:], k - found, axis=1)], axis=1)


def _drop_self(idx: np.ndarray) -> np.ndarray:
    """Remove each row's own index from its query result (it is not always first when points coincide)."""
    own = idx == np.arange(len(idx))[:, None]
    has_own = own.any(axis=1)
    own[~has_own, -1] = True  # a duplicate point listed first: drop the farthest instead
    return idx[~own].reshape(len(idx), idx.shape[1] - 1)


#: PCA dimensions of the pixel description (as the pixel k-means baseline).
PIXEL_COMPONENTS = 50


def pixel_pca(patches_uint8: np.ndarray, *, seed: int, components: int = PIXEL_COMPONENTS) -> np.ndarray:
    """The PCA scores of the patches' pixels (scaled to [0, 1]): float (n, components).

    ``components`` shrinks to what the number of patches and pixels allow; the
    randomised solver is seeded by ``seed``.
    """
    from sklearn.decomposition import PCA

    pixels = np.asarray(patches_uint8).reshape(len(patches_uint8), -1).astype(np.float32) / 255.0
    components = min(components, len(pixels) - 1, pixels.shape[1])
    return PCA(n_components=components, svd_solver="randomized", random_state=seed).fit_transform(pixels)


def nucleus_moments(patches_uint8: np.ndarray, *, radius: float = 8.0) -> np.ndarray:
    """Rotation-invariant shape of the haematoxylin near each patch's centre: float (n, 4).

    The haematoxylin concentration (scikit-image's ``rgb2hed``) above the patch's
    median, within ``radius`` pixels of the centre, weighs the pixels; the columns
    are log of its total, log of the geometric-mean spread (√(λ₁λ₂) of the weighted
    covariance: size), log λ₁/λ₂ (elongation) and its mean over the disc
    (darkness). Unlike the PCA of pixels, none depends on the cell's orientation,
    so an elongated fibroblast nucleus and a round lymphocyte differ in one
    column whichever way they lie.
    """
    from skimage.color import rgb2hed

    x = np.asarray(patches_uint8)
    n, size = len(x), x.shape[1]
    h = np.empty((n, size, size), np.float32)
    for start in range(0, n, 2048):
        part = x[start : start + 2048]
        h[start : start + 2048] = rgb2hed(part.reshape(-1, size, 3)).reshape(part.shape)[..., 0]
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    near = np.hypot(yy, xx) <= radius
    background = np.median(h.reshape(n, -1), axis=1)[:, None, None]
    w = np.clip(h - background, 0, None) * near
    total = w.sum((1, 2)) + 1e-6
    my, mx = (w * yy).sum((1, 2)) / total, (w * xx).sum((1, 2)) / total
    dy, dx = yy - my[:, None, None], xx - mx[:, None, None]
    cyy, cxx, cxy = ((w * a).sum((1, 2)) / total for a in (dy * dy, dx * dx, dy * dx))
    trace, det = cyy + cxx, cyy * cxx - cxy**2
    disc = np.sqrt(np.clip(trace**2 / 4 - det, 0, None))
    # a patch with no haematoxylin above its median (blank, or noise) has no spread: floor it
    l1, l2 = np.clip(trace / 2 + disc, 1e-3, None), np.clip(trace / 2 - disc, 1e-3, None)
    return np.stack([np.log(total), np.log(l1 * l2) / 2, np.log(l1 / l2), w.sum((1, 2)) / near.sum()], axis=1)


#: The ranks of the neighbours whose distances describe a cell's crowding.
CROWDING_RANKS = (1, 4, 8)


def crowding(table: pd.DataFrame) -> np.ndarray:
    """How crowded each cell's place is: float (n, 3), log(1 + distance) to its 1st, 4th and 8th nearest cell.

    Distances are between centroids in the same image (:func:`nearest_cells`), in µm
    where the table knows the pixel size (``area_um2`` over ``area_px``), else in
    pixels, and corrected for the edge of the field (:func:`edge_corrected`): a cell
    by the image's edge has neighbours on one side only, and would otherwise read as
    sparse as stroma. Epithelium packs its nuclei in glands and sheets, inflammatory
    cells gather in dense infiltrates, fibroblasts lie sparse in stroma: the local
    density of nuclei, the simplest feature of cell graphs (Gunduz et al.,
    Bioinformatics 2004), here as a description of the cell rather than of the tissue.
    """
    partners = nearest_cells(table, max(CROWDING_RANKS))
    xy = table[["centroid_x", "centroid_y"]].to_numpy(dtype=np.float64)
    distance = np.linalg.norm(xy[partners] - xy[:, None], axis=2)[:, [r - 1 for r in CROWDING_RANKS]]
    distance = edge_corrected(xy, distance, *_field(xy, table["image"].to_numpy()))
    if {"area_um2", "area_px"} <= set(table.columns):
        mpp = np.sqrt(table["area_um2"].to_numpy(np.float64) / table["area_px"].to_numpy(np.float64))
        distance = distance * np.where(np.isfinite(mpp) & (mpp > 0), mpp, 1.0)[:, None]
    return np.log1p(distance)


def _field(xy: np.ndarray, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the lower and upper corners (n, 2) of the rectangle its image's cells span.

    The field the cells were found in, as the cells themselves show it (the cell
    table does not carry the image's size); an image whose cells lie on one line
    (no extent along an axis) gets an unbounded field: nothing to correct.
    """
    lo, hi = np.empty_like(xy), np.empty_like(xy)
    for image in pd.unique(images):
        rows = images == image
        low, high = xy[rows].min(axis=0), xy[rows].max(axis=0)
        if (high <= low).any():
            low, high = np.full(2, -np.inf), np.full(2, np.inf)
        lo[rows], hi[rows] = low, high
    return lo, hi


#: Points spread evenly over the unit disc (a sunflower spiral), to measure how much of a disc lies in a field.
_DISC = np.stack(
    [
        np.sqrt((np.arange(64) + 0.5) / 64) * np.cos(np.pi * (3 - np.sqrt(5)) * np.arange(64)),
        np.sqrt((np.arange(64) + 0.5) / 64) * np.sin(np.pi * (3 - np.sqrt(5)) * np.arange(64)),
    ],
    axis=1,
)


def edge_corrected(xy: np.ndarray, distance: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Distances to nearest cells as if the field went on beyond its edge: float (n, m).

    ``distance[i, j]`` is cell i's distance to its k-th nearest cell; a disc of that
    radius holds k cells, but only the share f of it inside the field
    [``lo``, ``hi``] (per cell, (n, 2)) could hold any. At the same density a whole
    disc would hold them within r·√f, which is returned (f floored at ¼, a corner's
    share; the usual edge correction of spatial point statistics, Ripley 1977).
    Inside the field, away from its edge, f = 1 and nothing changes.
    """
    out = np.array(distance, dtype=np.float64, copy=True)
    for start in range(0, len(out), 4096):
        part = slice(start, start + 4096)
        points = xy[part, None, None, :] + out[part, :, None, None] * _DISC[None, None]
        inside = ((points >= lo[part, None, None]) & (points <= hi[part, None, None])).all(axis=-1).mean(axis=-1)
        out[part] *= np.sqrt(np.clip(inside, 0.25, 1.0))
    return out


def place_description(patches_uint8: np.ndarray, table: pd.DataFrame, *, neighbours: int) -> np.ndarray:
    """Where a cell lies and what its nucleus is like, beside its neighbourhood's mean: float32 (n, 14).

    The cell's :func:`crowding` (3 columns) and :func:`nucleus_moments` (4), then the
    mean of those 7 over the cell and its ``neighbours`` nearest cells
    (:func:`nearest_cells`; 0: the cell's own again). What Q reads beside the patch
    when ``TrainConfig.q_reads_place`` is set: the environment a cell's type depends
    on, as numbers a cell graph gives, where a 16 µm patch cannot show it.
    """
    own = np.concatenate([crowding(table), nucleus_moments(patches_uint8)], axis=1)
    partners = nearest_cells(table, neighbours) if neighbours else None
    return np.concatenate([own, neighbourhood_average(own, partners)], axis=1).astype(np.float32)


#: Columns of :func:`place_description`.
PLACE_FEATURES = 2 * (len(CROWDING_RANKS) + 4)


def _joined(pca: np.ndarray, blocks: list[tuple[np.ndarray, float]], *, clip: float = 3.0) -> np.ndarray:
    """PCA scores scaled to unit total variance, joined by each block standardised (clipped at ±clip) to total variance its weight."""
    pca = pca - pca.mean(axis=0)
    parts = [pca / np.sqrt(pca.var(axis=0).sum() + 1e-12)]
    for values, weight in blocks:
        z = np.clip((values - values.mean(axis=0)) / (values.std(axis=0) + 1e-9), -clip, clip)
        parts.append(z * np.sqrt(weight / values.shape[1]))
    return np.concatenate(parts, axis=1)


def neighbourhood_average(embedding: np.ndarray, partners: np.ndarray | None) -> np.ndarray:
    """Each row averaged with the rows ``partners[i]`` lists (itself alone when None)."""
    if partners is None:
        return embedding
    return (embedding + embedding[partners].sum(axis=1)) / (partners.shape[1] + 1)


def neighbourhood_pixels(
    patches_uint8: np.ndarray,
    table: pd.DataFrame | None,
    *,
    neighbours: int,
    seed: int,
    components: int = PIXEL_COMPONENTS,
    moments_weight: float = 0.0,
    crowding_weight: float = 0.0,
) -> np.ndarray:
    """:func:`pixel_pca` averaged over each cell and its ``neighbours`` nearest cells in its image.

    (:func:`nearest_cells`; 0: the cell alone.) With ``moments_weight`` or
    ``crowding_weight`` > 0 the PCA (scaled to unit total variance) is joined by
    :func:`nucleus_moments` and :func:`crowding`, each standardised, of that total
    variance, before the averaging. ``table`` (row i: patch i) places the cells; it
    may be None when ``neighbours`` and ``crowding_weight`` are 0.
    """
    if neighbours or crowding_weight:
        if table is None or len(table) != len(patches_uint8):
            rows = "no cell table" if table is None else f"a cell table of {len(table)} rows"
            raise ValueError(f"neighbourhoods need the table of the {len(patches_uint8)} cells, got {rows}")
    partners = nearest_cells(table, neighbours) if neighbours else None
    described = pixel_pca(patches_uint8, seed=seed, components=components)
    blocks = [(nucleus_moments(patches_uint8), moments_weight)] if moments_weight > 0 else []
    blocks += [(crowding(table), crowding_weight)] if crowding_weight > 0 else []
    if blocks:
        described = _joined(described, blocks)
    return neighbourhood_average(described, partners)
