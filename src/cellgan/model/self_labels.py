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

The recipe is an option, off by default; what it measures is in
benchmarks/README.md ("Cell-type clustering", the self-label results).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellgan.model.neighbours import nearest_cells

__all__ = ["PIXEL_COMPONENTS", "pixel_pca", "neighbourhood_average", "neighbourhood_pixels", "neighbourhood_clusters"]

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
) -> np.ndarray:
    """:func:`pixel_pca` averaged over each cell and its ``neighbours`` nearest cells in its image.

    (:func:`~cellgan.model.neighbours.nearest_cells`; 0: the cell alone.)
    ``table`` (row i: patch i) places the cells; it may be None when
    ``neighbours`` is 0.
    """
    partners = None
    if neighbours:
        if table is None or len(table) != len(patches_uint8):
            rows = "no cell table" if table is None else f"a cell table of {len(table)} rows"
            raise ValueError(f"neighbourhoods need the table of the {len(patches_uint8)} cells, got {rows}")
        partners = nearest_cells(table, neighbours)
    return neighbourhood_average(pixel_pca(patches_uint8, seed=seed, components=components), partners)


def neighbourhood_clusters(
    patches_uint8: np.ndarray, table: pd.DataFrame | None, *, clusters: int, neighbours: int, seed: int
) -> np.ndarray:
    """The self-label of every cell: int64 (n,) in [0, clusters).

    k-means (``clusters`` centres, 10 starts, seeded) of :func:`neighbourhood_pixels`
    (``neighbours`` 0: the pixel k-means baseline).
    """
    from sklearn.cluster import KMeans

    described = neighbourhood_pixels(patches_uint8, table, neighbours=neighbours, seed=seed)
    return KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit_predict(described).astype(np.int64)
