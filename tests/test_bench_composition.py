"""`cellgan bench composition`: scoring on hand-made tables, and a tiny real end-to-end run."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from cellgan.bench.composition import (
    category_class_mapping,
    composition_scores,
    image_classification_scores,
)


def test_mapping_is_one_to_one_and_leaves_extra_categories_unmapped():
    category = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    truth = ["b", "b", "a", "a", "a", "b", "b", "b", "a"]
    # counts: cat0 a1 b2; cat1 a2 b0; cat2 a1 b3 -> best one-to-one: 1->a, 2->b (5 cells); 0 unmapped
    assert category_class_mapping(category, truth, categories=3, classes=["a", "b"]) == {0: None, 1: "a", 2: "b"}


def _record(image_id, xy, labels):
    return SimpleNamespace(image_id=image_id, labelled_centres=np.array(xy, float), cell_labels=np.array(labels))


def test_composition_scores_by_hand():
    records = [
        _record("i1", [(10, 10), (30, 30), (50, 50), (70, 70)], ["epi", "epi", "inf", "inf"]),
        _record("i2", [(10, 10), (20, 20), (40, 40)], ["inf", "inf", "epi"]),
        _record("i3", [(5, 5)], ["epi"]),  # nothing detected: not scored
    ]
    detected = pd.DataFrame(
        {
            "image": ["i1"] * 4 + ["i2"] * 3,
            # i1: (90, 90) matches nothing and (70, 70) is missed; i2: all three within 6 px
            "centroid_x": [11, 30, 50, 90, 10, 20, 40],
            "centroid_y": [10, 32, 50, 90, 11, 20, 41],
            "category": [0, 0, 1, 1, 1, 0, 0],
        }
    )
    scores = composition_scores(detected, records, categories=2)
    # pairs: cat0 = epi, epi, inf, epi; cat1 = inf, inf -> 0 -> epi, 1 -> inf, 5 of 6 agree
    assert scores["mapping"] == {"0": "epi", "1": "inf"}
    assert scores["matched_cells"] == 6 and scores["labelled_cells"] == 8
    assert scores["mapped_agreement"] == pytest.approx(5 / 6)
    # i1 predicted (2/3, 1/3) vs true (1/2, 1/2); i2 predicted (2/3, 1/3) vs true (1/3, 2/3)
    assert scores["composition_mae"] == pytest.approx((1 / 6 + 1 / 6 + 1 / 3 + 1 / 3) / 4)
    assert scores["composition_pearson"] == pytest.approx(-1 / np.sqrt(2))
    assert scores["scored_images"] == 2
    # mean true composition (5/12, 7/12): |1/2 - 5/12| etc. -> (1/12 + 1/12 + 1/12 + 1/12) / 4
    assert scores["reference_mae_constant"] == pytest.approx(1 / 12)
    rows = {r["image"]: r for r in scores["per_image"]}
    assert rows["i1"]["dominant_type"] == "epi" and rows["i2"]["dominant_type"] == "inf"
    assert rows["i3"]["matched"] == 0 and "predicted_proportions" not in rows["i3"]
    assert rows["i2"]["predicted_proportions"] == {"epi": pytest.approx(2 / 3), "inf": pytest.approx(1 / 3)}


def test_composition_scores_perfect_prediction():
    records = [_record("a", [(10, 10), (20, 20), (30, 30)], ["x", "y", "y"]), _record("b", [(5, 5)], ["x"])]
    detected = pd.DataFrame(
        {
            "image": ["a", "a", "a", "b"],
            "centroid_x": [10, 20, 30, 5],
            "centroid_y": [10, 20, 30, 5],
            "category": [1, 0, 0, 1],
        }
    )
    scores = composition_scores(detected, records, categories=2)
    assert scores["composition_mae"] == 0.0 and scores["composition_pearson"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="within 6.0 px"):
        composition_scores(detected.assign(centroid_x=500.0), records, categories=2)


def test_image_classification_scores_leave_rare_types_out_of_the_svm():
    rng = np.random.default_rng(0)
    types = ["epi"] * 6 + ["inf"] * 6 + ["oth"]
    props = np.array([rng.dirichlet([9, 1, 1]) if t == "epi" else rng.dirichlet([1, 9, 1]) for t in types])
    images = [f"img{i}" for i in range(len(types))]
    comp = pd.DataFrame({"image": images, "n_cells": 20, **{f"prop_{k}": props[:, k] for k in range(3)}})
    result = image_classification_scores(comp, pd.Series(types, index=images), folds=3, seed=0)
    assert result["svm_left_out_images"] == ["img12"]
    assert result["svm"]["class_counts"] == {"epi": 6, "inf": 6}
    assert result["svm"]["mean"]["f1_weighted"] == pytest.approx(1.0)
    assert result["kmeans"]["n_clusters"] == 3
    tiny = image_classification_scores(comp.iloc[:2], pd.Series(types[:2], index=images[:2]), folds=3, seed=0)
    assert "error" in tiny["svm"]
    json.dumps(result)


def _two_image_args(data_root, tmp_path, out):
    """The bench's arguments for a 1-iteration width-8 run on the first two images, writing ``out``."""
    args = ["bench", "composition", "--data-root", str(data_root), "--json", str(out), "--limit-images", "2"]
    return args + ["--iterations", "1", "--width", "8", "--device", "cpu", "--work-dir", str(tmp_path / "work")]


