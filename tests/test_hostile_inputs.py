"""Hostile files and options (issue 14): one clear error naming the file or option, nothing lost."""

from __future__ import annotations

import errno
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cellgan.config import MAX_CONFIG_BYTES, AssignConfig, ConfigError, read_yaml, resolve_config
from cellgan.errors import CellganError, UsageError
from cellgan.io.cellstore import CellStore, CellStoreError
from cellgan.io.files import FileWriteError, atomic_write, load_npy

BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")]
    + ["train:", "  categories: *i"]
)


def _write(tmp_path, text, name="run.yaml"):
    path = tmp_path / name
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    return path


def _table(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cell_id": np.arange(n),
            "centroid_x": np.arange(n, dtype=float),
            "centroid_y": np.arange(n, dtype=float),
            "bbox_x0": 0,
            "bbox_y0": 0,
            "bbox_x1": 10,
            "bbox_y1": 10,
            "area_px": 80.0,
            "perimeter_px": 30.0,
            "eccentricity": 0.5,
            "solidity": 0.9,
            "mean_haematoxylin": 0.5,
            "mean_eosin": 0.2,
            "source": "segment",
        }
    )


def _store(tmp_path, n=12) -> CellStore:
    store = CellStore.create(tmp_path / "run" / "cells", patch_mode="masked")
    for image in ("a", "b"):
        store.write_image(image, _table(n), np.full((n, 32, 32, 3), 128, np.uint8))
    return store


@pytest.fixture
def main(monkeypatch):
    """``cellgan`` with the commands these tests call."""
    from cellgan.cli import main as cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ("run", "cells", "train", "evaluate", "report"))
    return cli.main


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(f"cellgan {command}: error: ")]
    assert len(lines) == 1, err
    return lines[0]


# -- the configuration file ------------------------------------------------------------------


def test_a_yaml_bomb_is_refused_at_once_with_a_short_message(tmp_path):
    path = _write(tmp_path, BILLION_LAUGHS)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"run.yaml, line 2: YAML alias \*a: aliases are not allowed") as err:
        resolve_config(path)
    assert time.monotonic() - started < 5 and len(str(err.value)) < 200


def test_a_huge_value_is_cut_short_in_the_message(tmp_path):
    path = _write(tmp_path, "train:\n  width: [" + ", ".join(["wide"] * 100_000) + "]\n")
    with pytest.raises(ConfigError, match="run.yaml: train.width: expected an integer") as err:
        resolve_config(path)
    assert len(str(err.value)) < 200


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path):
    path = _write(tmp_path, "# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    with pytest.raises(ConfigError, match="run.yaml: larger than 1 MB"):
        read_yaml(path)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("train:\n  categories: 3\n  width: 16\n  categories: 5\n", ["run.yaml, line 4: duplicate key 'categories'"]),
        ("train: {}\ntrain: {}\n", ["run.yaml, line 2: duplicate key 'train'"]),
        (b"train:\n  seed: \xff\xfe\n", ["run.yaml: not UTF-8 text (byte 0xff"]),
        ("[" * 50_000 + "]" * 50_000, ["run.yaml: nested too deeply"]),
        ("- train\n- segment\n", ["run.yaml: expected a mapping of sections"]),
        ("train:\n  categories: 100000000\n", ["categories must be at most 256", "palette"]),
        ("train:\n  width: 100000\n", ["width must be at most 1024"]),
        ("train:\n  batch_size: 10000000\n", ["batch_size must be at most 65536"]),
        ("assign:\n  batch_size: 10000000\n", ["'assign'", "batch_size must be at most 65536"]),
    ],
)
def test_bad_configuration_files_are_one_clear_error(tmp_path, text, words):
    with pytest.raises(ConfigError) as err:
        resolve_config(_write(tmp_path, text))
    message = str(err.value)
    assert "run.yaml" in message and "\n" not in message
    for word in words:
        assert word in message


