"""``cellgan run``: the stages in order, skipped when done, resumed when killed, refused when mixed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_report import SMALL_RUN_YAML, shared_small_run

from cellgan.cli.main import main
from cellgan.config import resolve_config
from cellgan.pipeline import StageConflict, default_images, run_pipeline

STAGES = ("segment", "train", "assign", "compose", "export", "report")


@pytest.fixture(scope="module")
def small_run(data_root, tmp_path_factory):
    root = shared_small_run(data_root, tmp_path_factory)
    return root, root / "run"


def _again(root, run_dir, tmp_path, yaml_text):
    """Copy a finished run and run it again with another configuration."""
    import torch

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    config = tmp_path / "run.yaml"
    config.write_text(yaml_text)
    images = sorted((root / "images").iterdir())
    lines: list[str] = []
    run_pipeline(images, copy, resolve_config(config), device=torch.device("cpu"), progress=False, log=lines.append)
    return copy, lines


@pytest.mark.realdata
def test_a_run_writes_every_stage(small_run):
    _, run_dir = small_run
    for stage in STAGES:
        marker = json.loads((run_dir / f"{stage}.done").read_text())
        assert marker["stage"] == stage and marker["fingerprint"] and marker["summary"]
        assert not (run_dir / f"{stage}.started").exists()
    for part in ("cells/store.json", "model/checkpoint.json", "assignments/assignments.parquet",
                 "composition/composition.csv", "export/cells.parquet", "report.html", "config.yaml"):  # fmt: skip
        assert (run_dir / part).is_file(), part
    assert len(list((run_dir / "export" / "geojson").glob("*.geojson"))) == 2
    images = json.loads((run_dir / "segment.done").read_text())["images"]
    assert sorted(Path(p).name for p in images.values()) == ["<script>x.png", "crop_b.png"]


@pytest.mark.realdata
def test_a_second_run_skips_everything(small_run, tmp_path):
    root, run_dir = small_run
    copy, lines = _again(root, run_dir, tmp_path, SMALL_RUN_YAML)
    assert [line.split(":")[0] for line in lines] == list(STAGES)
    assert all("done earlier" in line for line in lines)
    assert (copy / "report.html").read_bytes() == (run_dir / "report.html").read_bytes()


@pytest.mark.realdata
def test_a_report_option_redoes_only_the_report(small_run, tmp_path):
    root, run_dir = small_run
    _, lines = _again(root, run_dir, tmp_path, SMALL_RUN_YAML.replace("overlay_images: 2", "overlay_images: 1"))
    redone = [line.split(":")[0] for line in lines if "running" in line]
    assert redone == ["report"]


@pytest.mark.realdata
def test_category_names_reach_the_composition_the_exports_and_the_report(small_run, tmp_path):
    import pandas as pd

    root, run_dir = small_run
    names = ["lymphocyte", "erythroblast", "myeloid"]
    yaml_text = SMALL_RUN_YAML.replace("report: {", f"report: {{names: [{', '.join(names)}], ")
    copy, lines = _again(root, run_dir, tmp_path, yaml_text)
    assert [line.split(":")[0] for line in lines if "running" in line] == ["compose", "export", "report"]
    columns = list(pd.read_csv(copy / "composition" / "composition.csv").columns)
    densities = ["density_image_per_mm2", "density_tissue_per_mm2"]
    assert columns == ["image", "n_cells", *densities, *(f"count_{n}" for n in names), *(f"prop_{n}" for n in names)]
    cells = pd.read_parquet(copy / "export" / "cells.parquet")
    assert set(cells["category_name"]) <= set(names)
    geojson = next((copy / "export" / "geojson").glob("*.geojson"))
    classes = {f["properties"]["classification"]["name"] for f in json.loads(geojson.read_text())["features"]}
    assert classes and classes <= set(names)
    text = (copy / "report.html").read_text(encoding="utf-8")
    assert all(f"{n}: " in text for n in names) and "Category 0" not in text


@pytest.mark.realdata
def test_cellgan_run_warns_when_the_run_is_too_short(small_run, tmp_path, capsys):
    root, run_dir = small_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    config = tmp_path / "run.yaml"
    config.write_text(SMALL_RUN_YAML)
    images = [str(p) for p in sorted((root / "images").iterdir())]
    assert main(["run", *images, "--out", str(copy), "--config", str(config), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "warning: training ran 2 generator iterations, fewer than the 300 this recipe needs" in err


@pytest.mark.realdata
def test_longer_training_continues_and_redoes_what_follows(small_run, tmp_path):
    root, run_dir = small_run
    copy, lines = _again(root, run_dir, tmp_path, SMALL_RUN_YAML.replace("iterations: 2", "iterations: 3"))
    redone = [line.split(":")[0] for line in lines if "running" in line]
    assert redone == ["train", "assign", "compose", "export", "report"]
    assert "resumed" in json.loads((copy / "train.done").read_text())["summary"]
    assert json.loads((copy / "model" / "checkpoint.json").read_text())["step"] == 3


@pytest.mark.realdata
def test_another_recipe_on_a_finished_model_is_refused(small_run, tmp_path):
    root, run_dir = small_run
    with pytest.raises(StageConflict, match="the train stage there was made from other images or options"):
        _again(root, run_dir, tmp_path, SMALL_RUN_YAML.replace("width: 8", "width: 16"))


@pytest.mark.realdata
@pytest.mark.slow
def test_a_killed_run_continues(small_run, tmp_path):
    """Kill ``cellgan run`` while it trains (segmentation done), run it again: it continues.

    One of the inputs is an empty file: the run goes on without it, names it at the
    end and exits with status 1.
    """
    root, _ = small_run
    config = tmp_path / "run.yaml"
    config.write_text(
        "segment: {mpp: 0.3}\ntrain: {categories: 3, width: 8, batch_size: 8, iterations: null, minutes: 0.15, critic_steps: 1,"
        " checkpoint_every: 1, sample_every: 50}\nreport: {overlay_images: 1, sweep_columns: 4}\n"
    )
    run_dir = tmp_path / "run"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"")  # reported at the end, and the exit status says so; the other images go on
    images = [*map(str, sorted((root / "images").iterdir())), str(broken)]
    command = [sys.executable, "-m", "cellgan.cli.main", "run", *images,
               "--out", str(run_dir), "--config", str(config), "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "model" / "checkpoint.json").is_file():
            assert process.poll() is None, process.stdout.read().decode()
            assert time.monotonic() < deadline, "training never saved a checkpoint"
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert (run_dir / "segment.done").is_file()
    assert not (run_dir / "train.done").exists() and (run_dir / "train.started").is_file()
    segment_marker = (run_dir / "segment.done").read_bytes()
    killed_at = json.loads((run_dir / "model" / "checkpoint.json").read_text())["step"]

    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 image(s) could not be segmented" in done.stdout and "broken.png" in done.stdout
    assert "segment: done earlier" in done.stdout
    assert "train: running" in done.stdout
    assert (run_dir / "segment.done").read_bytes() == segment_marker
    train = json.loads((run_dir / "train.done").read_text())
    assert "resumed" in train["summary"]
    assert json.loads((run_dir / "model" / "checkpoint.json").read_text())["step"] >= killed_at
    for stage in STAGES:
        assert (run_dir / f"{stage}.done").is_file() and not (run_dir / f"{stage}.started").exists()
    assert "report: " in done.stdout and (run_dir / "report.html").stat().st_size > 10_000


@pytest.mark.realdata
def test_default_input_is_the_bone_marrow_data(data_root, monkeypatch):
    monkeypatch.setenv("CELLGAN_DATA_ROOT", str(data_root))
    lines: list[str] = []
    images = default_images(log=lines.append)
    assert len(images) == 11 and all(p.parent == data_root / "bm_graz" / "source" for p in images)
    assert "11 bone-marrow images" in lines[0]


def test_default_input_is_downloaded_when_absent(tmp_path, monkeypatch):
    import cellgan.io.download as download
    import cellgan.pipeline as run_module

    fetched = tmp_path / "cache" / "bm_graz"
    (fetched / "source").mkdir(parents=True)
    (fetched / "source" / "BM_GRAZ_HE_0001_01.png").write_bytes(b"png")
    calls = []
    monkeypatch.setattr(run_module, "_data_roots", lambda: [tmp_path / "nothing"])
    monkeypatch.setattr(download, "fetch_bm_graz", lambda cache_dir: calls.append(cache_dir) or fetched)
    lines: list[str] = []
    images = default_images(cache_dir=tmp_path / "cache", log=lines.append)
    assert calls == [tmp_path / "cache"]
    assert images == [fetched / "source" / "BM_GRAZ_HE_0001_01.png"]
    assert any("download" in line and "pkainz/MICCAI2015" in line for line in lines)


def test_cli_errors_are_clear(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("train:\n  epochs: 3\n")
    image = tmp_path / "a.png"
    image.write_bytes(b"")
    assert main(["run", str(image), "--out", str(tmp_path / "r"), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "unknown key 'epochs'" in err
    assert main(["run", str(tmp_path / "missing.png"), "--out", str(tmp_path / "r")]) == 2
    assert "missing.png: no such file or directory" in capsys.readouterr().err


def test_iterations_is_the_length_and_minutes_an_upper_bound():
    from cellgan.cli.main import build_parser

    args = build_parser().parse_args(["run", "--out", "x", "--iterations", "5000", "--minutes", "30"])
    assert (args.iterations, args.minutes) == (5000, 30.0)  # both at once: whichever comes first stops training
