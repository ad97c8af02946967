"""Hostile image files (issue 14): memory bombs, odd names, odd pixel sizes and odd pixel formats.

Each must be segmented correctly or refused with a one-line reason naming the file,
never by a traceback, an exhausted memory or a silent 0 cells.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from cellgan.bench.reliability import tiff_bomb as _tiff_bomb
from cellgan.bench.reliability import white_png as _white_png
from cellgan.io.cellstore import CellStore
from cellgan.io.files import safe_image_id
from cellgan.io.images import DEFAULT_MAX_PIXELS, ImageReadError, ImageTooLargeError, read_rgb
from cellgan.segment import SegmentationError, SegmentConfig, image_ids, segment_image, segment_images

#: The peak resident memory allowed to a process refusing a bomb.
_ONE_GB = 1 << 30


# -- files that claim far more pixels than they hold ------------------------------------


_REFUSE = textwrap.dedent(
    """
    import json, sys, warnings
    warnings.simplefilter("error")  # a DecompressionBombWarning must not reach the user
    from cellgan.bench._common import peak_rss_mb  # its own peak, not the one inherited from pytest
    from cellgan.cli.main import main
    status = main(["segment", *sys.argv[2:], "--out", sys.argv[1], "--quiet"])
    print(json.dumps({"status": status, "peak": peak_rss_mb() * 2**20}))
    """
)


def _segment_in_subprocess(tmp_path: Path, *args) -> tuple[dict, str]:
    """``cellgan segment ARGS`` in a fresh interpreter: its exit status, peak RSS (bytes) and stderr."""
    done = subprocess.run(
        [sys.executable, "-c", _REFUSE, str(tmp_path / "run"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_bombs_are_refused_from_their_header_under_one_gigabyte(tmp_path):
    bombs = tmp_path / "bombs"
    bombs.mkdir()
    claims = {
        _tiff_bomb(bombs / "claims20k.tif", 20_000): 20_000,
        _tiff_bomb(bombs / "claims60k.tif", 60_000): 60_000,
        _white_png(bombs / "white12k.png", 12_000): 12_000,
    }
    assert all(path.stat().st_size < 12e6 for path in claims)
    result, stderr = _segment_in_subprocess(tmp_path, bombs, "--reinhard-reference", "none")  # each image refused
    assert result["status"] == 1
    assert result["peak"] < _ONE_GB, f"peak RSS {result['peak'] / 2**20:.0f} MiB"
    assert "DecompressionBomb" not in stderr and "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("failed: ")]
    assert len(lines) == 3
    for path, side in claims.items():
        (line,) = [line for line in lines if path.name in line]
        assert f"{side}×{side}" in line and f"{side * side:,} pixels" in line
        assert f"{DEFAULT_MAX_PIXELS:,}" in line and "--max-pixels" in line


def test_the_pixel_budget_is_checked_before_decoding_and_can_be_raised(tmp_path):
    rgb = np.full((120, 100, 3), (200, 150, 190), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    tifffile.imwrite(tmp_path / "a.tif", rgb)
    for name in ("a.png", "a.tif"):
        with pytest.raises(ImageTooLargeError, match=rf"{name}: image is 100×120 px \(12,000 pixels\), over the budget of 11,999"):
            read_rgb(tmp_path / name, max_pixels=11_999)
        np.testing.assert_array_equal(read_rgb(tmp_path / name, max_pixels=12_000), rgb)
    assert issubclass(ImageTooLargeError, ImageReadError)


def test_max_pixels_option_reaches_the_reader(tmp_path, capsys):
    from cellgan.cli.main import build_parser, main

    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(tmp_path / "a.png")
    assert main(["segment", str(tmp_path / "a.png"), "--out", str(tmp_path / "run"), "--quiet", "--max-pixels", "4000"]) == 1
    assert "over the budget of 4,000 pixels" in capsys.readouterr().err
    parser = build_parser()
    for argv in (["run", "--out", "r"], ["cells", "from-folder", "d", "--out", "r"], ["segment", "a", "--out", "r"]):
        assert parser.parse_args([*argv, "--max-pixels", "2.5e8"]).max_pixels == 250_000_000
        assert parser.parse_args(argv).max_pixels == DEFAULT_MAX_PIXELS
    with pytest.raises(SystemExit):
        parser.parse_args(["segment", "a", "--out", "r", "--max-pixels", "0"])


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


def test_a_tiff_at_0_03_microns_per_pixel_is_segmented_without_error(tmp_path):
    rgb = np.full((200, 200, 3), (200, 140, 190), np.uint8)
    tifffile.imwrite(tmp_path / "fine.tif", rgb, description="Aperio Image|MPP = 0.03")
    store = CellStore.create(tmp_path / "cells", patch_mode="masked")
    summary = segment_images([tmp_path / "fine.tif"], store, progress=False)
    assert summary.failed == {} and summary.done == ("fine",)
    assert summary.empty == {str(tmp_path / "fine.tif"): "no nucleus found"}


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


# -- pixel formats that gave wrong results silently ------------------------------------


def _pink_and_purple(shape=(64, 64)) -> np.ndarray:
    """Pink stroma with purple discs: an H&E-like uint8 RGB image."""
    rgb = np.empty((*shape, 3), np.uint8)
    rgb[:] = (230, 170, 210)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    rgb[((yy % 16) - 8) ** 2 + ((xx % 16) - 8) ** 2 < 16] = (90, 50, 140)
    return rgb


def test_twelve_bit_data_in_sixteen_bit_files_is_scaled_by_its_range(tmp_path):
    rgb = _pink_and_purple()
    twelve = (rgb.astype(np.uint32) * 4095 // 255).astype(np.uint16)
    tifffile.imwrite(tmp_path / "12bit.tif", twelve)
    np.testing.assert_allclose(read_rgb(tmp_path / "12bit.tif"), rgb, atol=1)
    full = (rgb.astype(np.uint16) * 257).astype(np.uint16)
    tifffile.imwrite(tmp_path / "16bit.tif", full)
    np.testing.assert_array_equal(read_rgb(tmp_path / "16bit.tif"), rgb)


def test_float_images_in_0_to_255_are_scaled_like_8_bit(tmp_path):
    rgb = _pink_and_purple()
    tifffile.imwrite(tmp_path / "f255.tif", rgb.astype(np.float32), photometric="rgb")
    np.testing.assert_array_equal(read_rgb(tmp_path / "f255.tif"), rgb)
    tifffile.imwrite(tmp_path / "f1.tif", rgb.astype(np.float32) / 255, photometric="rgb")
    np.testing.assert_array_equal(read_rgb(tmp_path / "f1.tif"), rgb)
    tifffile.imwrite(tmp_path / "huge.tif", np.full((8, 8, 3), 1e6, np.float32), photometric="rgb")
    with pytest.raises(ImageReadError, match=r"huge.tif: floating-point values up to 1e\+06"):
        read_rgb(tmp_path / "huge.tif")


def test_cmyk_tiff_is_converted_to_rgb(tmp_path):
    cmyk = np.zeros((16, 16, 4), np.uint8)
    cmyk[..., 1] = 128  # magenta ink only: (255, 127, 255)
    cmyk[8:, ..., 3] = 255  # black ink in the lower half
    tifffile.imwrite(tmp_path / "cmyk.tif", cmyk, photometric="separated")
    rgb = read_rgb(tmp_path / "cmyk.tif")
    np.testing.assert_allclose(rgb[:8], np.broadcast_to([255, 127, 255], (8, 16, 3)), atol=1)
    assert rgb[8:].max() == 0


def test_four_channels_without_alpha_are_rgb_plus_an_ignored_sample(tmp_path):
    rgb = _pink_and_purple()
    extra = np.concatenate([rgb, np.zeros((*rgb.shape[:2], 1), np.uint8)], axis=2)  # as alpha: all transparent
    tifffile.imwrite(tmp_path / "rgbx.tif", extra, photometric="rgb", extrasamples=[0])
    np.testing.assert_array_equal(read_rgb(tmp_path / "rgbx.tif"), rgb)
    tifffile.imwrite(tmp_path / "rgba.tif", extra, photometric="rgb", extrasamples=[2])
    assert read_rgb(tmp_path / "rgba.tif").min() == 255  # true alpha 0: transparent, white
    tifffile.imwrite(tmp_path / "four.tif", extra, photometric="minisblack", planarconfig="contig")
    with pytest.raises(ImageReadError, match=r"four.tif: 4 channels .*not an RGB"):
        read_rgb(tmp_path / "four.tif")


def test_two_channel_tiff_is_refused_with_the_reason(tmp_path):
    two = np.zeros((32, 32, 2), np.uint8)
    tifffile.imwrite(tmp_path / "two.tif", two, photometric="minisblack", planarconfig="contig")
    with pytest.raises(ImageReadError, match=r"two.tif: 2 channels.*H&E needs three colour channels"):
        read_rgb(tmp_path / "two.tif")


def test_greyscale_and_dark_background_images_are_refused_as_not_h_and_e():
    grey = _pink_and_purple().mean(axis=2).astype(np.uint8)
    with pytest.raises(SegmentationError, match="greyscale"):
        segment_image(grey, SegmentConfig(mpp=0.5), image_id="grey")
    fluorescence = np.zeros((64, 64, 3), np.uint8)
    fluorescence[_pink_and_purple()[..., 0] < 100] = (20, 40, 230)  # blue nuclei on black
    with pytest.raises(SegmentationError, match=r"not H&E-like \(dark background"):
        segment_image(fluorescence, SegmentConfig(mpp=0.5), image_id="dapi")


def test_every_image_without_cells_is_named_in_the_summary_with_its_reason(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(_pink_and_purple().mean(axis=2).astype(np.uint8), "L").save(images / "grey.png")
    dark = np.zeros((64, 64, 3), np.uint8)
    dark[_pink_and_purple()[..., 0] < 100] = (20, 40, 230)
    Image.fromarray(dark).save(images / "dapi.png")
    Image.fromarray(np.full((64, 64, 3), (200, 140, 190), np.uint8)).save(images / "stroma.png")
    store = CellStore.create(tmp_path / "cells", patch_mode="masked")
    summary = segment_images([images], store, SegmentConfig(mpp=0.5), progress=False)
    failed = {Path(k).name: v for k, v in summary.failed.items()}
    assert "greyscale" in failed["grey.png"] and "not H&E-like (dark background" in failed["dapi.png"]
    assert summary.empty == {str(images / "stroma.png"): "no nucleus found"}


def test_an_overlong_file_name_gives_an_id_that_fits_a_file_name():
    long_id = safe_image_id("细胞" * 100)
    assert len(long_id.encode()) <= 120 and long_id.startswith("细胞细胞")
    assert long_id != safe_image_id("细胞" * 101) and long_id == safe_image_id("细胞" * 100)


def test_the_run_pipeline_segment_stage_takes_the_budget(tmp_path):
    from cellgan.pipeline import StageError, segment_stage

    Image.fromarray(_pink_and_purple()).save(tmp_path / "a.png")
    with pytest.raises(StageError, match="over the budget of 4,000 pixels"):
        segment_stage([tmp_path / "a.png"], tmp_path / "cells", SegmentConfig(mpp=0.5), max_pixels=4000, progress=False)
