"""Label-free checks of a set of categories: are they more than nucleus size?

A GAN's categories can split the cells by the most visible thing that varies
between patches — how large the nucleus is — rather than by cell type. These
checks need no label, so they run on every run and the report shows them:

- :func:`shape_explains`: how well a small decision tree on the cell table's
  shape columns (nucleus area alone, then all shape columns) predicts a cell's
  category, cross-validated. Near 1 means the categories are size (or shape)
  bins; near the majority share means shape does not decide them.
- :func:`category_warnings`: categories empty, or holding more than 60 % or fewer than 2 %
  of the cells (a collapse, or a category that barely exists).
- :func:`training_warnings`: a run with too few cells for its batches, or with
  fewer generator iterations than its recipe needs.
- :func:`seed_agreement`: the mean adjusted Rand index between the categories
  that models trained with different seeds give the same cells.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from cellgan.errors import CellganError

__all__ = [
    "DiagnosticsError",
    "LARGEST_SHARE",
    "MIN_BATCHES",
    "SHAPE_COLUMNS",
    "SMALLEST_SHARE",
    "category_warnings",
    "diagnose",
    "seed_agreement",
    "shape_explains",
    "training_warnings",
]

#: The cell table's shape columns, tried together after area alone.
SHAPE_COLUMNS = ("area_px", "perimeter_px", "eccentricity", "solidity")
#: A category above this share of the cells is reported as a collapse.
LARGEST_SHARE = 0.60
#: A category below this share of the cells is reported as nearly empty.
SMALLEST_SHARE = 0.02
#: A run with fewer cells than this many training batches is reported as too small: the
#: critic then sees the same few cells again and again (the paper's smallest set held
#: about 4,000 cells, some 60 batches of 64; Hu et al., JBHI 2019, Sec. IV-A).
MIN_BATCHES = 4


class DiagnosticsError(CellganError, ValueError):
    """Categories and a cell table that cannot be compared (lengths, columns)."""


def shape_explains(
    table: pd.DataFrame, category, *, columns=SHAPE_COLUMNS, depth: int = 4, folds: int = 5, seed: int = 0
) -> dict:
    """How much of the categories the nuclei's shape alone explains (cross-validated).

    Parameters
    ----------
    table : pandas.DataFrame
        The cell table, row i ↔ ``category[i]``; needs ``area_px`` and uses the
        other ``columns`` it has.
    category : array-like of int, shape (n,)
        Each cell's category.
    depth : int
        Depth of the decision tree (depth 4: at most 16 size/shape bins).
    folds : int
        Stratified folds, reduced when the smallest category has fewer cells.
    seed : int
        Seed of the fold shuffle and of the tree.

    Returns
    -------
    dict
        ``area`` (accuracy from nucleus area alone), ``shape`` (from every shape
        column present), ``majority`` (the largest category's share: the
        accuracy of knowing nothing), ``columns`` and ``folds``; the accuracies
        are None when there are too few cells per category to cross-validate.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.tree import DecisionTreeClassifier

    category = np.asarray(category)
    if len(category) != len(table):
        raise DiagnosticsError(f"{len(category)} categories for a table of {len(table)} cells")
    if "area_px" not in table.columns:
        raise DiagnosticsError("the cell table has no area_px column")
    present = [c for c in columns if c in table.columns]
    _, counts = np.unique(category, return_counts=True)
    majority = float(counts.max() / counts.sum()) if len(counts) else None
    n_folds = min(folds, int(counts.min())) if len(counts) else 0
    result = {"area": None, "shape": None, "majority": majority, "columns": present, "folds": n_folds}
    if len(counts) < 2 or n_folds < 2:
        return result
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for key, cols in (("area", ["area_px"]), ("shape", present)):
        x = table[cols].to_numpy(dtype=np.float64)
        x = np.where(np.isfinite(x), x, np.nanmedian(x, axis=0) if np.isfinite(x).any() else 0.0)
        tree = DecisionTreeClassifier(max_depth=depth, random_state=seed)
        result[key] = float(cross_val_score(tree, x, category, cv=splitter).mean())
    return result


def category_warnings(
    cells_per_category, *, names=None, largest: float = LARGEST_SHARE, smallest: float = SMALLEST_SHARE
) -> list[str]:
    """One sentence per category that is empty, or holds more than ``largest`` or less than ``smallest`` of the cells.

    ``names`` (one per category) name them in the sentences; default ``"category k"``.
    """
    counts = np.asarray(cells_per_category, dtype=np.int64)
    names = [f"category {k}" for k in range(len(counts))] if names is None else list(names)
    total = int(counts.sum())
    if total == 0:
        return ["no cell was assigned"]
    warnings = []
    for name, n in zip(names, counts):
        share = n / total
        if share > largest:
            warnings.append(
                f"{name} holds {share:.0%} of the cells (more than {largest:.0%}): the model may have collapsed"
            )
        elif n == 0:
            warnings.append(f"{name} holds no cell")
        elif share < smallest:
            warnings.append(f"{name} holds {share:.1%} of the cells ({n}; fewer than {smallest:.0%})")
    return warnings


def training_warnings(*, cells: int, batch_size: int, iterations: int, min_iterations: int) -> list[str]:
    """One sentence for a run with fewer cells than :data:`MIN_BATCHES` batches, one for too few iterations.

    Parameters
    ----------
    cells : int
        Cells the model was trained on.
    batch_size : int
        Real cells per training batch.
    iterations : int
        Generator iterations the training ran.
    min_iterations : int
        The fewest the recipe needs (``report.min_iterations`` of the recipes).
    """
    warnings = []
    if cells < MIN_BATCHES * batch_size:
        warnings.append(
            f"only {cells} cells, fewer than {MIN_BATCHES} training batches of {batch_size}: "
            "too few to learn cell types from (give more images; a few thousand cells at least)"
        )
    if iterations < min_iterations:
        warnings.append(
            f"training ran {iterations} generator iterations, fewer than the {min_iterations} this recipe needs: "
            f"the categories are not yet what training would give (run again with --iterations {min_iterations} "
            "or more; the run continues where it stopped)"
        )
    return warnings


def seed_agreement(categories_per_seed) -> float | None:
    """Mean adjusted Rand index over pairs of seeds' categories of the same cells; None for one seed."""
    from sklearn.metrics import adjusted_rand_score

    runs = [np.asarray(c) for c in categories_per_seed]
    if len({len(r) for r in runs}) > 1:
        raise DiagnosticsError(f"the seeds' categories cover different numbers of cells: {[len(r) for r in runs]}")
    pairs = list(itertools.combinations(runs, 2))
    if not pairs:
        return None
    return float(np.mean([adjusted_rand_score(a, b) for a, b in pairs]))


def diagnose(table: pd.DataFrame, category, *, categories: int, seed: int = 0) -> dict:
    """Every label-free check of one model's categories: ``shape_explains``, sizes, warnings.

    ``shape_explains`` is None when the table measures no nucleus area (cells given
    without outlines).
    """
    counts = np.bincount(np.asarray(category, dtype=np.int64), minlength=categories)
    measured = "area_px" in table.columns and table["area_px"].notna().any()
    return {
        "shape_explains": shape_explains(table, category, seed=seed) if measured else None,
        "cells_per_category": counts.tolist(),
        "warnings": category_warnings(counts),
    }
