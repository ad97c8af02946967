"""Nucleus segmentation scores on label masks: foreground Dice and the AJI.

Both take integer masks of the same shape, 0 for background. The Aggregated Jaccard
Index follows Kumar et al., "A Dataset and a Technique for Generalized Nuclear
Segmentation for Computational Pathology", IEEE TMI 36(7), 2017, and is computed from
the table of overlapping (true, predicted) label pairs, found with one pass over the
pixels, never with a loop over objects.
"""

from __future__ import annotations

import numpy as np

__all__ = ["aggregated_jaccard_index", "dice"]


def dice(pred_mask: np.ndarray, true_mask: np.ndarray) -> float:
    """Dice coefficient of the foregrounds, ``2 |P ∩ T| / (|P| + |T|)``.

    Parameters
    ----------
    pred_mask, true_mask : array_like, same shape
        Binary or label masks; any non-zero pixel is foreground.

    Returns
    -------
    float
        In [0, 1]; 1 when both masks are empty.
    """
    pred, true = _same_shape(pred_mask, true_mask)
    pred, true = pred != 0, true != 0
    total = int(pred.sum()) + int(true.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(pred & true)) / total


def aggregated_jaccard_index(pred_labels: np.ndarray, true_labels: np.ndarray) -> float:
    """Aggregated Jaccard Index of a predicted against a true nucleus label mask.

    Kumar et al. (2017), Algorithm 1: for each true nucleus ``G_i``, the predicted
    nucleus ``S_j`` with the largest IoU with it (the lowest label on ties; predicted
    nuclei may be picked by several true ones) adds ``|G_i ∩ S_j|`` to the
    intersection ``C`` and ``|G_i ∪ S_j|`` to the union ``U``; a true nucleus that
    overlaps no prediction adds its area to ``U``. Every predicted nucleus never picked
    then adds its area to ``U``. AJI = ``C / U``.

    Parameters
    ----------
    pred_labels, true_labels : array_like of int, same shape
        Label masks, 0 = background; labels need not be consecutive.

    Returns
    -------
    float
        In [0, 1]; 1 when neither mask has a nucleus, 0 when only one of them has.
    """
    pred, true = _same_shape(pred_labels, true_labels)
    pred, pred_area = _areas(pred, "pred_labels")
    true, true_area = _areas(true, "true_labels")
    if pred_area[1:].sum() == 0 and true_area[1:].sum() == 0:
        return 1.0

    # Every overlapping (true, pred) pair and the size of its overlap.
    both = (true > 0) & (pred > 0)
    stride = np.int64(len(pred_area))
    codes = true[both].astype(np.int64) * stride + pred[both]
    pair, inter = np.unique(codes, return_counts=True)
    pair_true, pair_pred = np.divmod(pair, stride)
    union = true_area[pair_true] + pred_area[pair_pred] - inter
    iou = inter / union

    # For each true nucleus, its best pair: largest IoU, then lowest predicted label.
    order = np.lexsort((pair_pred, -iou, pair_true))
    sorted_true = pair_true[order]
    best = order[np.r_[True, sorted_true[1:] != sorted_true[:-1]]] if len(order) else order

    intersection = int(inter[best].sum())
    union_total = int(union[best].sum())
    unpaired_true = np.ones(len(true_area), bool)
    unpaired_true[pair_true[best]] = False
    union_total += int(true_area[1:][unpaired_true[1:]].sum())
    unused_pred = np.ones(len(pred_area), bool)
    unused_pred[pair_pred[best]] = False
    union_total += int(pred_area[1:][unused_pred[1:]].sum())
    return intersection / union_total


def _same_shape(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: prediction {a.shape}, truth {b.shape}")
    return a, b


def _areas(labels: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels as small non-negative ints and the pixel count of each (index 0: background)."""
    if labels.dtype == np.bool_:
        labels = labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be an integer label mask, got {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name} holds negative labels")
    flat = labels.ravel()
    if flat.size and int(flat.max()) > 4 * flat.size:
        # Sparse, huge label values: renumber so that counts stay small arrays.
        _, flat = np.unique(flat, return_inverse=True)
        if labels.min() > 0:  # no background: keep 0 free for it
            flat = flat + 1
    flat = flat.astype(np.int64, copy=False)
    return flat.reshape(labels.shape), np.bincount(flat, minlength=1)
