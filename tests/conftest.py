"""Shared fixtures: the real datasets in ../shared/data (read-only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    return Path(os.environ.get("CELLGAN_DATA_ROOT", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder holding bm_graz/, crchistophenotypes/, monuseg_test/, kather2016/."""
    root = _data_root()
    if not (root / "bm_graz").is_dir():
        pytest.skip(f"real datasets not found at {root} (set CELLGAN_DATA_ROOT)")
    return root


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test models run faster on one thread, and the suite shares a 2-core machine."""
    import torch

    torch.set_num_threads(1)
    yield
