"""What the benchmarks share: the peak memory a spawned worker reports is its own."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import sys

import numpy as np
import pytest

from cellgan.bench._common import peak_rss_mb


def _child_peak() -> float:
    return peak_rss_mb()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux's")
def test_a_spawned_worker_reports_its_own_peak_not_its_parents():
    big = np.ones(400 * 2**20, np.uint8)  # 400 MB touched in this process
    assert peak_rss_mb() >= 400
    del big
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        child = pool.submit(_child_peak).result()
    assert 0 < child < 400  # ru_maxrss would report at least this process's 400 MB


def test_threads_per_job_shares_the_free_cores(monkeypatch):
    import cellgan.device
    from cellgan.bench._common import threads_per_job

    monkeypatch.setattr(cellgan.device, "free_cpu_threads", lambda: 4)
    assert [threads_per_job(jobs) for jobs in (1, 2, 3, 8)] == [4, 2, 1, 1]
