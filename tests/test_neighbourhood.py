"""cellgan.neighbourhood: each cell's nearest cells in its own image."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellgan.neighbourhood import NeighbourError, nearest_cells


def _table(rows):
    return pd.DataFrame(rows, columns=["image", "centroid_x", "centroid_y"])


def test_nearest_cells_stay_in_their_image_nearest_first():
    table = _table(
        [("a", 0, 0), ("b", 1, 0), ("a", 10, 0), ("a", 3, 0), ("b", 50, 0), ("a", 4, 0), ("b", 0, 0)]
    )
    near = nearest_cells(table, 2)
    assert near.shape == (7, 2) and near.dtype == np.int64
    # image a: rows 0 (x 0), 2 (x 10), 3 (x 3), 5 (x 4); image b: rows 1 (x 1), 4 (x 50), 6 (x 0)
    assert near.tolist() == [[3, 5], [6, 4], [5, 3], [5, 0], [1, 6], [3, 0], [1, 4]]


def test_small_images_repeat_their_farthest_neighbour_and_a_lone_cell_pairs_with_itself():
    table = _table([("a", 0, 0), ("a", 5, 5), ("solo", 7, 7)])
    assert nearest_cells(table, 3).tolist() == [[1, 1, 1], [0, 0, 0], [2, 2, 2]]


def test_coincident_cells_never_list_themselves_when_others_exist():
    table = _table([("a", 1, 1), ("a", 1, 1), ("a", 1, 1), ("a", 9, 9)])
    near = nearest_cells(table, 2)
    assert all(i not in row for i, row in enumerate(near.tolist()))


def test_bad_tables_are_refused():
    with pytest.raises(NeighbourError, match="centroid_y"):
        nearest_cells(pd.DataFrame({"image": ["a"], "centroid_x": [0.0]}), 1)
    with pytest.raises(NeighbourError, match="1 cells have no finite centroid"):
        nearest_cells(_table([("a", 0, 0), ("a", np.nan, 1)]), 1)
    with pytest.raises(NeighbourError, match="at least 1"):
        nearest_cells(_table([("a", 0, 0)]), 0)


def test_nucleus_moments_are_finite_for_blank_and_noise_patches():
    import numpy as np

    from cellgan.neighbourhood import neighbourhood_pixels, nucleus_moments

    rng = np.random.default_rng(0)
    patches = np.concatenate(
        [np.full((3, 32, 32, 3), 255, np.uint8), rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)]
    )
    assert np.isfinite(nucleus_moments(patches)).all()
    assert np.isfinite(neighbourhood_pixels(patches, None, neighbours=0, seed=0, moments_weight=0.5)).all()


def test_crowding_is_the_log_distance_to_the_1st_4th_and_8th_nearest_cell_in_um():
    from cellgan.neighbourhood import crowding

    # image "dense": nine cells 2 px apart on a line; image "sparse": nine cells 20 px apart
    rows = [(image, step * i, 0.0) for image, step in (("dense", 2.0), ("sparse", 20.0)) for i in range(9)]
    table = _table(rows)
    in_px = crowding(table)
    assert in_px.shape == (18, 3)
    # the end cell of each line: its 1st, 4th and 8th nearest lie 1, 4 and 8 steps away
    assert np.allclose(in_px[0], np.log1p([2.0, 8.0, 16.0])) and np.allclose(in_px[9], np.log1p([20.0, 80.0, 160.0]))
    assert (in_px[:9] < in_px[9:]).all()  # every dense cell is more crowded than every sparse one
    table["area_px"], table["area_um2"] = 100.0, 25.0  # 0.5 µm per pixel
    assert np.allclose(crowding(table)[9], np.log1p([10.0, 40.0, 80.0]))
    table.loc[9:, "area_um2"] = np.nan  # pixel size unknown: pixels
    assert np.allclose(crowding(table)[9], in_px[9])


def test_place_description_joins_crowding_and_moments_with_their_neighbourhood_mean():
    from cellgan.neighbourhood import PLACE_FEATURES, crowding, nucleus_moments, place_description

    rows = [(image, step * i, 0.0) for image, step in (("dense", 2.0), ("sparse", 20.0)) for i in range(9)]
    table = _table(rows)
    patches = np.random.default_rng(0).integers(0, 256, (18, 32, 32, 3), dtype=np.uint8)
    place = place_description(patches, table, neighbours=2)
    assert place.shape == (18, PLACE_FEATURES) and place.dtype == np.float32
    own = np.concatenate([crowding(table), nucleus_moments(patches)], axis=1)
    assert np.allclose(place[:, :7], own, atol=1e-5)
    # cell 0 of the dense line: its 2 nearest are cells 1 and 2 of the same image
    assert np.allclose(place[0, 7:], own[[0, 1, 2]].mean(axis=0), atol=1e-5)
    assert np.allclose(place_description(patches, table, neighbours=0)[:, 7:], own, atol=1e-5)


def test_crowding_reads_a_cell_at_the_edge_of_the_field_as_crowded_as_one_inside():
    from cellgan.neighbourhood import _field, crowding, edge_corrected, nearest_cells

    # a 20 x 20 grid, 10 px apart: every cell lies in tissue of the same density
    grid = [("a", 10.0 * i, 10.0 * j) for i in range(20) for j in range(20)]
    table = _table(grid)
    xy = table[["centroid_x", "centroid_y"]].to_numpy()
    raw = np.linalg.norm(xy[nearest_cells(table, 8)] - xy[:, None], axis=2)[:, [3, 7]]
    corrected = np.expm1(crowding(table))[:, 1:]  # the 4th and 8th nearest
    inside, corner, edge = 10 * 20 + 10, 0, 10  # (100, 100), (0, 0), (0, 100)
    assert np.allclose(raw[inside], [10.0, 10.0 * np.sqrt(2)])
    assert (raw[corner] > 1.4 * raw[inside]).all() and raw[edge, 0] > 1.4 * raw[inside, 0]
    assert np.allclose(corrected[corner], corrected[inside], rtol=0.15)
    assert np.allclose(corrected[edge], corrected[inside], rtol=0.15)
    assert np.allclose(corrected[inside], raw[inside])  # away from the edge nothing changes
    # a field given explicitly: a disc wholly inside is kept, half outside shrinks by sqrt(1/2)
    lo, hi = np.array([[0.0, 0.0], [0.0, 0.0]]), np.array([[100.0, 100.0], [100.0, 100.0]])
    out = edge_corrected(np.array([[50.0, 50.0], [50.0, 0.0]]), np.array([[10.0], [10.0]]), lo, hi)
    assert out[0, 0] == 10.0 and abs(out[1, 0] - 10.0 * np.sqrt(0.5)) < 0.5
    # cells on one line span no rectangle: left as they are
    line_lo, line_hi = _field(np.array([[0.0, 5.0], [10.0, 5.0]]), np.array(["b", "b"]))
    assert np.isinf(line_lo).all() and np.isinf(line_hi).all()
