"""``cellgan segment`` and ``cellgan cells``: outputs and exit statuses."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cellgan.cli.main import main
from cellgan.io.cellstore import CellStore


@pytest.fixture(scope="module")
def bm_crop(data_root) -> np.ndarray:
    from cellgan.io.images import read_rgb

    return read_rgb(data_root / "bm_graz" / "source" / "BM_GRAZ_HE_0002_01.png")[300:460, 300:460]


@pytest.mark.realdata
def test_segment_writes_the_store_and_exit_status_tells_failures(tmp_path, bm_crop, capsys):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(bm_crop).save(images / "a.png")
    run = tmp_path / "run"
    assert main(["segment", str(images), "--out", str(run), "--quiet", "--mpp", "0.3"]) == 0
    store = CellStore.open(run)
    assert store.image_ids() == ["a"] and len(store) > 5 and store.info.patch_mode == "faded"  # the default recipe's
    assert "1 images done" in capsys.readouterr().out

    (images / "b.png").write_text("not an image")
    assert main(["segment", str(images), "--out", str(run), "--quiet", "--mpp", "0.3"]) == 1
    captured = capsys.readouterr()
    assert "0 images done, 1 already done, 1 failed" in captured.out
    assert "b.png" in captured.err and "not a recognised image" in captured.err

    # A faded store cannot take context patches and the reverse: a usage error.
    assert main(["segment", str(images / "a.png"), "--out", str(run), "--patch-mode", "context", "--quiet"]) == 2
    assert "faded" in capsys.readouterr().err


def test_segment_usage_errors_exit_2(tmp_path, capsys):
    assert main(["segment", str(tmp_path / "missing.png"), "--out", str(tmp_path / "run")]) == 2
    assert "missing.png" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["segment", str(tmp_path / "empty"), "--out", str(tmp_path / "run")]) == 2
    assert "no image files" in capsys.readouterr().err
    Image.fromarray(np.full((40, 40, 3), 120, np.uint8)).save(tmp_path / "x.png")
    (tmp_path / "ref.png").write_bytes(b"")
    args = ["segment", str(tmp_path / "x.png"), "--out", str(tmp_path / "run")]
    assert main(args + ["--reinhard-reference", str(tmp_path / "ref.png")]) == 2
    assert "reinhard-reference" in capsys.readouterr().err
    assert main(args + ["--patch-mode", "faded", "--context-weight", "1.5"]) == 2
    assert "context_weight must be at most 1" in capsys.readouterr().err


@pytest.mark.realdata
def test_segment_with_reinhard_reference_and_context_patches(tmp_path, bm_crop, data_root):
    from cellgan.io.images import read_rgb

    reference = read_rgb(data_root / "monuseg_test" / "TCGA-2Z-A9J9-01A-01-TS1.tif")[:200, :200]
    Image.fromarray(reference).save(tmp_path / "ref.png")
    Image.fromarray(bm_crop).save(tmp_path / "a.png")
    run = tmp_path / "run"
    args = ["segment", str(tmp_path / "a.png"), "--out", str(run), "--quiet", "--patch-mode", "context"]
    assert main(args + ["--mpp", "0.25", "--reinhard-reference", str(tmp_path / "ref.png")]) == 0
    store = CellStore.open(run)
    assert store.info.patch_mode == "context"
    table = store.read_table()
    assert np.allclose(table["area_um2"], table["area_px"] * 0.0625)


@pytest.mark.realdata
def test_segment_to_the_most_typical_input_image(tmp_path, bm_crop, capsys):
    images = tmp_path / "images"
    images.mkdir()
    for name, tint in (("a", 1.0), ("b", 0.9), ("c", 0.8)):
        Image.fromarray(np.round(bm_crop * tint).astype(np.uint8)).save(images / f"{name}.png")
    run = tmp_path / "run"
    args = ["segment", str(images), "--out", str(run), "--quiet", "--reinhard-reference", "typical"]
    assert main(args) == 0
    assert f"Reinhard reference: {images / 'b.png'}" in capsys.readouterr().out
    assert CellStore.open(run).image_ids() == ["a", "b", "c"]


@pytest.mark.realdata
def test_cells_from_points_keeps_labels_and_checks_the_csv(tmp_path, bm_crop, capsys):
    Image.fromarray(bm_crop).save(tmp_path / "img.png")
    (tmp_path / "points.csv").write_text("x,y,label\n40,50,a\n100.5,20,b\n10,150,\n")
    run = tmp_path / "run"
    args = ["cells", "from-points", str(tmp_path / "img.png"), "--points", str(tmp_path / "points.csv"), "--mpp", "0.3"]
    assert main(args + ["--out", str(run), "--quiet"]) == 0
    table = CellStore.open(run).read_table()
    assert set(table["mpp_source"]) == {"given"} and (table["mpp"] == 0.3).all()
    assert list(table["label"][:2]) == ["a", "b"] and table["label"].isna().iloc[2]
    assert list(table["centroid_x"]) == [40.0, 100.5, 10.0] and (table["source"] == "points").all()
    assert main(args + ["--out", str(run), "--quiet"]) == 0  # done already: skipped
    assert "1 already done" in capsys.readouterr().out

    (tmp_path / "bad.csv").write_text("col,row\n1,2\n")
    bad = ["cells", "from-points", str(tmp_path / "img.png"), "--points", str(tmp_path / "bad.csv")]
    assert main(bad + ["--out", str(tmp_path / "r2")]) == 2
    assert "missing column(s) x, y" in capsys.readouterr().err
    (tmp_path / "far.csv").write_text("x,y\n5000,2\n")
    far = ["cells", "from-points", str(tmp_path / "img.png"), "--points", str(tmp_path / "far.csv"), "--mpp", "0.3"]
    assert main(far + ["--out", str(tmp_path / "r3")]) == 2
    assert "outside" in capsys.readouterr().err


@pytest.mark.realdata
def test_segment_takes_the_recipe_under_the_options(tmp_path, bm_crop):
    Image.fromarray(bm_crop).save(tmp_path / "a.png")
    assert main(["segment", str(tmp_path / "a.png"), "--out", str(tmp_path / "r1"), "--recipe", "paper", "--quiet", "--mpp", "0.3"]) == 0
    assert CellStore.open(tmp_path / "r1").info.patch_mode == "masked"
    faded = ["--recipe", "paper", "--patch-mode", "faded", "--reinhard-reference", "none", "--quiet", "--mpp", "0.3"]
    assert main(["segment", str(tmp_path / "a.png"), "--out", str(tmp_path / "r2"), *faded]) == 0
    assert CellStore.open(tmp_path / "r2").info.patch_mode == "faded"
    assert main(["segment", str(tmp_path / "a.png"), "--out", str(tmp_path / "r3"), "--patch-mode", "crop"]) == 2


@pytest.mark.realdata
def test_cells_from_folder_exit_status(tmp_path, bm_crop, capsys):
    crops = tmp_path / "crops" / "blast"
    crops.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(bm_crop[i * 40 : i * 40 + 40, :40]).save(crops / f"c{i}.png")
    run = tmp_path / "run"
    assert main(["cells", "from-folder", str(tmp_path / "crops"), "--out", str(run), "--quiet"]) == 0
    store = CellStore.open(run)
    table = store.read_table()
    assert len(table) == 3 and set(table["label"]) == {"blast"}
    assert store.info.patch_mode == "crop"  # the whole crop is the cell unless --patch-mode says otherwise
    from cellgan.segment.patches import whole_crop_patch

    first = np.asarray(Image.open(crops / "c0.png").convert("RGB"))
    assert np.array_equal(store.read_patches()[table.index[table["file"] == "blast/c0.png"][0]], whole_crop_patch(first))
    (crops / "c3.png").write_bytes(b"")
    (tmp_path / "crops" / "other").mkdir()
    (tmp_path / "crops" / "other" / "z.png").write_bytes(b"")
    assert main(["cells", "from-folder", str(tmp_path / "crops"), "--out", str(run), "--quiet"]) == 1
    assert "z.png" in capsys.readouterr().err
    assert main(["cells", "from-folder", str(tmp_path / "nope"), "--out", str(run)]) == 2
