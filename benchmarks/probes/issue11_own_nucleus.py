"""Issue 11, step 43: the cell's own nucleus beside its neighbourhood's mean in the teacher.

  OMP_NUM_THREADS=2 PYTHONPATH=benchmarks/probes .venv/bin/python benchmarks/probes/issue11_own_nucleus.py [BLOCK,W ...]

The default teacher's description (every column averaged over the cell and its 8 nearest) joined by one block of
the cell's OWN description, not averaged: `moments` (its nucleus moments, standardised, clipped at ±3) or `pixels`
(its own pixel PCA, scaled to unit total variance), of total variance W; then the plain 4-means cut, as
issue11_plain_weights.py (teacher alone, seed 0, no GAN; both cell sets; labels only score). Step 1 found that
averaging over neighbours blurs the fibroblast / inflammatory split, which lives in the nucleus itself.
"""
import sys

import numpy as np
from _issue11 import all_nuclei_store, detected_nuclei
from sklearn.cluster import KMeans

from cellgan.bench.composition import composition_scores
from cellgan.config import resolve_config
from cellgan.metrics.clustering import clustering_scores
from cellgan.neighbourhood import neighbourhood_pixels, nucleus_moments, pixel_pca

variants = sys.argv[1:] or ["moments,0", "moments,0.1", "moments,0.2", "moments,0.35", "moments,0.5", "pixels,0.2", "pixels,0.5"]
train = resolve_config().train


def own_block(patches, block, weight):
    if block == "moments":
        values = nucleus_moments(patches)
        z = np.clip((values - values.mean(0)) / (values.std(0) + 1e-9), -3, 3)
        return z * np.sqrt(weight / values.shape[1])
    pca = pixel_pca(patches, seed=0)
    pca = pca - pca.mean(0)
    return pca / np.sqrt(pca.var(0).sum() + 1e-12) * np.sqrt(weight)


def cut(patches, table, block, weight):
    described = neighbourhood_pixels(patches, table, neighbours=train.self_label_neighbours, seed=0,
                                     moments_weight=train.self_label_moments, crowding_weight=train.self_label_crowding)
    if weight > 0:
        described = np.concatenate([described, own_block(patches, block, weight)], axis=1)
    return KMeans(n_clusters=4, n_init=10, random_state=0).fit_predict(described)


p, table, labels, typed = all_nuclei_store()
dt, dp, records = detected_nuclei()
print("block,W       every nucleus acc/ARI/NMI  sizes            | detected sizes     agreement  MAE (mean)")
for spec in variants:
    block, weight = spec.split(",")
    a = cut(p, table, block, float(weight))
    s = clustering_scores(a[typed], labels[typed])
    b = cut(dp, dt, block, float(weight))
    q = composition_scores(dt.assign(category=b), records, categories=4)
    sa = np.round(np.bincount(a, minlength=4) / len(a), 2)
    sb = np.round(np.bincount(b, minlength=4) / len(b), 2)
    print(f"{spec:13s} {s['acc']:.3f} / {s['ari']:.3f} / {s['nmi']:.3f}  {sa} | {sb}  {q['mapped_agreement']:.3f}  "
          f"{q['composition_mae']:.3f} ({q['reference_mae_constant']:.3f})", flush=True)
