"""Hostile files and options (issue 14): one clear error naming the file or option, nothing lost."""

from __future__ import annotations

import time

import pytest

from cellgan.config import MAX_CONFIG_BYTES, AssignConfig, ConfigError, read_yaml, resolve_config

BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")]
    + ["train:", "  categories: *i"]
)


def _write(tmp_path, text, name="run.yaml"):
    path = tmp_path / name
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    return path


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