def test_the_bounds_say_why():
    from cellgan.model import TrainConfig

    with pytest.raises(ConfigError, match=r"categories must be at most 256 \(the palette has that many colours\)"):
        TrainConfig(categories=1000)
    with pytest.raises(ValueError, match="at most 65536"):
        AssignConfig(batch_size=65537)
    assert TrainConfig(categories=256, width=1024, batch_size=65536).categories == 256


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("categories: 1e8\n", ["bad.yaml: categories must be an integer, got '1e8'"]),
        ("width: 100000\n", ["bad.yaml: width must be at most 1024"]),
        ("- 1\n- 2\n", ["bad.yaml: expected a mapping of training options, got list"]),
        (b"seed: \xff\n", ["bad.yaml: not UTF-8"]),
        ("categories: 3\ncategories: 4\n", ["bad.yaml, line 2: duplicate key 'categories'"]),
    ],
)
def test_train_with_a_bad_config_prints_one_line(tmp_path, capsys, main, text, words):
    bad = _write(tmp_path, text, "bad.yaml")
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "m"), "--config", str(bad), "--device", "cpu"]) == 2
    line = _one_line_error(capsys, "train")
    for word in words:
        assert word in line


# -- command-line options --------------------------------------------------------------------


def test_bad_options_are_one_clear_error(tmp_path, capsys, main):
    store = _store(tmp_path)
    base = ["train", str(store.root), "--out", str(tmp_path / "m"), "--iterations", "1", "--quiet"]
    assert main([*base, "--device", "mps"]) == 2
    assert "unknown or unavailable device 'mps'" in _one_line_error(capsys, "train")
    assert main([*base, "--device", "cpu", "--categories", "1000"]) == 2
    assert "categories must be at most 256" in _one_line_error(capsys, "train")
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", str(tmp_path), "--folds", "0"])
    assert exit_.value.code == 2 and "--folds: must be at least 2, got 0" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_more_threads_than_cores_are_set_with_a_warning(monkeypatch, capsys):
    import torch

    from cellgan.device import set_cpu_threads

    asked = []
    monkeypatch.setattr(torch, "set_num_threads", asked.append)
    monkeypatch.setattr("cellgan.device._usable_cores", lambda: 2)
    set_cpu_threads(2)
    assert capsys.readouterr().err == ""
    set_cpu_threads(64)
    assert "warning: --threads 64 exceeds the 2 usable core(s)" in capsys.readouterr().err
    assert asked == [2, 64]
    with pytest.raises(UsageError, match="--threads must be at least 1"):
        set_cpu_threads(0)


def test_a_repeated_point_is_refused_naming_the_lines(tmp_path, capsys, main):
    from cellgan.cli.cells import read_points

    csv = _write(tmp_path, "x,y,label\n10,20,a\n30,40,b\n10,20,c\n", "points.csv")
    with pytest.raises(UsageError, match=r"points.csv: lines 2 and 4 give the same point \(10, 20\)"):
        read_points(csv)
    assert main(["cells", "from-points", str(tmp_path / "img.png"), "--points", str(csv), "--out", str(tmp_path / "r")]) == 2
    assert "lines 2 and 4" in _one_line_error(capsys, "cells")
    assert len(read_points(_write(tmp_path, "x,y\n10,20\n10,21\n", "ok.csv"))[0]) == 2


# -- arrays and stores -----------------------------------------------------------------------


