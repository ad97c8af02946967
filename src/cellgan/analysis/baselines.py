"""Simple clusterings to score the GAN's categories against, in the same harness.

Each is k-means with k = K on a fixed, label-free description of each cell:

- :func:`kmeans_pixels`: the raw patch pixels reduced by PCA to 50 dimensions
  (the pixel baseline of the data README: accuracy 0.34, NMI 0.08 on context crops).
- :func:`kmeans_shape_stain`: the cell table's shape and stain features
  (``SHAPE_STAIN_COLUMNS``), standardised.
- :func:`kmeans_centre_colour`: the RGB mean and spread of the 8 µm square at
  each cell's centre, cut from the image (:func:`centre_colour`), standardised (the
  colour baseline of the data README: on CRCHistoPhenotypes accuracy 0.505, NMI
  0.154; on CoNSeP 0.529, 0.214).
- :func:`kmeans_neighbourhood_pixels`: the PCA-50 pixels (optionally joined by
  nucleus moments and crowding) averaged over each cell and its nearest cells in
  the same image: the self-labels that can teach the GAN's Q
  (:mod:`cellgan.model.self_labels`), scored on their own.

Each returns a :class:`BaselineResult` whose ``clusters`` go to
:func:`cellgan.metrics.clustering.clustering_scores` like the GAN's categories.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from cellgan.errors import CellganError

__all__ = [
    "SHAPE_STAIN_COLUMNS",
    "BaselineError",
    "BaselineResult",
    "centre_colour",
    "centre_side",
    "kmeans_centre_colour",
    "kmeans_neighbourhood_pixels",
    "kmeans_pixels",
    "kmeans_shape_stain",
]

#: Side (µm) of the square at each cell's centre that :func:`centre_colour` describes: the
#: central 16×16 pixels of a 32×32 patch at 0.5 µm per pixel.
CENTRE_SIDE_UM = 8.0

#: Columns of the cell table used by :func:`kmeans_shape_stain`.
SHAPE_STAIN_COLUMNS = ("area_px", "eccentricity", "solidity", "perimeter_px", "mean_haematoxylin", "mean_eosin")


class BaselineError(CellganError, ValueError):
    """Input a baseline cannot cluster (too few cells, missing columns)."""


class BaselineResult(NamedTuple):
    """Cluster of each cell, how typical it is of its cluster, and what was clustered.

    ``score`` is minus the distance to the cluster's centre, so that sorting by it
    (descending) lists each cluster's most typical cells first, as the galleries do.
    ``embedding`` is the description k-means saw (PCA scores or standardised
    features), for a linear probe of the same representation.
    """

    clusters: np.ndarray
    score: np.ndarray
    embedding: np.ndarray


def kmeans_pixels(patches_uint8, *, clusters: int, seed: int = 0, components: int = 50) -> BaselineResult:
    """k-means on the PCA of the raw pixels of the patches.

    Parameters
    ----------
    patches_uint8 : array-like, shape (n, 32, 32, 3), uint8
        The patches the GAN sees (masked or context).
    clusters : int
        k, the GAN's K.
    seed : int
        Seed of the randomised PCA and of the k-means initialisation.
    components : int
        PCA dimensions, reduced when there are fewer cells or pixels.
    """
    from cellgan.neighbourhood import pixel_pca

    reduced = pixel_pca(_checked_patches(patches_uint8, clusters), seed=seed, components=components)
    return _kmeans(reduced, clusters=clusters, seed=seed)


def kmeans_neighbourhood_pixels(
    patches_uint8,
    table: pd.DataFrame,
    *,
    clusters: int,
    neighbours: int,
    seed: int = 0,
    components: int = 50,
    moments_weight: float = 0.0,
    crowding_weight: float = 0.0,
) -> BaselineResult:
    """k-means on the PCA of the pixels averaged over each cell and its ``neighbours`` nearest cells.

    The same clusters as :func:`cellgan.model.self_labels.neighbourhood_clusters`
    (same PCA, averaging, weights and k-means seed), with the scores and embedding
    of the other baselines. ``table`` places the cells (``image``, ``centroid_x``,
    ``centroid_y``; row i describes patch i). ``moments_weight`` and
    ``crowding_weight`` join the nucleus moments and the crowding
    (:func:`cellgan.neighbourhood.neighbourhood_pixels`).
    """
    from cellgan.neighbourhood import neighbourhood_pixels

    patches = _checked_patches(patches_uint8, clusters)
    if len(table) != len(patches):
        raise BaselineError(f"the cell table has {len(table)} rows but there are {len(patches)} patches")
    described = neighbourhood_pixels(
        patches,
        table,
        neighbours=neighbours,
        seed=seed,
        components=components,
        moments_weight=moments_weight,
        crowding_weight=crowding_weight,
    )
    return _kmeans(described, clusters=clusters, seed=seed)


def kmeans_shape_stain(table: pd.DataFrame, *, clusters: int, seed: int = 0) -> BaselineResult:
    """k-means on the standardised shape and stain features of the cell table.

    Parameters
    ----------
    table : DataFrame
        The cell table (see :data:`cellgan.io.cellstore.TABLE_COLUMNS`), with the
        columns :data:`SHAPE_STAIN_COLUMNS`. Missing values take the column's median.
    clusters : int
        k, the GAN's K.
    seed : int
        Seed of the k-means initialisation.
    """
    missing = [c for c in SHAPE_STAIN_COLUMNS if c not in table.columns]
    if missing:
        raise BaselineError(f"cell table lacks the columns {missing}")
    _check_count(len(table), clusters)
    values = table[list(SHAPE_STAIN_COLUMNS)].to_numpy(dtype=np.float64, copy=True)
    values[~np.isfinite(values)] = np.nan
    if np.isnan(values).all(axis=0).any():
        empty = [c for c, e in zip(SHAPE_STAIN_COLUMNS, np.isnan(values).all(axis=0)) if e]
        raise BaselineError(f"cell table columns {empty} have no finite value")
    medians = np.nanmedian(values, axis=0)
    values = np.where(np.isnan(values), medians, values)
    return _kmeans(_standardised(values), clusters=clusters, seed=seed)


def centre_side(mpp: float | None, side_um: float = CENTRE_SIDE_UM) -> int:
    """The side in pixels of the centre square: ``side_um`` at ``mpp`` µm per pixel, else half a patch.

    Without a pixel size the patches are cut at the image's own pixels (Hu et al.),
    so the square is then their central 16×16 pixels.
    """
    from cellgan.segment.patches import PATCH_SIZE

    if mpp is None or not np.isfinite(mpp):
        return PATCH_SIZE // 2
    if mpp <= 0:
        raise BaselineError(f"the pixel size must be a positive number of µm, got {mpp}")
    return max(1, int(round(side_um / mpp)))


def centre_colour(rgb: np.ndarray, xy: np.ndarray, *, side: int) -> np.ndarray:
    """The RGB mean and standard deviation of the ``side`` × ``side`` square at each centre of one image.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
        The image as read (no normalisation).
    xy : ndarray, shape (n, 2)
        Cell centres, x = column and y = row, in pixels.
    side : int
        The square's side in pixels (:func:`centre_side`); a square that would
        cross the image's edge is moved inside it.

    Returns
    -------
    ndarray of float64, shape (n, 6)
        Mean R, G, B then their standard deviations, of 0..255.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise BaselineError(f"expected a uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    out = np.empty((len(xy), 6), np.float64)
    for i, (x, y) in enumerate(np.asarray(xy, dtype=np.float64)):
        col = min(max(int(np.floor(x - side / 2 + 0.5)), 0), max(width - side, 0))
        row = min(max(int(np.floor(y - side / 2 + 0.5)), 0), max(height - side, 0))
        pixels = rgb[row : row + side, col : col + side].reshape(-1, 3).astype(np.float64)
        out[i, :3], out[i, 3:] = pixels.mean(axis=0), pixels.std(axis=0)
    return out


def kmeans_centre_colour(descriptions: np.ndarray, *, clusters: int, seed: int = 0) -> BaselineResult:
    """k-means on the standardised :func:`centre_colour` of every cell, shape (n, 6)."""
    values = np.asarray(descriptions, dtype=np.float64)
    if values.ndim != 2 or not np.isfinite(values).all():
        raise BaselineError(f"centre colours must be a finite (n, d) array, got shape {values.shape}")
    _check_count(len(values), clusters)
    return _kmeans(_standardised(values), clusters=clusters, seed=seed)


def _standardised(values: np.ndarray) -> np.ndarray:
    """Each column less its mean, over its standard deviation (a constant column: over 1)."""
    std = values.std(axis=0)
    return (values - values.mean(axis=0)) / np.where(std > 0, std, 1.0)


def _checked_patches(patches_uint8, clusters: int) -> np.ndarray:
    """The patches as an array, if they are uint8 (n, h, w, 3) and enough for ``clusters``."""
    patches = np.asarray(patches_uint8)
    if patches.dtype != np.uint8 or patches.ndim != 4:
        raise BaselineError(f"patches must be uint8 (n, h, w, 3), got {patches.dtype} {patches.shape}")
    _check_count(len(patches), clusters)
    return patches


def _check_count(n: int, clusters: int) -> None:
    if clusters < 1:
        raise BaselineError(f"need at least 1 cluster, got {clusters}")
    if n < clusters:
        raise BaselineError(f"{n} cells cannot form {clusters} clusters")


def _kmeans(points: np.ndarray, *, clusters: int, seed: int) -> BaselineResult:
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit(points)
    distances = model.transform(points)[np.arange(len(points)), model.labels_]
    return BaselineResult(model.labels_.astype(np.int64), -distances, points)
