"""Linear probe: how much of the cell types a representation holds in linear form.

The GAN is trained without labels; its categories are scored by the clustering
metrics. The critic trunk's features may carry more than the K-way argmax of Q
shows, so the labels are also used, for scoring only, to fit a logistic regression
on the standardised features. Cells are split by image (no image lends cells to
both the training and the test side), so the probe measures transfer to unseen
images rather than memorised neighbours.
"""

from __future__ import annotations

import numpy as np

from cellgan.errors import CellganError

__all__ = ["ProbeError", "linear_probe"]


class ProbeError(CellganError, ValueError):
    """Features, labels and groups that cannot be probed (too few images or classes)."""


def linear_probe(features, labels, groups, *, folds: int = 5, max_iter: int = 1000, seed: int = 0) -> dict:
    """Cross-validated accuracy of a logistic regression on standardised features.

    Parameters
    ----------
    features : array-like, shape (n, d)
        One row per labelled cell.
    labels : array-like, shape (n,)
        Reference class of each cell.
    groups : array-like, shape (n,)
        Image of each cell; the folds never split an image (``GroupKFold``).
    folds : int
        Number of folds, reduced to the number of images when there are fewer.
    max_iter : int
        Iterations of the L-BFGS solver.
    seed : int
        Seed of the solver (the split itself is deterministic).

    Returns
    -------
    dict
        ``acc`` (mean test accuracy over the folds), ``acc_std``, ``fold_acc``,
        ``majority_acc`` (the test accuracy of always guessing the training
        side's most common class: the chance level to compare with) and ``folds``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    if features.ndim != 2 or not len(features) == len(labels) == len(groups):
        raise ProbeError(
            f"need features (n, d) and n labels and groups, got {features.shape}, {labels.shape}, {groups.shape}"
        )
    if not np.isfinite(features).all():
        raise ProbeError("features contain NaN or infinity")
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ProbeError(f"the probe splits by image and needs cells from at least 2 images, got {n_groups}")
    if len(np.unique(labels)) < 2:
        raise ProbeError("the probe needs at least 2 classes")
    splitter = GroupKFold(n_splits=min(folds, n_groups))
    accuracy, majority = [], []
    for train, test in splitter.split(features, labels, groups):
        classes, counts = np.unique(labels[train], return_counts=True)
        majority.append(float(np.mean(labels[test] == classes[counts.argmax()])))
        if len(classes) < 2:
            accuracy.append(majority[-1])
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, random_state=seed))
        model.fit(features[train], labels[train])
        accuracy.append(float(model.score(features[test], labels[test])))
    return {
        "acc": float(np.mean(accuracy)),
        "acc_std": float(np.std(accuracy)),
        "fold_acc": accuracy,
        "majority_acc": float(np.mean(majority)),
        "folds": len(accuracy),
    }
