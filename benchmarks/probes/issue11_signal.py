"""Issue 11, step 1: k-means (k=4) of label-free descriptions that include the environment.

Reads .cache/issue11/ (issue11_windows.py). Labels only score. Usage:
  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes/issue11_signal.py NAME [NAME ...]
where NAME is a feature recipe defined in RECIPES below; prints acc/ARI/NMI (mean of 3
k-means seeds) and the cluster sizes.
"""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from cellgan.metrics.clustering import clustering_scores
from cellgan.model.neighbours import nearest_cells

C = Path(".cache/issue11")
table = pd.read_parquet(C / "table.parquet")
labels = table["label"].astype(str).to_numpy()
_cache = {}


def win(side):
    if side not in _cache:
        _cache[side] = np.load(C / (f"windows_{side}.npy" if side != "faded" else "patches_faded.npy"))
    return _cache[side]


def hed(x):
    from skimage.color import rgb2hed
    n = len(x)
    return rgb2hed(x.reshape(-1, x.shape[-2], 3)).reshape(x.shape).astype(np.float32)


def centre_mask(size=32, radius=None):
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    return np.hypot(yy, xx) <= radius


def stats(side, region, space="rgbhed", centre_frac=0.25):
    """mean/std of RGB and HED over the centre disc (radius centre_frac*32) or the rest ('ring') or all."""
    key = ("stats", side, region, space, centre_frac)
    if key in _cache:
        return _cache[key]
    x = win(side).astype(np.float32) / 255.0
    m = centre_mask(32, centre_frac * 32)
    sel = {"centre": m, "ring": ~m, "all": np.ones_like(m)}[region]
    parts = []
    if "rgb" in space:
        v = x[:, sel]
        parts += [v.mean(1), v.std(1)]
    if "hed" in space:
        h = hed(x)[:, sel]
        parts += [h.mean(1), h.std(1)]
    out = np.concatenate(parts, axis=1)
    _cache[key] = out
    return out


def pix_pca(side, mask_centre=0.0, comps=50, size=None):
    key = ("pca", side, mask_centre, comps, size)
    if key in _cache:
        return _cache[key]
    x = win(side).astype(np.float32) / 255.0
    if size:
        f = 32 // size
        x = x.reshape(len(x), size, f, size, f, 3).mean(axis=(2, 4))
    if mask_centre:
        m = centre_mask(x.shape[1], mask_centre * x.shape[1])
        x = x.copy(); x[:, m] = 1.0
    out = PCA(comps, svd_solver="randomized", random_state=0).fit_transform(x.reshape(len(x), -1))
    _cache[key] = out
    return out


def nucleus():
    cols = ["area_px", "eccentricity", "solidity", "perimeter_px", "mean_hematoxylin", "mean_eosin"]
    return table[cols].to_numpy(float)


def z(x):
    x = np.asarray(x, float)
    return (x - x.mean(0)) / (x.std(0) + 1e-9)


def block(x, weight=1.0, per_dim=True):
    """standardise (per dimension, or as a whole for PCA scores) so the block's total variance is weight."""
    x = np.asarray(x, float)
    if per_dim:
        x = z(x)
        return x * np.sqrt(weight / x.shape[1])
    x = x - x.mean(0)
    return x * np.sqrt(weight / (x.var(0).sum() + 1e-12))


def nbr(x, k):
    if not k:
        return x
    p = nearest_cells(table, k)
    return (x + x[p].sum(1)) / (k + 1)


def score(x, name, seeds=3):
    rows = []
    for s in range(seeds):
        cl = KMeans(4, n_init=10, random_state=s).fit_predict(x)
        sc = clustering_scores(cl, labels)
        rows.append((sc["acc"], sc["ari"], sc["nmi"], np.bincount(cl, minlength=4)))
    a, r, n = (np.mean([t[i] for t in rows]) for i in range(3))
    print(f"{name:60s} acc {a:.3f} ari {r:.3f} nmi {n:.3f} sizes {'/'.join(map(str, sorted(rows[0][3], reverse=True)))}", flush=True)
    return a, r, n


def R(name):
    """feature recipes by name"""
    parts = name.split("+")
    blocks = []
    k = 0
    for p in parts:
        if p.startswith("nb"):
            k = int(p[2:]); continue
        if p.startswith("w"):  # w64pca, w96ring, w32centre, w64all, w64pcam (masked centre)
            import re
            m = re.match(r"w(\d+|faded)(pcam|pcas|pca|ring|centre|all)(?:@([\d.]+))?", p)
            side = m.group(1); side = side if side == "faded" else int(side); kind = m.group(2)
            wt = float(m.group(3)) if m.group(3) else 1.0
            if kind == "pca":
                blocks.append(block(pix_pca(side), wt, per_dim=False))
            elif kind == "pcam":
                blocks.append(block(pix_pca(side, mask_centre=0.25), wt, per_dim=False))
            elif kind == "pcas":
                blocks.append(block(pix_pca(side, size=8, comps=20), wt, per_dim=False))
            else:
                blocks.append(block(stats(side, kind), wt))
        elif p.startswith("nuc"):
            wt = float(p.split("@")[1]) if "@" in p else 1.0
            blocks.append(block(nucleus(), wt))
        elif p.startswith("area"):
            wt = float(p.split("@")[1]) if "@" in p else 1.0
            blocks.append(block(np.log(table[["area_px"]].to_numpy(float)), wt))
    x = np.concatenate(blocks, axis=1)
    return nbr(x, k)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        score(R(name), name)
