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
particular to one nucleus. Q sees the cell's own patch, at training and at
assignment time, and with ``TrainConfig.q_reads_place`` also a few numbers on
where the cell lies (:func:`cellgan.neighbourhood.place_description`), so that
it can read the neighbourhood its label describes. What is averaged: the pixels' PCA, optionally joined by the
nucleus's rotation-invariant moments (size, elongation, darkness) and by how
crowded the cell's place is (distances to its nearest cells), which tells dense
glands and infiltrates from sparse stroma.

Off in the paper's recipe, on in the default one (``lambda_self_label``); what it
measures is in benchmarks/README.md ("Issue 11").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellgan.neighbourhood import neighbourhood_pixels

__all__ = ["neighbourhood_clusters"]


def neighbourhood_clusters(
    patches_uint8: np.ndarray,
    table: pd.DataFrame | None,
    *,
    clusters: int,
    neighbours: int,
    seed: int,
    moments_weight: float = 0.0,
    crowding_weight: float = 0.0,
) -> np.ndarray:
    """The self-label of every cell: int64 (n,) in [0, clusters).

    k-means (``clusters`` centres, 10 starts, seeded) of
    :func:`cellgan.neighbourhood.neighbourhood_pixels` (``neighbours`` 0: the pixel
    k-means baseline), optionally joined by the nucleus moments (``moments_weight``)
    and the crowding of the cell's place (``crowding_weight``: distances to its
    nearest cells, :func:`cellgan.neighbourhood.crowding`). A plain cut: on
    CRCHistoPhenotypes more centres merged into ``clusters`` groups (IIC's
    over-clustering, Ji et al. ICCV 2019) did better on the typed nuclei alone but
    made one group of half the nuclei a run detects (benchmarks/README.md, issue 11
    steps 30-32).
    """
    from sklearn.cluster import KMeans

    described = neighbourhood_pixels(
        patches_uint8,
        table,
        neighbours=neighbours,
        seed=seed,
        moments_weight=moments_weight,
        crowding_weight=crowding_weight,
    )
    return KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit_predict(described).astype(np.int64)
