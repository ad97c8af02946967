"""Detection matching and scores, checked against hand-computed cases and a dense solver."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from cellgan.metrics.detection import detection_scores, match_points, scores_from_counts


def test_simple_counts():
    pred = [(0, 0), (10, 0), (50, 50)]
    true = [(1, 0), (10, 3), (100, 100)]
    scores = detection_scores(pred, true, 5)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (2, 1, 1)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)


def test_matching_is_one_to_one_and_maximal_where_greedy_is_not():
    # Nearest-first greedy pairs p0 with t0 (2.9) and leaves p1 and t1 alone; the
    # Hungarian matching pairs p0-t1 (3.1) and p1-t0 (3.5): two matches.
    true = [(0, 0), (6, 0)]
    pred = [(2.9, 0), (-3.5, 0)]
    pred_index, true_index = match_points(pred, true, 3.5)
    assert pred_index.tolist() == [0, 1]
    assert true_index.tolist() == [1, 0]


def test_matching_minimises_distance_among_maximal_matchings():
    true = [(0, 0), (10, 0)]
    pred = [(9, 0), (1, 0)]
    pred_index, true_index = match_points(pred, true, 20)
    assert list(zip(pred_index.tolist(), true_index.tolist())) == [(0, 1), (1, 0)]


def test_radius_is_inclusive_and_one_prediction_matches_once():
    assert detection_scores([(3, 4)], [(0, 0)], 5)["tp"] == 1
    assert detection_scores([(3, 4.001)], [(0, 0)], 5)["tp"] == 0
    scores = detection_scores([(0, 0)], [(1, 0), (-1, 0)], 5)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (1, 0, 1)


def test_empty_inputs():
    none = np.zeros((0, 2))
    assert detection_scores(none, [(0, 0), (5, 5), (9, 9)], 6) == {
        "tp": 0, "fp": 0, "fn": 3, "precision": 1.0, "recall": 0.0, "f1": 0.0,
    }
    assert detection_scores([(0, 0), (5, 5)], [], 6) == {
        "tp": 0, "fp": 2, "fn": 0, "precision": 0.0, "recall": 1.0, "f1": 0.0,
    }
    assert detection_scores([], [], 6) == {"tp": 0, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_prediction_inside_outline_matches_beyond_radius():
    mask = np.zeros((20, 30), np.int32)
    mask[0:20, 0:10] = 1  # a large nucleus; its centre is (4.5, 9.5)
    true = [(4.5, 9.5)]
    pred = [(9, 19)]  # inside, 10.5 px from the centre
    assert detection_scores(pred, true, 6)["tp"] == 0
    assert detection_scores(pred, true, 6, true_label_mask=mask)["tp"] == 1
    # Outside the outline and beyond the radius: still no match.
    assert detection_scores([(25, 19)], true, 6, true_label_mask=mask)["tp"] == 0


def test_label_mask_must_agree_with_true_points():
    mask = np.full((5, 5), 3, np.int32)
    with pytest.raises(ValueError, match="label 3"):
        match_points([(1, 1)], [(1, 1)], 2, true_label_mask=mask)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="pred_xy"):
        match_points([1, 2, 3], [(0, 0)], 5)
    with pytest.raises(ValueError, match="true_xy"):
        match_points([(0, 0)], [(np.nan, 0)], 5)
    with pytest.raises(ValueError, match="radius"):
        match_points([(0, 0)], [(0, 0)], -1)


def _dense_reference(pred, true, radius):
    distance = np.hypot(*(pred[:, None, :] - true[None, :, :]).transpose(2, 0, 1))
    forbidden = 1e6
    cost = np.where(distance <= radius, distance, forbidden)
    i, j = linear_sum_assignment(cost)
    keep = cost[i, j] < forbidden
    return keep.sum(), cost[i, j][keep].sum()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_a_dense_hungarian_solver(seed):
    rng = np.random.default_rng(seed)
    true = rng.uniform(0, 200, (300, 2))
    pred = np.concatenate([true[:250] + rng.normal(0, 4, (250, 2)), rng.uniform(0, 200, (60, 2))])
    pred_index, true_index = match_points(pred, true, 8)
    assert len(np.unique(pred_index)) == len(pred_index)
    assert len(np.unique(true_index)) == len(true_index)
    distances = np.hypot(*(pred[pred_index] - true[true_index]).T)
    assert (distances <= 8).all()
    count, total = _dense_reference(pred, true, 8)
    assert len(pred_index) == count
    assert distances.sum() == pytest.approx(total)


def test_many_points_without_a_dense_matrix():
    rng = np.random.default_rng(3)
    true = rng.uniform(0, 6000, (30000, 2))
    pred = true + rng.normal(0, 2, true.shape)
    scores = detection_scores(pred, true, 12)
    assert scores["tp"] >= 29900


def test_scores_from_counts():
    scores = scores_from_counts(8, 2, 8)
    assert scores["precision"] == pytest.approx(0.8)
    assert scores["recall"] == pytest.approx(0.5)
    assert scores["f1"] == pytest.approx(2 * 0.8 * 0.5 / 1.3)
