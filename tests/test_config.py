"""The run configuration: precedence, unknown keys, types, and the written record."""

from __future__ import annotations

import dataclasses

import pytest

from cellgan.config import (
    RUN_DEFAULTS,
    AssignConfig,
    ConfigError,
    ReportConfig,
    config_to_dict,
    read_config,
    resolve_config,
    write_config,
)
from cellgan.model import TrainConfig
from cellgan.segment import SegmentConfig


def _write(tmp_path, text, name="run.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_are_the_stage_defaults_but_for_the_run_defaults():
    config = resolve_config(recipe=None)
    assert config.segment == SegmentConfig()
    assert config.assign == AssignConfig()
    assert config.report == ReportConfig()
    assert config.train == dataclasses.replace(TrainConfig(), **RUN_DEFAULTS["train"])
    assert config.train.minutes == 10.0


def test_command_line_over_file_over_defaults(tmp_path):
    path = _write(tmp_path, "train:\n  categories: 6\n  minutes: 3\n  betas: [0.0, 0.99]\nreport:\n  sweep_columns: 5\n")
    config = resolve_config(path, {"train": {"categories": 7, "minutes": None}})
    assert config.train.categories == 7  # command line wins
    assert config.train.minutes == 3.0  # file over the run default; None on the command line = not given
    assert config.train.betas == (0.0, 0.99)  # a YAML list becomes the tuple the dataclass holds
    assert config.train.width == TrainConfig().width  # untouched: the stage default
    assert config.report.sweep_columns == 5


def test_null_in_the_file_overrides_a_run_default(tmp_path):
    path = _write(tmp_path, "train:\n  minutes: null\n  iterations: 5\n")
    config = resolve_config(path)
    assert config.train.minutes is None and config.train.iterations == 5


def test_an_empty_file_or_section_is_fine(tmp_path):
    assert resolve_config(_write(tmp_path, "")) == resolve_config()  # the default recipe in both
    assert resolve_config(_write(tmp_path, "compose:\nexport: {}\n", "b.yaml")) == resolve_config()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("train:\n  categoris: 5\n", ["unknown key 'categoris'", "'train'", "categories"]),
        ("trian:\n  categories: 5\n", ["unknown section 'trian'"]),
        ("compose:\n  anything: 1\n", ["unknown key 'anything'", "'compose'"]),
        ("train:\n  width: wide\n", ["train.width", "integer", "'wide'"]),
        ("train:\n  minutes: [1]\n", ["train.minutes", "number"]),
        ("assign:\n  batch_size: 0\n", ["'assign'", "batch_size must be at least 1"]),
        ("export:\n  formats: [geojson, pdf]\n", ["'export'", "pdf"]),
        ("train: [1, 2]\n", ["section 'train' must be a mapping"]),
        ("- train\n", ["expected a mapping"]),
        ("train:\n  width: [\n", ["not valid YAML"]),
    ],
)
def test_bad_files_name_the_file_and_the_key(tmp_path, text, words):
    path = _write(tmp_path, text, "my-config.yaml")
    with pytest.raises(ConfigError) as err:
        resolve_config(path)
    message = str(err.value)
    assert "my-config.yaml" in message
    for word in words:
        assert word in message


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="nothere.yaml: cannot read"):
        resolve_config(tmp_path / "nothere.yaml")


def test_bad_command_line_values_are_errors_too():
    with pytest.raises(ConfigError, match="the command line: train.categories: expected an integer"):
        resolve_config(None, {"train": {"categories": "five"}})
    with pytest.raises(ConfigError, match="categories"):
        resolve_config(None, {"train": {"categories": 1}})  # the dataclass's own check


def test_the_written_config_is_complete_and_reads_back_equal(tmp_path):
    config = resolve_config(_write(tmp_path, "train:\n  categories: 3\nreport:\n  overlay_images: 1\n"))
    out = tmp_path / "run" / "config.yaml"
    write_config(config, out)
    assert read_config(out) == config
    text = out.read_text()
    for section, values in config_to_dict(config).items():
        assert f"{section}:" in text
        for key in values:
            assert f"  {key}:" in text  # every key of every stage is on record
    assert not list(out.parent.glob(".*tmp*"))  # written atomically, no temporary left


