"""cellgan.analysis.contrast: what sets each category apart, as effect sizes and in words."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellgan.analysis.contrast import category_contrasts, describe_contrast


def test_a_category_of_large_pale_nuclei_is_described_so():
    rng = np.random.default_rng(0)
    n = 400
    category = np.repeat([0, 1], n // 2)
    table = pd.DataFrame(
        {
            "area_px": np.where(category == 0, 1.6, 1.0) * rng.lognormal(np.log(100), 0.1, n),
            "area_um2": np.nan,  # pixel size unknown: the area in pixels is compared
            "mean_haematoxylin": np.where(category == 0, 0.5, 0.8) + rng.normal(0, 0.1, n),
            "eccentricity": rng.uniform(0.2, 0.8, n),  # the same in both
        }
    )
    contrasts = category_contrasts(table, category, categories=3)
    assert list(contrasts.columns) == ["d_area_px", "area_ratio", "d_mean_haematoxylin", "d_eccentricity"]
    assert contrasts.loc[0, "area_ratio"] == pytest.approx(1.6, rel=0.05)
    assert contrasts.loc[0, "d_area_px"] == pytest.approx(-contrasts.loc[1, "d_area_px"])
    assert contrasts.loc[2].isna().all()  # an empty category
    assert describe_contrast(contrasts.loc[0]) == "nuclei 1.6× larger, paler"
    assert describe_contrast(contrasts.loc[1]) == "nuclei smaller (0.6× the area), darker"
    assert describe_contrast(contrasts.loc[2]).startswith("no feature of the table sets it apart")


def test_area_in_um2_is_preferred_when_known():
    table = pd.DataFrame({"area_px": [10.0, 12, 30, 33], "area_um2": [2.5, 3, 7.5, 8.25]})
    contrasts = category_contrasts(table, [0, 0, 1, 1], categories=2)
    assert "d_area_um2" in contrasts.columns and "d_area_px" not in contrasts.columns
