"""segment_image, segment_images, cells_at_points, cells_from_folder on real and bad input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cellgan.io.cellstore import TABLE_COLUMNS, CellStore
from cellgan.segment import (
    OUTLINE_COLOUR,
    CellResult,
    SegmentationError,
    SegmentConfig,
    cells_at_points,
    cells_from_folder,
    image_ids,
    read_rgb,
    segment_image,
    segment_images,
)


@pytest.fixture(scope="module")
def bm_crop(data_root) -> np.ndarray:
    """A 256×256 corner of a bone-marrow image (the paper's own data)."""
    from cellgan.io.images import read_rgb

    return read_rgb(data_root / "bm_graz" / "source" / "BM_GRAZ_HE_0001_01.png")[:256, :256]


@pytest.fixture(scope="module")
def crc_record(data_root):
    from cellgan.io.datasets import load_crchistophenotypes

    return load_crchistophenotypes(data_root / "crchistophenotypes", splits=("train",))[5]


def _check_result(result: CellResult, shape, image_id):
    n = len(result.table)
    assert list(result.table.columns[: len(TABLE_COLUMNS)]) == list(TABLE_COLUMNS)
    assert (result.table["image"] == image_id).all()
    assert list(result.table["cell_id"]) == list(range(n))
    assert result.patches.shape == (n, 32, 32, 3) and result.patches.dtype == np.uint8
    assert result.label_mask.shape == shape and result.label_mask.dtype == np.uint32
    assert result.overlay.shape == shape + (3,) and result.overlay.dtype == np.uint8


@pytest.mark.realdata
def test_segment_image_on_real_bone_marrow(bm_crop):
    result = segment_image(bm_crop, SegmentConfig(), image_id="bm")
    _check_result(result, bm_crop.shape[:2], "bm")
    table = result.table
    assert 20 < len(table) < 150
    # label i + 1 of the mask is cell i: its area and centroid agree with the table
    for i in (0, len(table) // 2, len(table) - 1):
        ys, xs = np.nonzero(result.label_mask == i + 1)
        assert len(ys) == table["area_px"][i]
        assert xs.mean() == pytest.approx(table["centroid_x"][i])
    assert table["area_um2"].isna().all()  # the PNG has no pixel size and none was given
    assert (table["mean_haematoxylin"] > table["mean_eosin"]).mean() > 0.8
    assert ((table["solidity"] > 0) & (table["solidity"] <= 1)).all()
    # Nuclei are dark: the patches' non-white pixels are darker than the image on average.
    inside = result.patches[result.patches.min(axis=-1) < 250]
    assert inside.mean() < bm_crop.mean()
    # Outlines drawn in green on the overlay, the rest untouched.
    green = np.all(result.overlay == OUTLINE_COLOUR, axis=-1)
    assert green.sum() > 10 * len(table)
    np.testing.assert_array_equal(result.overlay[~green], bm_crop[~green])


@pytest.mark.realdata
def test_context_patches_with_a_known_pixel_size(bm_crop):
    config = SegmentConfig(mpp=0.25, patch_mode="context")
    result = segment_image(bm_crop, config, image_id="bm")
    _check_result(result, bm_crop.shape[:2], "bm")
    np.testing.assert_allclose(result.table["area_um2"], result.table["area_px"] * 0.0625)
    masked = segment_image(bm_crop, dataclasses.replace(config, patch_mode="masked"), image_id="bm")
    assert len(masked.table) == len(result.table)
    white = lambda p: (p.min(axis=-1) >= 250).mean()  # noqa: E731
    assert white(result.patches) < 0.2 < white(masked.patches)  # context keeps the surroundings


def test_blank_glass_is_an_image_without_cells_and_tiny_images_are_refused():
    white = np.full((100, 120, 3), 255, np.uint8)
    result = segment_image(white, SegmentConfig(mpp=0.5), image_id="white")
    assert len(result.table) == 0 and result.patches.shape == (0, 32, 32, 3)
    assert result.empty_reason.startswith("no tissue")
    assert result.label_mask.shape == (100, 120) and not result.label_mask.any()
    info = result.image_info
    assert (info["height"], info["width"], info["mpp"], info["tissue_fraction"]) == (100, 120, 0.5, 0.0)
    assert info["colour_rgb_mean_r"] == 255.0 and info["colour_hist_g_7"] == 1.0
    with pytest.raises(SegmentationError, match="smaller than a 32"):
        segment_image(np.full((20, 100, 3), 128, np.uint8), image_id="tiny")


@pytest.mark.realdata
def test_blank_glass_is_found_before_reinhard_could_stretch_it_into_tissue(data_root):
    crc = data_root / "crchistophenotypes" / "train"
    blank = read_rgb(crc / "img76" / "img76.png")  # blank glass, one annotated nucleus
    config = SegmentConfig(reinhard_reference=str(crc / "img39" / "img39.png"))
    result = segment_image(blank, config, image_id="img76")
    assert len(result.table) == 0 and result.empty_reason.startswith("no tissue")
    with pytest.raises(SegmentationError, match="no tissue"):
        cells_at_points(blank, np.array([[250.0, 250.0]]), config, image_id="img76")


@pytest.mark.realdata
def test_cells_at_points_one_row_per_point_with_labels(crc_record):
    from scipy import ndimage as ndi

    rgb = crc_record.read_rgb()
    brightness = ndi.uniform_filter(rgb.min(axis=-1).astype(float), 21)
    glass_y, glass_x = np.unravel_index(np.argmax(brightness), brightness.shape)
    xy = np.vstack([crc_record.labelled_centres[:40], [[glass_x, glass_y]]])
    labels = list(crc_record.cell_labels[:40]) + ["glass"]
    config = SegmentConfig(mpp=0.5)
    result = cells_at_points(rgb, xy, config, image_id=crc_record.image_id, labels=labels)
    _check_result(result, rgb.shape[:2], crc_record.image_id)
    table = result.table
    assert len(table) == 41 and list(table["label"]) == [str(v) for v in labels]
    np.testing.assert_allclose(table[["centroid_x", "centroid_y"]].to_numpy(), xy)
    assert (table["source"] == "points").all()
    # Every cell's region lies around its point (within half a nucleus radius: 2.5 px).
    for low, high, coordinate in (("bbox_x0", "bbox_x1", 0), ("bbox_y0", "bbox_y1", 1)):
        assert (table[low] <= xy[:, coordinate] + 2.5).all() and (table[high] >= xy[:, coordinate] - 2.5).all()
    # The point on white glass gets the fallback disc of the typical nucleus radius (5 px).
    assert table["area_px"].iloc[-1] == pytest.approx(np.pi * 5**2, rel=0.4)
    assert set(np.unique(result.label_mask)) <= set(range(42))
    context = cells_at_points(rgb, xy, dataclasses.replace(config, patch_mode="context"), image_id="c")
    inner = np.flatnonzero((xy.min(axis=1) >= 16) & (xy.max(axis=1) < min(rgb.shape[:2]) - 16))[0]
    top, left = (np.floor(xy[inner, ::-1] - 16 + 0.5)).astype(int)  # 16 µm at 0.5 µm/px: 32 px, unscaled
    np.testing.assert_array_equal(context.patches[inner], rgb[top : top + 32, left : left + 32])
    # Faded patches: the same crops; each cell's own nucleus (the label mask under its
    # point, the glass point's disc included) unchanged, all else lighter.
    faded = cells_at_points(rgb, xy, dataclasses.replace(config, patch_mode="faded"), image_id="f")
    for i in (inner, len(xy) - 1):
        top, left = (np.floor(xy[i, ::-1] - 16 + 0.5)).astype(int)
        crop = rgb[top : top + 32, left : left + 32]
        own = faded.label_mask[top : top + 32, left : left + 32] == faded.label_mask[round(xy[i, 1]), round(xy[i, 0])]
        assert own[16, 16] and 10 < own.sum() < 32 * 32 / 2
        np.testing.assert_array_equal(faded.patches[i][own], crop[own])
        assert (faded.patches[i][~own].astype(int) >= crop[~own]).all()
        expected = 255 - config.context_weight * (255 - crop[~own].astype(float))
        np.testing.assert_allclose(faded.patches[i][~own], expected, atol=0.5)


def test_cells_at_points_rejects_bad_points():
    rgb = np.full((64, 64, 3), 180, np.uint8)
    with pytest.raises(ValueError, match="outside"):
        cells_at_points(rgb, [[10, 10], [70, 5]], image_id="x")
    with pytest.raises(ValueError, match="shape"):
        cells_at_points(rgb, [1, 2, 3], image_id="x")
    with pytest.raises(ValueError, match="labels"):
        cells_at_points(rgb, [[10, 10]], image_id="x", labels=["a", "b"])


def test_image_ids_are_stems_disambiguated_by_folder():
    ids = image_ids([Path("a/img1.png"), Path("b/img1.tif"), Path("b/other.png"), Path("c/a_img1.png")])
    assert ids[Path("b/other.png")] == "other"
    assert ids[Path("a/img1.png")] == "a_img1" and ids[Path("b/img1.tif")] == "b_img1"
    assert len(set(ids.values())) == 4


def _write_bad_files(folder: Path) -> dict[str, str]:
    """One file per way an image can fail, and the words its reason must contain."""
    (folder / "zero.png").write_bytes(b"")
    (folder / "text.png").write_text("not an image")
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(folder / "cut.png")
    (folder / "cut.png").write_bytes((folder / "cut.png").read_bytes()[:50])
    Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(folder / "tiny.png")
    return {
        "zero.png": "empty",
        "text.png": "not a recognised",
        "cut.png": "cannot decode",
        "tiny.png": "smaller",
    }


@pytest.mark.realdata
def test_segment_images_reports_failures_goes_on_and_resumes(tmp_path, bm_crop):
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    Image.fromarray(bm_crop[:128]).save(images / "good1.png")
    Image.fromarray(bm_crop[128:]).save(images / "sub" / "good2.tif")
    reasons = _write_bad_files(images)
    Image.fromarray(np.full((200, 200, 3), 255, np.uint8)).save(images / "white.png")  # blank glass: no cell
    store = CellStore.create(tmp_path / "run" / "cells", patch_mode="masked")
    summary = segment_images([images], store, SegmentConfig(mpp=0.3), progress=False)
    assert sorted(summary.done) == ["good1", "good2", "white"] and summary.skipped == ()
    assert {Path(k).name for k in summary.failed} == set(reasons)
    for name, reason in summary.failed.items():
        assert reasons[Path(name).name] in reason, (name, reason)
    assert [Path(k).name for k in summary.empty] == ["white.png"]
    assert next(iter(summary.empty.values())).startswith("no tissue")
    assert store.image_ids() == ["good1", "good2", "white"]
    info = store.read_image_info()
    assert info.loc["white", "tissue_fraction"] == 0.0 and 0.1 < info.loc["good1", "tissue_fraction"] <= 1.0
    assert store.read_mask("good1").shape == (128, 256)
    assert store.overlay_path("good2").is_file()
    table = store.read_table()
    assert len(table) == len(store.read_patches()) > 10
    again = segment_images([images], store, SegmentConfig(mpp=0.3), progress=False)
    assert again.done == () and sorted(again.skipped) == ["good1", "good2", "white"] and len(again.failed) == 4
    with pytest.raises(ValueError, match="context"):
        segment_images([images], store, SegmentConfig(patch_mode="context"), progress=False)


@pytest.mark.realdata
def test_segment_images_to_the_typical_image_leaves_unreadable_files_to_fail_alone(tmp_path, bm_crop):
    images = tmp_path / "images"
    images.mkdir()
    for name, tint in (("pale", 1.15), ("mid", 1.0), ("dark", 0.85)):
        Image.fromarray(np.clip(bm_crop * tint, 0, 255).astype(np.uint8)).save(images / f"{name}.png")
    (images / "broken.png").write_text("not an image")
    store = CellStore.create(tmp_path / "cells", patch_mode="masked")
    summary = segment_images([images], store, SegmentConfig(reinhard_reference="typical"), progress=False)
    assert sorted(summary.done) == ["dark", "mid", "pale"]
    assert [Path(k).name for k in summary.failed] == ["broken.png"]
    # Normalised to the same image, the three tints give nearly the same patches.
    patches = {i: store.read_patches()[store.read_table()["image"].to_numpy() == i] for i in summary.done}
    assert abs(patches["pale"].mean() - patches["dark"].mean()) < 3


@pytest.mark.realdata
def test_cells_from_folder_keeps_subfolder_labels(tmp_path, crc_record):
    rgb = crc_record.read_rgb()
    crops = tmp_path / "crops"
    for label in ("epithelial", "inflammatory"):
        (crops / label).mkdir(parents=True)
    for i, ((x, y), label) in enumerate(zip(crc_record.labelled_centres[:12], crc_record.cell_labels[:12])):
        x, y = int(np.clip(x, 12, rgb.shape[1] - 13)), int(np.clip(y, 12, rgb.shape[0] - 13))
        folder = crops / ("epithelial" if i % 2 else "inflammatory")
        Image.fromarray(rgb[y - 12 : y + 13, x - 12 : x + 13]).save(folder / f"cell{i}.png")
    Image.fromarray(rgb[:80, :50]).save(crops / "big.png")  # a crop larger than a patch, no label
    (crops / "epithelial" / "broken.png").write_text("nope")
    store = CellStore.create(tmp_path / "run" / "cells", patch_mode="masked")
    summary = cells_from_folder(crops, store, SegmentConfig(mpp=0.5), progress=False)
    assert sorted(summary.done) == ["crops", "epithelial", "inflammatory"]
    assert [Path(k).name for k in summary.failed] == ["broken.png"]
    table = store.read_table()
    assert len(table) == 13 and (table["source"] == "folder").all()
    by_shard = table.groupby("image")["label"].first().to_dict()
    assert by_shard == {"crops": None, "epithelial": "epithelial", "inflammatory": "inflammatory"}
    files = set(table.loc[table["image"] == "epithelial", "file"])
    assert files == {f"epithelial/cell{i}.png" for i in (1, 3, 5, 7, 9, 11)}
    patches = store.read_patches()
    assert patches.shape == (13, 32, 32, 3)
    big = patches[table.index[table["image"] == "crops"][0]]
    assert (big.min(axis=-1) < 250).any()
    again = cells_from_folder(crops, store, SegmentConfig(mpp=0.5), progress=False)
    assert again.done == () and len(again.skipped) == 3


def test_segment_config_validates_and_accepts_a_yaml_mapping():
    import yaml

    values = yaml.safe_load("mpp: 0.25\npatch_mode: context\nmin_area_px: 50\n")
    config = SegmentConfig(**values)
    assert config.mpp == 0.25 and config.patch_mode == "context" and config.min_area_px == 50
    bad_values = ({"patch_mode": "whole"}, {"mpp": -1.0}, {"work_mpp": 0}, {"min_area_um2": 50, "max_area_um2": 10})
    for bad in bad_values + ({"context_weight": 1.2}, {"context_weight": -0.1}):
        with pytest.raises(ValueError):
            SegmentConfig(**bad)
    with pytest.raises(TypeError):
        SegmentConfig(colour="blue")


def test_table_is_empty_but_well_formed_when_no_nucleus_is_found():
    rgb = np.full((64, 64, 3), (200, 140, 190), np.uint8)  # pink stroma, no nucleus
    result = segment_image(rgb, SegmentConfig(mpp=0.5), image_id="pink")
    assert len(result.table) == 0 and result.patches.shape == (0, 32, 32, 3)
    assert isinstance(result.table, pd.DataFrame) and not result.label_mask.any()


def _crc_crop(data_root, split, name, rows, cols):
    from cellgan.io.images import read_rgb

    return np.ascontiguousarray(read_rgb(data_root / "crchistophenotypes" / split / name / f"{name}.png")[rows, cols])


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("artefact", "tissue"),
    [
        # black pigment below the tissue of img11; blue marking dye across img62
        (("test", "img11", slice(300, 500), slice(0, 250)), ("test", "img11", slice(0, 150), slice(0, 500))),
        (("test", "img62", slice(300, 500), slice(200, 420)), ("test", "img62", slice(0, 200), slice(0, 250))),
    ],
    ids=["pigment", "blue dye"],
)
def test_stain_artefacts_give_no_nuclei_while_tissue_keeps_its_own(data_root, artefact, tissue):
    config = SegmentConfig(mpp=0.5)
    unfiltered = dataclasses.replace(config, max_stain_angle_deg=90)
    rgb = _crc_crop(data_root, *artefact)
    assert len(segment_image(rgb, unfiltered, image_id="a").table) >= 20  # what the H channel alone finds
    assert len(segment_image(rgb, config, image_id="a").table) <= 3
    rgb = _crc_crop(data_root, *tissue)
    kept = len(segment_image(rgb, config, image_id="t").table)
    assert kept >= 0.8 * len(segment_image(rgb, unfiltered, image_id="t").table) and kept >= 25
