"""Assigning cells with a (tiny, random) critic, writing ASSIGNMENTS, and evaluating them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from cellgan.analysis.assign import (
    AssignmentError,
    assign_cells,
    assignments_table,
    evaluate_assignments,
    neighbourhood_probabilities,
    read_labels,
    reading_neighbours,
    save_assignments,
)
from cellgan.cli.main import main
from cellgan.metrics.clustering import clustering_scores
from cellgan.model import TrainConfig
from cellgan.model.critic import Critic
from cellgan.report.gallery import category_gallery, write_assignments_gallery


def random_patches(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def cell_table(images, per_image, labels=None):
    rows = []
    for image in images:
        for i in range(per_image):
            rows.append({"image": image, "cell_id": i, "area_px": 100.0 + i, "label": None})
    table = pd.DataFrame(rows)
    if labels is not None:
        table["label"] = pd.Series(labels, dtype=object)
    return table


def test_assign_cells_gives_probabilities_and_features_independent_of_batching():
    critic = Critic(categories=3, width=8, seed=1)
    patches = random_patches(37)
    probs, features = assign_cells(critic, patches, batch_size=5)
    assert probs.shape == (37, 3) and features.shape == (37, 8)
    assert probs.dtype == np.float32 and features.dtype == np.float32
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert critic.training  # mode restored
    probs_one_batch, features_one_batch = assign_cells(critic, patches, batch_size=64)
    np.testing.assert_allclose(probs, probs_one_batch, atol=1e-5)
    np.testing.assert_allclose(features, features_one_batch, atol=1e-5)
    # The same as the critic's own forward pass on x / 127.5 - 1.
    x = torch.from_numpy(patches[:4]).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        expected = torch.softmax(critic(x).q_logits, dim=1).numpy()
    np.testing.assert_allclose(probs[:4], expected, atol=1e-5)


def test_assign_cells_rejects_float_patches():
    with pytest.raises(AssignmentError, match="uint8"):
        assign_cells(Critic(categories=2, width=8), np.zeros((2, 32, 32, 3), np.float32))


def test_assignments_table_puts_argmax_and_probabilities_first():
    table = cell_table(["a"], 3)
    probs = np.array([[0.1, 0.9], [0.6, 0.4], [0.5, 0.5]])
    result = assignments_table(table, probs)
    assert list(result.columns[:5]) == ["image", "cell_id", "category", "prob_0", "prob_1"]
    assert result["category"].tolist() == [1, 0, 0]
    assert "area_px" in result.columns and "label" in result.columns
    with pytest.raises(AssignmentError, match="3 cells"):
        assignments_table(table, probs[:2])


def placed_cells():
    """Two images: in "a" four cells on a line (x = 0, 1, 2, 10), in "b" one cell alone."""
    return pd.DataFrame(
        {
            "image": ["a", "a", "a", "a", "b"],
            "cell_id": [0, 1, 2, 3, 0],
            "centroid_x": [0.0, 1.0, 2.0, 10.0, 0.0],
            "centroid_y": [0.0] * 5,
        }
    )


def test_neighbourhood_probabilities_average_each_cell_with_its_nearest_in_its_own_image():
    table = placed_cells()
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(neighbourhood_probabilities(table, probs, 0), probs)
    read = neighbourhood_probabilities(table, probs, 2)
    # cell 1 (x=1) with its two nearest (x=0, x=2): two votes for 0 of three
    np.testing.assert_allclose(read[1], [2 / 3, 1 / 3])
    # cell 0 (x=0) with x=1 and x=2; the cell alone in image b keeps its own vote
    np.testing.assert_allclose(read[0], [2 / 3, 1 / 3])
    np.testing.assert_allclose(read[4], [0.0, 1.0])
    np.testing.assert_allclose(read.sum(axis=1), 1.0)


def test_assignments_table_read_over_neighbours_keeps_the_cells_own_argmax():
    table = placed_cells()
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    result = assignments_table(table, probs, neighbours=2)
    assert result["own_category"].tolist() == [0, 1, 0, 0, 1]
    assert result["category"].tolist() == [0, 0, 0, 0, 1]  # cell 1 outvoted by its neighbours
    np.testing.assert_allclose(result["prob_0"][1], (0.9 + 0.2 + 0.9) / 3)
    assert "own_category" not in assignments_table(table, probs).columns


def test_reading_neighbours_follows_the_models_teacher_unless_given():
    assert reading_neighbours(TrainConfig()) == 0  # the paper: each cell alone
    taught = TrainConfig(lambda_self_label=1.0, self_label_neighbours=8)
    assert reading_neighbours(taught) == 8
    assert reading_neighbours(taught, 0) == 0
    assert reading_neighbours(TrainConfig(), 3) == 3
    with pytest.raises(AssignmentError, match="at least 0"):
        reading_neighbours(taught, -1)


def test_save_assignments_aligns_parquet_and_features(tmp_path):
    critic = Critic(categories=4, width=8)
    table = cell_table(["img1", "img2"], 6)
    patches = random_patches(12)
    probs, features = assign_cells(critic, patches)
    meta = save_assignments(tmp_path / "out", table, probs, features, extra_meta={"cells": "x"})
    write_assignments_gallery(tmp_path / "out", patches)
    saved = pd.read_parquet(tmp_path / "out" / "assignments.parquet")
    saved_features = np.load(tmp_path / "out" / "features.npy")
    assert len(saved) == len(saved_features) == 12
    np.testing.assert_allclose(saved_features, features)
    np.testing.assert_allclose(saved[[f"prob_{k}" for k in range(4)]].to_numpy(), probs, atol=1e-7)
    assert saved[["image", "cell_id"]].values.tolist() == table[["image", "cell_id"]].values.tolist()
    on_disk = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert on_disk == meta and meta["categories"] == 4 and meta["width"] == 8 and meta["cells"] == "x"
    assert sum(meta["cells_per_category"]) == 12
    assert (tmp_path / "out" / "gallery.png").is_file()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def labelled_assignments(tmp_path):
    """K = 5 categories (category 3 empty) against 3 classes; 4 images; 2 cells unlabelled.

    The features separate the classes linearly, so the probe must reach accuracy 1.
    """
    rng = np.random.default_rng(0)
    classes = np.array(["epi", "fib", "inf"])
    true = np.tile(np.repeat(classes, 10), 4)  # 4 images × 30 cells
    category = np.select([true == "epi", true == "fib"], [0, 1], 2)
    category[::7] = 4  # some cells of every class in category 4
    probs = np.full((len(true), 5), 0.05)
    probs[np.arange(len(true)), category] = 0.8
    onehot = (true[:, None] == classes[None, :]).astype(np.float32)
    features = onehot * 5 + rng.normal(0, 0.1, (len(true), 3)).astype(np.float32)
    labels = true.astype(object)
    labels[[3, 50]] = None
    table = cell_table([f"img{i}" for i in range(4)], 30, labels=labels)
    save_assignments(tmp_path, table, probs, features)
    return category, true, labels


def test_evaluate_with_more_categories_than_classes_and_an_empty_one(tmp_path):
    category, true, labels = labelled_assignments(tmp_path)
    result = evaluate_assignments(tmp_path)
    keep = np.array([label is not None for label in labels])
    assert result["n_cells"] == 120 and result["n_labelled"] == 118
    assert result["categories"] == 5
    assert result["cells_per_category"][3] == 0
    assert result["scores"] == pytest.approx(clustering_scores(category[keep], true[keep]))
    assert "3" not in result["contingency"]
    assert sum(sum(row.values()) for row in result["contingency"].values()) == 118
    assert result["linear_probe"]["acc"] == pytest.approx(1.0)
    assert result["linear_probe"]["folds"] == 4
    assert result["linear_probe"]["majority_acc"] < 0.5


def test_evaluate_with_a_labels_file_overrides_the_table(tmp_path):
    category, true, _ = labelled_assignments(tmp_path / "a")
    # Only image img0 labelled, every cell called "x" except one "y".
    labels = pd.DataFrame({"image": "img0", "cell_id": np.arange(30), "label": ["x"] * 29 + ["y"]})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    result = evaluate_assignments(tmp_path / "a", labels=tmp_path / "labels.csv")
    assert result["n_labelled"] == 30
    assert result["class_sizes"] == {"x": 29, "y": 1}
    assert "error" in result["linear_probe"] and "at least 2 cells" in result["linear_probe"]["error"]


def test_evaluate_without_any_label_says_so(tmp_path):
    table = cell_table(["a"], 4)
    save_assignments(tmp_path, table, np.full((4, 2), 0.5), np.zeros((4, 3)))
    with pytest.raises(AssignmentError, match="no cell has a label"):
        evaluate_assignments(tmp_path)


def test_read_labels_rejects_bad_files(tmp_path):
    (tmp_path / "dup.csv").write_text("image,cell_id,label\na,0,x\na,0,y\n")
    with pytest.raises(AssignmentError, match="labelled twice"):
        read_labels(tmp_path / "dup.csv")
    (tmp_path / "cols.csv").write_text("image,label\na,x\n")
    with pytest.raises(AssignmentError, match="cell_id"):
        read_labels(tmp_path / "cols.csv")
    with pytest.raises(AssignmentError, match="no such labels file"):
        read_labels(tmp_path / "missing.csv")


def test_evaluate_command_prints_and_writes_json(tmp_path, capsys):
    labelled_assignments(tmp_path / "a")
    status = main(["evaluate", str(tmp_path / "a"), "--json", str(tmp_path / "eval.json"), "--folds", "2"])
    assert status == 0
    out = capsys.readouterr().out
    assert "purity" in out and "linear probe (2 folds by image)" in out
    written = json.loads((tmp_path / "eval.json").read_text())
    assert written["linear_probe"]["folds"] == 2
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "not an assignments directory" in capsys.readouterr().err


def test_gallery_has_a_row_per_category_and_shows_the_best_cells_first():
    patches = np.zeros((6, 32, 32, 3), np.uint8)
    patches[:, :, :] = np.arange(6)[:, None, None, None] * 40  # grey level identifies the cell
    categories = np.array([0, 0, 0, 2, 2, 2])
    scores = np.array([0.1, 0.9, 0.5, 0.3, 0.2, 0.7])
    image = category_gallery(patches, categories, scores, n_categories=3, per_category=2, scale=1, title="t")
    assert image.dtype == np.uint8 and image.ndim == 3
    # Row 0 starts with cell 1 (score 0.9), then cell 2; row 1 (category 1) is empty.
    row_h = 52 + 4
    first = image[26 + 10, 190 + 10]
    second = image[26 + 10, 190 + 36 + 10]
    empty = image[26 + row_h + 10, 190 + 10]
    assert tuple(first) == (40, 40, 40) and tuple(second) == (80, 80, 80)
    assert tuple(empty) == (225, 225, 225)


@pytest.fixture(scope="module")
def tiny_model_and_store(tmp_path_factory):
    """A width-8 model trained for one iteration, and a store of 2 images with random patches."""
    from cellgan.io.cellstore import CellStore
    from cellgan.model import TrainConfig, train

    root = tmp_path_factory.mktemp("tiny")
    patches = random_patches(20, seed=3)
    config = TrainConfig(categories=3, width=8, batch_size=4, critic_steps=1, iterations=1, minutes=None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a width-8 network gains nothing from threads on a busy 2-core machine
    try:
        train(patches, root / "model", config, device="cpu", progress=False)
    finally:
        torch.set_num_threads(threads)
    store = CellStore.create(root / "cells", patch_mode="masked")
    for image, rows in (("img_a", slice(0, 12)), ("img_b", slice(12, 20))):
        n = rows.stop - rows.start
        table = pd.DataFrame(
            {
                "cell_id": np.arange(n),
                "centroid_x": 1.0,
                "centroid_y": 1.0,
                "bbox_x0": 0,
                "bbox_y0": 0,
                "bbox_x1": 2,
                "bbox_y1": 2,
                "area_px": 4.0,
                "perimeter_px": 8.0,
                "eccentricity": 0.0,
                "solidity": 1.0,
                "mean_haematoxylin": 0.5,
                "mean_eosin": 0.1,
                "source": "points",
                "label": ["x", "y"] * (n // 2),
            }
        )
        store.write_image(image, table, patches[rows])
    return root


def test_assign_command_writes_aligned_assignments(tiny_model_and_store, tmp_path, capsys):
    root = tiny_model_and_store
    status = main(["assign", str(root / "model"), str(root / "cells"), "--out", str(tmp_path / "a"), "--device", "cpu"])
    assert status == 0
    assert "20 cells from 2 images" in capsys.readouterr().out
    table = pd.read_parquet(tmp_path / "a" / "assignments.parquet")
    features = np.load(tmp_path / "a" / "features.npy")
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert len(table) == len(features) == 20 and features.shape[1] == 8
    assert meta["categories"] == 3 and meta["n_images"] == 2
    probs = table[["prob_0", "prob_1", "prob_2"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (table["category"].to_numpy() == probs.argmax(axis=1)).all()
    assert table["image"].tolist() == ["img_a"] * 12 + ["img_b"] * 8
    assert table["cell_id"].tolist() == list(range(12)) + list(range(8))
    # The same probabilities as the critic applied directly to the store's patches.
    from cellgan.io.cellstore import CellStore
    from cellgan.model import load_trained

    model = load_trained(root / "model", device="cpu")
    direct, direct_features = assign_cells(model, CellStore.open(root / "cells").read_patches())
    np.testing.assert_allclose(probs, direct, atol=1e-6)
    np.testing.assert_allclose(features, direct_features, atol=1e-6)


def test_assign_command_names_a_missing_model(tiny_model_and_store, tmp_path, capsys):
    root = tiny_model_and_store
    status = main(["assign", str(tmp_path / "nope"), str(root / "cells"), "--out", str(tmp_path / "a")])
    assert status == 2
    assert "nope" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
