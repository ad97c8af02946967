"""Issue 11, step 4: better label-free teachers from what the trainer has (faded patches + cell table).

Reads .cache/issue11/{patches_faded.npy,table.parquet} (issue11_windows.py). Labels only score;
every variant also prints two label-free criteria: the agreement between k-means seeds (mean
pairwise ARI of 3 seeds) and the share of the largest cluster. Usage:

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes/issue11_teacher.py NAME [NAME ...]

NAME = description[:clusterer], description = '+'-joined blocks, each BLOCK[@weight]:
  pca      PCA-50 of the faded patches (block scaled to total variance 1)
  mom      nucleus moments (cellgan.neighbourhood.nucleus_moments), standardised, clipped ±3
  rad      radial HED profile of the faded patch (8 rings, H and E mean and std)
  dens     log distances to the 1st, 4th and 8th nearest cell (crowding)
  align    orientation coherence of the cell's and its 8 neighbours' nuclei, and the anisotropy
           of the neighbours' offsets (stroma: aligned spindles in lines)
  and the neighbourhood suffix on the whole description: nbK (mean over cell + K nearest),
  msK1,K2,.. (the cell's own block joined by its means over each K: several radii), gK (Gaussian
  weights over 16 nearest with scale = distance to the K-th).
clusterer: km (default), gmm (full-covariance GMM), over32 (k-means 32 then Ward on centres,
  weighted by size), smooth (k-means, then 3 rounds of majority vote over cell + 8 nearest),
  cons (k-means of the one-hot labels of 10 seeds: consensus), spec (spectral on a kNN graph of
  the description).
"""
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score

from cellgan.metrics.clustering import clustering_scores
from cellgan.neighbourhood import nearest_cells, nucleus_moments

C = Path(".cache/issue11")
table = pd.read_parquet(C / "table.parquet")
patches = np.load(C / "patches_faded.npy")
labels = table["label"].astype(str).to_numpy()
K = 4
_cache = {}


def cached(fn):
    def wrapper(*a):
        key = (fn.__name__,) + a
        if key not in _cache:
            _cache[key] = fn(*a)
        return _cache[key]

    return wrapper


def z(x, clip=3.0):
    x = np.asarray(x, float)
    return np.clip((x - x.mean(0)) / (x.std(0) + 1e-9), -clip, clip)


def per_dim(x, weight):
    x = z(x)
    return x * np.sqrt(weight / x.shape[1])


@cached
def pca():
    x = patches.reshape(len(patches), -1).astype(np.float32) / 255.0
    p = PCA(50, svd_solver="randomized", random_state=0).fit_transform(x)
    p = p - p.mean(0)
    return p / np.sqrt(p.var(0).sum())


@cached
def mom():
    return nucleus_moments(patches)


@cached
def hed():
    from skimage.color import rgb2hed

    return rgb2hed(patches.reshape(-1, 32, 3)).reshape(patches.shape).astype(np.float32)


@cached
def rad():
    h = hed()
    yy, xx = np.mgrid[:32, :32] - 15.5
    r = np.hypot(yy, xx)
    parts = []
    for lo, hi in zip(np.linspace(0, 16, 9)[:-1], np.linspace(0, 16, 9)[1:]):
        m = (r >= lo) & (r < hi)
        for c in (0, 1):
            parts += [h[:, m, c].mean(1), h[:, m, c].std(1)]
    return np.stack(parts, 1)


@cached
def knn(k):
    """(dist, idx) of the k nearest other cells in the same image, as nearest_cells."""
    idx = nearest_cells(table, k)
    xy = table[["centroid_x", "centroid_y"]].to_numpy(float)
    d = np.linalg.norm(xy[idx] - xy[:, None], axis=2)
    return d, idx


@cached
def dens():
    d, _ = knn(8)
    return np.log(np.stack([d[:, 0], d[:, 3], d[:, 7]], 1) + 1.0)


@cached
def dens1():
    d, _ = knn(8)
    return np.log(d.mean(1, keepdims=True) + 1.0)


@cached
def dens16():
    d, _ = knn(16)
    return np.log(d[:, [0, 3, 7, 15]] + 1.0)


@cached
def orientation():
    """Each nucleus's axis angle (double-angle unit vector scaled by elongation) from H-weighted moments."""
    h = hed()[..., 0]
    yy, xx = np.mgrid[:32, :32] - 15.5
    near = np.hypot(yy, xx) <= 8
    w = np.clip(h - np.median(h.reshape(len(h), -1), 1)[:, None, None], 0, None) * near
    s = w.sum((1, 2)) + 1e-6
    my, mx = (w * yy).sum((1, 2)) / s, (w * xx).sum((1, 2)) / s
    dy, dx = yy - my[:, None, None], xx - mx[:, None, None]
    cyy, cxx, cxy = ((w * a).sum((1, 2)) / s for a in (dy * dy, dx * dx, dy * dx))
    a, b = cxx - cyy, 2 * cxy
    norm = np.hypot(a, b) / (cxx + cyy + 1e-9)  # 0 round .. 1 a line
    ang = np.arctan2(b, a)
    return np.stack([np.cos(ang) * norm, np.sin(ang) * norm], 1)


@cached
def align():
    _, idx = knn(8)
    o = orientation()
    group = np.concatenate([o[:, None], o[idx]], 1)  # (n, 9, 2)
    coherence = np.linalg.norm(group.mean(1), axis=1) / (np.linalg.norm(group, axis=2).mean(1) + 1e-9)
    xy = table[["centroid_x", "centroid_y"]].to_numpy(float)
    off = xy[idx] - xy[:, None]
    cov = np.einsum("nki,nkj->nij", off, off) / idx.shape[1]
    ev = np.linalg.eigvalsh(cov)
    aniso = np.log((ev[:, 1] + 1) / (ev[:, 0] + 1))
    return np.stack([coherence, aniso], 1)


