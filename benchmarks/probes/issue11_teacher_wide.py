"""Issue 11, step 20: the teacher joined by the tissue around the neighbourhood (labels only score).

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes/issue11_teacher_wide.py
The default teacher (pixels + moments 0.5 + crowding 0.2, over the 8 nearest cells) on the
default recipe's CRCHistoPhenotypes store, joined before the averaging by one more block:
  far     log distance to the 16th and 32nd nearest cell (crowding at a wider scale)
  wide    the cell's moments and crowding averaged over its 32 nearest cells
and the default teacher averaged over 16 or 32 nearest cells instead of 8 (nb16, nb32).
Each teacher is scored (acc / ARI / NMI) for k-means seeds 0, 1, 2.
"""
import numpy as np
from _issue11 import default_store
from sklearn.cluster import KMeans

from cellgan.metrics.clustering import clustering_scores
from cellgan.neighbourhood import _joined, crowding, nearest_cells, neighbourhood_average, nucleus_moments, pixel_pca

p, table, labels, _ = default_store()
moments, crowd = nucleus_moments(p), crowding(table)
far_partners = nearest_cells(table, 32)
xy = table[["centroid_x", "centroid_y"]].to_numpy(np.float64)
far = np.log1p(np.linalg.norm(xy[far_partners] - xy[:, None], axis=2)[:, [15, 31]])
wide = neighbourhood_average(np.concatenate([moments, crowd], axis=1), far_partners)
blocks = {"far": far, "wide": wide}
base = [(moments, 0.5), (crowd, 0.2)]


def scores(extra, neighbours, seed):
    described = neighbourhood_average(_joined(pixel_pca(p, seed=seed), base + extra), nearest_cells(table, neighbours))
    c = KMeans(n_clusters=4, n_init=10, random_state=seed).fit_predict(described)
    return clustering_scores(c, labels)


variants = [("default", None, 0.0, 8), ("nb16", None, 0.0, 16), ("nb32", None, 0.0, 32)]
variants += [(name, name, w, 8) for name in blocks for w in (0.2, 0.5)]
for name, block, weight, k in variants:
    extra = [(blocks[block], weight)] if block else []
    s = [scores(extra, k, seed) for seed in (0, 1, 2)]
    print(f"{name:8s} {weight:.1f}: " + "  ".join(
        f"{m} {np.mean([x[m] for x in s]):.3f}±{np.std([x[m] for x in s]):.3f}" for m in ("acc", "ari", "nmi")), flush=True)
