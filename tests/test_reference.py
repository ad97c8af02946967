"""Choosing the Reinhard reference among a run's images (cellgan.segment.reference)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cellgan.segment.reference import TYPICAL, most_typical, resolve_reference, typical_image


def test_most_typical_is_the_row_nearest_the_median_in_units_of_spread():
    # Row 0 is nearest the median (0.1, 100) in raw units, row 2 once each column is
    # scaled by its spread (median absolute deviation 0.1 and 3).
    statistics = np.array([[-0.1, 100.0], [0.5, 100.0], [0.1, 103.0], [0.2, 80.0], [0.1, 130.0]])
    assert np.argmin(((statistics - np.median(statistics, axis=0)) ** 2).sum(axis=1)) == 0
    assert most_typical(statistics) == 2
    assert most_typical(statistics[:, :1]) == 2  # rows 2 and 4 tie: the first
    assert most_typical(np.ones((3, 6))) == 0  # nothing varies: the first


def test_most_typical_refuses_an_empty_table():
    with pytest.raises(ValueError, match="non-empty"):
        most_typical(np.zeros((0, 6)))


def _tinted(path, tint):
    rng = np.random.default_rng(0)
    base = rng.integers(120, 220, (24, 24, 3)).astype(float)
    Image.fromarray(np.clip(base * tint, 0, 255).astype(np.uint8)).save(path)
    return path


def test_typical_image_is_the_middle_stain_whatever_the_order(tmp_path):
    pale = _tinted(tmp_path / "pale.png", [1.1, 1.1, 1.1])
    middle = _tinted(tmp_path / "middle.png", [1.0, 0.8, 0.95])
    dark = _tinted(tmp_path / "dark.png", [0.8, 0.55, 0.85])
    assert typical_image([pale, middle, dark]) == middle
    assert typical_image([dark, pale, middle]) == middle
    assert resolve_reference(TYPICAL, [dark, middle, pale]) == str(middle)
    assert resolve_reference(str(pale), [dark, middle]) == str(pale)
    assert resolve_reference(None, [dark]) is None


def test_typical_image_leaves_out_unreadable_files(tmp_path):
    good = _tinted(tmp_path / "good.png", [1, 1, 1])
    (tmp_path / "bad.png").write_text("not an image")
    assert typical_image([tmp_path / "bad.png", good]) == good
    with pytest.raises(ValueError, match="no readable image"):
        typical_image([tmp_path / "bad.png"])
    with pytest.raises(ValueError, match="no readable image"):
        typical_image([])
