"""`cellgan export`: GeoJSON per image from the cell store's masks, Parquet/CSV, AnnData."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pandas as pd
import pytest

from cellgan.io.cellstore import TABLE_COLUMNS, CellStore
from cellgan.io.palette import category_colours
from cellgan.report.export import ExportError, export_assignments

K = 3


def _cell_table(image: str, mask: np.ndarray) -> pd.DataFrame:
    labels = np.unique(mask[mask > 0])
    rows = []
    for cell_id, label in enumerate(labels):
        rr, cc = np.nonzero(mask == label)
        rows.append(
            {
                "image": image,
                "cell_id": cell_id,
                "centroid_x": cc.mean(),
                "centroid_y": rr.mean(),
                "bbox_x0": cc.min(),
                "bbox_y0": rr.min(),
                "bbox_x1": cc.max() + 1,
                "bbox_y1": rr.max() + 1,
                "area_px": float(len(rr)),
                "area_um2": len(rr) * 0.25 if image == "a" else np.nan,
                "mpp": 0.5 if image == "a" else np.nan,
                "mpp_source": "estimated" if image == "a" else "unknown",
                "perimeter_px": 10.0,
                "eccentricity": 0.5,
                "solidity": 0.9,
                "mean_haematoxylin": 0.6,
                "mean_eosin": 0.2,
                "source": "segment",
                "label": "epithelial" if cell_id % 2 else None,
            }
        )
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def _make_run(tmp_path, *, with_mask_b: bool = True):
    """A cell store with two images (b's mask optional) and an ASSIGNMENTS directory."""
    store = CellStore.create(tmp_path / "cells", patch_mode="masked")
    masks = {}
    mask = np.zeros((30, 30), np.uint32)
    mask[2:8, 2:9] = 1
    mask[15:25, 10:16] = 2
    mask[20:28, 20:29] = 3
    masks["a"] = mask
    mask = np.zeros((20, 20), np.uint32)
    mask[5:12, 5:10] = 1
    masks["b"] = mask
    tables = []
    for image, mask in masks.items():
        table = _cell_table(image, mask)
        patches = np.full((len(table), 32, 32, 3), 255, np.uint8)
        give_mask = image == "a" or with_mask_b
        store.write_image(image, table, patches, label_mask=mask if give_mask else None)
        tables.append(table)
    cells = pd.concat(tables, ignore_index=True)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(K), size=len(cells))
    assignments = pd.DataFrame({"image": cells["image"], "cell_id": cells["cell_id"], "category": probs.argmax(1)})
    for k in range(K):
        assignments[f"prob_{k}"] = probs[:, k]
    assignments = pd.concat([assignments, cells.drop(columns=["image", "cell_id"])], axis=1)
    out = tmp_path / "assign"
    out.mkdir()
    assignments.to_parquet(out / "assignments.parquet", index=False)
    features = rng.normal(size=(len(cells), 5)).astype(np.float32)
    np.save(out / "features.npy", features)
    (out / "meta.json").write_text(json.dumps({"categories": K, "width": 5, "cells": str(store.root)}))
    return out, store.root, assignments, features


def test_export_geojson_parquet_csv(tmp_path):
    assign, cells, assignments, features = _make_run(tmp_path, with_mask_b=False)
    written = export_assignments(assign, tmp_path / "out", cells_dir=tmp_path, formats=("geojson", "parquet", "csv"))
    assert [p.name for p in written["geojson"]] == ["a.geojson", "b.geojson"]
    a = json.loads((tmp_path / "out" / "geojson" / "a.geojson").read_text())
    assert a["type"] == "FeatureCollection" and len(a["features"]) == 3
    colours = category_colours(K).tolist()
    for feature, category in zip(a["features"], assignments.loc[assignments["image"] == "a", "category"]):
        assert feature["properties"]["objectType"] == "detection"
        assert feature["properties"]["classification"] == {"name": f"Category {category}", "color": colours[category]}
    # a's first nucleus is the rectangle rows 2..7, columns 2..8: its outline spans those pixels' corners
    ring = np.asarray(a["features"][0]["geometry"]["coordinates"][0])
    assert (ring[:, 0].min(), ring[:, 0].max(), ring[:, 1].min(), ring[:, 1].max()) == (2.0, 9.0, 2.0, 8.0)
    b = json.loads((tmp_path / "out" / "geojson" / "b.geojson").read_text())
    assert len(b["features"][0]["geometry"]["coordinates"][0]) == 17  # no mask: a circle

    table = pd.read_parquet(tmp_path / "out" / "cells.parquet")
    assert len(table) == 4
    assert table["category_name"].tolist() == [f"Category {k}" for k in assignments["category"]]
    np.testing.assert_allclose(table[[f"feature_{j}" for j in range(5)]].to_numpy(), features, rtol=1e-6)
    np.testing.assert_allclose(table[[f"prob_{k}" for k in range(K)]].to_numpy(), assignments.filter(like="prob_"))
    assert {"area_px", "eccentricity", "mean_haematoxylin", "label"} <= set(table.columns)
    csv = pd.read_csv(tmp_path / "out" / "cells.csv")
    assert list(csv.columns) == list(table.columns) and len(csv) == 4
    np.testing.assert_allclose(csv["feature_4"], table["feature_4"], rtol=1e-6)


