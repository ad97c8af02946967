"""Nucleus detection scores: one-to-one matching of predicted to true centres.

A predicted centre and a true one may be paired when they lie within a radius
(bm_graz: 12 px; CRCHistoPhenotypes: 6 px, as in Sirinukunwattana et al., IEEE TMI
2016) or, for datasets with outlines (MoNuSeg), also when the predicted centre falls
inside the true nucleus. Among the allowed pairs, the matching is the Hungarian one:
as many pairs as possible, then the smallest total distance. Matched predictions
are true positives, the other predictions false positives, the other true centres
false negatives.

The matching never builds an all-pairs matrix: allowed pairs come from a KD-tree,
the bipartite graph they form splits into small connected components, and each
component is solved on its own with :func:`scipy.optimize.linear_sum_assignment`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["detection_scores", "match_points", "scores_from_counts"]


def match_points(
    pred_xy: np.ndarray,
    true_xy: np.ndarray,
    radius: float,
    *,
    true_label_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Match predicted to true points one-to-one (Hungarian) within ``radius``.

    Parameters
    ----------
    pred_xy, true_xy : array_like, shape (n, 2) and (m, 2)
        Points as ``(x, y)`` = (column, row).
    radius : float
        Largest distance, inclusive, at which two points may be matched.
    true_label_mask : ndarray of int, shape (H, W), optional
        A label mask in which true point ``i`` owns the pixels of label ``i + 1``
        (0 = background). When given, a prediction lying inside a true nucleus may
        also be matched to it whatever their distance (MoNuSeg's rule: centroid
        inside the outline or within 6 px).

    Returns
    -------
    pred_index, true_index : ndarray of int
        The matched pairs, sorted by ``pred_index``.
    """
    pred_xy = _as_points(pred_xy, "pred_xy")
    true_xy = _as_points(true_xy, "true_xy")
    if radius < 0:
        raise ValueError(f"radius must be non-negative, got {radius}")
    rows, cols, cost = _allowed_pairs(pred_xy, true_xy, radius, true_label_mask)
    return _sparse_assignment(len(pred_xy), len(true_xy), rows, cols, cost)


def detection_scores(
    pred_xy: np.ndarray,
    true_xy: np.ndarray,
    radius: float,
    *,
    true_label_mask: np.ndarray | None = None,
) -> dict:
    """Precision, recall and F1 of predicted centres against true ones.

    Parameters are those of :func:`match_points`.

    Returns
    -------
    dict
        ``tp``, ``fp``, ``fn`` (int) and ``precision``, ``recall``, ``f1`` (float), see
        :func:`scores_from_counts`.
    """
    pred_xy = _as_points(pred_xy, "pred_xy")
    true_xy = _as_points(true_xy, "true_xy")
    pred_index, _ = match_points(pred_xy, true_xy, radius, true_label_mask=true_label_mask)
    tp = len(pred_index)
    return scores_from_counts(tp, len(pred_xy) - tp, len(true_xy) - tp)


def scores_from_counts(tp: int, fp: int, fn: int) -> dict:
    """Precision, recall and F1 from counts (used to micro-average over images).

    With no predictions precision is 1 (no false positive was made); with no true
    points recall is 1 (nothing was missed). So empty-versus-empty scores 1 everywhere,
    and empty-versus-anything scores F1 = 0.
    """
    tp, fp, fn = int(tp), int(fp), int(fn)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def _as_points(xy, name: str) -> np.ndarray:
    xy = np.asarray(xy, dtype=float)
    if xy.size == 0:
        return np.zeros((0, 2))
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n, 2), got {xy.shape}")
    if not np.isfinite(xy).all():
        raise ValueError(f"{name} holds NaN or infinite coordinates")
    return xy


def _allowed_pairs(pred_xy, true_xy, radius, true_label_mask):
    """(pred index, true index, distance) of every pair that may be matched."""
    from scipy.spatial import cKDTree

    if len(pred_xy) == 0 or len(true_xy) == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty, np.zeros(0)
    near = cKDTree(pred_xy).sparse_distance_matrix(cKDTree(true_xy), radius, output_type="ndarray")
    rows, cols = near["i"].astype(np.intp), near["j"].astype(np.intp)
    if true_label_mask is not None:
        mask = np.asarray(true_label_mask)
        if mask.ndim != 2:
            raise ValueError(f"true_label_mask must be 2-D, got shape {mask.shape}")
        r = np.clip(np.round(pred_xy[:, 1]).astype(np.intp), 0, mask.shape[0] - 1)
        c = np.clip(np.round(pred_xy[:, 0]).astype(np.intp), 0, mask.shape[1] - 1)
        owner = mask[r, c].astype(np.intp) - 1
        if owner.max(initial=-1) >= len(true_xy):
            raise ValueError(f"true_label_mask has label {owner.max() + 1} but only {len(true_xy)} true points")
        inside = np.flatnonzero(owner >= 0)
        rows = np.concatenate([rows, inside])
        cols = np.concatenate([cols, owner[inside]])
        # A pair both near and inside appears twice; keep one.
        _, first = np.unique(rows * len(true_xy) + cols, return_index=True)
        rows, cols = rows[first], cols[first]
    cost = np.hypot(*(pred_xy[rows] - true_xy[cols]).T)
    return rows, cols, cost


def _sparse_assignment(n_pred, n_true, rows, cols, cost):
    """Maximum-cardinality, then minimum-cost, matching over the allowed pairs only."""
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(rows) == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    # Nodes 0..n_pred-1 are predictions, n_pred.. are true points.
    n = n_pred + n_true
    graph = coo_matrix((np.ones(len(rows)), (rows, cols + n_pred)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    edge_component = component[rows]
    order = np.argsort(edge_component, kind="stable")
    rows, cols, cost, edge_component = rows[order], cols[order], cost[order], edge_component[order]
    starts = np.flatnonzero(np.r_[True, edge_component[1:] != edge_component[:-1], True])
    matched_pred, matched_true = [], []
    for start, stop in zip(starts[:-1], starts[1:]):
        r, c, w = rows[start:stop], cols[start:stop], cost[start:stop]
        if stop - start == 1:
            matched_pred.append(r)
            matched_true.append(c)
            continue
        pred_ids, r_local = np.unique(r, return_inverse=True)
        true_ids, c_local = np.unique(c, return_inverse=True)
        # Disallowed pairs cost more than any set of allowed ones, so the solver first
        # maximises the number of allowed pairs, then minimises their total distance.
        forbidden = (w.max() + 1.0) * (min(len(pred_ids), len(true_ids)) + 1)
        block = np.full((len(pred_ids), len(true_ids)), forbidden)
        block[r_local, c_local] = w
        i, j = linear_sum_assignment(block)
        keep = block[i, j] < forbidden
        matched_pred.append(pred_ids[i[keep]])
        matched_true.append(true_ids[j[keep]])
    pred_index = np.concatenate(matched_pred)
    true_index = np.concatenate(matched_true)
    order = np.argsort(pred_index)
    return pred_index[order], true_index[order]
