"""QuPath GeoJSON: valid closed counter-clockwise rings, QuPath's schema, one palette."""

from __future__ import annotations

import json
import math
import uuid

import numpy as np
import pandas as pd
import pytest
from matplotlib.path import Path as MplPath

from cellgan.io.palette import MAX_CATEGORIES, category_colours, category_names
from cellgan.report.geojson import (
    GeoJSONError,
    cell_id_uuid,
    cell_outlines,
    circle_ring,
    feature_collection,
    write_geojson,
)


def _signed_area(ring) -> float:
    ring = np.asarray(ring, dtype=float)
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))


def _assert_valid_ring(ring):
    ring = np.asarray(ring, dtype=float)
    assert ring.ndim == 2 and ring.shape[1] == 2
    assert len(ring) >= 4
    assert np.array_equal(ring[0], ring[-1])  # closed
    assert _signed_area(ring) > 0  # counter-clockwise (RFC 7946)
    assert np.isfinite(ring).all()


def _mask():
    mask = np.zeros((40, 50), np.uint32)
    mask[2:6, 2:5] = 1  # 4x3 rectangle
    rr, cc = np.ogrid[:40, :50]
    mask[((rr - 20) / 7.0) ** 2 + ((cc - 25) / 11.0) ** 2 <= 1] = 2  # ellipse
    mask[30, 40] = 3  # a single pixel
    mask[30:40, 0:3] = 5  # touches the image border; label 4 unused
    mask[10:18, 40:48] = 6
    mask[10:14, 44:48] = 0  # an L shape (concave)
    return mask


def test_outlines_are_closed_ccw_and_follow_the_pixels():
    mask = _mask()
    rings = cell_outlines(mask)
    assert sorted(rings) == [1, 2, 3, 5, 6]
    for label, ring in rings.items():
        _assert_valid_ring(ring)
        pixels = int((mask == label).sum())
        # a 0.5-level contour cuts each convex corner by a quarter pixel; area stays close
        assert abs(_signed_area(ring) - pixels) <= 0.5 + 0.05 * pixels
        rows, cols = np.nonzero(mask == label)
        inside = MplPath(ring).contains_points(np.column_stack([cols + 0.5, rows + 0.5]))
        assert inside.mean() > 0.9  # pixel centres (QuPath coordinates) lie inside
    rect = rings[1]
    # pixel corners at integers (QuPath): columns 2..4 span x in [2, 5], rows 2..5 span y in [2, 6]
    assert rect[:, 0].min() == 2.0 and rect[:, 0].max() == 5.0
    assert rect[:, 1].min() == 2.0 and rect[:, 1].max() == 6.0
    assert _signed_area(rect) == pytest.approx(11.5)
    assert len(rings[2]) < 4 * int((mask == 2).sum()) ** 0.5 * 2  # simplified, not one point per pixel edge
    concave = rings[6]
    assert not MplPath(concave).contains_point((46.0, 12.0))  # the cut-out corner is outside
    assert MplPath(concave).contains_point((42.0, 16.0))


def test_outlines_reject_bad_masks():
    with pytest.raises(GeoJSONError, match="2-d integer"):
        cell_outlines(np.zeros((4, 4), np.float32))
    with pytest.raises(GeoJSONError, match="negative"):
        cell_outlines(-np.ones((4, 4), np.int32))
    assert cell_outlines(np.zeros((4, 4), np.int32)) == {}


def test_circle_ring():
    ring = circle_ring(10.0, 20.0, 4.0)
    _assert_valid_ring(ring)
    assert len(ring) == 17
    np.testing.assert_allclose(ring[:-1].mean(axis=0), [10.5, 20.5], atol=1e-3)
    assert _signed_area(ring) == pytest.approx(math.pi * 16, rel=0.03)
    with pytest.raises(GeoJSONError):
        circle_ring(0, 0, 0.0)


def _cells(image="img1"):
    return pd.DataFrame(
        {
            "image": image,
            "cell_id": [0, 1, 2, 3],
            "category": [2, 0, 1, 2],
            "prob_0": [0.1, 0.8, 0.1, 0.2],
            "prob_1": [0.2, 0.1, 0.7, 0.1],
            "prob_2": [0.7, 0.1, 0.2, 0.7],
            "centroid_x": [3.0, 25.0, 40.0, 10.0],
            "centroid_y": [3.5, 20.0, 30.0, 10.0],
            "area_px": [12.0, 240.0, 1.0, 50.0],
            "area_um2": [np.nan] * 4,
            "eccentricity": [0.6, 0.8, 0.0, 0.1],
            "solidity": [1.0, 0.98, 1.0, 1.0],
            "mean_haematoxylin": [0.5, 0.6, 0.7, 0.4],
            "mean_eosin": [0.2, 0.1, 0.3, 0.2],
            "label": [None, "x", None, None],
        }
    )


