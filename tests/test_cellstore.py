"""The cell store: atomic shards, resume markers, alignment of table and patches."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cellgan.io.cellstore import TABLE_COLUMNS, CellStore, CellStoreError
from cellgan.io.files import atomic_write, safe_image_id


def _table(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    return pd.DataFrame(
        {
            "cell_id": np.arange(n),
            "centroid_x": rng.uniform(0, 100, n),
            "centroid_y": rng.uniform(0, 100, n),
            "bbox_x0": np.zeros(n, int),
            "bbox_y0": np.zeros(n, int),
            "bbox_x1": np.full(n, 10),
            "bbox_y1": np.full(n, 10),
            "area_px": rng.uniform(50, 200, n),
            "perimeter_px": rng.uniform(20, 60, n),
            "eccentricity": rng.uniform(0, 1, n),
            "solidity": rng.uniform(0.8, 1, n),
            "mean_haematoxylin": rng.uniform(0, 1, n),
            "mean_eosin": rng.uniform(0, 1, n),
            "source": "segment",
        }
    )


def _patches(n: int, value: int) -> np.ndarray:
    return np.full((n, 32, 32, 3), value, np.uint8)


def test_write_and_read_back_in_image_order(tmp_path):
    store = CellStore.create(tmp_path / "cells", patch_mode="masked")
    store.write_image("b", _table(3), _patches(3, 2))
    store.write_image("a", _table(2), _patches(2, 1), label_mask=np.arange(16).reshape(4, 4))
    reopened = CellStore.open(tmp_path)  # the run dir above the store works too
    assert reopened.image_ids() == ["a", "b"]
    table = reopened.read_table()
    patches = reopened.read_patches()
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert table["image"].tolist() == ["a", "a", "b", "b", "b"]
    assert patches[:, 0, 0, 0].tolist() == [1, 1, 2, 2, 2]
    assert len(reopened) == 5
    np.testing.assert_array_equal(reopened.read_mask("a"), np.arange(16).reshape(4, 4))
    assert reopened.read_mask("b") is None


def test_the_overlay_is_a_jpeg_whose_one_pixel_outlines_stay_green(tmp_path):
    from PIL import Image
    from skimage.data import immunohistochemistry

    from cellgan.segment.image import OUTLINE_COLOUR

    image = immunohistochemistry()[:64, :64].copy()  # real stained tissue, shipped with scikit-image
    outline = np.zeros((64, 64), bool)
    outline[20, 10:50] = outline[10:50, 30] = True  # 1-px lines
    image[outline] = OUTLINE_COLOUR
    store = CellStore.create(tmp_path / "cells", patch_mode="masked")
    stale = store.overlay_path("a").with_suffix(".png")  # the overlay of a store made before
    Image.fromarray(image).save(stale)
    assert store.find_overlay("a") == stale and store.find_overlay("b") is None
    store.write_image("a", _table(2), _patches(2, 1), overlay=image)
    assert store.overlay_path("a").suffix == ".jpg" and not stale.exists()
    assert store.find_overlay("a") == store.overlay_path("a")
    with Image.open(store.overlay_path("a")) as written:
        assert written.format == "JPEG"
        back = np.asarray(written.convert("RGB")).astype(int)
    green = np.argmax(back, axis=2) == 1
    assert green[outline].mean() > 0.95 and green[~outline].mean() < 0.01
    assert np.abs(back[~outline] - image[~outline]).mean() < 4


def test_shard_without_table_is_not_done(tmp_path):
    store = CellStore.create(tmp_path, patch_mode="masked")
    np.save(store.patches_path("x"), _patches(1, 0))  # as if killed before the table
    assert not store.has_image("x")
    assert store.image_ids() == []


def test_rejects_misaligned_or_malformed_shards(tmp_path):
    store = CellStore.create(tmp_path, patch_mode="masked")
    with pytest.raises(ValueError, match="2 table rows but 3 patches"):
        store.write_image("x", _table(2), _patches(3, 0))
    with pytest.raises(ValueError, match="uint8"):
        store.write_image("x", _table(2), np.zeros((2, 32, 32, 3), np.float32))
    shuffled = _table(3).iloc[[2, 0, 1]]
    with pytest.raises(ValueError, match="cell_id must be 0..n-1"):
        store.write_image("x", shuffled, _patches(3, 0))
    assert store.image_ids() == []


def test_patch_mode_mismatch_and_missing_store(tmp_path):
    CellStore.create(tmp_path, patch_mode="masked")
    with pytest.raises(CellStoreError, match="refusing to add 'context'"):
        CellStore.create(tmp_path, patch_mode="context")
    with pytest.raises(CellStoreError, match="no cell store"):
        CellStore.open(tmp_path / "nowhere")
    (tmp_path / "store.json").write_text("{not json")
    with pytest.raises(CellStoreError, match="unreadable store metadata"):
        CellStore.open(tmp_path)


def test_store_of_an_older_format_names_the_file_and_asks_to_resegment(tmp_path):
    CellStore.create(tmp_path, patch_mode="masked")
    meta = tmp_path / "store.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "format_version": 1}))
    with pytest.raises(CellStoreError, match="format version 1.*re-run segmentation") as err:
        CellStore.open(tmp_path)
    assert str(meta) in str(err.value)
    assert "mean_haematoxylin" in str(err.value) and "mirror the image" in str(err.value)  # every change since
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "format_version": 2}))
    with pytest.raises(CellStoreError, match="format version 2") as err:
        CellStore.open(tmp_path)
    assert "mean_haematoxylin" not in str(err.value) and "mirror the image" in str(err.value)
    with pytest.raises(CellStoreError, match="re-run segmentation"):
        CellStore.create(tmp_path, patch_mode="masked")


def test_empty_store_reads_empty_aligned_arrays(tmp_path):
    store = CellStore.create(tmp_path, patch_mode="masked")
    assert store.read_table().empty
    assert store.read_patches().shape == (0, 32, 32, 3)


def test_atomic_write_gives_usual_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    os.umask(umask)
    target = tmp_path / "shared.txt"
    atomic_write(target, lambda p: p.write_text("x"))
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "out.json"
    target.write_text(json.dumps({"old": True}))

    def failing(path):
        path.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, failing)
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_safe_image_id():
    assert safe_image_id("TCGA-2Z A9J9/01.tif") == "TCGA-2Z_A9J9_01.tif"
    assert safe_image_id("///").startswith("image_")  # nothing safe left: a stable hash of the name
    assert safe_image_id("///") == safe_image_id("///") != safe_image_id("***")
