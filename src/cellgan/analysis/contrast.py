"""What sets each category apart: the cell table's features against the other cells, in words.

For every category and every measured feature of the cell table (nucleus area,
elongation, outline regularity, haematoxylin and eosin density),
:func:`category_contrasts` gives Cohen's d of the category's cells against all
the other cells (area on a log scale, as nucleus areas are skewed) and, for the
area, the ratio of the medians. :func:`describe_contrast` turns one category's
row into a phrase a pathologist reads ("nuclei 1.6× larger, darker, rounder"),
naming only the features with at least a medium effect (|d| ≥ 0.5; Cohen,
*Statistical Power Analysis for the Behavioral Sciences*, 1988).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["FEATURES", "MEDIUM_EFFECT", "category_contrasts", "describe_contrast"]

#: Cohen's medium effect: a feature is named when its |d| reaches this.
MEDIUM_EFFECT = 0.5

#: The cell-table columns compared, each with its words for "more" and "less".
#: ``area_um2`` is preferred to ``area_px`` when the pixel size is known.
FEATURES = {
    "area_um2": ("larger", "smaller"),
    "area_px": ("larger", "smaller"),
    "mean_haematoxylin": ("darker", "paler"),
    "mean_eosin": ("more eosin", "less eosin"),
    "eccentricity": ("more elongated", "rounder"),
    "solidity": ("smoother outlines", "more irregular outlines"),
}


def category_contrasts(table: pd.DataFrame, category, *, categories: int) -> pd.DataFrame:
    """Cohen's d of each category against the other cells, per feature of the table.

    Parameters
    ----------
    table : DataFrame
        The cell table, row i ↔ ``category[i]``; the columns of :data:`FEATURES`
        it has with finite values are compared (one area column: µm² when known).
    category : array-like of int, shape (n,)
        Each cell's category, 0..categories-1.
    categories : int
        K; a category without cells (or holding every cell) gets NaN.

    Returns
    -------
    DataFrame
        One row per category (index 0..K-1): ``d_<feature>`` per compared feature
        (positive: larger values in the category) and, when an area is compared,
        ``area_ratio`` (the category's median area over the other cells').
    """
    category = np.asarray(category, dtype=np.int64)
    columns = [c for c in FEATURES if c in table.columns and np.isfinite(table[c].to_numpy(dtype=np.float64)).any()]
    if "area_um2" in columns and "area_px" in columns:
        columns.remove("area_px")
    out = pd.DataFrame(index=pd.RangeIndex(categories))
    for column in columns:
        values = table[column].to_numpy(dtype=np.float64)
        if column.startswith("area_"):
            area = values
            values = np.log(np.where(values > 0, values, np.nan))
        out[f"d_{column}"] = [_cohens_d(values[category == k], values[category != k]) for k in range(categories)]
        if column.startswith("area_"):
            out["area_ratio"] = [_median_ratio(area[category == k], area[category != k]) for k in range(categories)]
    return out


def describe_contrast(row: pd.Series, *, threshold: float = MEDIUM_EFFECT) -> str:
    """One category's row of :func:`category_contrasts` in words, strongest effect first.

    Examples
    --------
    >>> describe_contrast(pd.Series({"d_area_px": 1.2, "area_ratio": 1.6, "d_mean_haematoxylin": -0.7}))
    'nuclei 1.6× larger, paler'
    """
    effects = []
    for key, value in row.items():
        if not str(key).startswith("d_") or not np.isfinite(value) or abs(value) < threshold:
            continue
        feature = str(key)[2:]
        more, less = FEATURES[feature]
        if feature.startswith("area_"):
            ratio = row.get("area_ratio", np.nan)
            words = f"nuclei {ratio:.1f}× larger" if value > 0 else f"nuclei smaller ({ratio:.1f}× the area)"
        else:
            words = more if value > 0 else less
        effects.append((abs(value), words))
    if not effects:
        return f"no feature of the table sets it apart (every |d| below {threshold})"
    return ", ".join(words for _, words in sorted(effects, key=lambda e: -e[0]))


def _cohens_d(inside: np.ndarray, outside: np.ndarray) -> float:
    """Cohen's d with the pooled standard deviation; NaN with fewer than two finite values on a side."""
    inside, outside = inside[np.isfinite(inside)], outside[np.isfinite(outside)]
    if len(inside) < 2 or len(outside) < 2:
        return float("nan")
    pooled = ((len(inside) - 1) * inside.var(ddof=1) + (len(outside) - 1) * outside.var(ddof=1)) / (
        len(inside) + len(outside) - 2
    )
    if not pooled > 0:
        return float("nan")
    return float((inside.mean() - outside.mean()) / np.sqrt(pooled))


def _median_ratio(inside: np.ndarray, outside: np.ndarray) -> float:
    inside, outside = inside[np.isfinite(inside)], outside[np.isfinite(outside)]
    if not len(inside) or not len(outside) or not np.median(outside) > 0:
        return float("nan")
    return float(np.median(inside) / np.median(outside))
