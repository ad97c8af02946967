"""`cells from-geojson`: nuclei outlined by another detector; cellgan's own GeoJSON export read back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cellgan.io.cellstore import CellStore
from cellgan.report.geojson import feature_collection
from cellgan.segment.outlines import OutlinesError, outline_mask, read_outlines


def _mask() -> np.ndarray:
    mask = np.zeros((60, 70), np.int32)
    yy, xx = np.mgrid[:60, :70]
    mask[(yy - 15) ** 2 + (xx - 20) ** 2 <= 36] = 1
    mask[(yy - 40) ** 2 / 49 + (xx - 45) ** 2 / 16 <= 1] = 2
    mask[5:12, 55:66] = 3
    return mask


def _table(mask: np.ndarray) -> "pd.DataFrame":  # noqa: F821
    import pandas as pd

    rows = []
    for cell_id in range(mask.max()):
        rr, cc = np.nonzero(mask == cell_id + 1)
        rows.append({"image": "t", "cell_id": cell_id, "category": cell_id % 2, "prob_0": 0.6, "prob_1": 0.4,
                     "centroid_x": cc.mean(), "centroid_y": rr.mean(), "area_px": float(len(rr))})  # fmt: skip
    return pd.DataFrame(rows)


def test_exported_geojson_read_back_gives_the_same_nuclei(tmp_path):
    mask = _mask()
    path = tmp_path / "t.geojson"
    path.write_text(json.dumps(feature_collection(_table(mask), categories=2, label_mask=mask)))
    outlines = read_outlines(path)
    assert outlines.labels == ["Category 0", "Category 1", "Category 0"]
    back, kept = outline_mask(outlines.rings, mask.shape)
    assert kept.tolist() == [0, 1, 2]
    for label in (1, 2, 3):
        a, b = mask == label, back == label
        assert (a & b).sum() / (a | b).sum() >= 0.9  # the outlines are simplified by a quarter pixel


def test_feature_list_multipolygon_and_clear_errors(tmp_path):
    square = [[[10, 10], [20, 10], [20, 20], [10, 20], [10, 10]]]
    other = [[[30, 30], [36, 30], [36, 36], [30, 36], [30, 30]]]
    cellvit = [{"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": [square, other]},
                "properties": {"classification": {"name": "Neoplastic"}}},
               {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 1]}, "properties": {}}]  # fmt: skip
    (tmp_path / "list.json").write_text(json.dumps(cellvit))
    outlines = read_outlines(tmp_path / "list.json")
    assert len(outlines.rings) == 2 and outlines.labels == ["Neoplastic", "Neoplastic"]
    labels, _ = outline_mask(outlines.rings, (40, 40))
    assert (labels == 1).sum() == 100 and (labels == 2).sum() == 36
    (tmp_path / "one.json").write_text(json.dumps({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": square}}))
    assert len(read_outlines(tmp_path / "one.json").rings) == 1
    for name, text, message in [
        ("bad.json", "{not json", "not a readable JSON file"),
        ("none.json", json.dumps({"type": "FeatureCollection", "features": []}), "no Polygon or MultiPolygon"),
        ("odd.json", json.dumps({"nuc": {}}), "not GeoJSON"),
        ("short.json", json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}), "feature 0 has a malformed polygon"),
    ]:
        (tmp_path / name).write_text(text)
        with pytest.raises(OutlinesError, match=f"{name}: {message}"):
            read_outlines(tmp_path / name)


@pytest.mark.realdata
def test_cli_from_geojson(tmp_path, data_root, capsys):
    from cellgan.cli.main import main
    from cellgan.io.images import read_rgb
    from cellgan.segment import segment_image
    from cellgan.segment.config import SegmentConfig

    bm_crop = read_rgb(data_root / "bm_graz" / "source" / "BM_GRAZ_HE_0002_01.png")[300:460, 300:460]
    Image.fromarray(bm_crop).save(tmp_path / "a.png")
    found = segment_image(bm_crop, SegmentConfig(mpp=0.3), image_id="a")
    (tmp_path / "a.geojson").write_text(json.dumps(feature_collection(
        found.table.assign(category=0, prob_0=1.0), categories=1, label_mask=found.label_mask.astype(np.int64))))  # fmt: skip
    args = ["cells", "from-geojson", str(tmp_path / "a.png"), "--geojson", str(tmp_path / "a.geojson")]
    assert main([*args, "--out", str(tmp_path / "run"), "--mpp", "0.3", "--quiet"]) == 0
    table = CellStore.open(tmp_path / "run").read_table()
    assert len(table) == len(found.table) and set(table["source"]) == {"outlines"}
    assert set(table["mpp_source"]) == {"given"} and np.allclose(table["area_um2"], table["area_px"] * 0.09)
    np.testing.assert_allclose(table["centroid_x"], found.table["centroid_x"], atol=0.5)
    assert main([*args[:3], "--geojson", str(tmp_path / "missing.geojson"), "--out", str(tmp_path / "r2")]) == 2
    assert "missing.geojson: no such file" in capsys.readouterr().err
