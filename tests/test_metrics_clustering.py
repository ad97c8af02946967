"""Clustering scores on contingency tables whose scores were worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from cellgan.metrics.clustering import (
    SCORE_KEYS,
    ClusteringInputError,
    adjusted_rand,
    clustering_scores,
    contingency_table,
    entropy,
    f_score,
    hungarian_accuracy,
    normalised_mutual_info,
    purity,
)


def labels_from_table(counts, clusters, classes):
    """Cell labels (pred, true) realising a contingency table, in a shuffled order."""
    pred, true = [], []
    for q, row in zip(clusters, counts):
        for j, n in zip(classes, row):
            pred += [q] * n
            true += [j] * n
    order = np.random.default_rng(0).permutation(len(pred))
    return np.asarray(pred)[order], np.asarray(true)[order]


# More clusters (3) than classes (2); cluster 1 is a tie and goes to the first class.
#            a  b
#  cluster 0 4  1
#  cluster 1 2  2
#  cluster 2 0  3
TABLE_K3 = labels_from_table([[4, 1], [2, 2], [0, 3]], [0, 1, 2], ["a", "b"])

# Fewer clusters than classes, and cluster 1 of K = 3 is empty (no cell has it).
#            x  y  z
#  cluster 0 5  3  0
#  cluster 2 0  1  3
TABLE_EMPTY = labels_from_table([[5, 3, 0], [0, 1, 3]], [0, 2], ["x", "y", "z"])


def test_contingency_table_counts_and_keeps_only_clusters_with_cells():
    table = contingency_table(*TABLE_EMPTY)
    np.testing.assert_array_equal(table.counts, [[5, 3, 0], [0, 1, 3]])
    np.testing.assert_array_equal(table.clusters, [0, 2])
    np.testing.assert_array_equal(table.classes, ["x", "y", "z"])


def test_purity_by_hand():
    assert purity(*TABLE_K3) == pytest.approx((4 + 2 + 3) / 12)
    assert purity(*TABLE_EMPTY) == pytest.approx((5 + 3) / 12)


def test_entropy_by_hand():
    # cluster 0: H(0.8, 0.2) = 0.721928 bits; cluster 1: H(0.5, 0.5) = 1; cluster 2: 0.
    assert entropy(*TABLE_K3) == pytest.approx(5 / 12 * 0.7219281 + 4 / 12 * 1.0, abs=1e-6)
    # H(5/8, 3/8) = 0.954434, H(1/4, 3/4) = 0.811278.
    assert entropy(*TABLE_EMPTY) == pytest.approx(8 / 12 * 0.9544340 + 4 / 12 * 0.8112781, abs=1e-6)


def test_f_score_of_the_paper_by_hand():
    # Clusters 0 and 1 map to a: TP 6, precision 6/9, recall 6/6, F 0.8.
    # Cluster 2 maps to b: TP 3, precision 3/3, recall 3/6, F 2/3.
    # Weighted by TP: (6 * 0.8 + 3 * 2/3) / 9.
    assert f_score(*TABLE_K3) == pytest.approx((6 * 0.8 + 3 * 2 / 3) / 9)
    # Cluster 0 -> x: P 5/8, R 1, F 10/13; cluster 2 -> z: P 3/4, R 1, F 6/7; y unmapped.
    assert f_score(*TABLE_EMPTY) == pytest.approx((5 * 10 / 13 + 3 * 6 / 7) / 8)


def test_hungarian_accuracy_counts_unmatched_clusters_as_errors():
    # Best one-to-one: cluster 0 -> a (4), cluster 2 -> b (3); cluster 1's 4 cells are errors.
    assert hungarian_accuracy(*TABLE_K3) == pytest.approx(7 / 12)
    # Cluster 0 -> x (5), cluster 2 -> z (3); class y has no cluster.
    assert hungarian_accuracy(*TABLE_EMPTY) == pytest.approx(8 / 12)


def test_adjusted_rand_by_hand():
    # Σ C(n_qj, 2) = 6+0+1+1+0+3 = 11; rows 10+6+3 = 19; columns 15+15 = 30; C(12, 2) = 66.
    expected = 19 * 30 / 66
    assert adjusted_rand(*TABLE_K3) == pytest.approx((11 - expected) / (0.5 * (19 + 30) - expected))


def test_perfect_clustering_under_renamed_clusters():
    true = np.array(["epi", "fib", "inf", "oth"] * 5)
    pred = np.array([3, 0, 2, 1] * 5)
    scores = clustering_scores(pred, true)
    assert scores == pytest.approx(
        {"acc": 1.0, "ari": 1.0, "nmi": 1.0, "ami": 1.0, "purity": 1.0, "entropy": 0.0, "f_score": 1.0}
    )


def test_independent_clustering_has_no_information():
    pred = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    true = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    assert normalised_mutual_info(pred, true) == pytest.approx(0.0, abs=1e-12)
    assert entropy(pred, true) == pytest.approx(1.0)
    assert purity(pred, true) == pytest.approx(0.5)


def test_one_cluster_for_everything():
    true = np.array([0] * 6 + [1] * 3 + [2] * 1)
    pred = np.zeros(10, dtype=int)
    scores = clustering_scores(pred, true)
    assert scores["purity"] == pytest.approx(0.6)
    assert scores["acc"] == pytest.approx(0.6)
    # Everything maps to class 0: P 0.6, R 1, F 0.75.
    assert scores["f_score"] == pytest.approx(0.75)
    assert scores["ari"] == pytest.approx(0.0)


def test_clustering_scores_matches_the_single_functions():
    scores = clustering_scores(*TABLE_K3)
    assert tuple(scores) == SCORE_KEYS
    assert scores["purity"] == purity(*TABLE_K3)
    assert scores["entropy"] == entropy(*TABLE_K3)
    assert scores["f_score"] == f_score(*TABLE_K3)
    assert scores["acc"] == hungarian_accuracy(*TABLE_K3)
    assert scores["ari"] == adjusted_rand(*TABLE_K3)


@pytest.mark.parametrize(
    ("pred", "true", "message"),
    [
        ([], [], "no cells"),
        ([0, 1], [0], "2 cluster labels but 1 class"),
        ([[0, 1]], [[0, 1]], "1-D"),
        ([0, 1], [0.0, np.nan], "NaN"),
        ([0, 1], np.array(["a", None], dtype=object), "None"),
    ],
)
def test_bad_input_is_rejected_clearly(pred, true, message):
    with pytest.raises(ClusteringInputError, match=message):
        clustering_scores(pred, true)
    assert issubclass(ClusteringInputError, ValueError)
