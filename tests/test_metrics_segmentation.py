"""Dice and the Aggregated Jaccard Index, on hand-computed masks and a per-object reference."""

from __future__ import annotations

import numpy as np
import pytest

from cellgan.metrics.segmentation import aggregated_jaccard_index, dice


def test_dice_hand_computed():
    pred = np.zeros((4, 4), np.uint8)
    true = np.zeros((4, 4), np.int32)
    pred[0, 0:4] = 1  # 4 px
    true[0, 1:4] = 5  # 6 px, 3 shared with pred
    true[1, 0:3] = 7
    assert dice(pred, true) == pytest.approx(2 * 3 / 10)


def test_dice_empty_cases():
    empty = np.zeros((3, 3), int)
    full = np.ones((3, 3), int)
    assert dice(empty, empty) == 1.0
    assert dice(empty, full) == 0.0
    assert dice(full, empty) == 0.0
    assert dice(full, full) == 1.0


def test_masks_must_match_in_shape():
    with pytest.raises(ValueError, match="shape"):
        dice(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="shape"):
        aggregated_jaccard_index(np.zeros((3, 3), int), np.zeros((4, 3), int))


def test_aji_hand_computed_with_an_unused_prediction():
    true = np.zeros((6, 8), np.int32)
    pred = np.zeros((6, 8), np.int32)
    true[0:2, 0:2] = 1  # G1, 4 px
    true[0:2, 4:7] = 2  # G2, 6 px
    pred[0:2, 0:3] = 1  # S1, 6 px: 4 shared with G1, IoU 4/6
    pred[0:2, 5:7] = 2  # S2, 4 px: 4 shared with G2, IoU 4/6
    pred[4, 0:3] = 3  # S3, 3 px, touches nothing: added to the union
    # C = 4 + 4, U = 6 + 6 + 3
    assert aggregated_jaccard_index(pred, true) == pytest.approx(8 / 15)


def test_aji_lets_one_prediction_serve_several_true_nuclei():
    # Kumar et al.'s AJI (unlike AJI+) may pick the same predicted nucleus twice.
    true = np.zeros((2, 5), np.int32)
    true[:, 0:2] = 1
    true[:, 3:5] = 2
    pred = np.ones((2, 5), np.int32)  # one 10-px blob over both
    # Each true nucleus: intersection 4, union 10.
    assert aggregated_jaccard_index(pred, true) == pytest.approx(8 / 20)


def test_aji_true_nucleus_without_overlap_adds_its_area():
    true = np.zeros((2, 6), np.int32)
    true[:, 0:2] = 1
    true[:, 4:6] = 2
    pred = np.zeros((2, 6), np.int32)
    pred[:, 0:2] = 9
    assert aggregated_jaccard_index(pred, true) == pytest.approx(4 / 8)


def test_aji_ties_go_to_the_lowest_predicted_label():
    true = np.zeros((1, 6), np.int32)
    true[0, 1:5] = 1  # 4 px
    pred = np.zeros((1, 6), np.int32)
    pred[0, 0:3] = 4  # 2 shared, union 5
    pred[0, 3:6] = 2  # 2 shared, union 5: same IoU, lower label, chosen
    # C = 2, U = 5 (pair with label 2) + 3 (label 4, unused)
    assert aggregated_jaccard_index(pred, true) == pytest.approx(2 / 8)


def test_aji_empty_cases():
    empty = np.zeros((4, 4), np.int32)
    one = empty.copy()
    one[1:3, 1:3] = 1
    assert aggregated_jaccard_index(empty, empty) == 1.0
    assert aggregated_jaccard_index(empty, one) == 0.0
    assert aggregated_jaccard_index(one, empty) == 0.0
    assert aggregated_jaccard_index(one, one) == 1.0


def test_aji_rejects_non_integer_and_negative_masks():
    with pytest.raises(ValueError, match="integer"):
        aggregated_jaccard_index(np.zeros((2, 2), float), np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="negative"):
        aggregated_jaccard_index(np.full((2, 2), -1), np.zeros((2, 2), int))


def _aji_per_object(pred, true):
    """Kumar et al. 2017, Algorithm 1, written with one loop per object."""
    intersection = union = 0
    used = set()
    pred_ids = [j for j in np.unique(pred) if j]
    for i in (i for i in np.unique(true) if i):
        g = true == i
        best, best_iou = None, -1.0
        for j in pred_ids:
            s = pred == j
            iou = (g & s).sum() / (g | s).sum()
            if iou > best_iou:
                best, best_iou = j, iou
        if best is None or best_iou == 0:
            union += g.sum()
            continue
        s = pred == best
        intersection += (g & s).sum()
        union += (g | s).sum()
        used.add(best)
    union += sum((pred == j).sum() for j in pred_ids if j not in used)
    return intersection / union


def _random_labels(rng, shape, count, offset):
    labels = np.zeros(shape, np.int64)
    for k in range(count):
        r, c = rng.integers(0, shape[0] - 6), rng.integers(0, shape[1] - 6)
        h, w = rng.integers(2, 7, size=2)
        labels[r : r + h, c : c + w] = offset + k
    return labels


@pytest.mark.parametrize("seed", range(4))
def test_aji_matches_a_per_object_reference(seed):
    rng = np.random.default_rng(seed)
    true = _random_labels(rng, (40, 50), 15, 1)
    pred = _random_labels(rng, (40, 50), 18, 1)
    assert aggregated_jaccard_index(pred, true) == pytest.approx(_aji_per_object(pred, true))


def test_aji_does_not_depend_on_label_values():
    rng = np.random.default_rng(7)
    true = _random_labels(rng, (40, 50), 15, 1)
    pred = _random_labels(rng, (40, 50), 18, 1)
    huge = np.where(pred > 0, pred * 10**9 + 12345, 0)
    assert aggregated_jaccard_index(huge, true) == pytest.approx(aggregated_jaccard_index(pred, true))
    assert aggregated_jaccard_index(pred.astype(np.uint16), true.astype(np.int32)) == pytest.approx(
        aggregated_jaccard_index(pred, true)
    )
