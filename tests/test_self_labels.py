"""cellgan.model.self_labels: clusters of the cells' neighbourhoods as targets for Q."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellgan.model.self_labels import neighbourhood_clusters
from cellgan.neighbourhood import neighbourhood_average, pixel_pca


def _two_tissues(n_per=30, seed=0):
    """Two images: one of dark cells, one of pale cells, each with some cells of the other kind."""
    rng = np.random.default_rng(seed)
    patches, rows = [], []
    for image, (common, rare) in enumerate(((60, 200), (200, 60))):
        for i in range(n_per):
            level = rare if i % 10 == 0 else common
            patches.append(np.clip(rng.normal(level, 25, (32, 32, 3)), 0, 255).astype(np.uint8))
            rows.append((f"img{image}", float(i % 6) * 10, float(i // 6) * 10))
    return np.stack(patches), pd.DataFrame(rows, columns=["image", "centroid_x", "centroid_y"])


def test_pixel_pca_shape_and_seeded():
    patches, _ = _two_tissues()
    a, b = pixel_pca(patches, seed=1), pixel_pca(patches, seed=1)
    assert a.shape == (60, 50) and np.array_equal(a, b)
    assert pixel_pca(patches[:10], seed=0).shape == (10, 9)  # no more components than cells − 1


def test_neighbourhood_average_is_the_mean_over_the_cell_and_its_partners():
    embedding = np.array([[0.0], [3.0], [6.0]])
    assert neighbourhood_average(embedding, None) is embedding
    assert neighbourhood_average(embedding, np.array([[1, 2], [0, 0], [1, 1]])).ravel().tolist() == [3.0, 1.0, 4.0]


def test_alone_the_clusters_follow_each_cell_and_with_neighbours_its_tissue():
    patches, table = _two_tissues()
    tissue = (table["image"] == "img1").to_numpy()
    darkness = patches.reshape(60, -1).mean(1) < 128
    alone = neighbourhood_clusters(patches, None, clusters=2, neighbours=0, seed=0)
    assert len(np.unique(alone)) == 2 and (alone == alone[np.argmax(darkness)]).tolist() == darkness.tolist()
    smoothed = neighbourhood_clusters(patches, table, clusters=2, neighbours=8, seed=0)
    assert smoothed.dtype == np.int64
    assert (smoothed == smoothed[-1]).tolist() == tissue.tolist()  # the rare cells follow their neighbours


def test_neighbourhoods_need_the_table():
    patches, table = _two_tissues()
    with pytest.raises(ValueError, match="got no cell table"):
        neighbourhood_clusters(patches, None, clusters=2, neighbours=3, seed=0)
    with pytest.raises(ValueError, match="a cell table of 59 rows"):
        neighbourhood_clusters(patches, table.iloc[1:], clusters=2, neighbours=3, seed=0)


def test_crowding_splits_cells_that_look_alike_by_how_densely_they_lie():
    rng = np.random.default_rng(0)
    patches = np.clip(rng.normal(128, 20, (80, 32, 32, 3)), 0, 255).astype(np.uint8)
    dense = np.arange(80) % 2 == 0  # interleaved: the same pixels' statistics in both groups
    xy = np.where(dense[:, None], [[3.0, 0.0]], [[40.0, 0.0]]) * np.c_[np.arange(80) // 2, np.zeros(80)]
    table = pd.DataFrame({"image": np.where(dense, "a", "b"), "centroid_x": xy[:, 0], "centroid_y": xy[:, 1]})
    plain = neighbourhood_clusters(patches, table, clusters=2, neighbours=0, seed=0)
    crowded = neighbourhood_clusters(patches, table, clusters=2, neighbours=0, seed=0, crowding_weight=4.0)
    assert abs(np.corrcoef(plain, dense)[0, 1]) < 0.5  # pixels alone do not see it
    assert (crowded == crowded[0]).tolist() == dense.tolist()
    with pytest.raises(ValueError, match="got no cell table"):
        neighbourhood_clusters(patches, None, clusters=2, neighbours=0, seed=0, crowding_weight=1.0)


def test_training_with_crowding_needs_the_cell_table(tmp_path):
    from cellgan.errors import ConfigError
    from cellgan.model import TrainConfig, train

    config = TrainConfig(width=8, batch_size=8, iterations=1, minutes=None, lambda_self_label=1.0,
                         self_label_neighbours=0, self_label_crowding=0.2)
    with pytest.raises(ConfigError, match="self_label_crowding needs the cell table"):
        train(np.zeros((16, 32, 32, 3), np.uint8), tmp_path / "m", config, device="cpu", progress=False)
    with pytest.raises(ConfigError, match="self_label_crowding must be a non-negative number"):
        TrainConfig(self_label_crowding=-0.1)
