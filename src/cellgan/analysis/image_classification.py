"""Image-level classification from cells (Hu et al., Sec. III-D).

The paper describes each image by the proportions of its nuclei in the K
categories (:mod:`cellgan.analysis.composition`), clusters images on these
vectors with k-means (k = 2, unsupervised) and, where image labels exist, trains
a linear SVM scored on a 4-fold split stratified by class with weighted F1,
precision and recall. Here any set of named image features
(:mod:`cellgan.analysis.image_features`) can stand in for the proportions, a
logistic regression is scored beside the SVM, and both are scored by stratified
k-fold cross-validation on the held-out fold only: the code the paper's results
were reproduced with scored it on its own training images, which says nothing
about new images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cellgan.errors import CellganError

__all__ = [
    "ImageClassificationError",
    "classify_images",
    "classify_run",
    "cluster_images",
    "cross_validate",
    "read_image_labels",
    "score_clusters",
]

#: Scores per fold of :func:`cross_validate`, weighted by class support.
CV_METRICS = ("f1_weighted", "precision_weighted", "recall_weighted", "accuracy")

#: The linear classifiers :func:`cross_validate` fits.
CLASSIFIERS = ("linear_svm", "logistic_regression")


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
            f"only {distinct} distinct feature vectors among {len(props)} images: cannot form {n_clusters} clusters"
        )
    kmeans = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit(props)
    return kmeans.labels_.astype(np.int64), kmeans.cluster_centers_


def _classifier(model: str, seed: int):
    """A fresh classifier of ``model`` (:data:`CLASSIFIERS`) behind a standardisation of the features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if model == "linear_svm":
        estimator = LinearSVC(C=1.0, random_state=seed, max_iter=10_000)
    elif model == "logistic_regression":
        estimator = LogisticRegression(C=1.0, max_iter=5_000)
    else:
        raise ImageClassificationError(f"unknown classifier {model!r} (one of {', '.join(CLASSIFIERS)})")
    return make_pipeline(StandardScaler(), estimator)


