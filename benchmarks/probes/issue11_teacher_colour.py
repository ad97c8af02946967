"""Issue 11, step 19: the teacher joined by the colour of the cell's patch (labels only score).

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes/issue11_teacher_colour.py
The default teacher (pixels + moments 0.5 + crowding 0.2, over the 8 nearest cells) on the
default recipe's CRCHistoPhenotypes store, joined before the averaging by one more block of a
given weight:
  rgb    the RGB mean and spread of the patch's central 16×16 pixels (8 µm; the colour k-means
         baseline's description, but of the normalised patch, not the image as read)
  hed    the mean haematoxylin, eosin and DAB concentration (scikit-image's rgb2hed) inside
         the 8-pixel disc and outside it (the nucleus and what surrounds it), 6 columns
  stain  the table's mean_haematoxylin and mean_eosin of the nucleus
Each teacher is scored (acc / ARI / NMI) for k-means seeds 0, 1, 2.
"""
import numpy as np
from _issue11 import default_store
from skimage.color import rgb2hed

from cellgan.metrics.clustering import clustering_scores
from cellgan.neighbourhood import _joined, crowding, nearest_cells, neighbourhood_average, nucleus_moments, pixel_pca

p, table, labels, _ = default_store()
centre = p[:, 8:24, 8:24].reshape(len(p), -1, 3).astype(np.float64)
rgb = np.concatenate([centre.mean(1), centre.std(1)], axis=1)
hed = np.stack([rgb2hed(q) for q in p])
yy, xx = np.mgrid[:32, :32]
disc = ((yy - 15.5) ** 2 + (xx - 15.5) ** 2) <= 64
hed_block = np.concatenate([hed[:, disc].mean(1), hed[:, ~disc].mean(1)], axis=1)
stain = table[["mean_haematoxylin", "mean_eosin"]].to_numpy(np.float64)
blocks = {"rgb": rgb, "hed": hed_block, "stain": stain}
partners = nearest_cells(table, 8)
base = [(nucleus_moments(p), 0.5), (crowding(table), 0.2)]


def teacher_scores(extra, seed):
    from sklearn.cluster import KMeans

    described = neighbourhood_average(_joined(pixel_pca(p, seed=seed), base + extra), partners)
    c = KMeans(n_clusters=4, n_init=10, random_state=seed).fit_predict(described)
    return clustering_scores(c, labels)


variants = [("default", None, 0.0)] + [(name, name, w) for name in blocks for w in (0.2, 0.5, 1.0)]
for name, block, weight in variants:
    extra = [(blocks[block], weight)] if block else []
    s = [teacher_scores(extra, seed) for seed in (0, 1, 2)]
    print(f"{name:8s} {weight:.1f}: " + "  ".join(
        f"{k} {np.mean([x[k] for x in s]):.3f}±{np.std([x[k] for x in s]):.3f}" for k in ("acc", "ari", "nmi")), flush=True)
