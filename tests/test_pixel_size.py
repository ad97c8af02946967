"""The pixel-size estimate: pooled over fields, refused when its fields disagree; checked on every shared dataset."""

from __future__ import annotations

import numpy as np
import pytest

from cellgan.io import datasets
from cellgan.segment.batch import pixel_sizes
from cellgan.segment.config import SegmentConfig
from cellgan.segment.pixel_size import MAX_SPREAD, PixelSizeError, pool_estimates


def test_pool_estimates_trusts_only_agreeing_fields():
    agreeing = pool_estimates([0.5, 0.52, 0.48, 0.51])
    assert agreeing.trusted and agreeing.mpp == pytest.approx(0.505)
    assert not pool_estimates([0.5, 0.5]).trusted  # too few fields to judge
    assert not pool_estimates([0.3, 0.5, 0.9, 0.4, 0.7]).trusted  # they disagree
    assert pool_estimates([]).mpp is None and not pool_estimates([]).trusted
    assert pool_estimates([0.5, 0.5 * np.exp(MAX_SPREAD), 0.5 / np.exp(MAX_SPREAD)]).spread == pytest.approx(MAX_SPREAD)


def test_given_and_file_pixel_sizes_are_not_estimated(tmp_path):
    import tifffile

    path = tmp_path / "a.tif"
    tifffile.imwrite(path, np.full((40, 40, 3), 200, np.uint8), resolution=(40000.0, 40000.0), resolutionunit=3)
    assert pixel_sizes([path], SegmentConfig(mpp=0.3)) == {path: (0.3, "given")}
    assert pixel_sizes([path], SegmentConfig())[path] == (pytest.approx(0.25), "file")
    from PIL import Image

    blank = tmp_path / "blank.png"  # nothing to estimate from, nor to segment: the segmentation says why
    Image.fromarray(np.full((40, 40, 3), 255, np.uint8)).save(blank)
    assert pixel_sizes([blank], SegmentConfig()) == {blank: (None, "unknown")}
    tissue = np.empty((100, 100, 3), np.uint8)
    tissue[:] = (235, 180, 210)  # eosin pink, with haematoxylin-purple nuclei
    yy, xx = np.mgrid[:100, :100]
    for cy, cx in ((25, 25), (70, 40), (40, 75)):
        tissue[(yy - cy) ** 2 + (xx - cx) ** 2 <= 36] = (90, 50, 140)
    one_field = tmp_path / "b.png"
    Image.fromarray(tissue).save(one_field)
    with pytest.raises(PixelSizeError, match=r"b\.png: no pixel size in the file.*only 1 field.*give it with --mpp"):
        pixel_sizes([one_field], SegmentConfig())


def _subset(items, n, seed):
    return [items[i] for i in np.random.default_rng(seed).choice(len(items), min(n, len(items)), replace=False)]


