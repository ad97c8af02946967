"""Issue 11, step 36: the teacher's weights re-examined with the plain cut, on both cell sets at once.

  OMP_NUM_THREADS=2 PYTHONPATH=benchmarks/probes .venv/bin/python benchmarks/probes/issue11_plain_weights.py [N,M,C ...]

As issue11_cuts.py (teacher alone, seed 0, no GAN; labels only score), for the plain k-means cut of the
description over N nearest cells with moments weight M and crowding weight C (the default: 8,0.5,0.2).
"""
import sys

import numpy as np

from _issue11 import all_nuclei_store, detected_nuclei
from cellgan.bench.composition import composition_scores
from cellgan.metrics.clustering import clustering_scores
from cellgan.model.self_labels import neighbourhood_clusters

variants = sys.argv[1:] or ["8,0.5,0.2", "8,0.5,0.1", "8,0.5,0.35", "8,0.25,0.2", "8,1.0,0.2", "12,0.5,0.2",
                            "6,0.5,0.2", "8,0,0.2"]
p, table, labels, typed = all_nuclei_store()
dt, dp, records = detected_nuclei()
print("N,M,C        every nucleus acc/ARI/NMI  sizes            | detected sizes     agreement  MAE (mean)")
for spec in variants:
    n, m, c = spec.split(",")
    weights = dict(clusters=4, neighbours=int(n), seed=0, moments_weight=float(m), crowding_weight=float(c))
    a = neighbourhood_clusters(p, table, **weights)
    s = clustering_scores(a[typed], labels[typed])
    b = neighbourhood_clusters(dp, dt, **weights)
    q = composition_scores(dt.assign(category=b), records, categories=4)
    sa = np.round(np.bincount(a, minlength=4) / len(a), 2)
    sb = np.round(np.bincount(b, minlength=4) / len(b), 2)
    print(f"{spec:12s} {s['acc']:.3f} / {s['ari']:.3f} / {s['nmi']:.3f}  {sa} | {sb}  {q['mapped_agreement']:.3f}  "
          f"{q['composition_mae']:.3f} ({q['reference_mae_constant']:.3f})", flush=True)
