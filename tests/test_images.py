"""Reading images of every common kind as uint8 RGB, and their pixel size."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from cellgan.io.images import ImageReadError, find_images, read_mpp, read_rgb, to_rgb_uint8


def _gradient(h=40, w=50) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 5 % 256, yy * 6 % 256, (xx + yy) * 3 % 256], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_rgb_round_trip_is_exact(tmp_path, suffix):
    rgb = _gradient()
    path = tmp_path / f"img{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, rgb)
    else:
        Image.fromarray(rgb).save(path)
    out = read_rgb(path)
    assert out.dtype == np.uint8 and out.shape == (40, 50, 3)
    np.testing.assert_array_equal(out, rgb)


def test_jpeg_is_read_close_to_the_original(tmp_path):
    rgb = np.full((32, 32, 3), (180, 90, 160), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=95)
    out = read_rgb(tmp_path / "a.jpg")
    assert out.shape == (32, 32, 3)
    assert np.abs(out.astype(int) - rgb).max() <= 4


def test_rgba_is_composited_onto_white(tmp_path):
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., :3] = (100, 0, 200)
    rgba[:5, :, 3] = 255  # top half opaque
    rgba[5:, :, 3] = 0  # bottom half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = read_rgb(tmp_path / "a.png")
    np.testing.assert_array_equal(out[0, 0], (100, 0, 200))
    np.testing.assert_array_equal(out[9, 9], (255, 255, 255))


def test_greyscale_becomes_three_equal_channels(tmp_path):
    grey = np.arange(100, dtype=np.uint8).reshape(10, 10)
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    out = read_rgb(tmp_path / "g.png")
    assert out.shape == (10, 10, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_sixteen_bit_greyscale_png_is_scaled_to_eight_bits(tmp_path):
    grey16 = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    out = read_rgb(tmp_path / "g16.png")
    np.testing.assert_array_equal(out[0, :, 0], [0, 100, 255])


def test_sixteen_bit_rgb_tiff_is_scaled_to_eight_bits(tmp_path):
    rgb16 = (_gradient().astype(np.uint16) * 257).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", rgb16)
    np.testing.assert_array_equal(read_rgb(tmp_path / "a.tif"), _gradient())


def test_channels_first_and_float_arrays_are_converted():
    planar = np.moveaxis(_gradient(), -1, 0)
    np.testing.assert_array_equal(to_rgb_uint8(planar), _gradient())
    np.testing.assert_array_equal(to_rgb_uint8(np.array([[0.0, 1.0]]))[0, :, 0], [0, 255])
    with pytest.raises(ImageReadError, match="not an image"):
        to_rgb_uint8(np.zeros((5, 5, 5)))
    with pytest.raises(ImageReadError, match="empty"):
        to_rgb_uint8(np.zeros((0, 4, 3)))


def test_bad_files_raise_a_clear_error_naming_the_file(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    corrupt = tmp_path / "corrupt.png"
    Image.fromarray(_gradient()).save(corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:60])  # header survives, data cut off
    bad_tiff = tmp_path / "bad.tif"
    bad_tiff.write_bytes(b"II*\x00garbage")
    for path, why in [
        (empty, "empty"),
        (text, "not a recognised image"),
        (corrupt, "cannot decode"),
        (bad_tiff, "cannot decode|holds no image"),
        (tmp_path / "missing.png", "no such file"),
    ]:
        with pytest.raises(ImageReadError, match=why) as info:
            read_rgb(path)
        assert str(path) in str(info.value)
        assert isinstance(info.value, ValueError)


def test_read_mpp_from_tiff_tags_and_description(tmp_path):
    rgb = _gradient()
    tifffile.imwrite(tmp_path / "cm.tif", rgb, resolution=(40000, 40000), resolutionunit="CENTIMETER")
    assert read_mpp(tmp_path / "cm.tif") == pytest.approx(0.25)
    tifffile.imwrite(tmp_path / "inch.tif", rgb, resolution=(101600, 101600), resolutionunit="INCH")
    assert read_mpp(tmp_path / "inch.tif") == pytest.approx(0.25)
    tifffile.imwrite(tmp_path / "aperio.tif", rgb, description="Aperio Image Library v12|AppMag = 20|MPP = 0.4990")
    assert read_mpp(tmp_path / "aperio.tif") == pytest.approx(0.499)


def test_read_mpp_ignores_writer_defaults_and_missing_metadata(tmp_path):
    rgb = _gradient()
    tifffile.imwrite(tmp_path / "dpi72.tif", rgb, resolution=(72, 72), resolutionunit="INCH")
    assert read_mpp(tmp_path / "dpi72.tif") is None  # 352.8 µm per pixel: a default, not a scan
    tifffile.imwrite(tmp_path / "plain.tif", rgb)
    assert read_mpp(tmp_path / "plain.tif") is None
    Image.fromarray(rgb).save(tmp_path / "plain.png")
    assert read_mpp(tmp_path / "plain.png") is None
    Image.fromarray(rgb).save(tmp_path / "dpi.png", dpi=(101600, 101600))
    assert read_mpp(tmp_path / "dpi.png") == pytest.approx(0.25, rel=1e-3)
    (tmp_path / "junk.tif").write_bytes(b"junk")
    assert read_mpp(tmp_path / "junk.tif") is None


def test_find_images_recurses_filters_and_dedupes(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.png", "a/b/y.TIF", "a/b/z.jpeg", "a/notes.txt", "a/.hidden.png"):
        (tmp_path / name).write_bytes(b"x")
    found = find_images([tmp_path / "a", tmp_path / "a" / "x.png"])
    assert [p.name for p in found] == ["y.TIF", "z.jpeg", "x.png"]  # sorted by path
    assert find_images([tmp_path / "a" / "notes.txt"]) == [tmp_path / "a" / "notes.txt"]  # explicit files kept
    with pytest.raises(FileNotFoundError, match="nope"):
        find_images([tmp_path / "nope"])


@pytest.mark.realdata
def test_real_images_of_each_dataset_read_as_rgb(data_root):
    png = read_rgb(data_root / "bm_graz" / "source" / "BM_GRAZ_HE_0001_01.png")
    assert png.shape == (1200, 1200, 3) and png.dtype == np.uint8
    tif = data_root / "monuseg_test" / "TCGA-2Z-A9J9-01A-01-TS1.tif"
    assert read_rgb(tif).shape == (1000, 1000, 3)
    assert read_mpp(tif) is None  # MoNuSeg's TIFFs carry only the 72 dpi default
    assert read_mpp(data_root / "bm_graz" / "source" / "BM_GRAZ_HE_0001_01.png") is None
