"""Tiles without nuclei through every stage, and image classification on a small real subset (kather2016)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cellgan.cli.main import main

#: Tiles per class of the subset, and the classes: blank glass and fat hold few or no nuclei.
PER_CLASS = 4
CLASSES = ("04_LYMPHO", "07_ADIPOSE", "08_EMPTY")

TOY_YAML = """\
segment: {max_stain_angle_deg: 25.0}
train: {categories: 3, width: 8, batch_size: 8, iterations: 2, minutes: null, critic_steps: 1, sample_every: 1}
report: {overlay_images: 2, sweep_columns: 4, gallery_cells: 6}
"""


@pytest.fixture(scope="module")
def tiles_run(data_root, tmp_path_factory):
    """``cellgan run --image-labels`` on 12 real tiles at toy training size."""
    root = tmp_path_factory.mktemp("tiles")
    images = root / "images"
    rows = []
    for folder in CLASSES:
        target = images / folder
        target.mkdir(parents=True)
        for path in sorted((data_root / "kather2016" / folder).glob("*.tif"))[:PER_CLASS]:
            shutil.copy(path, target / path.name)
            rows.append((path.stem, folder.split("_", 1)[1]))
    labels = root / "labels.csv"
    pd.DataFrame(rows, columns=["image", "label"]).to_csv(labels, index=False)
    (root / "run.yaml").write_text(TOY_YAML)
    args = ["run", str(images), "--out", str(root / "run"), "--config", str(root / "run.yaml"), "--mpp", "0.495"]
    code = main(args + ["--image-labels", str(labels), "--device", "cpu"])
    assert code == 0
    return root, root / "run", labels


@pytest.mark.realdata
@pytest.mark.slow
def test_tiles_without_nuclei_pass_every_stage(tiles_run):
    _, run, _ = tiles_run
    empty = json.loads((run / "segment.done").read_text())["empty"]
    assert any(reason.startswith("no tissue") for reason in empty.values())  # blank glass is information
    assert json.loads((run / "segment.done").read_text())["failed"] == {}
    comp = pd.read_csv(run / "composition" / "composition.csv")
    assert len(comp) == PER_CLASS * len(CLASSES)
    zero = comp[comp["n_cells"] == 0]
    assert len(zero) == len(empty) > 0
    assert (zero.filter(like="prop_") == 0).all().all() and (zero["density_image_per_mm2"] == 0).all()
    features = pd.read_parquet(run / "composition" / "image_features.parquet")
    assert len(features) == len(comp) and np.isfinite(features.drop(columns="image").to_numpy()).all()
    blank = [name for name, reason in empty.items() if reason.startswith("no tissue")]
    blank_ids = [Path(name).stem for name in blank]
    assert (features.set_index("image").loc[blank_ids, "tissue_fraction"] < 0.001).all()
    assert len(list((run / "export" / "geojson").glob("*.geojson"))) == len(comp) - len(zero)
    report = (run / "report.html").read_text(encoding="utf-8")
    assert "Image-level classification" in report and 'alt="confusion matrix"' in report


@pytest.mark.realdata
@pytest.mark.slow
def test_classify_images_on_the_tiles(tiles_run, capsys):
    root, run, labels = tiles_run
    classification = json.loads((run / "classification" / "classification.json").read_text())
    assert classification["feature_set"] == "all" and classification["kmeans"]["n_clusters"] == 3
    confusion = pd.read_csv(run / "classification" / "confusion_linear_svm.csv", index_col=0)
    assert confusion.to_numpy().sum() == PER_CLASS * len(CLASSES)
    capsys.readouterr()
    for features in ("composition", "cells", "segmentation_only", "colour_statistics", "all"):
        out = root / f"classified_{features}"
        args = ["classify-images", str(run / "composition"), "--labels", str(labels), "--features", features]
        assert main(args + ["--folds", "2", "--out", str(out)]) == 0, features
        printed = capsys.readouterr().out
        assert "linear svm, 2-fold stratified CV" in printed and "logistic regression, 2-fold" in printed
        weights = pd.read_csv(out / "weights_logistic_regression.csv", index_col="feature")
        assert list(weights.columns) == ["ADIPOSE", "EMPTY", "LYMPHO"] and weights.notna().all().all()
        assert (out / "confusion_linear_svm.png").read_bytes()[:4] == b"\x89PNG"
    result = json.loads((root / "classified_all" / "classification.json").read_text())
    # Empty glass, fat and lymphocytes differ in their nuclei and colour: the classifiers must see it.
    assert result["linear_svm"]["mean"]["accuracy"] >= 0.75
    assert result["logistic_regression"]["mean"]["accuracy"] >= 0.75


@pytest.mark.realdata
def test_a_run_without_labels_shows_the_papers_image_kmeans(data_root, tmp_path_factory):
    from test_report import shared_small_run

    run = shared_small_run(data_root, tmp_path_factory) / "run"
    result = json.loads((run / "classification" / "classification.json").read_text())
    report = (run / "report.html").read_text(encoding="utf-8")
    assert "Image-level classification" in report and "confusion matrix" not in report
    if "error" in result:  # two toy iterations can put every cell in one category: the report says so
        assert "cannot form 2 clusters" in result["error"] and "cannot form 2 clusters" in report
    else:
        assert result["feature_set"] == "composition" and result["kmeans"]["cluster_sizes"] == [1, 1]
        assert "k = 2" in report


@pytest.mark.realdata
@pytest.mark.slow
def test_image_classification_bench_on_a_few_tiles_per_class(data_root, tmp_path):
    out = tmp_path / "k.json"
    (tmp_path / "run.yaml").write_text("segment:\n  max_stain_angle_deg: 25.0\ntrain:\n  batch_size: 16\n  critic_steps: 1\n")
    args = ["bench", "image-classification", "--dataset", "kather2016", "--data-root", str(data_root)]
    args += ["--json", str(out), "--limit-per-class", "4", "--iterations", "1", "--seeds", "2", "--jobs", "2"]
    args += ["--folds", "2", "--device", "cpu", "--work-dir", str(tmp_path / "work"), "--config", str(tmp_path / "run.yaml")]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert result["images"] == 32
    for name in ("all", "cells", "segmentation_only", "colour_statistics"):
        assert set(result[name]) >= {"accuracy", "weighted_f1"}
        assert 0.0 <= result[name]["accuracy"]["mean"] <= 1.0
    assert set(result["kmeans"]) >= {"accuracy", "nmi"}
    assert {f"train_seconds_seed{s}" for s in (0, 1)} <= set(result["timings"])
