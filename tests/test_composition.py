"""Per-image composition (the paper's P_i = X_i / sum X) and `cellgan compose`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cellgan.analysis.composition import (
    CompositionError,
    composition,
    proportion_columns,
    read_assignments,
    read_composition,
    write_composition,
)
from cellgan.cli.main import main


def _assignments(categories: int = 4) -> pd.DataFrame:
    # image b: 3 cells (2 in category 0, 1 in 1); image a: 2 cells in category 2; category 3 empty
    table = pd.DataFrame(
        {
            "image": ["b", "a", "a", "b", "b"],
            "cell_id": [0, 0, 1, 1, 2],
            "category": [0, 2, 2, 1, 0],
            "centroid_x": [1.0, 2.0, 3.0, 4.0, 5.0],
            "centroid_y": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    probs = np.full((len(table), categories), 0.1)
    probs[np.arange(len(table)), table["category"]] = 1 - 0.1 * (categories - 1)
    for k in range(categories):
        table[f"prob_{k}"] = probs[:, k]
    return table


def _write_assignments_dir(path, table, categories):
    path.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path / "assignments.parquet", index=False)
    np.save(path / "features.npy", np.zeros((len(table), 3), np.float32))
    (path / "meta.json").write_text(json.dumps({"categories": categories}))


def test_counts_and_proportions_exact_with_an_empty_category():
    result = composition(_assignments(), categories=4)
    assert result["image"].tolist() == ["a", "b"]
    assert result["n_cells"].tolist() == [2, 3]
    assert result[["count_0", "count_1", "count_2", "count_3"]].to_numpy().tolist() == [[0, 0, 2, 0], [2, 1, 0, 0]]
    props = result[["prop_0", "prop_1", "prop_2", "prop_3"]].to_numpy()
    np.testing.assert_allclose(props, [[0, 0, 1, 0], [2 / 3, 1 / 3, 0, 0]])
    assert list(result.columns) == ["image", "n_cells"] + [f"count_{k}" for k in range(4)] + [
        f"prop_{k}" for k in range(4)
    ]
    assert result["count_3"].dtype == np.int64


def test_more_categories_than_used_still_get_columns():
    result = composition(_assignments(), categories=7)
    assert proportion_columns(result) == [f"prop_{k}" for k in range(7)]
    assert (result[[f"count_{k}" for k in range(3, 7)]] == 0).all().all()
    np.testing.assert_allclose(result[proportion_columns(result)].sum(axis=1), 1.0)


@pytest.mark.parametrize("bad", [4, -1, 1.5, None])
def test_category_outside_range_is_an_error(bad):
    table = _assignments()
    table["category"] = table["category"].astype(object)
    table.loc[0, "category"] = bad
    with pytest.raises(CompositionError, match="outside 0..3"):
        composition(table, categories=4)


def test_missing_columns_are_named():
    with pytest.raises(CompositionError, match="category"):
        composition(pd.DataFrame({"image": ["a"]}), categories=2)


def test_write_and_read_roundtrip(tmp_path):
    result = composition(_assignments(), categories=4)
    paths = write_composition(result, tmp_path / "comp")
    assert sorted(p.name for p in paths) == ["composition.csv", "composition.parquet"]
    assert not [p for p in (tmp_path / "comp").iterdir() if p.name.startswith(".")]  # no temp files left
    for source in (tmp_path / "comp", tmp_path / "comp" / "composition.csv"):
        back = read_composition(source)
        pd.testing.assert_frame_equal(back[result.columns], result, check_dtype=False)


def test_named_categories_name_the_columns(tmp_path):
    names = ["lymphocyte", "erythroblast", "myeloid", "other cells"]
    result = composition(_assignments(), categories=4, names=names)
    assert [c for c in result.columns if c.startswith("count_")] == [f"count_{n}" for n in names]
    assert proportion_columns(result) == [f"prop_{n}" for n in names]
    write_composition(result, tmp_path / "comp")
    assert proportion_columns(read_composition(tmp_path / "comp" / "composition.csv")) == [f"prop_{n}" for n in names]
    with pytest.raises(CompositionError, match="3 category names for 4 categories"):
        composition(_assignments(), categories=4, names=names[:3])


def test_read_composition_errors(tmp_path):
    with pytest.raises(CompositionError, match="no composition"):
        read_composition(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("image,prop_0,prop_2\na,0.5,0.5\n")
    with pytest.raises(CompositionError, match="bad.csv.*prop_0..prop_"):
        read_composition(bad)
    bad.write_text("image,prop_0,prop_1\na,0.5,0.5\na,0.2,0.8\n")
    with pytest.raises(CompositionError, match="'a' appears twice"):
        read_composition(bad)


def test_read_assignments_errors(tmp_path):
    with pytest.raises(CompositionError, match="meta.json missing|assignments.parquet missing"):
        read_assignments(tmp_path)
    table = _assignments()
    _write_assignments_dir(tmp_path / "a", table.drop(columns=["prob_3"]), 4)
    with pytest.raises(CompositionError, match=r"prob_3"):
        read_assignments(tmp_path / "a")
    (tmp_path / "a" / "meta.json").write_text("{not json")
    with pytest.raises(CompositionError, match="meta.json"):
        read_assignments(tmp_path / "a")


def test_cli_compose(tmp_path, capsys):
    _write_assignments_dir(tmp_path / "assign", _assignments(), 4)
    assert main(["compose", str(tmp_path / "assign"), "--out", str(tmp_path / "comp")]) == 0
    written = pd.read_csv(tmp_path / "comp" / "composition.csv")
    assert written["n_cells"].tolist() == [2, 3]
    assert "2 images, 5 cells, 4 categories" in capsys.readouterr().out
    assert main(["compose", str(tmp_path / "nowhere"), "--out", str(tmp_path / "c2")]) == 2
    assert "not an assignments directory" in capsys.readouterr().err
