"""Image-level k-means and cross-validated linear SVM on composition vectors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cellgan.analysis.image_classification import (
    ImageClassificationError,
    classify_images,
    cluster_images,
    cross_validate,
    read_image_labels,
)


def _two_groups(n_per_group: int = 6, seed: int = 0):
    """Images of two kinds: mostly category 0 ('pos') or mostly category 2 ('neg')."""
    rng = np.random.default_rng(seed)
    pos = rng.dirichlet([8, 1, 1], size=n_per_group)
    neg = rng.dirichlet([1, 1, 8], size=n_per_group)
    props = np.vstack([pos, neg])
    labels = np.array(["pos"] * n_per_group + ["neg"] * n_per_group)
    return props, labels


def _table(props, images=None):
    images = images or [f"img{i:02d}" for i in range(len(props))]
    table = pd.DataFrame({"image": images, "n_cells": 10})
    for k in range(props.shape[1]):
        table[f"prop_{k}"] = props[:, k]
    return table


def test_kmeans_separates_two_obvious_groups():
    props, labels = _two_groups()
    clusters, centres = cluster_images(props, n_clusters=2, seed=0)
    assert clusters.shape == (12,) and centres.shape == (2, 3)
    assert len(set(clusters[:6])) == 1 and len(set(clusters[6:])) == 1 and clusters[0] != clusters[6]
    again, _ = cluster_images(props, n_clusters=2, seed=0)
    np.testing.assert_array_equal(clusters, again)


def test_kmeans_needs_enough_distinct_images():
    with pytest.raises(ImageClassificationError, match="1 images cannot form 2 clusters"):
        cluster_images(np.array([[0.5, 0.5]]), n_clusters=2)
    with pytest.raises(ImageClassificationError, match="only 1 distinct"):
        cluster_images(np.array([[0.5, 0.5]] * 3), n_clusters=2)


def test_svm_cv_scores_separable_groups_perfectly():
    props, labels = _two_groups()
    result = cross_validate(props, labels, folds=3, seed=0)
    assert len(result["folds"]) == 3
    assert result["mean"]["f1_weighted"] == pytest.approx(1.0)
    assert result["mean"]["precision_weighted"] == pytest.approx(1.0)
    assert result["class_counts"] == {"neg": 6, "pos": 6}
    assert result["predictions"] == labels.tolist()


def test_svm_is_never_scored_on_its_training_rows():
    props, labels = _two_groups()
    result = cross_validate(props, labels, folds=4, seed=1)
    tested = []
    for fold in result["folds"]:
        assert not set(fold["train_index"]) & set(fold["test_index"])
        assert set(labels[fold["test_index"]]) == {"neg", "pos"}  # stratified: both classes in each
        tested += fold["test_index"]
    assert sorted(tested) == list(range(len(labels)))  # every image held out exactly once


def test_svm_on_noise_labels_scores_like_chance_not_like_training_fit():
    """Random labels on high-dimensional points: a linear SVM fits its training rows
    perfectly, so scoring on them would give F1 = 1; held-out scoring must not."""
    rng = np.random.default_rng(3)
    props = rng.dirichlet(np.ones(30), size=24)
    labels = np.array(["x", "y"] * 12)
    rng.shuffle(labels)
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    scaled = StandardScaler().fit_transform(props)
    assert LinearSVC().fit(scaled, labels).score(scaled, labels) == 1.0  # training fit is perfect
    result = cross_validate(props, labels, folds=4, seed=0)
    assert result["mean"]["accuracy"] < 0.8


def test_svm_fold_scores_are_the_held_out_ones():
    """The per-fold accuracy equals the agreement of the returned held-out predictions."""
    props, labels = _two_groups(seed=5)
    props[0], props[7] = props[7].copy(), props[0].copy()  # two images that look like the other group
    result = cross_validate(props, labels, folds=3, seed=0)
    predictions = np.array(result["predictions"])
    for fold in result["folds"]:
        test = fold["test_index"]
        assert fold["accuracy"] == pytest.approx(np.mean(predictions[test] == labels[test]))
    assert predictions[0] == "neg" and predictions[7] == "pos"  # the swapped images are misclassified
    assert result["mean"]["accuracy"] == pytest.approx(np.mean([f["accuracy"] for f in result["folds"]]))
    assert result["mean"]["accuracy"] <= 10 / 12


def test_svm_too_few_images_or_classes():
    props, labels = _two_groups(n_per_group=2)
    with pytest.raises(ImageClassificationError, match="4 labelled images are fewer than the 5 folds"):
        cross_validate(props, labels, folds=5)
    with pytest.raises(ImageClassificationError, match=r"at least 3 images.*'neg': 2"):
        cross_validate(props, labels, folds=3)
    with pytest.raises(ImageClassificationError, match="at least 2 image classes"):
        cross_validate(props, ["a"] * 4, folds=2)
    with pytest.raises(ImageClassificationError, match="3 labels for 4 images"):
        cross_validate(props, ["a", "b", "a"], folds=2)


def test_classify_images_with_and_without_labels(tmp_path):
    props, labels = _two_groups()
    table = _table(props)
    unsupervised = classify_images(table, n_clusters=2, seed=0)
    assert "linear_svm" not in unsupervised
    assert sum(unsupervised["kmeans"]["cluster_sizes"]) == 12
    label_csv = tmp_path / "labels.csv"
    rows = list(zip(table["image"], labels)) + [("img_missing", "pos")]
    pd.DataFrame(rows[1:], columns=["image", "label"]).to_csv(label_csv, index=False)  # img00 unlabelled
    result = classify_images(table, labels=read_image_labels(label_csv), folds=3, seed=0)
    assert result["labelled_images"] == 11
    assert result["unlabelled_images"] == ["img00"]
    assert result["labels_without_image"] == ["img_missing"]
    assert result["kmeans"]["scores"]["acc"] == pytest.approx(1.0)
    assert result["kmeans"]["scores"]["ari"] == pytest.approx(1.0)
    assert set(result["linear_svm"]["predictions"]) == set(table["image"][1:])
    json.dumps(result)  # JSON-ready


def test_read_image_labels_errors(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("name,label\na,x\n")
    with pytest.raises(ImageClassificationError, match=r"labels.csv: lacks columns \['image'\]"):
        read_image_labels(path)
    path.write_text("image,label\na,x\na,y\n")
    with pytest.raises(ImageClassificationError, match="'a' is listed twice"):
        read_image_labels(path)
    path.write_text("image,label\na,\n")
    with pytest.raises(ImageClassificationError, match="empty label"):
        read_image_labels(path)
    with pytest.raises(ImageClassificationError, match="no such file"):
        read_image_labels(tmp_path / "nope.csv")
    props, _ = _two_groups()
    with pytest.raises(ImageClassificationError, match="no image of the composition table has a label"):
        classify_images(_table(props), labels=pd.Series({"zzz": "a"}))


def test_cli_classify_images(tmp_path, capsys):
    from cellgan.cli.main import main

    props, labels = _two_groups()
    table = _table(props)
    (tmp_path / "comp").mkdir()
    table.to_parquet(tmp_path / "comp" / "composition.parquet", index=False)
    assert main(["classify-images", str(tmp_path / "comp")]) == 0
    assert "k-means (2 clusters): sizes [6, 6]" in capsys.readouterr().out
    pd.DataFrame({"image": table["image"], "label": labels}).to_csv(tmp_path / "labels.csv", index=False)
    args = ["classify-images", str(tmp_path / "comp"), "--labels", str(tmp_path / "labels.csv"), "--folds", "3"]
    assert main(args + ["--json", str(tmp_path / "out.json")]) == 0
    out = capsys.readouterr().out
    assert "linear svm, 3-fold stratified CV (held-out folds only): f1_weighted 1.000" in out
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["linear_svm"]["mean"]["f1_weighted"] == pytest.approx(1.0)
    assert main(args[:4] + ["--folds", "7"]) == 2
    assert "every class needs at least 7 images" in capsys.readouterr().err
