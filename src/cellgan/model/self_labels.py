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

The recipe is an option, off by default; what it measures is in
benchmarks/README.md ("Cell-type clustering", the self-label results).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellgan.neighbourhood import neighbourhood_pixels

__all__ = ["neighbourhood_clusters", "overclustered", "ward_groups"]


def neighbourhood_clusters(
    patches_uint8: np.ndarray,
    table: pd.DataFrame | None,
    *,
    clusters: int,
    neighbours: int,
    seed: int,
    moments_weight: float = 0.0,
    crowding_weight: float = 0.0,
    overclusters: int = 0,
) -> np.ndarray:
    """The self-label of every cell: int64 (n,) in [0, clusters).

    k-means (``clusters`` centres, 10 starts, seeded) of
    :func:`cellgan.neighbourhood.neighbourhood_pixels` (``neighbours`` 0: the pixel
    k-means baseline), optionally joined by the nucleus moments (``moments_weight``)
    and the crowding of the cell's place (``crowding_weight``: distances to its
    nearest cells, :func:`cellgan.neighbourhood.crowding`). With ``overclusters`` >
    ``clusters``, k-means of that many centres whose centres are then merged into
    ``clusters`` groups (:func:`overclustered`).
    """
    described = neighbourhood_pixels(
        patches_uint8,
        table,
        neighbours=neighbours,
        seed=seed,
        moments_weight=moments_weight,
        crowding_weight=crowding_weight,
    )
    return overclustered(described, clusters=clusters, overclusters=overclusters, seed=seed)


def overclustered(described: np.ndarray, *, clusters: int, overclusters: int, seed: int) -> np.ndarray:
    """k-means groups of the rows of ``described``: int64 (n,) in [0, clusters).

    ``overclusters`` ≤ ``clusters``: plain k-means (10 starts, seeded). Otherwise
    k-means of ``overclusters`` centres, then Ward's agglomeration of those centres
    (:func:`ward_groups`) into ``clusters`` groups. Both aim at a small
    within-group sum of squares, but the merged groups are unions of small
    clusters built bottom-up rather than ``clusters`` round cells around their
    means, so they can follow a group of cells that is stretched or uneven in
    size (over-clustering as in IIC, Ji et al. ICCV 2019, merged here without
    labels). On CRCHistoPhenotypes 8 centres gave better self-labels than 4
    (benchmarks/README.md, issue 11 step 22).
    """
    from sklearn.cluster import KMeans

    centres = clusters
    if overclusters > clusters:  # no more centres than distinct cells (a tiny or repetitive set)
        centres = max(clusters, min(overclusters, len(np.unique(described, axis=0))))
    found = KMeans(n_clusters=centres, n_init=10, random_state=seed).fit(described)
    if centres == clusters:
        return found.labels_.astype(np.int64)
    sizes = np.bincount(found.labels_, minlength=centres)
    return ward_groups(found.cluster_centers_, sizes, clusters)[found.labels_]


def ward_groups(centres: np.ndarray, sizes: np.ndarray, groups: int) -> np.ndarray:
    """The group of each centre after Ward's agglomeration into ``groups``: int64 (len(centres),).

    Repeatedly merges the two groups whose union adds the least within-group sum of
    squares, n_a n_b / (n_a + n_b) · |c_a − c_b|² for centres c of n cells (Ward
    1963); ``sizes`` weigh the centres (an empty one weighs nothing but still joins a
    group). Groups are numbered by their first centre.
    """
    centres = np.asarray(centres, dtype=np.float64)
    weight = np.maximum(np.asarray(sizes, dtype=np.float64), 1e-9)
    if not 1 <= groups <= len(centres):
        raise ValueError(f"cannot make {groups} groups of {len(centres)} centres")
    members = [[i] for i in range(len(centres))]
    mean = [c.copy() for c in centres]
    n = list(weight)
    while len(members) > groups:
        _, a, b = min(
            (n[a] * n[b] / (n[a] + n[b]) * float(np.sum((mean[a] - mean[b]) ** 2)), a, b)
            for a in range(len(mean))
            for b in range(a + 1, len(mean))
        )
        mean[a] = (n[a] * mean[a] + n[b] * mean[b]) / (n[a] + n[b])
        n[a] += n[b]
        members[a] += members.pop(b)
        del mean[b], n[b]
    out = np.empty(len(centres), dtype=np.int64)
    for group, ids in enumerate(sorted(members, key=min)):
        out[ids] = group
    return out
