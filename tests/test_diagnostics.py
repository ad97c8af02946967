"""cellgan.analysis.diagnostics: label-free checks of the categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellgan.analysis.diagnostics import (
    DiagnosticsError,
    category_warnings,
    diagnose,
    seed_agreement,
    shape_explains,
    training_warnings,
)


def _table(rng, n):
    return pd.DataFrame(
        {
            "area_px": rng.uniform(20, 200, n),
            "perimeter_px": rng.uniform(10, 60, n),
            "eccentricity": rng.uniform(0, 1, n),
            "solidity": rng.uniform(0.7, 1, n),
        }
    )


def test_size_bins_are_explained_by_area_and_random_categories_are_not():
    rng = np.random.default_rng(0)
    table = _table(rng, 400)
    by_size = np.digitize(table["area_px"], [65, 110, 155])
    explained = shape_explains(table, by_size)
    assert explained["area"] > 0.95 and explained["shape"] > 0.9
    assert explained["majority"] == pytest.approx(np.bincount(by_size).max() / 400)
    unrelated = shape_explains(table, rng.integers(0, 4, 400))
    assert unrelated["area"] < 0.4


def test_shape_explains_with_too_few_cells_gives_no_accuracy():
    table = _table(np.random.default_rng(1), 5)
    result = shape_explains(table, [0, 0, 0, 0, 1])
    assert result["area"] is None and result["folds"] == 1
    with pytest.raises(DiagnosticsError, match="4 categories for a table of 5"):
        shape_explains(table, [0, 1, 0, 1])
    with pytest.raises(DiagnosticsError, match="area_px"):
        shape_explains(table.drop(columns="area_px"), [0, 1, 0, 1, 0])


def test_category_warnings():
    assert category_warnings([30, 30, 40]) == []
    collapsed = category_warnings([70, 29, 1])
    assert len(collapsed) == 2 and "category 0 holds 70%" in collapsed[0] and "category 2 holds 1.0%" in collapsed[1]
    assert category_warnings([0, 0]) == ["no cell was assigned"]
    named = category_warnings([0, 90, 10], names=["lymphocyte", "erythroblast", "myeloid"])
    assert named == ["lymphocyte holds no cell", "erythroblast holds 90% of the cells (more than 60%): the model may have collapsed"]


def test_training_warnings():
    assert training_warnings(cells=4000, batch_size=64, iterations=1500, min_iterations=300) == []
    few = training_warnings(cells=55, batch_size=64, iterations=23, min_iterations=300)
    assert len(few) == 2
    assert few[0].startswith("only 55 cells, fewer than 4 training batches of 64")
    assert "23 generator iterations, fewer than the 300 this recipe needs" in few[1] and "--iterations 300" in few[1]


def test_seed_agreement():
    a = np.array([0, 0, 1, 1, 2, 2])
    assert seed_agreement([a]) is None
    assert seed_agreement([a, (a + 1) % 3]) == pytest.approx(1.0)  # same partition, other names
    assert seed_agreement([a, a, np.array([0, 1, 2, 0, 1, 2])]) < 0.5
    with pytest.raises(DiagnosticsError, match="different numbers"):
        seed_agreement([a, a[:3]])


def test_diagnose():
    rng = np.random.default_rng(2)
    table = _table(rng, 200)
    result = diagnose(table, rng.integers(0, 3, 200), categories=4)
    assert result["cells_per_category"][3] == 0 and any("category 3" in w for w in result["warnings"])
    assert set(result["shape_explains"]) >= {"area", "shape", "majority"}