def test_export_with_category_names(tmp_path):
    assign, cells, assignments, _ = _make_run(tmp_path)
    names = ["tumour", "stroma", "lymphocyte"]
    export_assignments(assign, tmp_path / "out", cells_dir=cells, formats=("geojson", "csv"), names=names)
    a = json.loads((tmp_path / "out" / "geojson" / "a.geojson").read_text())
    got = [f["properties"]["classification"]["name"] for f in a["features"]]
    assert got == [names[k] for k in assignments.loc[assignments["image"] == "a", "category"]]
    assert not (tmp_path / "out" / "cells.parquet").exists()


def test_csv_export_neutralises_formulas(tmp_path):
    assignments, cells, table, _ = _make_run(tmp_path)
    names = ["=HYPERLINK(\"http://x\")", "@SUM(A1)", "-1+2"]
    export_assignments(assignments, tmp_path / "out", cells_dir=cells, formats=("csv", "parquet"), names=names)
    csv = pd.read_csv(tmp_path / "out" / "cells.csv")
    assert set(csv["category_name"]) <= {"'" + name for name in names}
    assert set(pd.read_parquet(tmp_path / "out" / "cells.parquet")["category_name"]) <= set(names)  # not the Parquet
    assert np.allclose(csv["centroid_x"], table["centroid_x"])


def test_neutralise_formulas_leaves_numbers_and_plain_text():
    from cellgan.report.export import neutralise_formulas

    frame = pd.DataFrame({"n": [-1.5, 2.0], "s": ["+x", "ok"], "t": ["\tx", None]})
    out = neutralise_formulas(frame)
    assert out["n"].tolist() == [-1.5, 2.0] and out["s"].tolist() == ["'+x", "ok"]
    assert out["t"][0] == "'\tx" and pd.isna(out["t"][1])
    assert frame["s"].tolist() == ["+x", "ok"]


def test_h5ad_without_anndata_is_a_clear_error_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "anndata", None)  # import anndata -> ImportError
    assign, cells, _, _ = _make_run(tmp_path)
    with pytest.raises(ExportError, match="'anndata'.*not installed"):
        export_assignments(assign, tmp_path / "out", cells_dir=cells, formats=("parquet", "h5ad"))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_h5ad_with_anndata(tmp_path):
    anndata = pytest.importorskip("anndata")
    assign, cells, assignments, features = _make_run(tmp_path)
    export_assignments(assign, tmp_path / "out", formats=("h5ad",))
    adata = anndata.read_h5ad(tmp_path / "out" / "cells.h5ad")
    assert adata.shape == features.shape
    np.testing.assert_allclose(adata.obsm["X_cellgan"], features)
    np.testing.assert_allclose(adata.obsm["spatial"], assignments[["centroid_x", "centroid_y"]].to_numpy())
    assert adata.obs["uuid"].is_unique and {"area_px", "mean_eosin", "category"} <= set(adata.obs.columns)
    assert list(adata.obs["category"].cat.categories) == [f"Category {k}" for k in range(K)]
    np.testing.assert_allclose(adata.obsm["probabilities"], assignments.filter(like="prob_"), rtol=1e-6)


