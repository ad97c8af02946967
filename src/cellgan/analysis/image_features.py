"""Named image-level features from an image's cells, for classifying whole images.

Hu et al. (JBHI 2019, Sec. III-D) describe an image by the proportions of its
nuclei in the K categories. Here that vector is one block among others, each
column named so that a classifier's weights say what it leans on:

=============================== ===================================================
column                          meaning
=============================== ===================================================
``n_cells``                     nuclei found in the image
``density_image_per_mm2``       nuclei per mm² of image
``density_tissue_per_mm2``      nuclei per mm² of tissue (stained pixels)
``tissue_fraction``             share of the image's pixels that are stained
``prop_k``                      share of the nuclei in category k (the paper's P_i)
``{g}_area_um2``                mean nucleus area (µm²) of group g
``{g}_eccentricity``            mean eccentricity of group g
``{g}_haematoxylin``            mean haematoxylin optical density inside the nuclei of g
``{g}_eosin``                   mean eosin optical density inside the nuclei of g
``{g}_nn_distance_um``          mean distance (µm) from a nucleus of g to the nearest other one of g
``nn_pair_a_b``                 share of the nuclei whose nearest nucleus pairs categories a and b
                                (a ≤ b, in either order)
``learned_mean_j``              mean over the image's nuclei of feature j of the trunk Q reads
``learned_std_j``               their standard deviation (the assign stage's ``features.npy``)
``colour_*``                    whole-image colour statistics
                                (:func:`cellgan.segment.colour.colour_statistics`)
=============================== ===================================================

The ``learned_*`` columns are the GAN's own description of each cell, the
pooled features its Q head classifies from, averaged per image (a bag of the
image's cells); they are named by position, not meaning. They belong to the
``cells`` set (benchmarks/README.md, issue 12, measures what they add).

A group g is ``all`` (every nucleus: what segmentation alone gives) or ``cat{k}``
(the nuclei in category k). The spatial statistics use no label: nearest
neighbours are found among the image's own nuclei (Euclidean distance of their
centroids).

No value is NaN, so that an image without cells can be classified like any
other. The fills, chosen so that they read as what is missing: an image without
cells has ``n_cells``, densities, proportions and pair shares 0; the mean of a
group without nuclei is 0 (its proportion 0 says it is absent); the
nearest-neighbour distance of a group with fewer than two nuclei is the image's
diagonal (no neighbour within the image: as far as the image allows); a density
or area whose pixel size is unknown is 0.

:data:`FEATURE_SETS` names the column sets the classifiers compare.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellgan.errors import CellganError

__all__ = [
    "FEATURE_SETS",
    "ImageFeatureError",
    "feature_columns",
    "image_features",
]

#: Per-cell measurements averaged per group: feature suffix -> cell-table column.
MORPHOLOGY = {
    "area_um2": "area_um2",
    "eccentricity": "eccentricity",
    "haematoxylin": "mean_haematoxylin",
    "eosin": "mean_eosin",
}

#: The image-level columns that need no category (besides the ``all_*`` group).
SEGMENTATION_COLUMNS = ("n_cells", "density_image_per_mm2", "density_tissue_per_mm2", "tissue_fraction")

#: The feature sets of :func:`feature_columns`: what the image classifiers are given.
FEATURE_SETS = ("composition", "segmentation_only", "cells", "colour_statistics", "all")


class ImageFeatureError(CellganError, ValueError):
    """A cell table or image table that image features cannot be computed from."""


def image_features(
    cells: pd.DataFrame, image_info: pd.DataFrame, *, categories: int, cell_features: np.ndarray | None = None
) -> pd.DataFrame:
    """Every named feature (see the module docstring) of every image.

    Parameters
    ----------
    cells : DataFrame
        One row per cell: ``image``, ``category`` (0..K-1), ``centroid_x``,
        ``centroid_y`` (pixels), ``area_um2``, ``eccentricity``,
        ``mean_haematoxylin``, ``mean_eosin`` (an ASSIGNMENTS table).
    image_info : DataFrame
        One row per image, indexed by image, including those without cells
        (:meth:`cellgan.io.cellstore.CellStore.read_image_info`): ``height``,
        ``width``, ``mpp``, ``tissue_fraction`` and any ``colour_*`` columns.
        Every image of ``cells`` must be in it.
    categories : int
        K.
    cell_features : ndarray, shape (len(cells), W), optional
        The features Q reads of each cell, row i <-> row i of ``cells`` (an
        ASSIGNMENTS directory's ``features.npy``): adds ``learned_mean_j`` and
        ``learned_std_j`` (0 for an image without cells).

    Returns
    -------
    DataFrame
        One row per image of ``image_info``, sorted by image: ``image`` then the
        feature columns, every one finite.
    """
    from cellgan.analysis.composition import cell_densities, composition

    needed = ["image", "category", "centroid_x", "centroid_y", *MORPHOLOGY.values()]
    missing = [c for c in needed if c not in cells.columns]
    if missing:
        raise ImageFeatureError(f"cell table lacks columns {missing}")
    missing = [c for c in ("height", "width", "mpp", "tissue_fraction") if c not in image_info.columns]
    if missing:
        raise ImageFeatureError(f"image table lacks columns {missing} (a cell store written before image info)")
    info = image_info.copy()
    info.index = info.index.astype(str)
    unknown = sorted(set(cells["image"].astype(str)) - set(info.index))
    if unknown:
        raise ImageFeatureError(f"{len(unknown)} images have cells but no image info (e.g. {unknown[0]!r})")
    info = info.sort_index()
    counts = composition(cells, categories=categories, image_info=info).set_index("image").loc[info.index]
    mpp = pd.to_numeric(info["mpp"], errors="coerce").to_numpy(dtype=np.float64)
    columns: dict[str, np.ndarray] = {"n_cells": counts["n_cells"].to_numpy(dtype=np.float64)}
    columns.update(cell_densities(columns["n_cells"], info))
    columns["tissue_fraction"] = info["tissue_fraction"].to_numpy(dtype=np.float64)
    columns.update({f"prop_{k}": counts[f"prop_{k}"].to_numpy() for k in range(categories)})
    by_image = {str(image): group for image, group in cells.groupby(cells["image"].astype(str), sort=False)}
    groups = ["all"] + [f"cat{k}" for k in range(categories)]
    per_image = [
        _cell_features(by_image.get(image), categories, groups, mpp=mpp[i], diagonal_px=_diagonal(info.iloc[i]))
        for i, image in enumerate(info.index)
    ]
    for name in per_image[0] if per_image else _cell_feature_names(categories, groups):
        columns[name] = np.array([row[name] for row in per_image], dtype=np.float64)
    if cell_features is not None:
        columns.update(_learned_features(cells, cell_features, info.index))
    for name in (c for c in info.columns if str(c).startswith("colour_")):
        columns[name] = pd.to_numeric(info[name], errors="coerce").to_numpy(dtype=np.float64)
    table = pd.DataFrame(columns, index=info.index)
    table = table.fillna(0.0)  # unknown pixel size: densities and areas 0 (see the module docstring)
    return table.reset_index(names="image")


def feature_columns(table: pd.DataFrame, feature_set: str) -> list[str]:
    """The columns of an image-feature table that ``feature_set`` names.

    ``composition``: the proportions (Hu et al.); ``segmentation_only``: what
    segmentation alone gives (counts, densities, tissue fraction, the ``all_*``
    group); ``cells``: that and everything the GAN adds (proportions,
    ``cat{k}_*``, neighbour pairs, ``learned_*``); ``colour_statistics``: the whole-image colour
    columns; ``all``: ``cells`` and ``colour_statistics``.
    """
    if feature_set not in FEATURE_SETS:
        raise ImageFeatureError(f"unknown feature set {feature_set!r} (one of {', '.join(FEATURE_SETS)})")
    names = [str(c) for c in table.columns if c != "image"]
    segmentation = [c for c in names if c in SEGMENTATION_COLUMNS or c.startswith("all_")]
    categorical = [c for c in names if c.startswith(("prop_", "cat", "nn_pair_", "learned_"))]
    colour = [c for c in names if c.startswith("colour_")]
    chosen = {
        "composition": [c for c in names if c.startswith("prop_")],
        "segmentation_only": segmentation,
        "cells": segmentation + categorical,
        "colour_statistics": colour,
        "all": segmentation + categorical + colour,
    }[feature_set]
    if not chosen:
        raise ImageFeatureError(f"the image-feature table has no {feature_set} columns")
    return chosen


def _learned_features(cells: pd.DataFrame, cell_features: np.ndarray, images: pd.Index) -> dict[str, np.ndarray]:
    """Per image of ``images``, the mean and standard deviation of each column of ``cell_features``."""
    values = np.asarray(cell_features, dtype=np.float64)
    if values.ndim != 2 or len(values) != len(cells):
        raise ImageFeatureError(f"{len(cells)} cells but learned features of shape {values.shape}")
    if not np.isfinite(values).all():
        raise ImageFeatureError("the learned cell features hold NaN or infinite values")
    frame = pd.DataFrame(values)
    grouped = frame.groupby(cells["image"].astype(str).to_numpy())
    mean = grouped.mean().reindex(images).fillna(0.0).to_numpy()
    std = grouped.std(ddof=0).reindex(images).fillna(0.0).to_numpy()
    width = values.shape[1]
    return {f"learned_mean_{j}": mean[:, j] for j in range(width)} | {f"learned_std_{j}": std[:, j] for j in range(width)}


def _diagonal(info_row: pd.Series) -> float:
    return float(np.hypot(float(info_row["height"]), float(info_row["width"])))


def _cell_feature_names(categories: int, groups: list[str]) -> list[str]:
    names = [f"{g}_{suffix}" for g in groups for suffix in (*MORPHOLOGY, "nn_distance_um")]
    return names + [f"nn_pair_{a}_{b}" for a in range(categories) for b in range(a, categories)]


def _cell_features(cells: pd.DataFrame | None, categories: int, groups: list[str], *, mpp, diagonal_px) -> dict:
    """The morphology, stain and spatial features of one image's cells (None: no cell)."""
    scale = mpp if np.isfinite(mpp) else np.nan  # µm per pixel; NaN becomes the fill 0
    names = _cell_feature_names(categories, groups)
    row = dict.fromkeys(names, 0.0)
    for g in groups:
        row[f"{g}_nn_distance_um"] = diagonal_px * scale
    if cells is None or len(cells) == 0:
        return row
    category = cells["category"].to_numpy(dtype=np.int64)
    xy = cells[["centroid_x", "centroid_y"]].to_numpy(dtype=np.float64)
    members = {"all": np.ones(len(cells), bool)} | {f"cat{k}": category == k for k in range(categories)}
    for g in groups:
        chosen = members[g]
        if not chosen.any():
            continue
        for suffix, column in MORPHOLOGY.items():
            values = cells[column].to_numpy(dtype=np.float64)[chosen]
            row[f"{g}_{suffix}"] = float(np.nanmean(values)) if np.isfinite(values).any() else 0.0
        if chosen.sum() >= 2:
            row[f"{g}_nn_distance_um"] = float(_nearest(xy[chosen])[0].mean() * scale)
    if len(cells) >= 2:
        _, nearest = _nearest(xy)
        low, high = np.minimum(category, category[nearest]), np.maximum(category, category[nearest])
        pairs = np.bincount(low * categories + high, minlength=categories * categories) / len(cells)
        for a in range(categories):
            for b in range(a, categories):
                row[f"nn_pair_{a}_{b}"] = float(pairs[a * categories + b])
    return row


def _nearest(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance to, and index of, each point's nearest other point (at least two points)."""
    from scipy.spatial import cKDTree

    distance, index = cKDTree(xy).query(xy, k=2)
    return distance[:, 1], index[:, 1]