def cross_validate(
    features: np.ndarray, labels, *, model: str = "linear_svm", folds: int = 4, seed: int = 0, feature_names=None
) -> dict:
    """Score a linear classifier on image features by stratified k-fold cross-validation.

    Each fold's classifier is fitted on the other folds and scored only on its
    own held-out images. The features are standardised with the training folds'
    mean and spread (so rare categories weigh as much as common ones), then a
    linear SVM (``LinearSVC``, C = 1; the paper's linear SVM) or a multinomial
    logistic regression (C = 1) is fitted.

    Parameters
    ----------
    features : ndarray, shape (n_images, d)
        One row per image (e.g. its proportion vector).
    labels : array-like, shape (n_images,)
        Image labels (any hashable values; at least two classes).
    model : {"linear_svm", "logistic_regression"}
    folds : int
        Number of folds (the paper: 4). Every class needs at least ``folds``
        images, so that each fold's training images hold every class.
    seed : int
        Seed of the fold shuffle.
    feature_names : sequence of str, optional
        The columns' names, for ``weights`` (default ``f0``, ``f1``, ...).

    Returns
    -------
    dict
        ``model``; ``folds``: one dict per fold with ``train_index``,
        ``test_index`` (row indices) and the held-out weighted F1, precision,
        recall and accuracy; ``mean`` and ``std`` of those four over folds;
        ``predictions``: the held-out prediction of every image (as str);
        ``classes`` and ``class_counts``; ``confusion``: rows = true class, columns
        = held-out prediction, in ``classes`` order; ``weights``: the
        coefficients of the classifier fitted on every image, per class (one row
        for two classes) and feature, in standard deviations of the feature.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support
    from sklearn.model_selection import StratifiedKFold

    features = _as_matrix(features)
    labels = np.asarray([str(v) for v in labels], dtype=object)
    if len(labels) != len(features):
        raise ImageClassificationError(f"{len(labels)} labels for {len(features)} images")
    if folds < 2:
        raise ImageClassificationError(f"cross-validation needs at least 2 folds, got {folds}")
    if len(features) < folds:
        raise ImageClassificationError(f"{len(features)} labelled images are fewer than the {folds} folds")
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ImageClassificationError(f"a classifier needs at least 2 image classes, got {list(classes)}")
    small = {str(c): int(n) for c, n in zip(classes, counts) if n < folds}
    if small:
        raise ImageClassificationError(
            f"every class needs at least {folds} images for {folds}-fold stratified cross-validation; "
            f"too few: {small} (use fewer folds)"
        )
    _classifier(model, seed)  # an unknown model fails before any fit
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    predictions = np.empty(len(labels), dtype=object)
    per_fold = []
    for train, test in splitter.split(features, labels):
        fitted = _classifier(model, seed).fit(features[train], labels[train])
        predicted = fitted.predict(features[test])
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
    names = [f"f{j}" for j in range(features.shape[1])] if feature_names is None else [str(n) for n in feature_names]
    coefficients = _classifier(model, seed).fit(features, labels)[-1].coef_
    rows = [str(classes[1])] if len(coefficients) == 1 else [str(c) for c in classes]
    return {
        "model": model,
        "folds": per_fold,
        "mean": {m: float(np.mean([f[m] for f in per_fold])) for m in CV_METRICS},
        "std": {m: float(np.std([f[m] for f in per_fold])) for m in CV_METRICS},
        "predictions": [str(p) for p in predictions],
        "classes": [str(c) for c in classes],
        "class_counts": {str(c): int(n) for c, n in zip(classes, counts)},
        "confusion": confusion_matrix(labels, predictions.astype(str), labels=classes).tolist(),
        "weights": {row: dict(zip(names, np.round(coef, 6).tolist())) for row, coef in zip(rows, coefficients)},
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
    table: pd.DataFrame,
    *,
    feature_set: str = "composition",
    labels: pd.Series | None = None,
    n_clusters: int | None = None,
    folds: int = 4,
    seed: int = 0,
) -> dict:
    """Cluster the images of a composition or image-feature table and, given labels, score classifiers.

    Parameters
    ----------
    table : DataFrame
        ``image`` and the columns of ``feature_set``: a composition table
        (``prop_0`` ... ``prop_{K-1}``) for ``composition``, an image-feature
        table (:func:`cellgan.analysis.image_features.image_features`) for any set.
    feature_set : str
        One of :data:`cellgan.analysis.image_features.FEATURE_SETS`.
    labels : Series, optional
        Image label indexed by image (:func:`read_image_labels`). Images without
        a label are clustered but left out of the scores; labels of images that
        are not in the table are listed in the result.
    n_clusters : int, optional
        k of the k-means: by default the number of label classes, or 2 without
        labels (Hu et al.). The proportions are clustered as they are (the
        paper); any other feature set after standardising each column.
    folds, seed
        As in :func:`cross_validate`.

    Returns
    -------
    dict
        ``images``, ``feature_set``, ``features`` (the column names), ``kmeans``
        (``n_clusters``, the cluster of every image, cluster sizes and centres, and
        with labels ``scores`` against them; or ``error`` when the images are too
        few or too alike to cluster), and with labels one
        :func:`cross_validate` result per classifier of :data:`CLASSIFIERS` (its
        ``predictions`` by image name) and the label bookkeeping.
    """
    from cellgan.analysis.image_features import feature_columns

    columns = feature_columns(table, feature_set)
    images = table["image"].astype(str).to_numpy()
    features = _as_matrix(table[columns].to_numpy(dtype=np.float64))
    if labels is not None:
        labels = labels.astype(str)
        labelled = np.isin(images, labels.index.to_numpy())
        if not labelled.any():
            raise ImageClassificationError("no image of the composition table has a label (check the image names)")
        image_labels = labels.loc[images[labelled]].to_numpy()
    if n_clusters is None:
        n_clusters = 2 if labels is None else max(2, len(np.unique(image_labels)))
    clustered = features if feature_set == "composition" else _standardised(features)
    result = {
        "images": int(len(images)),
        "feature_set": feature_set,
        "features": columns,
        "kmeans": {"n_clusters": int(n_clusters), "seed": int(seed)},
    }
    try:
        clusters, centres = cluster_images(clustered, n_clusters=n_clusters, seed=seed)
    except ImageClassificationError as err:  # too few distinct images to cluster: the classifiers still run
        clusters = None
        result["kmeans"]["error"] = str(err)
    else:
        result["kmeans"].update(
            clusters=dict(zip(images.tolist(), clusters.tolist())),
            cluster_sizes=np.bincount(clusters, minlength=n_clusters).tolist(),
            centres=np.round(centres, 6).tolist(),
        )
    if labels is None:
        return result
    result["labelled_images"] = int(labelled.sum())
    result["unlabelled_images"] = images[~labelled].tolist()
    result["labels_without_image"] = sorted(set(labels.index) - set(images))
    if clusters is not None:
        result["kmeans"]["scores"] = score_clusters(clusters[labelled], image_labels)
    for model in CLASSIFIERS:
        scores = cross_validate(
            features[labelled], image_labels, model=model, folds=folds, seed=seed, feature_names=columns
        )
        scores["predictions"] = dict(zip(images[labelled].tolist(), scores["predictions"]))
        scores["n_folds"] = int(folds)
        result[model] = scores
    return result


def classify_run(composition_dir: Path, *, labels: pd.Series | None = None, folds: int = 5, seed: int = 0) -> dict:
    """The image classification of a run's COMPOSITION directory, as the report shows it.

    Without labels, the paper's k-means with k = 2 of the proportion vectors (Hu
    et al., Sec. III-D). With labels, :func:`classify_images` of every feature
    (``all``; the proportions when the directory has no image features) with at
    most ``folds`` folds, fewer when the smallest class has fewer images. A run
    whose images cannot be classified (too few, one class) gets
    ``{"error": reason}`` instead: the run goes on.

    Returns
    -------
    dict
        :func:`classify_images`'s result and a one-line ``summary``, or ``error``.
    """
    from cellgan.analysis.composition import CompositionError, read_composition, read_image_features

    try:
        if labels is None:
            result = classify_images(read_composition(composition_dir), n_clusters=2, seed=seed)
            if "error" in result["kmeans"]:
                return {"error": f"images not clustered: {result['kmeans']['error']}"}
            result["summary"] = f"k-means of the images (k = 2): sizes {result['kmeans']['cluster_sizes']}"
            return result
        try:
            table, feature_set = read_image_features(composition_dir), "all"
        except CompositionError:
            table, feature_set = read_composition(composition_dir), "composition"
        present = labels[labels.index.isin(table["image"].astype(str))]
        smallest = int(present.value_counts().min()) if len(present) else 0
        result = classify_images(
            table, feature_set=feature_set, labels=labels, folds=max(2, min(folds, smallest)), seed=seed
        )
    except ImageClassificationError as err:
        return {"error": f"images not classified: {err}"}
    accuracy = result["linear_svm"]["mean"]["accuracy"]
    result["summary"] = f"linear SVM on {feature_set} features, accuracy {accuracy:.3f} ({result['linear_svm']['n_folds']}-fold CV)"
    return result


def _standardised(features: np.ndarray) -> np.ndarray:
    """Each column less its mean, over its standard deviation (constant columns: 0)."""
    spread = features.std(axis=0)
    return (features - features.mean(axis=0)) / np.where(spread > 0, spread, 1.0)


def _as_matrix(props) -> np.ndarray:
    props = np.asarray(props, dtype=np.float64)
    if props.ndim != 2 or props.shape[1] < 1:
        raise ImageClassificationError(
            f"image features must be a 2-d array (images x features), got shape {props.shape}"
        )
    if not np.isfinite(props).all():
        raise ImageClassificationError("image features must be finite")
    return props
