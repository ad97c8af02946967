"""The HTML report and its figures: self-contained, escaped, faithful to the run's files."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from cellgan.io.palette import category_colours
from cellgan.report.figures import (
    composition_chart,
    generator_sweep,
    outline_overlay,
    tile_patches,
    training_curves,
)

HOSTILE = "<script>x.png"
SMALL_RUN_YAML = """\
segment: {mpp: 0.3}
train: {categories: 3, width: 8, batch_size: 8, iterations: 2, minutes: null, critic_steps: 1, sample_every: 1}
report: {overlay_images: 2, sweep_columns: 4, gallery_cells: 6}
"""


def make_small_run(data_root, tmp_path, *, yaml_text=SMALL_RUN_YAML):
    """A real run at toy size: two 400x400 bone-marrow crops, a width-8 GAN, 2 iterations."""
    import torch
    from PIL import Image

    from cellgan.config import resolve_config
    from cellgan.io.images import read_rgb
    from cellgan.pipeline import run_pipeline

    sources = sorted((data_root / "bm_graz" / "source").glob("*.png"))[:2]
    folder = tmp_path / "images"
    folder.mkdir()
    images = []
    for source, name in zip(sources, (HOSTILE, "crop_b.png")):
        Image.fromarray(read_rgb(source)[400:800, 400:800]).save(folder / name)
        images.append(folder / name)
    config_path = tmp_path / "run.yaml"
    config_path.write_text(yaml_text)
    lines: list[str] = []
    run_dir = tmp_path / "run"
    failed = run_pipeline(
        images, run_dir, resolve_config(config_path), device=torch.device("cpu"), progress=False, log=lines.append
    )
    assert failed == {}
    return run_dir, lines


def shared_small_run(data_root, tmp_path_factory):
    """One :func:`make_small_run` per test session, kept in the session's temporary folder.

    The test modules that use it only read it (or copy it before changing it), so
    the toy run is built once however many modules need it.
    """
    root = tmp_path_factory.getbasetemp() / "shared_small_run"
    if not (root / "run" / "report.done").is_file():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        make_small_run(data_root, root)
    return root


@pytest.fixture(scope="module")
def small_run(data_root, tmp_path_factory):
    return shared_small_run(data_root, tmp_path_factory) / "run"


def _images(html_text):
    return re.findall(r"<img [^>]*src=\"([^\"]*)\"", html_text)


def _gallery_rows(cells, per_gallery=6):
    """Galleries per category: three (most and least confident, random) when it has more cells than one holds."""
    counts = cells["category"].value_counts()
    return int(sum(3 if n > per_gallery else 1 for n in counts if n))


@pytest.mark.realdata
def test_report_is_one_self_contained_file(small_run):
    text = (small_run / "report.html").read_text(encoding="utf-8")
    assert re.search(r"(?i)(https?|ftp)://", text) is None
    assert re.search(r"(?i)\bsrc\s*=\s*\"(?!data:image/(png|jpeg);base64,)", text) is None
    assert re.search(r"(?i)\bhref\s*=\s*\"(?!#)", text) is None  # links only within the page
    assert re.search(r"(?i)<(script|link|iframe|object|embed)\b|url\(|@import", text) is None
    ids = set(re.findall(r'\bid="([^"]*)"', text))
    assert set(re.findall(r'href="#([^"]*)"', text)) <= ids  # every link has its target
    sources = _images(text)
    cells = pd.read_parquet(small_run / "assignments" / "assignments.parquet")
    # the sweep rows, the galleries, 2 overlays, curves, composition
    assert len(sources) == 3 + _gallery_rows(cells) + 2 + 2  # (one sweep row per category)
    from PIL import Image

    for source in sources:
        data = base64.b64decode(source.split(",", 1)[1], validate=True)
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == ("JPEG" if source.startswith("data:image/jpeg") else "PNG")
            assert image.size[0] > 8 and image.size[1] > 8
    assert sum(s.startswith("data:image/jpeg") for s in sources) == _gallery_rows(cells) + 2  # tissue as JPEG


@pytest.mark.realdata
def test_report_escapes_file_names(small_run):
    text = (small_run / "report.html").read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert "&lt;script&gt;x.png" in text  # the hostile file name is shown, escaped


@pytest.mark.realdata
def test_an_image_whose_file_has_gone_is_drawn_over_its_overlay(small_run, tmp_path):
    from cellgan.io.cellstore import CellStore
    from cellgan.io.images import read_rgb
    from cellgan.report.html import _base_image

    store = CellStore.open(small_run / "cells")
    image_id = store.image_ids()[0]
    rgb, note = _base_image(store, image_id, str(tmp_path / "moved.png"))
    assert note.startswith("drawn over the segmentation overlay")
    assert rgb.shape == read_rgb(store.overlay_path(image_id)).shape and store.overlay_path(image_id).suffix == ".jpg"
    assert _base_image(store, "no_such_image", None) == (None, "")


@pytest.mark.realdata
def test_report_shows_each_category_with_its_share(small_run):
    text = (small_run / "report.html").read_text(encoding="utf-8")
    cells = pd.read_parquet(small_run / "assignments" / "assignments.parquet")
    counts = np.bincount(cells["category"], minlength=3)
    for k in range(3):
        assert f"Category {k}: {counts[k]} cells ({100 * counts[k] / len(cells):.1f}%)" in text
    assert "<h2>Categories</h2>" in text
    for anchor, heading in (("images", "Images"), ("training", "Training"), ("composition", "Composition per image")):
        assert f'<h2 id="{anchor}">{heading}</h2>' in text
    assert "Scores against the labels" not in text  # segmented cells carry no label


@pytest.mark.realdata
def test_report_shows_each_category_in_three_galleries_with_words(small_run):
    text = (small_run / "report.html").read_text(encoding="utf-8")
    cells = pd.read_parquet(small_run / "assignments" / "assignments.parquet")
    counts = cells["category"].value_counts()
    for kind in ("most confident", "random members", "least confident"):
        shown = re.findall(rf'alt="{kind} of ([^"]*)"', text)
        assert sorted(shown) == sorted(f"Category {q}" for q, n in counts.items() if n > 6)
    assert len(re.findall(r'alt="all members of ', text)) == sum(1 for n in counts if 0 < n <= 6)
    assert text.count("Against the other cells: ") == len(counts)
    assert "the bar is 10 µm" in text or "without a bar" in text or "pixel size is unknown" in text
    assert '<h2 id="generated">Generated cells</h2>' in text


@pytest.mark.realdata
def test_report_warns_in_red_and_names_files_relative_to_the_run(small_run):
    from cellgan.config import read_config
    from cellgan.report.html import run_warnings

    text = (small_run / "report.html").read_text(encoding="utf-8")
    warnings = run_warnings(small_run, read_config(small_run / "config.yaml").report)
    assert any("training ran 2 generator iterations, fewer than the 300 this recipe needs" in w for w in warnings)
    box = text[text.index('<div class="warnings">') : text.index("</div>", text.index('<div class="warnings">'))]
    for warning in warnings:
        assert html.escape(warning[0].upper() + warning[1:]) in box
    assert "<code>export/</code>" in text and "<code>config.yaml</code>" in text
    assert str(small_run.resolve()) not in text and str(small_run.parent.resolve()) not in text


@pytest.mark.realdata
def test_category_names_from_the_config_name_every_part(small_run):
    from cellgan.config import ReportConfig
    from cellgan.report.html import build_report

    names = ("lymphocyte", "<i>erythroblast</i>", "myeloid")
    text = build_report(small_run, config=ReportConfig(overlay_images=1, sweep_columns=2, gallery_cells=2, names=names))
    assert "Category 0" not in text and "<i>" not in text
    counts = np.bincount(pd.read_parquet(small_run / "assignments" / "assignments.parquet")["category"], minlength=3)
    for name, n in zip(names, counts):
        assert f"{html.escape(name)}: {n} cells" in text  # its heading
        assert (f'alt="random members of {html.escape(name)}"' in text) == (n > 2)
    with pytest.raises(ValueError, match="report.names"):
        build_report(small_run, config=ReportConfig(names=("a", "b")))


def test_surroundings_mark_the_cell_and_pad_with_white():
    from cellgan.report.figures import surroundings

    rgb = np.full((50, 50, 3), 100, np.uint8)
    windows = surroundings(rgb, np.array([[25.0, 25.0], [0.0, 0.0]]), side_px=40, size=32, ring=(255, 0, 0))
    assert windows.shape == (2, 32, 32, 3)
    assert (windows[0, 16, 16] == 100).all() and (windows[0, 16, 8] == [255, 0, 0]).all()
    assert (windows[1, 2, 2] == 255).all()  # beyond the image's corner


@pytest.mark.realdata
def test_report_shows_the_label_free_checks(small_run):
    text = (small_run / "report.html").read_text(encoding="utf-8")
    meta = json.loads((small_run / "assignments" / "meta.json").read_text())
    diagnostics = meta["diagnostics"]
    assert diagnostics["cells_per_category"] == meta["cells_per_category"]
    assert "<h2>Checks without labels</h2>" in text
    assert "Cells per category: " + " / ".join(map(str, meta["cells_per_category"])) in text
    if diagnostics["shape_explains"]["area"] is not None:
        assert f"Nucleus area alone predicts a cell's category for {diagnostics['shape_explains']['area']:.0%}" in text


@pytest.mark.realdata
def test_labels_add_escaped_scores(small_run, tmp_path):
    from cellgan.metrics.clustering import clustering_scores
    from cellgan.report.html import build_report

    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    path = run / "assignments" / "assignments.parquet"
    cells = pd.read_parquet(path)
    big = cells["area_px"] > cells["area_px"].median()
    cells["label"] = np.where(big, "<b>big</b>", "small")
    cells.loc[cells.index[:3], "label"] = None  # unlabelled cells are left out
    cells.to_parquet(path, index=False)
    text = build_report(run)
    assert "Scores against the labels" in text
    assert "&lt;b&gt;big&lt;/b&gt;" in text and "<b>big" not in text
    labelled = cells["label"].notna()
    scores = clustering_scores(cells.loc[labelled, "category"], cells.loc[labelled, "label"])
    assert f"<td>{scores['acc']:.3f}</td>" in text
    assert f"{int(labelled.sum())} of {len(cells)} cells" in text


@pytest.mark.realdata
def test_cellgan_report_regenerates_it(small_run, tmp_path, capsys):
    from cellgan.cli.main import main

    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    (run / "report.html").unlink()
    assert main(["report", str(run), "--device", "cpu"]) == 0
    assert (run / "report.html").is_file()
    assert "report:" in capsys.readouterr().out


def test_cellgan_report_on_a_folder_that_is_no_run(tmp_path, capsys):
    from cellgan.cli.main import main

    assert main(["report", str(tmp_path), "--device", "cpu"]) == 2
    assert "cells: missing" in capsys.readouterr().err


def test_tile_patches_lays_out_rows():
    patches = np.zeros((5, 4, 4, 3), np.uint8)
    patches[4] = 255
    grid = tile_patches(patches, columns=3, scale=2, gap=1)
    assert grid.shape == (2 * (8 + 1) + 1, 3 * (8 + 1) + 1, 3)
    assert (grid[1 + 9 : 1 + 9 + 8, 1 + 9 : 1 + 9 + 8] == 255).all()  # 5th patch: row 1, column 1
    with pytest.raises(ValueError, match="uint8"):
        tile_patches(patches.astype(float), columns=3)


def test_outline_overlay_paints_each_nucleus_in_its_colour():
    rgb = np.full((40, 60, 3), 100, np.uint8)
    mask = np.zeros((40, 60), np.int32)
    mask[5:15, 5:15] = 1
    mask[20:35, 30:50] = 2
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 255]], np.uint8)
    out = outline_overlay(rgb, mask, colours, size=100)
    assert (out[5, 5:15] == [255, 0, 0]).all()  # the top edge of nucleus 1
    assert (out[10, 10] == 100).all()  # its inside stays the image
    assert (out[34, 30:50] == [0, 0, 255]).all()
    assert (out[0] == 100).all()
    small = outline_overlay(rgb, mask, colours, size=30)  # shrunk to a longer side of 30
    assert small.shape == (20, 30, 3)
    assert ((small == [0, 0, 255]).all(axis=2)).any()
    with pytest.raises(ValueError, match="label mask"):
        outline_overlay(rgb, mask[:10], colours, size=100)


def test_generator_sweep_keeps_z_fixed_per_column():
    from cellgan.model import Generator

    generator = Generator(categories=3, noise_dim=6, width=8, seed=1)
    sweep = generator_sweep(generator, columns=4, seed=7)
    assert sweep.shape == (3, 4, 32, 32, 3) and sweep.dtype == np.uint8
    assert np.array_equal(sweep, generator_sweep(generator, columns=4, seed=7))  # reproducible
    assert not np.array_equal(sweep[0], sweep[1])  # the code changes the image
    assert generator.training  # its mode is given back


def test_figures_are_pngs():
    k = 3
    colours = category_colours(k)
    names = [f"Category {q}" for q in range(k)]
    rng = np.random.default_rng(0)
    log = pd.DataFrame({"step": np.arange(1, 51), "critic_loss": rng.normal(size=50), "wasserstein": rng.random(50),
                        "gradient_penalty": rng.random(50), "generator_loss": rng.normal(size=50),
                        "mi_loss": rng.random(50)})
    shares = rng.dirichlet(np.ones(k), size=50)
    for q in range(k):
        log[f"share_{q}"] = shares[:, q]
    props = rng.dirichlet(np.ones(k), size=4)
    table = pd.DataFrame({"image": list("abcd"), "n_cells": [10, 20, 30, 40]})
    for q in range(k):
        table[f"prop_{q}"] = props[:, q]
    for png in (training_curves(log, colours=colours, names=names), composition_chart(table, colours=colours, names=names)):
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert b"matplotlib.org" not in png  # no URL, not even in the PNG metadata
    with pytest.raises(ValueError, match="none of the known columns"):
        training_curves(pd.DataFrame({"x": [1]}), colours=colours, names=names)


def test_scale_bar_and_jpeg():
    from cellgan.report.figures import jpeg_bytes, scale_bar

    windows = np.full((2, 80, 80, 3), 128, np.uint8)
    barred = scale_bar(windows, length_px=25)
    assert (windows == 128).all()  # a copy
    bar = (barred[0] == 0).all(axis=2)
    assert bar.sum(axis=1).max() == 25 and bar[:40].sum() == 0  # 25 px long, in the lower part
    assert jpeg_bytes(barred[0]).startswith(b"\xff\xd8")
