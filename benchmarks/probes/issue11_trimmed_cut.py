"""Issue 11, step 37: a trimmed k-means cut for the teacher, on both cell sets at once.

  OMP_NUM_THREADS=2 PYTHONPATH=benchmarks/probes .venv/bin/python benchmarks/probes/issue11_trimmed_cut.py

On the detected nuclei one of the plain cut's four groups holds ~1 % (rare, very dark, isolated nuclei; step 36).
Trimmed k-means (Cuesta-Albertos et al., Ann. Stat. 1997): the centres are fitted without the share T of cells
farthest from the description's median, then every cell goes to its nearest centre. As issue11_cuts.py
(teacher alone, seed 0, no GAN; labels only score).
"""

import numpy as np
from sklearn.cluster import KMeans

from _issue11 import all_nuclei_store, detected_nuclei
from cellgan.bench.composition import composition_scores
from cellgan.metrics.clustering import clustering_scores
from cellgan.neighbourhood import neighbourhood_pixels


def trimmed_cut(described, trim):
    far = np.linalg.norm(described - np.median(described, axis=0), axis=1)
    keep = far <= np.quantile(far, 1 - trim) if trim else np.ones(len(described), bool)
    return KMeans(n_clusters=4, n_init=10, random_state=0).fit(described[keep]).predict(described)


def describe(p, table):
    return neighbourhood_pixels(p, table, neighbours=8, seed=0, moments_weight=0.5, crowding_weight=0.2)


p, table, labels, typed = all_nuclei_store()
every = describe(p, table)
dt, dp, records = detected_nuclei()
detected = describe(dp, dt)
print("trim   every nucleus acc/ARI/NMI  sizes            | detected sizes     agreement  MAE (mean)")
for trim in (0.0, 0.01, 0.02, 0.05):
    a, b = trimmed_cut(every, trim), trimmed_cut(detected, trim)
    s = clustering_scores(a[typed], labels[typed])
    q = composition_scores(dt.assign(category=b), records, categories=4)
    sa = np.round(np.bincount(a, minlength=4) / len(a), 2)
    sb = np.round(np.bincount(b, minlength=4) / len(b), 2)
    print(f"{trim:<6} {s['acc']:.3f} / {s['ari']:.3f} / {s['nmi']:.3f}  {sa} | {sb}  {q['mapped_agreement']:.3f}  "
          f"{q['composition_mae']:.3f} ({q['reference_mae_constant']:.3f})", flush=True)