def test_feature_collection_schema_as_qupath_reads_it(tmp_path):
    mask = _mask()
    collection = feature_collection(_cells(), categories=3, label_mask=mask)
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert len(features) == 4
    colours = category_colours(3).tolist()
    for feature, category in zip(features, [2, 0, 1, 2]):
        assert feature["type"] == "Feature"
        uuid.UUID(feature["id"])  # QuPath keeps a feature id only when it is a UUID
        assert feature["geometry"]["type"] == "Polygon"
        for ring in feature["geometry"]["coordinates"]:
            _assert_valid_ring(ring)
        props = feature["properties"]
        assert props["objectType"] == "detection"
        assert props["isLocked"] is False
        assert props["classification"] == {"name": f"Category {category}", "color": colours[category]}
        assert all(isinstance(c, int) and 0 <= c <= 255 for c in props["classification"]["color"])
        measurements = props["measurements"]
        assert all(isinstance(v, float) and math.isfinite(v) for v in measurements.values())
        assert "Area µm^2" not in measurements  # NaN measurements are left out
        assert measurements["Probability"] == max(measurements[f"Probability Category {k}"] for k in range(3))
    # cell 0 has label 1 in the mask (the rectangle); cell 3 has label 4, absent: a circle of its area
    np.testing.assert_allclose(features[0]["geometry"]["coordinates"][0], cell_outlines(mask)[1])
    circle = np.asarray(features[3]["geometry"]["coordinates"][0])
    assert len(circle) == 17 and _signed_area(circle) == pytest.approx(50.0, rel=0.03)
    assert features[1]["properties"]["measurements"]["Area px^2"] == 240.0
    cells = _cells()
    for feature, (image, cell_id) in zip(features, zip(cells["image"], cells["cell_id"])):  # to join QuPath edits back
        assert (feature["properties"]["image"], feature["properties"]["cell_id"]) == (image, cell_id)
        assert feature["id"] == cell_id_uuid(image, cell_id)
        values = feature["properties"]["measurements"].values()
        digits = [repr(v).split("e")[0].replace("-", "").replace(".", "").strip("0") for v in values]
        assert all(len(d) <= 6 for d in digits)  # 6 significant digits, not 16
    path = tmp_path / "img1.geojson"
    write_geojson(collection, path)
    loaded = json.loads(path.read_text(encoding="utf-8"), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert loaded == json.loads(json.dumps(collection))


def test_no_mask_gives_circles_and_ids_are_stable_and_distinct():
    collection = feature_collection(_cells(), categories=3, label_mask=None, names=["epi", "fib", "inf"])
    features = collection["features"]
    assert [f["properties"]["classification"]["name"] for f in features] == ["inf", "epi", "fib", "inf"]
    assert all(len(f["geometry"]["coordinates"][0]) == 17 for f in features)
    ids = [f["id"] for f in features]
    assert len(set(ids)) == 4
    assert ids == [f["id"] for f in feature_collection(_cells(), categories=3)["features"]]
    assert ids[0] == cell_id_uuid("img1", 0) != cell_id_uuid("img2", 0)


def test_feature_collection_errors():
    with pytest.raises(GeoJSONError, match="prob_3"):
        feature_collection(_cells(), categories=4)
    cells = _cells()
    cells.loc[0, "category"] = 5
    with pytest.raises(GeoJSONError, match="category 5 outside"):
        feature_collection(cells, categories=3)


def test_palette_distinct_prefix_stable_and_named():
    colours = category_colours(MAX_CATEGORIES)
    assert colours.dtype == np.uint8 and colours.shape == (MAX_CATEGORIES, 3)
    assert len({tuple(c) for c in colours.tolist()}) == MAX_CATEGORIES
    np.testing.assert_array_equal(category_colours(5), colours[:5])
    with pytest.raises(ValueError):
        category_colours(0)
    with pytest.raises(ValueError):
        category_colours(MAX_CATEGORIES + 1)
    assert category_names(2) == ["Category 0", "Category 1"]
    assert category_names(2, [" a", "b "]) == ["a", "b"]
    with pytest.raises(ValueError, match="3 category names given for 2"):
        category_names(2, ["a", "b", "c"])
    with pytest.raises(ValueError, match="distinct"):
        category_names(2, ["a", "a"])


@pytest.mark.realdata
def test_outlines_of_real_monuseg_nuclei(data_root, tmp_path):
    """The outlines of the hand-drawn MoNuSeg nuclei of one image, rasterised and traced back."""
    from cellgan.io.datasets import load_monuseg

    record = load_monuseg(data_root / "monuseg_test")[0]
    mask = record.label_mask()[:300, :300]
    rings = cell_outlines(mask)
    labels = np.unique(mask[mask > 0])
    assert len(rings) == len(labels) > 20
    areas = np.bincount(mask.ravel())
    for label, ring in rings.items():
        _assert_valid_ring(ring)
        if areas[label] > 30:  # whole nuclei: the polygon keeps the area within 10 %
            assert abs(_signed_area(ring) - areas[label]) < 0.1 * areas[label] + 4
