"""Issue 11, step 32: how the teacher's description is cut into 4 groups, on both cell sets at once.

  OMP_NUM_THREADS=2 PYTHONPATH=benchmarks/probes .venv/bin/python benchmarks/probes/issue11_cuts.py

The default teacher's description (pixels + moments 0.5 + crowding 0.2 over the 8 nearest, seed 0) of (a) every
annotated nucleus (the store of issue11_all_nuclei.py; scored acc / ARI / NMI on the typed ones, as the
clustering bench since step 27) and (b) the nuclei the composition bench detects (its store; scored as the
composition bench scores). Cuts: plain k-means of 4; k-means of C centres merged into 4 by Ward's linkage
(the default, C = 8) or by average linkage of the centres, unweighted. Labels only score.
"""
import sys

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.cluster import KMeans

from _issue11 import all_nuclei_store, detected_nuclei
from cellgan.bench.composition import composition_scores
from cellgan.metrics.clustering import clustering_scores
from _issue11 import ward_groups
from cellgan.neighbourhood import neighbourhood_pixels


def describe(p, table):
    return neighbourhood_pixels(p, table, neighbours=8, seed=0, moments_weight=0.5, crowding_weight=0.2)


def cut(described, name):
    kind, _, centres = name.partition("-")
    centres = int(centres or 4)
    km = KMeans(n_clusters=centres, n_init=10, random_state=0).fit(described)
    if centres == 4:
        return km.labels_
    if kind == "ward":
        return ward_groups(km.cluster_centers_, np.bincount(km.labels_, minlength=centres), 4)[km.labels_]
    groups = fcluster(linkage(km.cluster_centers_, method=kind), t=4, criterion="maxclust") - 1
    return groups[km.labels_]


cuts = sys.argv[1:] or ["kmeans", "ward-8", "average-8", "ward-6", "ward-12", "ward-16", "average-16", "complete-8"]
p, table, labels, typed = all_nuclei_store()
every = describe(p, table)
dt, dp, records = detected_nuclei()
detected = describe(dp, dt)
print("cut         every nucleus acc/ARI/NMI  sizes            | detected sizes     agreement  MAE (mean)")
for name in cuts:
    a = cut(every, name)
    s = clustering_scores(a[typed], labels[typed])
    b = cut(detected, name)
    c = composition_scores(dt.assign(category=b), records, categories=4)
    sa = np.round(np.bincount(a, minlength=4) / len(a), 2)
    sb = np.round(np.bincount(b, minlength=4) / len(b), 2)
    print(f"{name:11s} {s['acc']:.3f} / {s['ari']:.3f} / {s['nmi']:.3f}  {sa} | {sb}  {c['mapped_agreement']:.3f}  "
          f"{c['composition_mae']:.3f} ({c['reference_mae_constant']:.3f})", flush=True)
