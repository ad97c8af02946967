"""Image-level classification from cell-type proportions (Hu et al., Sec. III-D).

Each image is described by the proportions of its nuclei in the K categories
(:mod:`cellgan.analysis.composition`). The paper clusters images on these
vectors with k-means (k = 2, unsupervised) and, where image labels exist, trains
a linear SVM scored on a 4-fold split stratified by class with weighted F1,
precision and recall. Here the SVM is scored by stratified k-fold
cross-validation on the held-out fold only: the code the paper's results were
reproduced with scored it on its own training images, which says nothing about
new images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cellgan.analysis.composition import proportion_columns
from cellgan.errors import CellganError

__all__ = [
    "ImageClassificationError",
    "classify_images",
    "cluster_images",
    "cross_validate_svm",
    "read_image_labels",
    "score_clusters",
]

#: Scores per fold of :func:`cross_validate_svm`, weighted by class support.
SVM_METRICS = ("f1_weighted", "precision_weighted", "recall_weighted", "accuracy")


class ImageClassificationError(CellganError, ValueError):
    """Too few images or classes, or image labels that do not fit the images."""


def cluster_images(props: np.ndarray, *, n_clusters: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cluster images on their category proportions with k-means (the paper: k = 2).

    Parameters
    ----------
    props : ndarray, shape (n_images, K)
        Proportion vectors P_i.
    n_clusters : int
        Number of image clusters.
    seed : int
        Seed of the k-means initialisation (10 restarts, the best kept).

    Returns
    -------
    clusters : ndarray of int64, shape (n_images,)
        Cluster of each image.
    centres : ndarray, shape (n_clusters, K)
        Mean proportion vector of each cluster.
    """
    from sklearn.cluster import KMeans

    props = _as_matrix(props)
    if n_clusters < 1:
        raise ImageClassificationError(f"n_clusters must be at least 1, got {n_clusters}")
    if len(props) < n_clusters:
        raise ImageClassificationError(f"{len(props)} images cannot form {n_clusters} clusters")
    distinct = len(np.unique(props, axis=0))
    if distinct < n_clusters:
        raise ImageClassificationError(
            f"only {distinct} distinct proportion vectors among {len(props)} images: cannot form {n_clusters} clusters"
        )
    kmeans = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit(props)
    return kmeans.labels_.astype(np.int64), kmeans.cluster_centers_


