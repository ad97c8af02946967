"""Scores of a clustering against reference labels.

Every function takes ``pred`` (the cluster of each cell: any K, including clusters
that hold no cell and K different from the number of classes) and ``true`` (the
reference class of each cell, any hashable labels, e.g. strings), both 1-D and of
the same length. Cells without a reference label must be dropped by the caller.

Three scores are those of Hu et al. (IEEE JBHI 2019), as their evaluation code
computes them (``bohu615/nu_gan``, ``utils/evaluation.py``): :func:`purity`,
:func:`entropy` and :func:`f_score`. The others are the usual ones: the accuracy after a one-to-one
(Hungarian) matching of clusters to classes, and scikit-learn's ARI, NMI and AMI.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as skm

from cellgan.errors import CellganError

__all__ = [
    "Contingency",
    "ClusteringInputError",
    "contingency_table",
    "purity",
    "entropy",
    "f_score",
    "hungarian_accuracy",
    "adjusted_rand",
    "normalised_mutual_info",
    "adjusted_mutual_info",
    "clustering_scores",
    "SCORE_KEYS",
]

#: Keys of :func:`clustering_scores`, in reporting order.
SCORE_KEYS = ("acc", "ari", "nmi", "ami", "purity", "entropy", "f_score")


class ClusteringInputError(CellganError, ValueError):
    """Cluster and class labels that cannot be scored (empty, misaligned, not 1-D)."""


class Contingency(NamedTuple):
    """Cells per (cluster, class): ``counts[q, j]``; rows follow ``clusters``, columns ``classes``.

    Only clusters that hold at least one cell get a row: an empty cluster adds
    nothing to any score.
    """

    counts: np.ndarray
    clusters: np.ndarray
    classes: np.ndarray


def contingency_table(pred, true) -> Contingency:
    """Count the cells of each cluster in each class.

    Parameters
    ----------
    pred : array-like, shape (n,)
        Cluster of each cell.
    true : array-like, shape (n,)
        Reference class of each cell.

    Returns
    -------
    Contingency
        ``counts`` (int64, clusters × classes) with the sorted distinct clusters and classes.
    """
    pred_codes, true_codes, clusters, classes = _encode(pred, true)
    counts = np.zeros((len(clusters), len(classes)), dtype=np.int64)
    np.add.at(counts, (pred_codes, true_codes), 1)
    return Contingency(counts, clusters, classes)


def purity(pred, true) -> float:
    """Size-weighted share of each cluster's majority class (higher is better).

    ``Σ_q (n_q / n) · max_j p(j | q)`` = ``Σ_q max_j n_qj / n`` (Hu et al., Table II).
    """
    return _purity(contingency_table(pred, true).counts)


def entropy(pred, true) -> float:
    """Size-weighted entropy of the classes within each cluster, in bits (lower is better).

    ``−Σ_q (n_q / n) Σ_j p(j | q) log₂ p(j | q)``, not normalised, as in Hu et al.
    (Table II). ``0 · log 0`` counts as 0 (the authors' code adds 1e-4 inside the log,
    a bias of at most about 1e-4 · C bits that this function leaves out).
    """
    return _entropy(contingency_table(pred, true).counts)


def f_score(pred, true) -> float:
    """The F-score of Hu et al. (higher is better).

    Each cluster is mapped to its majority class (several clusters may map to one
    class). For each class ``j`` that some cluster maps to, ``TP_j`` is the number of
    its cells in the clusters mapped to it, precision = ``TP_j`` / (cells in those
    clusters), recall = ``TP_j`` / (cells of class ``j``), and ``F_j`` their harmonic
    mean. The score is the mean of ``F_j`` weighted by ``TP_j``; classes no cluster
    maps to have ``TP_j = 0`` and weigh nothing. Ties for the majority go to the
    first class in sorted order, as ``numpy.argmax`` does in the authors' code.
    """
    return _f_score(contingency_table(pred, true).counts)


def hungarian_accuracy(pred, true) -> float:
    """Share of cells whose cluster is matched one-to-one to their class.

    Clusters and classes are paired by the assignment that maximises the matched
    cells (Hungarian algorithm). With more clusters than classes, the cells of the
    clusters left unpaired count as errors; with fewer, so do the unpaired classes.
    """
    return _hungarian(contingency_table(pred, true).counts)


def adjusted_rand(pred, true) -> float:
    """Adjusted Rand index (scikit-learn): 0 for chance, 1 for identical partitions."""
    pred_codes, true_codes, _, _ = _encode(pred, true)
    return float(skm.adjusted_rand_score(true_codes, pred_codes))


def normalised_mutual_info(pred, true) -> float:
    """Mutual information normalised by the arithmetic mean of the two entropies (scikit-learn)."""
    pred_codes, true_codes, _, _ = _encode(pred, true)
    return float(skm.normalized_mutual_info_score(true_codes, pred_codes))


def adjusted_mutual_info(pred, true) -> float:
    """Mutual information adjusted for chance (scikit-learn): 0 for chance, 1 for identical."""
    pred_codes, true_codes, _, _ = _encode(pred, true)
    return float(skm.adjusted_mutual_info_score(true_codes, pred_codes))


def clustering_scores(pred, true) -> dict[str, float]:
    """Every score at once: ``acc``, ``ari``, ``nmi``, ``ami``, ``purity``, ``entropy``, ``f_score``."""
    pred_codes, true_codes, clusters, classes = _encode(pred, true)
    counts = np.zeros((len(clusters), len(classes)), dtype=np.int64)
    np.add.at(counts, (pred_codes, true_codes), 1)
    return {
        "acc": _hungarian(counts),
        "ari": float(skm.adjusted_rand_score(true_codes, pred_codes)),
        "nmi": float(skm.normalized_mutual_info_score(true_codes, pred_codes)),
        "ami": float(skm.adjusted_mutual_info_score(true_codes, pred_codes)),
        "purity": _purity(counts),
        "entropy": _entropy(counts),
        "f_score": _f_score(counts),
    }


def _encode(pred, true):
    """Check ``pred``/``true`` and turn them into integer codes 0..K-1 and 0..C-1."""
    pred = np.asarray(pred)
    true = np.asarray(true)
    if pred.ndim != 1 or true.ndim != 1:
        raise ClusteringInputError(f"cluster and class labels must be 1-D, got shapes {pred.shape} and {true.shape}")
    if len(pred) != len(true):
        raise ClusteringInputError(f"{len(pred)} cluster labels but {len(true)} class labels")
    if len(pred) == 0:
        raise ClusteringInputError("no cells to score")
    for name, values in (("cluster", pred), ("class", true)):
        if values.dtype.kind == "f" and np.isnan(values).any():
            raise ClusteringInputError(f"{name} labels contain NaN; drop unlabelled cells before scoring")
        if values.dtype.kind == "O" and any(v is None for v in values):
            raise ClusteringInputError(f"{name} labels contain None; drop unlabelled cells before scoring")
    clusters, pred_codes = np.unique(pred, return_inverse=True)
    classes, true_codes = np.unique(true, return_inverse=True)
    return pred_codes.ravel(), true_codes.ravel(), clusters, classes


def _purity(counts: np.ndarray) -> float:
    return float(counts.max(axis=1).sum() / counts.sum())


def _entropy(counts: np.ndarray) -> float:
    sizes = counts.sum(axis=1, keepdims=True)
    p = counts / sizes
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log2(p), 0.0)
    per_cluster = -plogp.sum(axis=1)
    return float((sizes.ravel() / counts.sum() * per_cluster).sum())


def _f_score(counts: np.ndarray) -> float:
    majority = counts.argmax(axis=1)  # class each cluster maps to
    cluster_sizes = counts.sum(axis=1)
    class_sizes = counts.sum(axis=0)
    tp = np.zeros(counts.shape[1])
    predicted = np.zeros(counts.shape[1])
    np.add.at(tp, majority, counts[np.arange(len(counts)), majority])
    np.add.at(predicted, majority, cluster_sizes)
    mapped = tp > 0
    precision = tp[mapped] / predicted[mapped]
    recall = tp[mapped] / class_sizes[mapped]
    per_class = 2 * precision * recall / (precision + recall)
    return float((per_class * tp[mapped]).sum() / tp[mapped].sum())


def _hungarian(counts: np.ndarray) -> float:
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / counts.sum())