# dataset, loader, how many images, subset seed, the known pixel size (None: the images' own), trusted?
CASES = [
    ("kather2016", datasets.load_kather2016, 12, 2, datasets.KATHER2016_MPP, True),
    ("crchistophenotypes", datasets.load_crchistophenotypes, 8, 0, 0.5, True),
    ("consep", datasets.load_consep, 12, 0, datasets.CONSEP_MPP, False),  # 0.45 if trusted: refused
    ("monuseg_test", datasets.load_monuseg, 1, 0, None, True),  # from its XML, not in the TIFF; 4 fields
    ("bm_graz", datasets.load_bm_graz, 2, 0, None, True),  # never published: only trusted or not
]


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("name, load, n, seed, known, trusted", CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_estimate_is_within_15_percent_or_refused(data_root, name, load, n, seed, known, trusted):
    images = _subset(load(data_root / name), n, seed)
    known = known if known is not None else images[0].mpp
    paths = [image.path for image in images]
    if not trusted:
        with pytest.raises(PixelSizeError, match="disagree.*give it with --mpp"):
            pixel_sizes(paths, SegmentConfig())
        return
    sizes = pixel_sizes(paths, SegmentConfig())
    (mpp, source), *_ = sizes.values()
    assert source == "estimated" and len({v for v in sizes.values()}) == 1
    if known is not None:
        assert abs(mpp / known - 1) <= 0.15, f"{name}: estimated {mpp:.3f}, known {known}"


@pytest.mark.realdata
def test_field_estimates_are_kept_for_a_resumed_run(data_root, tmp_path, monkeypatch):
    from cellgan.segment import batch

    paths = [image.path for image in _subset(datasets.load_crchistophenotypes(data_root / "crchistophenotypes"), 3, 0)]
    cache = tmp_path / batch.FIELD_ESTIMATES_FILE
    first = pixel_sizes(paths, SegmentConfig(), cache=cache)
    assert cache.is_file()
    prepared = []
    original = batch.prepare
    monkeypatch.setattr(batch, "prepare", lambda *a, **k: prepared.append(1) or original(*a, **k))
    assert pixel_sizes(paths, SegmentConfig(), cache=cache) == first
    assert not prepared  # the resumed run reads the kept estimates
    pixel_sizes(paths, SegmentConfig(nucleus_radius_um=3.0), cache=cache)
    assert len(prepared) == 3  # other options: estimated afresh


@pytest.mark.realdata
def test_a_large_run_estimates_from_an_even_sample_of_its_images(data_root, tmp_path, monkeypatch):
    from PIL import Image

    from cellgan.segment import batch, pixel_size

    paths = [image.path for image in _subset(datasets.load_crchistophenotypes(data_root / "crchistophenotypes"), 5, 3)]
    monkeypatch.setattr(pixel_size, "MAX_ESTIMATE_IMAGES", 3)  # a 500-px CRCHistoPhenotypes image is one field
    sample = [paths[0], paths[2], paths[4]]
    assert pixel_size.estimate_sample(paths) == sample
    prepared = []
    original = batch.prepare
    monkeypatch.setattr(batch, "prepare", lambda *a, **k: prepared.append(1) or original(*a, **k))
    sizes = pixel_sizes(paths, SegmentConfig())
    assert len(prepared) == 3 and len(set(sizes.values())) == 1
    assert sizes[paths[1]][1] == "estimated" and sizes[paths[1]][0] == pytest.approx(0.5, rel=0.15)
    assert sizes[paths[0]] == pixel_sizes(sample, SegmentConfig())[paths[0]]  # the sample's estimate
    mixed = []
    for i in range(7):  # the sample (0, 3, 6) unreadable, the others the real images
        mixed.append(tmp_path / f"{i}.png")
        if i % 3 == 0:
            mixed[-1].write_bytes(b"not a png")
        else:
            Image.open(paths[len(mixed) % 5]).save(mixed[-1])
    (mpp, source), *_ = pixel_sizes(mixed, SegmentConfig()).values()  # no field in the sample: the others are read
    assert source == "estimated" and mpp == pytest.approx(0.5, rel=0.15)
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((40, 40, 3), 255, np.uint8)).save(blank)
    prepared.clear()
    assert pixel_sizes([blank], SegmentConfig()) == {blank: (None, "unknown")}
    assert len(prepared) == 1  # a sample that is the whole run is not tried twice


@pytest.mark.realdata
def test_the_estimate_reads_the_images_unnormalised_as_it_was_calibrated(data_root, tmp_path, monkeypatch):
    from cellgan.segment import batch, image

    paths = [record.path for record in _subset(datasets.load_bm_graz(data_root / "bm_graz"), 2, 0)]
    unnormalised = pixel_sizes(paths, SegmentConfig())
    monkeypatch.setattr(image, "reinhard_normalise", lambda *a, **k: pytest.fail("the estimate normalised an image"))
    cache = tmp_path / "estimates.json"
    assert pixel_sizes(paths, SegmentConfig(reinhard_reference=str(paths[1])), cache=cache) == unnormalised
    prepared = []
    original = batch.prepare
    monkeypatch.setattr(batch, "prepare", lambda *a, **k: prepared.append(1) or original(*a, **k))
    assert pixel_sizes(paths, SegmentConfig(), cache=cache) == unnormalised
    assert not prepared  # one estimate, kept for a recipe with normalisation or without


@pytest.mark.realdata
@pytest.mark.slow
def test_dask_workers_estimate_the_serial_pixel_size_and_reference(data_root):
    pytest.importorskip("distributed")
    from cellgan.segment.batch import task_runner
    from cellgan.segment.reference import typical_image

    paths = [image.path for image in _subset(datasets.load_crchistophenotypes(data_root / "crchistophenotypes"), 4, 1)]
    with task_runner("local:2") as runner:
        assert pixel_sizes(paths, SegmentConfig(), runner=runner) == pixel_sizes(paths, SegmentConfig())
        assert typical_image([*paths, paths[0].parent / "missing.png"], runner=runner) == typical_image(paths)
