"""Linear probe: how much of the cell types a representation holds in linear form.

The GAN is trained without labels; its categories are scored by the clustering
metrics. The critic trunk's features may carry more than the K-way argmax of Q
shows, so the labels are also used, for scoring only, to fit a logistic regression
on the standardised features. Cells are split by image (no image lends cells to
both the training and the test side), so the probe measures transfer to unseen
images rather than memorised neighbours. Where that cannot mean anything — a
class found in one image only, as when each image is a folder of one cell type
(``cellgan cells from-folder``), so that a fold would test on a class its
training side never saw — the folds split by cell instead, stratified by class,
and the result says so (``split``).
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
        Image of each cell; the folds never split an image (``GroupKFold``)
        when every class is found in at least two images; else the folds
        split by cell (``StratifiedKFold``).
    folds : int
        Number of folds, reduced to the number of images (or, split by cell,
        of the smallest class's cells) when there are fewer.
    max_iter : int
        Iterations of the L-BFGS solver.
    seed : int
        Seed of the solver (the split itself is deterministic).

    Returns
    -------
    dict
        ``acc`` (mean test accuracy over the folds), ``acc_std``, ``fold_acc``,
        ``majority_acc`` (the test accuracy of always guessing the training
        side's most common class: the chance level to compare with), ``folds``,
        ``split`` (``"image"`` or ``"cell"``) and ``split_reason``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, StratifiedKFold
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
    classes, class_counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ProbeError("the probe needs at least 2 classes")
    reason = _why_not_by_image(labels, groups)
    if reason is None:
        splits = GroupKFold(n_splits=min(folds, len(np.unique(groups)))).split(features, labels, groups)
    else:
        if class_counts.min() < 2:
            raise ProbeError(f"{reason}, and split by cell every class needs at least 2 cells")
        splitter = StratifiedKFold(n_splits=min(folds, int(class_counts.min())), shuffle=True, random_state=seed)
        splits = splitter.split(features, labels)
    accuracy, majority = [], []
    for train, test in splits:
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
        "split": "image" if reason is None else "cell",
        "split_reason": reason or "every class is found in at least 2 images",
    }


def _why_not_by_image(labels: np.ndarray, groups: np.ndarray) -> str | None:
    """Why folds split by image would test on classes unseen in training; None when they would not."""
    images = np.unique(groups)
    if len(images) < 2:
        return f"the cells come from {len(images)} image"
    lonely = [str(c) for c in np.unique(labels) if len(np.unique(groups[labels == c])) < 2]
    if lonely:
        return f"class(es) {', '.join(lonely[:5])} are found in one image only"
    return None
