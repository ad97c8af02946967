"""Hostile image files (issue 14): memory bombs, odd names, odd pixel sizes and odd pixel formats.

Each must be segmented correctly or refused with a one-line reason naming the file,
never by a traceback, an exhausted memory or a silent 0 cells.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellgan.io.cellstore import CellStore
from cellgan.io.files import safe_image_id
from cellgan.io.images import read_rgb
from cellgan.segment import SegmentConfig, image_ids, segment_image, segment_images


# -- images without nuclei at fine pixel sizes (IndexError in find_nuclei) -------------


@pytest.mark.parametrize(
    ("shape", "mpp"),
    [((256, 256), 0.25), ((40, 40), 0.25), ((48, 64), 0.12), ((300, 300), 0.03)],
    ids=["no-nucleus-0.25", "small-crop", "small-crop-0.12", "mpp-0.03"],
)
def test_no_nucleus_at_a_fine_pixel_size_gives_no_cell(shape, mpp):
    rgb = np.full((*shape, 3), (200, 140, 190), np.uint8)  # pink stroma, no nucleus
    result = segment_image(rgb, SegmentConfig(mpp=mpp), image_id="pink")
    assert len(result.table) == 0 and result.label_mask.shape == shape and result.overlay.shape == (*shape, 3)


# -- file names without ASCII letters ---------------------------------------------------


def test_image_ids_keep_unicode_letters_and_hash_what_has_none():
    assert safe_image_id("细胞") == "细胞"
    assert safe_image_id("Zelle Ä 1") == "Zelle_Ä_1"
    assert safe_image_id("Zelle A\u0308") == safe_image_id("Zelle \u00c4")  # NFD and NFC alike
    hashed = safe_image_id("★★★")
    assert hashed == safe_image_id("★★★") and hashed != safe_image_id("☆☆☆")
    assert hashed.startswith("image_") and hashed.isascii() and len(hashed) == 16
    assert safe_image_id("../../etc") == "etc" and "/" not in safe_image_id("a/b")
    ids = image_ids([Path("x/细胞.png"), Path("y/细胞.png"), Path("★.png"), Path("☆.png")])
    assert len(set(ids.values())) == 4


@pytest.mark.realdata
def test_a_batch_with_a_chinese_file_name_segments_every_image(tmp_path, data_root):
    crop = read_rgb(data_root / "bm_graz" / "source" / "BM_GRAZ_HE_0001_01.png")[:128, :256]
    for name in ("细胞.png", "★.png", "plain.png"):
        Image.fromarray(crop).save(tmp_path / name)
    store = CellStore.create(tmp_path / "cells", patch_mode="masked")
    summary = segment_images([tmp_path], store, progress=False)
    assert summary.failed == {} and len(summary.done) == 3 and "细胞" in summary.done
    assert len(store.read_table(["细胞"])) > 10


def test_an_overlong_file_name_gives_an_id_that_fits_a_file_name():
    long_id = safe_image_id("细胞" * 100)
    assert len(long_id.encode()) <= 120 and long_id.startswith("细胞细胞")
    assert long_id != safe_image_id("细胞" * 101) and long_id == safe_image_id("细胞" * 100)
