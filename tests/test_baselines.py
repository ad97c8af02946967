"""The k-means baselines: synthetic checks, and real crchistophenotypes cells."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellgan.analysis.baselines import (
    SHAPE_STAIN_COLUMNS,
    BaselineError,
    centre_colour,
    centre_side,
    kmeans_centre_colour,
    kmeans_neighbourhood_pixels,
    kmeans_pixels,
    kmeans_shape_stain,
)
from cellgan.analysis.probe import ProbeError, linear_probe
from cellgan.metrics.clustering import SCORE_KEYS, adjusted_rand, clustering_scores


def two_kinds_table(n=40, seed=0):
    """Small round dark nuclei and large elongated pale ones, half and half."""
    rng = np.random.default_rng(seed)
    kind = np.repeat([0, 1], n // 2)
    table = pd.DataFrame(
        {
            "area_px": np.where(kind, 300.0, 80.0) + rng.normal(0, 10, n),
            "eccentricity": np.where(kind, 0.9, 0.3) + rng.normal(0, 0.03, n),
            "solidity": 0.95 + rng.normal(0, 0.01, n),
            "perimeter_px": np.where(kind, 80.0, 35.0) + rng.normal(0, 3, n),
            "mean_haematoxylin": np.where(kind, 0.3, 0.8) + rng.normal(0, 0.03, n),
            "mean_eosin": 0.2 + rng.normal(0, 0.02, n),
        }
    )
    return table, kind


def test_kmeans_shape_stain_separates_two_obvious_kinds():
    table, kind = two_kinds_table()
    result = kmeans_shape_stain(table, clusters=2, seed=0)
    assert adjusted_rand(result.clusters, kind) == pytest.approx(1.0)
    assert result.embedding.shape == (40, len(SHAPE_STAIN_COLUMNS))
    np.testing.assert_allclose(result.embedding.mean(axis=0), 0.0, atol=1e-9)
    assert (result.score <= 0).all()


def test_kmeans_shape_stain_fills_missing_values_and_checks_columns():
    table, kind = two_kinds_table()
    table.loc[[0, 25], "solidity"] = np.nan
    result = kmeans_shape_stain(table, clusters=2, seed=1)
    assert np.isfinite(result.embedding).all()
    assert adjusted_rand(result.clusters, kind) == pytest.approx(1.0)
    with pytest.raises(BaselineError, match="mean_eosin"):
        kmeans_shape_stain(table.drop(columns=["mean_eosin"]), clusters=2)
    with pytest.raises(BaselineError, match="3 cells cannot form 4 clusters"):
        kmeans_shape_stain(table.iloc[:3], clusters=4)


def test_centre_colour_is_the_mean_and_spread_of_the_8_um_square():
    rgb = np.full((40, 60, 3), 200, np.uint8)
    rgb[10:18, 20:28] = [100, 50, 150]
    assert centre_side(1.0) == 8 and centre_side(0.5) == 16 and centre_side(0.25) == 32
    assert centre_side(None) == centre_side(float("nan")) == 16  # no pixel size: half a patch of pixels
    with pytest.raises(BaselineError, match="positive number of µm"):
        centre_side(0.0)
    # at 1 µm per pixel the square is the dark square exactly
    np.testing.assert_allclose(centre_colour(rgb, np.array([[23.5, 13.5]]), side=8)[0], [100, 50, 150, 0, 0, 0])
    # at 0.5 µm per pixel it is 16 px wide: a quarter of it dark
    assert centre_colour(rgb, np.array([[23.5, 13.5]]), side=16)[0, 0] == pytest.approx(0.25 * 100 + 0.75 * 200)
    # a centre on the image's corner takes the square inside the image
    np.testing.assert_allclose(centre_colour(rgb, np.array([[0.0, 0.0]]), side=8)[0], [200, 200, 200, 0, 0, 0])


def test_kmeans_centre_colour_separates_dark_from_pale_centres():
    rng = np.random.default_rng(0)
    kind = np.repeat([0, 1], 30)
    descriptions = np.where(kind[:, None], [200.0, 150, 200, 10, 10, 10], [80.0, 40, 120, 20, 20, 20])
    result = kmeans_centre_colour(descriptions + rng.normal(0, 3, descriptions.shape), clusters=2)
    assert adjusted_rand(result.clusters, kind) == pytest.approx(1.0)
    with pytest.raises(BaselineError, match="finite"):
        kmeans_centre_colour(descriptions * np.nan, clusters=2)


def test_kmeans_pixels_separates_dark_from_light_patches():
    rng = np.random.default_rng(0)
    kind = np.repeat([0, 1], 30)
    base = np.where(kind, 200, 60)[:, None, None, None]
    patches = np.clip(base + rng.normal(0, 15, (60, 32, 32, 3)), 0, 255).astype(np.uint8)
    result = kmeans_pixels(patches, clusters=2, seed=0, components=10)
    assert adjusted_rand(result.clusters, kind) == pytest.approx(1.0)
    assert result.embedding.shape == (60, 10)
    with pytest.raises(BaselineError, match="uint8"):
        kmeans_pixels(patches.astype(float), clusters=2)


def test_kmeans_neighbourhood_pixels_are_the_gans_self_labels():
    from cellgan.model.self_labels import neighbourhood_clusters

    rng = np.random.default_rng(1)
    patches = rng.integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    table = pd.DataFrame({"image": np.repeat(["a", "b"], 25), "centroid_x": rng.uniform(0, 100, 50), "centroid_y": 0.0})
    result = kmeans_neighbourhood_pixels(patches, table, clusters=3, neighbours=4, seed=2, components=50)
    teacher = neighbourhood_clusters(patches, table, clusters=3, neighbours=4, seed=2)
    assert np.array_equal(result.clusters, teacher) and result.embedding.shape == (50, 49)
    weights = dict(moments_weight=0.5, crowding_weight=0.2)
    joined = kmeans_neighbourhood_pixels(patches, table, clusters=3, neighbours=4, seed=2, **weights)
    assert np.array_equal(joined.clusters, neighbourhood_clusters(patches, table, clusters=3, neighbours=4, seed=2, **weights))
    assert joined.embedding.shape == (50, 49 + 4 + 3)
    assert np.all(joined.score <= 0)
    alone = kmeans_neighbourhood_pixels(patches, table, clusters=3, neighbours=0, seed=2)
    assert np.array_equal(alone.clusters, kmeans_pixels(patches, clusters=3, seed=2).clusters)
    with pytest.raises(BaselineError, match="49 rows but there are 50 patches"):
        kmeans_neighbourhood_pixels(patches, table.iloc[1:], clusters=3, neighbours=4)


def test_linear_probe_splits_by_cell_when_a_class_lies_in_one_image():
    """One folder per class (``cells from-folder``): folds by image would test on unseen classes."""
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b", "c"], 20)
    features = rng.normal(size=(60, 3)) + 4 * (labels[:, None] == np.array(["a", "b", "c"]))
    by_folder = linear_probe(features, labels, labels, folds=5)
    assert by_folder["split"] == "cell" and "one image only" in by_folder["split_reason"]
    assert by_folder["folds"] == 5 and by_folder["acc"] > 0.9
    one_image = linear_probe(features, labels, np.zeros(60), folds=3)
    assert one_image["split"] == "cell" and "1 image" in one_image["split_reason"]
    mixed = linear_probe(features, labels, np.tile([0, 1], 30), folds=2)
    assert mixed["split"] == "image" and mixed["folds"] == 2
    with pytest.raises(ProbeError, match="at least 2 cells"):
        linear_probe(features[:41], labels[:41], np.zeros(41))


def crc_crops(data_root, images):
    """32×32 crops at the labelled centres (context patches, cut here without segmentation)."""
    from cellgan.io.datasets import load_crchistophenotypes

    records = load_crchistophenotypes(data_root / "crchistophenotypes", splits=("train",))[:images]
    patches, labels, groups = [], [], []
    for record in records:
        rgb = np.pad(record.read_rgb(), ((16, 16), (16, 16), (0, 0)), mode="reflect")
        height, width = rgb.shape[0] - 32, rgb.shape[1] - 32
        for (x, y), label in zip(record.labelled_centres, record.cell_labels):
            col = int(np.clip(round(x), 0, width - 1))
            row = int(np.clip(round(y), 0, height - 1))
            patches.append(rgb[row : row + 32, col : col + 32])
            labels.append(label)
            groups.append(record.image_id)
    return np.stack(patches), np.asarray(labels), np.asarray(groups)


@pytest.mark.realdata
def test_pixel_baseline_on_real_crc_crops(data_root):
    patches, labels, groups = crc_crops(data_root, images=3)
    result = kmeans_pixels(patches, clusters=4, seed=0)
    scores = clustering_scores(result.clusters, labels)
    assert tuple(scores) == SCORE_KEYS
    assert len(np.unique(result.clusters)) == 4
    # Better than one cluster for all (its purity is the largest class share), far from perfect.
    largest_share = np.unique(labels, return_counts=True)[1].max() / len(labels)
    assert largest_share <= scores["purity"] < 0.9
    assert 0.25 < scores["acc"] < 0.8
    assert 0.0 < scores["nmi"] < 0.6
    probe = linear_probe(result.embedding, labels, groups, folds=3)
    assert probe["folds"] == 3
    assert probe["acc"] > probe["majority_acc"] - 0.05


@pytest.mark.realdata
def test_shape_stain_baseline_on_real_segmented_cells(data_root):
    from cellgan.bench.clustering import _segment_config
    from cellgan.io.datasets import load_crchistophenotypes
    from cellgan.segment import cells_at_points

    config = _segment_config("crchistophenotypes", {}, [])
    tables = []
    for record in load_crchistophenotypes(data_root / "crchistophenotypes", splits=("train",))[:2]:
        result = cells_at_points(
            record.read_rgb(), record.labelled_centres, config, image_id=record.image_id, labels=record.cell_labels
        )
        tables.append(result.table)
    table = pd.concat(tables, ignore_index=True)
    result = kmeans_shape_stain(table, clusters=4, seed=0)
    scores = clustering_scores(result.clusters, table["label"].astype(str).to_numpy())
    assert len(np.unique(result.clusters)) == 4
    assert 0.25 < scores["acc"] < 0.9
    assert scores["nmi"] > 0.0
    assert 0.0 <= scores["entropy"] <= 2.0