def _npy_claiming(path: Path, shape: tuple, dtype=np.uint8) -> Path:
    """A small .npy file whose header claims ``shape``."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
        f.write(b"\0" * 1024)
    return path


def test_an_npy_header_claiming_286_gib_is_refused_before_loading(tmp_path):
    path = _npy_claiming(tmp_path / "bomb.npy", (100_000_000, 32, 32, 3))
    with pytest.raises(ValueError, match=r"header claims \(100000000, 32, 32, 3\) uint8 \(307,200,000,000 bytes\)"):
        load_npy(path)
    store = _store(tmp_path)
    _npy_claiming(store.patches_path("b"), (100_000_000, 32, 32, 3))
    with pytest.raises(CellStoreError, match=r"patches/b.npy: unreadable patch array \(its header claims"):
        store.read_patches()
    ok = tmp_path / "ok.npy"
    np.save(ok, np.arange(6, dtype=np.float32).reshape(2, 3))
    assert load_npy(ok, mmap=True).shape == (2, 3)


def test_a_store_with_64_pixel_patches_names_the_file(tmp_path):
    store = _store(tmp_path)
    np.save(store.patches_path("b"), np.zeros((12, 64, 64, 3), np.uint8))
    with pytest.raises(CellStoreError, match=r"patches/b.npy: patches are uint8 \(12, 64, 64, 3\), the store needs"):
        store.read_patches()


def test_train_refuses_a_store_whose_table_and_patches_disagree(tmp_path, capsys, main):
    store = _store(tmp_path)
    np.save(store.patches_path("a"), np.zeros((11, 32, 32, 3), np.uint8))
    with pytest.raises(CellStoreError, match=r"patches/a.npy: 11 patches but 12 rows in .*table/a.parquet"):
        store.read_patches()
    assert main(["train", str(store.root), "--out", str(tmp_path / "m"), "--device", "cpu", "--iterations", "1"]) == 2
    assert "patches/a.npy: 11 patches but 12 rows" in _one_line_error(capsys, "train")
    assert not (tmp_path / "m").exists()


# -- writes that fail ------------------------------------------------------------------------


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    target.write_text('{"old": true}')
    monkeypatch.setattr(Path, "write_text", _disk_full)
    with pytest.raises(FileWriteError, match="out.json: cannot write \\(No space left on device\\)") as err:
        atomic_write(target, lambda p: p.write_text("{}"))
    assert isinstance(err.value, CellganError) and isinstance(err.value, OSError)
    monkeypatch.undo()
    assert target.read_text() == '{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_read_only_folder_is_one_clear_error(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("cellgan.io.files.tempfile.mkstemp", read_only)
    with pytest.raises(FileWriteError, match="out.json: cannot write \\(Permission denied\\)"):
        atomic_write(tmp_path / "out.json", lambda p: p.write_text("{}"))


def test_train_on_a_full_disk_prints_one_line_and_keeps_the_checkpoint(tmp_path, capsys, main, monkeypatch):
    store = _store(tmp_path)
    model = tmp_path / "m"
    args = ["train", str(store.root), "--out", str(model), "--device", "cpu", "--quiet", "--width", "8",
            "--batch-size", "8", "--categories", "2"]
    assert main([*args, "--iterations", "1"]) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in model.glob("checkpoint*")}
    monkeypatch.setattr(Path, "write_bytes", _disk_full)
    assert main([*args, "--iterations", "2", "--resume"]) == 2
    assert ".safetensors: cannot write (No space left on device)" in _one_line_error(capsys, "train")
    after = {p.name: p.read_bytes() for p in model.iterdir() if p.is_file()}
    for name in before:  # config.json takes the new length
        assert after[name] == before[name]
    assert not [name for name in after if ".tmp" in name]


def test_run_and_report_on_a_full_disk_print_one_line(tmp_path, capsys, main, monkeypatch):
    from PIL import Image

    image = tmp_path / "slide.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(image)
    monkeypatch.setattr(Path, "write_text", _disk_full)
    assert main(["run", str(image), "--out", str(tmp_path / "run"), "--device", "cpu"]) == 2
    assert "config.yaml: cannot write (No space left on device)" in _one_line_error(capsys, "run")

    run = tmp_path / "done"
    run.mkdir()
    (run / "report.html").write_bytes(b"<html>the old report</html>")
    monkeypatch.setattr("cellgan.report.html.build_report", lambda *a, **k: "<html>new</html>")
    assert main(["report", str(run), "--device", "cpu"]) == 2
    assert "report.html: cannot write (No space left on device)" in _one_line_error(capsys, "report")
    assert (run / "report.html").read_bytes() == b"<html>the old report</html>"
    assert [p.name for p in run.iterdir()] == ["report.html"]


def test_an_io_error_outside_cellgan_checks_is_one_line_too(tmp_path, capsys, main, monkeypatch):
    def denied(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    store = _store(tmp_path)
    monkeypatch.setattr(Path, "mkdir", denied)
    assert main(["train", str(store.root), "--out", str(tmp_path / "ro" / "m"), "--device", "cpu", "--iterations", "1"]) == 2
    assert f"{tmp_path / 'ro' / 'm'}: Permission denied" in _one_line_error(capsys, "train")


# -- model directories -----------------------------------------------------------------------


def test_a_deeply_nested_config_json_is_a_checkpoint_error(tmp_path):
    from cellgan.model import CheckpointError
    from cellgan.model.checkpoint import read_config

    (tmp_path / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="config.json: unreadable config \\(nested too deeply\\)"):
        read_config(tmp_path)


def test_a_deeply_nested_store_json_is_a_store_error(tmp_path):
    store = _store(tmp_path)
    (store.root / "store.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CellStoreError, match="store.json: unreadable store metadata \\(nested too deeply\\)"):
        CellStore.open(store.root)