def cross_validate_svm(props: np.ndarray, labels, *, folds: int = 4, seed: int = 0) -> dict:
    """Score a linear SVM on image proportions by stratified k-fold cross-validation.

    Each fold's SVM is fitted on the other folds and scored only on its own
    held-out images. The proportions are standardised with the training folds'
    mean and spread (so rare categories weigh as much as common ones), then a
    linear SVM (``LinearSVC``, C = 1) is fitted, as in the paper's linear SVM.

    Parameters
    ----------
    props : ndarray, shape (n_images, K)
        Proportion vectors.
    labels : array-like, shape (n_images,)
        Image labels (any hashable values; at least two classes).
    folds : int
        Number of folds (the paper: 4). Every class needs at least ``folds``
        images, so that each fold's training images hold every class.
    seed : int
        Seed of the fold shuffle.

    Returns
    -------
    dict
        ``folds``: one dict per fold with ``train_index``, ``test_index`` (row
        indices) and the held-out weighted F1, precision, recall and accuracy;
        ``mean`` and ``std`` of those four over folds; ``predictions``: the
        held-out prediction of every image (as str); ``classes`` and
        ``class_counts``.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    props = _as_matrix(props)
    labels = np.asarray([str(v) for v in labels], dtype=object)
    if len(labels) != len(props):
        raise ImageClassificationError(f"{len(labels)} labels for {len(props)} images")
    if folds < 2:
        raise ImageClassificationError(f"cross-validation needs at least 2 folds, got {folds}")
    if len(props) < folds:
        raise ImageClassificationError(f"{len(props)} labelled images are fewer than the {folds} folds")
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ImageClassificationError(f"the SVM needs at least 2 image classes, got {list(classes)}")
    small = {str(c): int(n) for c, n in zip(classes, counts) if n < folds}
    if small:
        raise ImageClassificationError(
            f"every class needs at least {folds} images for {folds}-fold stratified cross-validation; "
            f"too few: {small} (use fewer folds)"
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    predictions = np.empty(len(labels), dtype=object)
    per_fold = []
    for train, test in splitter.split(props, labels):
        model = make_pipeline(StandardScaler(), LinearSVC(C=1.0, random_state=seed, max_iter=10_000))
        model.fit(props[train], labels[train])
        predicted = model.predict(props[test])
        predictions[test] = predicted
        precision, recall, f1, _ = precision_recall_fscore_support(
            labels[test], predicted, average="weighted", zero_division=0
        )
        per_fold.append(
            {
                "train_index": train.tolist(),
                "test_index": test.tolist(),
                "f1_weighted": float(f1),
                "precision_weighted": float(precision),
                "recall_weighted": float(recall),
                "accuracy": float(accuracy_score(labels[test], predicted)),
            }
        )
    return {
        "folds": per_fold,
        "mean": {m: float(np.mean([f[m] for f in per_fold])) for m in SVM_METRICS},
        "std": {m: float(np.std([f[m] for f in per_fold])) for m in SVM_METRICS},
        "predictions": [str(p) for p in predictions],
        "classes": [str(c) for c in classes],
        "class_counts": {str(c): int(n) for c, n in zip(classes, counts)},
    }


def score_clusters(clusters: np.ndarray, labels) -> dict:
    """Score image clusters against image labels with the project's clustering metrics.

    Returns :func:`cellgan.metrics.clustering.clustering_scores` (Hungarian
    accuracy, ARI, NMI, AMI and the paper's purity, entropy and F-score).
    """
    from cellgan.metrics.clustering import clustering_scores

    labels = np.asarray([str(v) for v in labels], dtype=object)
    return {k: float(v) for k, v in clustering_scores(np.asarray(clusters), labels).items()}


def read_image_labels(path: Path) -> pd.Series:
    """Read an image-label CSV with the columns ``image`` and ``label``.

    Returns
    -------
    Series
        The label (str) of each image, indexed by image.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise ImageClassificationError(f"{path}: no such file") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise ImageClassificationError(f"{path}: unreadable CSV ({err})") from err
    missing = [c for c in ("image", "label") if c not in table.columns]
    if missing:
        raise ImageClassificationError(f"{path}: lacks columns {missing} (expected a header 'image,label')")
    table["image"] = table["image"].str.strip()
    table["label"] = table["label"].str.strip()
    if (table["label"] == "").any():
        image = table.loc[table["label"] == "", "image"].iloc[0]
        raise ImageClassificationError(f"{path}: image {image!r} has an empty label")
    duplicated = table["image"].duplicated()
    if duplicated.any():
        raise ImageClassificationError(f"{path}: image {table.loc[duplicated, 'image'].iloc[0]!r} is listed twice")
    return table.set_index("image")["label"]


def classify_images(
    composition: pd.DataFrame,
    *,
    labels: pd.Series | None = None,
    n_clusters: int = 2,
    folds: int = 4,
    seed: int = 0,
) -> dict:
    """Cluster the images of a composition table and, given labels, score a linear SVM.

    Parameters
    ----------
    composition : DataFrame
        A composition table (``image`` and ``prop_0`` ... ``prop_{K-1}``).
    labels : Series, optional
        Image label indexed by image (:func:`read_image_labels`). Images without
        a label are clustered but left out of the scores; labels of images that
        are not in the table are listed in the result.
    n_clusters, folds, seed
        As in :func:`cluster_images` and :func:`cross_validate_svm`.

    Returns
    -------
    dict
        ``images``, ``categories``, ``kmeans`` (``n_clusters``, the cluster of
        every image, cluster sizes and centres, and ``scores`` against the
        labels), and with labels ``svm`` (:func:`cross_validate_svm` plus the
        image names of its held-out predictions) and the label bookkeeping.
    """
    columns = proportion_columns(composition)
    images = composition["image"].astype(str).to_numpy()
    props = composition[columns].to_numpy(dtype=np.float64)
    clusters, centres = cluster_images(props, n_clusters=n_clusters, seed=seed)
    result = {
        "images": int(len(images)),
        "categories": len(columns),
        "kmeans": {
            "n_clusters": int(n_clusters),
            "seed": int(seed),
            "clusters": dict(zip(images.tolist(), clusters.tolist())),
            "cluster_sizes": np.bincount(clusters, minlength=n_clusters).tolist(),
            "centres": np.round(centres, 6).tolist(),
        },
    }
    if labels is None:
        return result
    labels = labels.astype(str)
    labelled = np.isin(images, labels.index.to_numpy())
    if not labelled.any():
        raise ImageClassificationError("no image of the composition table has a label (check the image names)")
    image_labels = labels.loc[images[labelled]].to_numpy()
    result["labelled_images"] = int(labelled.sum())
    result["unlabelled_images"] = images[~labelled].tolist()
    result["labels_without_image"] = sorted(set(labels.index) - set(images))
    result["kmeans"]["scores"] = score_clusters(clusters[labelled], image_labels)
    svm = cross_validate_svm(props[labelled], image_labels, folds=folds, seed=seed)
    svm["predictions"] = dict(zip(images[labelled].tolist(), svm["predictions"]))
    svm["n_folds"] = int(folds)
    result["svm"] = svm
    return result


def _as_matrix(props) -> np.ndarray:
    props = np.asarray(props, dtype=np.float64)
    if props.ndim != 2 or props.shape[1] < 1:
        raise ImageClassificationError(
            f"proportions must be a 2-d array (images x categories), got shape {props.shape}"
        )
    if not np.isfinite(props).all():
        raise ImageClassificationError("proportions must be finite")
    return props
