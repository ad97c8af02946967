"""Named image features (cellgan.analysis.image_features), each checked on a hand-made table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellgan.analysis.composition import composition
from cellgan.analysis.image_features import FEATURE_SETS, ImageFeatureError, feature_columns, image_features
from cellgan.segment.colour import COLOUR_FEATURES, colour_statistics

MPP = 0.5


def _cells() -> pd.DataFrame:
    # image a: two category-0 nuclei 5 px apart and one of category 1 farther off; image b: none
    return pd.DataFrame(
        {
            "image": ["a", "a", "a"],
            "category": [0, 0, 1],
            "centroid_x": [0.0, 3.0, 20.0],
            "centroid_y": [0.0, 4.0, 0.0],
            "area_um2": [10.0, 20.0, 30.0],
            "eccentricity": [0.5, 0.7, 0.9],
            "mean_haematoxylin": [0.2, 0.4, 0.6],
            "mean_eosin": [0.1, 0.3, 0.5],
        }
    )


def _info() -> pd.DataFrame:
    # image a: 150×100 px, half of it tissue; b: 100×100 px of blank glass. Not sorted: the features are.
    return pd.DataFrame(
        {
            "height": [100, 100],
            "width": [100, 150],
            "mpp": [MPP, MPP],
            "tissue_fraction": [0.0, 0.5],
            "colour_rgb_mean_r": [250.0, 180.0],
        },
        index=pd.Index(["b", "a"], name="image"),
    )


@pytest.fixture
def features() -> pd.DataFrame:
    return image_features(_cells(), _info(), categories=3).set_index("image")


def test_one_row_per_image_with_cells_or_not_and_no_nan(features):
    assert features.index.tolist() == ["a", "b"]
    assert np.isfinite(features.to_numpy()).all()
    assert features.loc["a", "n_cells"] == 3 and features.loc["b", "n_cells"] == 0


def test_densities_per_mm2_of_image_and_of_tissue(features):
    area_mm2 = 100 * 150 * MPP**2 / 1e6  # 0.00375 mm²
    assert features.loc["a", "density_image_per_mm2"] == pytest.approx(3 / area_mm2)
    assert features.loc["a", "density_tissue_per_mm2"] == pytest.approx(3 / (0.5 * area_mm2))
    assert features.loc["a", "tissue_fraction"] == 0.5
    assert features.loc["b", ["density_image_per_mm2", "density_tissue_per_mm2", "tissue_fraction"]].eq(0).all()


def test_proportions_are_the_papers_and_zero_without_cells(features):
    np.testing.assert_allclose(features.loc["a", ["prop_0", "prop_1", "prop_2"]], [2 / 3, 1 / 3, 0])
    assert (features.loc["b", ["prop_0", "prop_1", "prop_2"]] == 0).all()


def test_morphology_and_stain_means_per_group_zero_for_an_absent_group(features):
    a = features.loc["a"]
    assert (a["all_area_um2"], a["cat0_area_um2"], a["cat1_area_um2"], a["cat2_area_um2"]) == pytest.approx(
        (20.0, 15.0, 30.0, 0.0)
    )
    assert (a["all_eccentricity"], a["cat0_eccentricity"]) == pytest.approx((0.7, 0.6))
    assert (a["all_haematoxylin"], a["cat1_haematoxylin"]) == pytest.approx((0.4, 0.6))
    assert (a["all_eosin"], a["cat0_eosin"]) == pytest.approx((0.3, 0.2))
    assert (features.loc["b", [c for c in features.columns if c.endswith("_area_um2")]] == 0).all()


def test_nearest_neighbour_distances_in_um_and_the_diagonal_when_alone(features):
    a, b = features.loc["a"], features.loc["b"]
    assert a["cat0_nn_distance_um"] == pytest.approx(5 * MPP)
    assert a["all_nn_distance_um"] == pytest.approx(np.mean([5, 5, np.hypot(17, 4)]) * MPP)
    diagonal_a = np.hypot(100, 150) * MPP
    assert a["cat1_nn_distance_um"] == pytest.approx(diagonal_a)  # one nucleus: no neighbour in the image
    assert a["cat2_nn_distance_um"] == pytest.approx(diagonal_a)
    assert b["all_nn_distance_um"] == pytest.approx(np.hypot(100, 100) * MPP)


def test_neighbour_pair_shares(features):
    a = features.loc["a"]
    pairs = [c for c in features.columns if c.startswith("nn_pair_")]
    assert pairs == ["nn_pair_0_0", "nn_pair_0_1", "nn_pair_0_2", "nn_pair_1_1", "nn_pair_1_2", "nn_pair_2_2"]
    # the two category-0 nuclei are each other's nearest; the category-1 one's nearest is of category 0
    assert (a["nn_pair_0_0"], a["nn_pair_0_1"], a["nn_pair_1_1"]) == pytest.approx((2 / 3, 1 / 3, 0))
    assert a[pairs].sum() == pytest.approx(1.0)
    assert (features.loc["b", pairs] == 0).all()


def test_colour_columns_come_from_the_image_info(features):
    assert features.loc["a", "colour_rgb_mean_r"] == 180.0 and features.loc["b", "colour_rgb_mean_r"] == 250.0


def test_feature_sets_split_the_columns(features):
    table = features.reset_index()
    sets = {name: feature_columns(table, name) for name in FEATURE_SETS}
    assert sets["composition"] == ["prop_0", "prop_1", "prop_2"]
    assert "all_area_um2" in sets["segmentation_only"] and "n_cells" in sets["segmentation_only"]
    assert not any(c.startswith(("cat", "prop_", "nn_pair_", "colour_")) for c in sets["segmentation_only"])
    assert set(sets["cells"]) == set(sets["segmentation_only"]) | {
        c for c in table.columns if c.startswith(("cat", "prop_", "nn_pair_"))
    }
    assert sets["colour_statistics"] == ["colour_rgb_mean_r"]
    assert sets["all"] == sets["cells"] + sets["colour_statistics"]
    with pytest.raises(ImageFeatureError, match="unknown feature set 'texture'"):
        feature_columns(table, "texture")


def test_learned_features_are_per_image_mean_and_spread_and_join_the_cell_set():
    learned = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 40.0]])  # the three cells of image a
    features = image_features(_cells(), _info(), categories=2, cell_features=learned).set_index("image")
    assert features.loc["a", "learned_mean_0"] == pytest.approx(3.0)
    assert features.loc["a", "learned_std_0"] == pytest.approx(np.std([1.0, 3.0, 5.0]))
    assert features.loc["a", "learned_mean_1"] == pytest.approx(20.0)
    assert (features.loc["b", ["learned_mean_0", "learned_std_1"]] == 0).all()  # no cell
    table = features.reset_index()
    assert {"learned_mean_1", "learned_std_0"} <= set(feature_columns(table, "cells"))
    assert not any(c.startswith("learned_") for c in feature_columns(table, "segmentation_only"))
    with pytest.raises(ImageFeatureError, match=r"3 cells but learned features of shape \(2, 2\)"):
        image_features(_cells(), _info(), categories=2, cell_features=learned[:2])
    with pytest.raises(ImageFeatureError, match="NaN or infinite"):
        image_features(_cells(), _info(), categories=2, cell_features=learned * np.nan)


def test_unknown_pixel_size_fills_zero_and_missing_info_is_named():
    info = _info()
    info["mpp"] = None
    features = image_features(_cells(), info, categories=2)
    assert np.isfinite(features.drop(columns="image").to_numpy()).all()
    assert (features["density_image_per_mm2"] == 0).all()
    with pytest.raises(ImageFeatureError, match="no image info"):
        image_features(_cells(), _info().drop(index="a"), categories=2)
    with pytest.raises(ImageFeatureError, match=r"lacks columns \['tissue_fraction'\]"):
        image_features(_cells(), _info().drop(columns="tissue_fraction"), categories=2)


def test_composition_gets_rows_for_images_without_cells_and_densities():
    comp = composition(_cells(), categories=2, image_info=_info()).set_index("image")
    assert comp.loc["b", "n_cells"] == 0 and comp.loc["b", ["prop_0", "prop_1"]].eq(0).all()
    assert comp.loc["a", "density_image_per_mm2"] == pytest.approx(800.0)
    assert comp.loc["b", "density_tissue_per_mm2"] == 0.0


def test_colour_statistics_of_a_two_colour_image():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0] = (255, 255, 255)
    rgb[1] = (0, 128, 255)
    stats = colour_statistics(rgb)
    assert list(stats) == list(COLOUR_FEATURES) and len(stats) == 36
    assert (stats["colour_rgb_mean_r"], stats["colour_rgb_std_r"]) == pytest.approx((127.5, 127.5))
    assert (stats["colour_hist_r_0"], stats["colour_hist_r_7"], stats["colour_hist_g_4"]) == (0.5, 0.5, 0.5)
    assert stats["colour_hed_mean_h"] > 0  # the blue-ish pixels hold haematoxylin; white none