def test_the_shipped_recipes():
    """``default`` lies over the stage dataclasses' defaults; ``paper`` is Hu et al.'s recipe exactly."""
    from cellgan.config import recipe_names, resolve_config
    from cellgan.segment import SegmentConfig

    assert {"default", "paper"} <= set(recipe_names())
    default = resolve_config(recipe="default")
    assert default.segment == SegmentConfig(patch_mode="faded", reinhard_reference="typical")
    own_q = dict(
        lambda_self_label=1.0, self_label_neighbours=8, self_label_moments=0.5, self_label_crowding=0.2, separate_q=True,
        self_label_warmup=2000, q_reads_place=True,
    )
    assert default.train.recipe() == TrainConfig(**own_q).recipe()
    paper = resolve_config(recipe="paper")
    authors = dict(width=128, batch_size=64, lr=1e-4, lr_critic=None, critic_steps=5, lambda_pair=0.0)
    assert paper.train.recipe() == TrainConfig(**authors, lambda_self_label=0.0, separate_q=False).recipe()
    assert paper.segment.patch_mode == "masked" and paper.segment.reinhard_reference == "typical"
    assert paper.train.minutes == RUN_DEFAULTS["train"]["minutes"]  # a recipe says what to train, not how long
    assert default.report.min_iterations == paper.report.min_iterations == 300  # but how long it needs
    assert ReportConfig().min_iterations == 0


def test_category_names_are_checked_against_the_categories(tmp_path):
    from cellgan.config import ConfigError

    config = resolve_config(_write(tmp_path, "train: {categories: 2}\nreport: {names: [lymphocyte, other]}\n"))
    assert config.report.names == ("lymphocyte", "other")
    with pytest.raises(ConfigError, match="report.names gives 2 names for 3 categories"):
        resolve_config(_write(tmp_path, "train: {categories: 3}\nreport: {names: [lymphocyte, other]}\n"))
    with pytest.raises(ConfigError, match="section 'report'.*distinct"):
        resolve_config(_write(tmp_path, "train: {categories: 2}\nreport: {names: [a, a]}\n"))


def test_recipe_layers_under_the_file_and_the_command_line(tmp_path):
    from cellgan.config import ConfigError, recipe_path, resolve_config

    path = tmp_path / "mine.yaml"
    path.write_text("train: {width: 64, critic_steps: 3}\n")
    config = resolve_config(path, {"train": {"critic_steps": 4}}, recipe="paper")
    assert (config.train.width, config.train.critic_steps, config.train.lr) == (64, 4, 1e-4)
    assert resolve_config(recipe=path).train.width == 64  # a recipe may also be a file
    assert recipe_path("paper").name == "paper.yaml"
    with pytest.raises(ConfigError, match="unknown recipe 'nope'.*default"):
        resolve_config(recipe="nope")


def test_retired_options_load_when_off_and_are_refused_when_used():
    from cellgan.model import ConfigError, TrainConfig

    old = {**TrainConfig().to_dict(), "strong_views": False, "lambda_contrastive": 0.0, "self_label_overclusters": 0}
    assert TrainConfig.from_dict(old, source="model/config.json") == TrainConfig()
    with pytest.raises(ConfigError, match=r"model/config.json: strong_views no longer exist.*the cellgan that made it"):
        TrainConfig.from_dict({**old, "strong_views": True}, source="model/config.json")
    with pytest.raises(ConfigError, match=r"self_label_overclusters no longer exist"):  # the default of issue 11 step 24
        TrainConfig.from_dict({**old, "self_label_overclusters": 8}, source="model/config.json")
    with pytest.raises(ConfigError, match=r"self_label_own_pixels no longer exist"):  # issue 11 step 43's candidate
        TrainConfig.from_dict({**old, "self_label_own_pixels": 0.2}, source="model/config.json")