BLOCKS = {"pca": None, "mom": mom, "nuc": lambda: table[["area_px", "eccentricity", "solidity", "mean_haematoxylin", "mean_eosin"]].to_numpy(float), "rad": rad, "dens": dens, "dens1": dens1, "dens16": dens16, "align": align}


def describe(spec):
    """The description; blocks named after the neighbourhood suffix (e.g. ``nb8+mom@0.3``) join unaveraged."""
    own = [p for p in spec.split("+")]
    cut = next((i for i, p in enumerate(own) if re.match(r"(nb|ms|g)\d", p)), len(own))
    x = _describe("+".join(own[: cut + 1]))
    if cut + 1 < len(own):
        x = np.concatenate([x, _describe("+".join(own[cut + 1 :]))], 1)
    return x


def _describe(spec):
    blocks, hood = [], None
    for part in spec.split("+"):
        if re.match(r"(nb|ms|g)\d", part):
            hood = part
            continue
        name, _, w = part.partition("@")
        w = float(w) if w else 1.0
        blocks.append(pca() * np.sqrt(w) if name == "pca" else per_dim(BLOCKS[name](), w))
    x = np.concatenate(blocks, 1)
    if hood is None:
        return x
    if hood.startswith("nb"):
        k, _, hops = hood[2:].partition("x")
        _, idx = knn(int(k))
        for _ in range(int(hops or 1)):
            x = (x + x[idx].sum(1)) / (idx.shape[1] + 1)
        return x
    if hood.startswith("ms"):
        out = [x]
        for k in map(int, hood[2:].split(",")):
            _, idx = knn(k)
            out.append((x + x[idx].sum(1)) / (k + 1))
        return np.concatenate(out, 1)
    if hood.startswith("g"):
        d, idx = knn(16)
        scale = d[:, int(hood[1:]) - 1 : int(hood[1:])] + 1e-6
        w = np.exp(-((d / scale) ** 2) / 2)
        return (x + (w[..., None] * x[idx]).sum(1)) / (1 + w.sum(1, keepdims=True))
    raise ValueError(hood)


def cluster(x, how, seed):
    if how == "km":
        return KMeans(K, n_init=10, random_state=seed).fit_predict(x)
    if how == "gmm":
        from sklearn.mixture import GaussianMixture

        return GaussianMixture(K, covariance_type="full", n_init=2, random_state=seed, reg_covar=1e-4).fit(x).predict(x)
    if how.startswith("over"):
        from sklearn.cluster import AgglomerativeClustering

        km = KMeans(int(how[4:]), n_init=4, random_state=seed).fit(x)
        sizes = np.bincount(km.labels_, minlength=km.n_clusters)
        # Ward on centres, each repeated in proportion to its size (approximated by weighting)
        reps = np.repeat(km.cluster_centers_, np.maximum(1, sizes // 50), axis=0)
        owner = np.repeat(np.arange(km.n_clusters), np.maximum(1, sizes // 50))
        merged = AgglomerativeClustering(K, linkage="ward").fit_predict(reps)
        centre_to = np.array([np.bincount(merged[owner == c], minlength=K).argmax() for c in range(km.n_clusters)])
        return centre_to[km.labels_]
    if how == "smooth":
        lab = KMeans(K, n_init=10, random_state=seed).fit_predict(x)
        _, idx = knn(8)
        for _ in range(3):
            votes = np.zeros((len(lab), K))
            np.add.at(votes, (np.arange(len(lab)), lab), 1.0)
            for j in range(idx.shape[1]):
                np.add.at(votes, (np.arange(len(lab)), lab[idx[:, j]]), 1.0)
            lab = votes.argmax(1)
        return lab
    if how == "cons":
        onehot = np.concatenate([np.eye(K)[KMeans(K, n_init=3, random_state=100 * seed + s).fit_predict(x)] for s in range(10)], 1)
        return KMeans(K, n_init=10, random_state=seed).fit_predict(onehot)
    if how == "spec":
        from sklearn.cluster import SpectralClustering

        return SpectralClustering(K, affinity="nearest_neighbors", n_neighbors=15, random_state=seed,
                                  assign_labels="cluster_qr").fit_predict(x)
    raise ValueError(how)


def run(name, seeds=3):
    spec, _, how = name.partition(":")
    x = describe(spec)
    outs = [cluster(x, how or "km", s) for s in range(seeds)]
    sc = [clustering_scores(o, labels) for o in outs]
    agree = np.mean([adjusted_rand_score(outs[i], outs[j]) for i in range(seeds) for j in range(i + 1, seeds)])
    m = {k: (np.mean([s[k] for s in sc]), np.std([s[k] for s in sc])) for k in ("acc", "ari", "nmi")}
    largest = np.mean([np.bincount(o, minlength=K).max() / len(o) for o in outs])
    sizes = "/".join(map(str, sorted(np.bincount(outs[0], minlength=K), reverse=True)))
    print(f"{name:44s} acc {m['acc'][0]:.3f}±{m['acc'][1]:.3f} ari {m['ari'][0]:.3f}±{m['ari'][1]:.3f} "
          f"nmi {m['nmi'][0]:.3f}±{m['nmi'][1]:.3f} | seeds agree {agree:.2f} largest {largest:.2f} | {sizes}",
          flush=True)


if __name__ == "__main__":
    for n in sys.argv[1:]:
        run(n)