def test_export_errors(tmp_path):
    assign, cells, _, _ = _make_run(tmp_path)
    with pytest.raises(ExportError, match="unknown export formats"):
        export_assignments(assign, tmp_path / "out", cells_dir=cells, formats=("shp",))
    meta = json.loads((assign / "meta.json").read_text())
    (assign / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "cells"}))
    with pytest.raises(ExportError, match="meta.json names no cell store.*--cells"):
        export_assignments(assign, tmp_path / "out", formats=("geojson",))
    with pytest.raises(ExportError, match="no cell store"):
        export_assignments(assign, tmp_path / "out", cells_dir=tmp_path / "assign", formats=("geojson",))
    np.save(assign / "features.npy", np.zeros((3, 5), np.float32))
    with pytest.raises(ExportError, match=r"features.npy: expected \(4, W\)"):
        export_assignments(assign, tmp_path / "out", formats=("csv",))
    with pytest.raises(ExportError, match="not an assignments directory"):
        export_assignments(tmp_path, tmp_path / "out", formats=("csv",))


def test_cli_export(tmp_path, capsys):
    from cellgan.cli.main import main

    assign, cells, _, _ = _make_run(tmp_path)
    out = tmp_path / "out"
    assert main(["export", str(assign), "--cells", str(cells), "--out", str(out), "--names", "x,y,z"]) == 0
    printed = capsys.readouterr().out
    assert "geojson: 2 files in" in printed and "parquet:" in printed and "csv:" in printed
    b = json.loads((out / "geojson" / "b.geojson").read_text())
    assert b["features"][0]["properties"]["classification"]["name"] in {"x", "y", "z"}
    status = main(["export", str(assign), "--out", str(out), "--format", "h5ad,csv"])
    if importlib.util.find_spec("anndata") is None:
        assert status == 2 and "needs the optional package 'anndata'" in capsys.readouterr().err
    else:
        assert status == 0 and (out / "cells.h5ad").is_file()
    assert main(["export", str(assign), "--out", str(out), "--names", "x,y"]) == 2
    assert "2 category names given for 3 categories" in capsys.readouterr().err


def test_export_reads_the_store_from_meta_and_keys_rows_by_uuid(tmp_path):
    from cellgan.report.geojson import cell_id_uuid

    assign, _, assignments, _ = _make_run(tmp_path)
    export_assignments(assign, tmp_path / "out", formats=("geojson", "parquet"), offset=(1000.0, 2000.0))
    table = pd.read_parquet(tmp_path / "out" / "cells.parquet")
    assert table["uuid"].tolist() == [cell_id_uuid(i, c) for i, c in zip(assignments["image"], assignments["cell_id"])]
    a = json.loads((tmp_path / "out" / "geojson" / "a.geojson").read_text())
    feature = a["features"][0]
    assert feature["id"] == table["uuid"][0]
    assert feature["properties"]["image"] == "a" and feature["properties"]["cell_id"] == 0
    ring = np.asarray(feature["geometry"]["coordinates"][0])  # the rectangle of test above, shifted
    assert (ring[:, 0].min(), ring[:, 0].max(), ring[:, 1].min(), ring[:, 1].max()) == (1002.0, 1009.0, 2002.0, 2008.0)
    assert feature["properties"]["mpp"] == 0.5 and feature["properties"]["mpp_source"] == "estimated"
    assert "Area µm^2" in feature["properties"]["measurements"]
    b = json.loads((tmp_path / "out" / "geojson" / "b.geojson").read_text())["features"][0]["properties"]
    assert "mpp" not in b and b["mpp_source"] == "unknown" and "Area µm^2" not in b["measurements"]
    for value in feature["properties"]["measurements"].values():
        assert len(f"{value:g}".replace("-", "").replace(".", "").lstrip("0")) <= 4  # 4 significant digits


def test_cli_export_offset(tmp_path, capsys):
    from cellgan.cli.main import main

    assign, _, _, _ = _make_run(tmp_path)
    out = tmp_path / "out"
    assert main(["export", str(assign), "--out", str(out), "--format", "geojson", "--offset", "5,-3"]) == 0
    ring = np.asarray(json.loads((out / "geojson" / "a.geojson").read_text())["features"][0]["geometry"]["coordinates"][0])
    assert ring[:, 0].min() == 7.0 and ring[:, 1].min() == -1.0
    with pytest.raises(SystemExit):
        main(["export", str(assign), "--out", str(out), "--offset", "5"])
    assert "expected two numbers X,Y" in capsys.readouterr().err
