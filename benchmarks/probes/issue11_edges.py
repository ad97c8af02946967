"""Issue 11, step 23: crowding corrected for the edge of the field (labels only score).

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes/issue11_edges.py
A cell near the image's edge has fewer neighbours within any distance, so its crowding (the
distances to its 1st, 4th and 8th nearest cell) reads sparser than its tissue is. Corrected: each
distance r times sqrt(f), f the share of the disc of radius r around the cell that lies inside
the rectangle the image's cells span (the distance at which a full disc would hold as many cells,
at the same density). On the default recipe's CRCHistoPhenotypes store: the share of each
teacher cluster within 8 µm of that rectangle's edge, and the teacher's scores (k-means seeds 0-2)
with the raw and the corrected crowding.
"""
import numpy as np
from _issue11 import default_store
from sklearn.cluster import KMeans

from cellgan.metrics.clustering import clustering_scores
from cellgan.neighbourhood import CROWDING_RANKS, _joined, crowding, nearest_cells, neighbourhood_average, nucleus_moments, pixel_pca

p, table, labels, _ = default_store()
moments = nucleus_moments(p)
xy = table[["centroid_x", "centroid_y"]].to_numpy(np.float64)
images = table["image"].to_numpy()
lo, hi = np.empty_like(xy), np.empty_like(xy)
for image in np.unique(images):
    rows = images == image
    lo[rows], hi[rows] = xy[rows].min(0), xy[rows].max(0)
mpp = np.sqrt(table.area_um2.to_numpy() / table.area_px.to_numpy())
edge_um = np.minimum((xy - lo).min(1), (hi - xy).min(1)) * mpp

golden = np.pi * (3 - np.sqrt(5))
m = np.arange(256) + 0.5
disc = np.stack([np.sqrt(m / 256) * np.cos(golden * m), np.sqrt(m / 256) * np.sin(golden * m)], axis=1)


def corrected_crowding():
    partners = nearest_cells(table, max(CROWDING_RANKS))
    r = np.linalg.norm(xy[partners] - xy[:, None], axis=2)[:, [k - 1 for k in CROWDING_RANKS]]
    points = xy[:, None, None, :] + r[:, :, None, None] * disc[None, None]
    inside = ((points >= lo[:, None, None]) & (points <= hi[:, None, None])).all(-1).mean(-1)
    return np.log1p(r * np.sqrt(np.clip(inside, 0.25, 1)) * mpp[:, None])


partners8 = nearest_cells(table, 8)
for name, crowd in (("raw", crowding(table)), ("corrected", corrected_crowding())):
    s = []
    for seed in (0, 1, 2):
        d = neighbourhood_average(_joined(pixel_pca(p, seed=seed), [(moments, 0.5), (crowd, 0.2)]), partners8)
        c = KMeans(n_clusters=4, n_init=10, random_state=seed).fit_predict(d)
        s.append(clustering_scores(c, labels))
        if seed == 0:
            share = [round(float(np.mean(edge_um[c == k] < 8)), 3) for k in range(4)]
    print(f"{name:9s}: " + "  ".join(f"{k} {np.mean([x[k] for x in s]):.3f}±{np.std([x[k] for x in s]):.3f}"
                                      for k in ("acc", "ari", "nmi"))
          + f"; within 8 µm of the edge per cluster {share} (all {np.mean(edge_um < 8):.3f})", flush=True)
