"""Issue 11, step 22: other ways to cut the teacher's description into 4 (labels only score).

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes/issue11_teacher_merge.py
The default teacher's description (pixels + moments 0.5 + crowding 0.2, averaged over the 8
nearest cells) of the default recipe's CRCHistoPhenotypes store, cut into 4 groups by:
  kmeans      k-means, 4 centres (the default teacher)
  overN       k-means of N centres, the centres merged to 4 by Ward's linkage (weighted by size;
              written here first, then cellgan.model.self_labels.overclustered until step 32, now _issue11.overclustered)
  gmm         a Gaussian mixture of 4 full-covariance components on the description's
              first 20 principal components
Seeds 0, 1, 2 each.
"""
import numpy as np
from _issue11 import default_store
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

from cellgan.metrics.clustering import clustering_scores
from _issue11 import overclustered
from cellgan.neighbourhood import neighbourhood_pixels

p, table, labels, _ = default_store()


def described(seed):
    return neighbourhood_pixels(p, table, neighbours=8, seed=seed, moments_weight=0.5, crowding_weight=0.2)


def cut(name, d, seed):
    if name == "kmeans":
        return KMeans(n_clusters=4, n_init=10, random_state=seed).fit_predict(d)
    if name.startswith("over"):
        return overclustered(d, clusters=4, overclusters=int(name[4:]), seed=seed)
    if name == "gmm":
        z = PCA(20, random_state=seed).fit_transform(d)
        return GaussianMixture(4, covariance_type="full", n_init=3, random_state=seed).fit_predict(z)
    raise SystemExit(name)


cache = {s: described(s) for s in (0, 1, 2)}
for name in ("kmeans", "over8", "over12", "over20", "gmm"):
    s = [clustering_scores(cut(name, cache[seed], seed), labels) for seed in (0, 1, 2)]
    print(f"{name:8s}: " + "  ".join(
        f"{m} {np.mean([x[m] for x in s]):.3f}±{np.std([x[m] for x in s]):.3f}" for m in ("acc", "ari", "nmi")), flush=True)
