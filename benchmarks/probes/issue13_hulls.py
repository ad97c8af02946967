"""Issue 13: the nuclei's convex-hull pixel counts (behind ``solidity``), all at once against one Qhull per nucleus.

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes/issue13_hulls.py

Segments the 11 bm_graz and the 14 MoNuSeg test images (all at 0.3 µm/px, no normalisation: only the label
images matter here), then counts each nucleus's pixel centres inside or on its convex hull twice: with
``cellgan.segment.features._convex_pixel_counts`` and with a ``scipy.spatial.ConvexHull`` per nucleus and Pick's
theorem (the way it was counted before). Prints the largest difference and the seconds of each.
"""
import dataclasses
import glob
import time

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from cellgan.config import resolve_config
from cellgan.io.images import read_rgb
from cellgan.segment.features import _convex_pixel_counts, _perimeter
from cellgan.segment.image import prepare, prepared_nuclei


def qhull_counts(ys, xs, lab, n: int, area: np.ndarray) -> np.ndarray:
    """One ConvexHull per label; Pick's theorem A + B/2 + 1; collinear labels count their own pixels."""
    counts = area.copy()
    order = np.argsort(lab, kind="stable")
    ys, xs, lab = ys[order], xs[order], lab[order]
    starts = np.searchsorted(lab, np.arange(1, n + 2))
    for i in range(n):
        points = np.column_stack([xs[starts[i] : starts[i + 1]], ys[starts[i] : starts[i + 1]]]).astype(float)
        try:
            hull = ConvexHull(points)
        except (QhullError, ValueError):
            continue
        vertices = points[hull.vertices].astype(np.int64)
        step = np.abs(np.diff(np.vstack([vertices, vertices[:1]]), axis=0))
        counts[i] = max(area[i], hull.volume + np.gcd(step[:, 0], step[:, 1]).sum() / 2 + 1)
    return counts


config = dataclasses.replace(resolve_config().segment, mpp=0.3, reinhard_reference=None)
paths = sorted(glob.glob("../shared/data/bm_graz/source/*.png")) + sorted(glob.glob("../shared/data/monuseg_test/*.tif"))
seconds = {"numpy, all at once": 0.0, "Qhull per nucleus": 0.0}
nuclei, worst = 0, 0.0
for path in paths:
    labels = prepared_nuclei(prepare(read_rgb(path), config), config).labels
    n = int(labels.max())
    _, ys, xs, lab = _perimeter(labels, n)
    area = np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(float)
    results = []
    for name, count in zip(seconds, (_convex_pixel_counts, qhull_counts)):
        start = time.perf_counter()
        results.append(count(ys, xs, lab, n, area))
        seconds[name] += time.perf_counter() - start
    nuclei += n
    worst = max(worst, float(np.abs(results[0] - results[1]).max(initial=0.0)))
print(f"{len(paths)} images, {nuclei} nuclei; largest difference {worst:.2g} pixels")
for name, value in seconds.items():
    print(f"{name:20s} {value:.2f} s")