@pytest.mark.realdata
@pytest.mark.slow
def test_bench_runs_end_to_end_on_two_images(data_root, tmp_path):
    from cellgan.cli.main import main

    out = tmp_path / "bench.json"
    args = _two_image_args(data_root, tmp_path, out)
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert result["images"] == 2 and result["detected_cells"] > 100
    assert 0.0 <= result["composition_mae"] <= 1.0
    assert 0.3 < result["matched_share"] <= 1.0  # most labelled nuclei are detected
    assert sum(result["cells_per_category"]) == result["detected_cells"]
    assert set(result["category_to_type"].values()) <= {"epithelial", "fibroblast", "inflammatory", "others", None}
    assert "error" in result["image_classification"]["svm"]  # 2 images cannot fill 4 folds
    assert {"segment_seconds", "train_seconds", "assign_seconds"} <= set(result["timings"])


@pytest.mark.realdata
@pytest.mark.slow
def test_bench_trains_two_seeds_side_by_side_and_reports_their_mean(data_root, tmp_path):
    from cellgan.cli.main import main

    out = tmp_path / "bench.json"
    args = _two_image_args(data_root, tmp_path, out)
    assert main(args + ["--seeds", "2", "--jobs", "2", "--seed", "3"]) == 0
    result = json.loads(out.read_text())
    assert result["seeds"] == [3, 4] and [run["seed"] for run in result["per_seed"]] == [3, 4]
    maes = [run["composition_mae"] for run in result["per_seed"]]
    assert result["over_seeds"]["composition_mae"]["per_seed"] == maes
    assert result["composition_mae"] == pytest.approx(np.mean(maes))
    assert result["over_seeds"]["composition_mae"]["std"] == pytest.approx(np.std(maes))
    assert result["config"]["train"]["seed"] == [3, 4] and result["config"]["jobs"] == 2
    assert all(run["timings"]["generator_iterations"] == 1 for run in result["per_seed"])
    assert all(sum(run["cells_per_category"]) == result["detected_cells"] for run in result["per_seed"])
    assert (tmp_path / "work" / "model_seed4").is_dir()


@pytest.mark.realdata
@pytest.mark.slow
def test_bench_takes_the_recipe_from_a_config(data_root, tmp_path):
    from cellgan.cli.main import main

    config = tmp_path / "recipe.yaml"
    config.write_text(
        "segment:\n  patch_mode: faded\n  reinhard_reference: typical\n"
        "train:\n  lambda_self_label: 1.0\n  self_label_neighbours: 8\n  separate_q: true\n"
    )
    out = tmp_path / "bench.json"
    args = _two_image_args(data_root, tmp_path, out)
    assert main(args + ["--config", str(config)]) == 0
    result = json.loads(out.read_text())
    segment, train = result["config"]["segment"], result["config"]["train"]
    assert segment["patch_mode"] == "faded" and segment["reinhard_reference"].endswith(".png")
    assert train["separate_q"] and train["self_label_neighbours"] == 8 and train["width"] == 8
    assert result["images"] == 2 and sum(result["cells_per_category"]) == result["detected_cells"]

    config.write_text("train:\n  separate_q: maybe\n")
    assert main(args + ["--config", str(config)]) == 2
