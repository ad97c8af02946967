"""Label-free targets for Q on real cells: clusters of the cells' tissue neighbourhoods.

Not in Hu et al. 2019. Their Q learns the categories only from generated cells
(the mutual-information term), and nothing ties those categories to what
varies most between real cells. Here each real cell gets a *self-label* before
training: the k-means cluster (K clusters) of the PCA of its patch's pixels
averaged with those of its nearest cells in the same image
(:func:`neighbourhood_clusters`). Q is then also taught, on real cells, to
predict that label from the cell's own patch — self-labelling as in
DeepCluster (Caron et al. 2018) and SCAN (Van Gansbeke et al. 2020), the way
semi-supervised InfoGAN (Spurr et al. 2017) teaches Q with labelled cells, but
with no label. The generator's categories follow Q's through the
mutual-information term, so G still draws what each category looks like.

Why the neighbourhood: cell types come in neighbourhoods (a cell and its 5
nearest cells share the labelled type 73 % of the time on CRCHistoPhenotypes),
so averaging over them keeps what a neighbourhood shares and damps what is
particular to one nucleus. Q sees only the cell's own patch, at training and at
assignment time.

Measured on CRCHistoPhenotypes (README, "Self-labels"): the clusters beat the plain
pixel and table-feature k-means, and a small MLP on one cell's pixels learns them
(80 % agreement), but Q on the critic's shared trunk fits them poorly (37–41 %) and
its real-cell assignments swing from step to step. Q on a trunk of its own
(``TrainConfig.separate_q``) fits them better (53–67 %). On faded patches of images
colour-normalised to their most typical one (:mod:`cellgan.segment.reference`), with
self-labels over 8 neighbours, the GAN beats the pixel and table-feature k-means on
accuracy, ARI and NMI (README, "best recipe"); still an option, off by default.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellgan.model.neighbours import nearest_cells

__all__ = [
    "PIXEL_COMPONENTS",
    "pixel_pca",
    "nucleus_moments",
    "neighbourhood_average",
    "neighbourhood_pixels",
    "neighbourhood_clusters",
]

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
    l1, l2 = trace / 2 + disc, np.clip(trace / 2 - disc, 1e-3, None)
    return np.stack([np.log(total), np.log(l1 * l2) / 2, np.log(l1 / l2), w.sum((1, 2)) / near.sum()], axis=1)


def _with_moments(pca: np.ndarray, patches_uint8: np.ndarray, weight: float, *, clip: float = 3.0) -> np.ndarray:
    """PCA scores scaled to unit total variance, joined by the standardised (clipped at ±clip) moments of total variance ``weight``."""
    pca = pca - pca.mean(axis=0)
    pca = pca / np.sqrt(pca.var(axis=0).sum() + 1e-12)
    m = nucleus_moments(patches_uint8)
    m = np.clip((m - m.mean(axis=0)) / (m.std(axis=0) + 1e-9), -clip, clip) * np.sqrt(weight / m.shape[1])
    return np.concatenate([pca, m], axis=1)


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
) -> np.ndarray:
    """:func:`pixel_pca` averaged over each cell and its ``neighbours`` nearest cells in its image.

    (:func:`~cellgan.model.neighbours.nearest_cells`; 0: the cell alone.) With
    ``moments_weight`` > 0 the PCA (scaled to unit total variance) is joined by
    :func:`nucleus_moments`, standardised, of that total variance, before the averaging.
    ``table`` (row i: patch i) places the cells; it may be None when
    ``neighbours`` is 0.
    """
    partners = None
    if neighbours:
        if table is None or len(table) != len(patches_uint8):
            rows = "no cell table" if table is None else f"a cell table of {len(table)} rows"
            raise ValueError(f"neighbourhoods need the table of the {len(patches_uint8)} cells, got {rows}")
        partners = nearest_cells(table, neighbours)
    described = pixel_pca(patches_uint8, seed=seed, components=components)
    if moments_weight > 0:
        described = _with_moments(described, patches_uint8, moments_weight)
    return neighbourhood_average(described, partners)


def neighbourhood_clusters(
    patches_uint8: np.ndarray,
    table: pd.DataFrame | None,
    *,
    clusters: int,
    neighbours: int,
    seed: int,
    moments_weight: float = 0.0,
) -> np.ndarray:
    """The self-label of every cell: int64 (n,) in [0, clusters).

    k-means (``clusters`` centres, 10 starts, seeded) of :func:`neighbourhood_pixels`
    (``neighbours`` 0: the pixel k-means baseline).
    """
    from sklearn.cluster import KMeans

    described = neighbourhood_pixels(patches_uint8, table, neighbours=neighbours, seed=seed, moments_weight=moments_weight)
    return KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit_predict(described).astype(np.int64)
