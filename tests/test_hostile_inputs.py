"""Hostile files and options (issue 14): one clear error naming the file or option, nothing lost."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from cellgan.config import MAX_CONFIG_BYTES, AssignConfig, ConfigError, read_yaml, resolve_config
from cellgan.errors import UsageError
from cellgan.io.cellstore import CellStore

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
