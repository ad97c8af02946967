"""Issue 11, step 28: the teacher's neighbourhood average, made edge-preserving, on every nucleus.

  OMP_NUM_THREADS=1 PYTHONPATH=benchmarks/probes .venv/bin/python benchmarks/probes/issue11_bilateral.py [typed]

On the every-nucleus store of issue11_all_nuclei.py. The default teacher averages each cell's
description (pixels PCA + moments 0.5 + crowding 0.2) with its 8 nearest cells, equal weights.
Among every nucleus (not only the typed ones), a cell's 8 nearest often cross into a region of
another type. Variants (no label), each cut by 8 k-means centres merged into 4 (Ward):
  equal        the default: equal weights over the cell and its 8 nearest
  bilateralH   weights exp(-|d_i - d_j|^2 / (H * m^2)), m the median distance between a cell's
               description and its neighbours' (an edge-preserving, bilateral average)
  withinR      only the neighbours within R µm count
Seed 0; scored on the typed nuclei. Labels only score.
"""
import sys

import numpy as np

from _issue11 import all_nuclei_store
from cellgan.metrics.clustering import clustering_scores
from _issue11 import overclustered
from cellgan.neighbourhood import crowding, nearest_cells, nucleus_moments, pixel_pca, _joined

p, table, lab, typed = all_nuclei_store(typed_only=sys.argv[1:] == ["typed"])
own = _joined(pixel_pca(p, seed=0), [(nucleus_moments(p), 0.5), (crowding(table), 0.2)])
safe = np.concatenate([np.arange(len(own))[:, None], nearest_cells(table, 8)], axis=1)  # the cell, then its 8 nearest
valid = np.ones(safe.shape, bool)
gaps = np.linalg.norm(own[safe] - own[:, None, :], axis=-1)  # (n, 9)
xy = table[["centroid_x", "centroid_y"]].to_numpy(np.float64)
distance_um = np.linalg.norm(xy[safe] - xy[:, None, :], axis=-1) * table["mpp"].to_numpy(np.float64)[:, None]
scale = np.median(gaps[:, 1:][valid[:, 1:]])


def averaged(weights):
    weights = np.where(valid, weights, 0.0)
    return (weights[..., None] * own[safe]).sum(1) / weights.sum(1, keepdims=True)


variants = {"equal": np.ones_like(gaps)}
for h in (0.5, 1.0, 2.0):
    variants[f"bilateral{h}"] = np.exp(-(gaps**2) / (h * scale**2))
for r in (15, 25):
    variants[f"within{r}"] = (distance_um <= r).astype(float)
for name, w in variants.items():
    groups = overclustered(averaged(w), clusters=4, overclusters=8, seed=0)
    s = clustering_scores(groups[typed], lab[typed])
    sizes = np.round(np.bincount(groups, minlength=4) / len(groups), 2)
    print(f"{name:12s} acc {s['acc']:.3f} ari {s['ari']:.3f} nmi {s['nmi']:.3f} sizes {sizes}", flush=True)
