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
from cellgan.neighbourhood import nearest_cells

C = Path(".cache/issue11")
table = pd.read_parquet(C / "table.parquet")
labels = table["label"].astype(str).to_numpy()
_cache = {}
import os

CLIP = float(os.environ.get('CLIP', 'inf'))


def win(side):
    if side not in _cache:
        _cache[side] = np.load(C / (f"windows_{side}.npy" if side != "faded" else "patches_faded.npy"))
    return _cache[side]


def hed(x):
    from skimage.color import rgb2hed
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
        x = np.clip(z(x), -CLIP, CLIP)
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
    k, hops = 0, 1
    for p in parts:
        if p.startswith("nb"):
            k = int(p[2:].split("x")[0]); hops = int(p.split("x")[1]) if "x" in p else 1; continue
        if p.startswith("w"):  # w64pca, w96ring, w32centre, w64all, w64pcam (masked centre)
            import re
            m = re.match(r"w(\d+|faded)(pcam|pcas|pca|ring|centre|all)(\d*)(?:@([\d.]+))?", p)
            side = m.group(1); side = side if side == "faded" else int(side); kind = m.group(2)
            wt = float(m.group(4)) if m.group(4) else 1.0
            comps = int(m.group(3)) if m.group(3) else 50
            if kind == "pca":
                blocks.append(block(pix_pca(side, comps=comps), wt, per_dim=False))
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
    for _ in range(hops if k else 0):
        x = nbr(x, k)
    return x


def _main():
    for name in sys.argv[1:]:
        score(R(name), name)


def radial(side, space="hed", rings=8):
    """rotation-invariant radial profile: mean (and std) of each channel in `rings` concentric rings."""
    key = ("radial", side, space, rings)
    if key in _cache:
        return _cache[key]
    x = win(side).astype(np.float32) / 255.0
    v = hed(x) if space == "hed" else x
    yy, xx = np.mgrid[:32, :32] - 15.5
    r = np.hypot(yy, xx)
    edges = np.linspace(0, 16, rings + 1)
    parts = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (r >= lo) & (r < hi)
        parts += [v[:, m].mean(1), v[:, m].std(1)]
    out = np.concatenate(parts, 1)
    _cache[key] = out
    return out


def moments(side=32, radius=8.0):
    """haematoxylin-weighted second moments near the centre: log size, elongation, mean H (rotation-invariant)."""
    x = win(side).astype(np.float32) / 255.0
    h = hed(x)[..., 0]
    yy, xx = np.mgrid[:32, :32] - 15.5
    near = np.hypot(yy, xx) <= radius
    bg = np.median(h.reshape(len(h), -1), axis=1)[:, None, None]
    w = np.clip(h - bg, 0, None) * near
    s = w.sum((1, 2)) + 1e-6
    my, mx = (w * yy).sum((1, 2)) / s, (w * xx).sum((1, 2)) / s
    cyy = (w * (yy - my[:, None, None]) ** 2).sum((1, 2)) / s
    cxx = (w * (xx - mx[:, None, None]) ** 2).sum((1, 2)) / s
    cxy = (w * (yy - my[:, None, None]) * (xx - mx[:, None, None])).sum((1, 2)) / s
    tr, det = cyy + cxx, cyy * cxx - cxy ** 2
    disc = np.sqrt(np.clip(tr ** 2 / 4 - det, 0, None))
    l1, l2 = tr / 2 + disc, np.clip(tr / 2 - disc, 1e-3, None)
    return np.stack([np.log(s), np.log(l1 * l2) / 2, np.log(l1 / l2), (w.sum((1, 2)) / near.sum())], 1)


_R0 = R


def R(name):
    extra = []
    rest = []
    k, hops = 0, 1
    for p in name.split("+"):
        if p.startswith("rad"):  # rad32, rad64hed, rad96rgb @w
            import re
            m = re.match(r"rad(\d+|faded)(hed|rgb)?(?:@([\d.]+))?", p)
            side = m.group(1); side = side if side == "faded" else int(side)
            extra.append(block(radial(side, m.group(2) or "hed"), float(m.group(3) or 1)))
        elif p.startswith("mom"):
            wt = float(p.split("@")[1]) if "@" in p else 1.0
            src = p.split("@")[0][3:]
            extra.append(block(moments(side="faded" if src == "faded" else 32), wt))
        else:
            rest.append(p)
    nb = [p for p in rest if p.startswith("nb")]
    base = [p for p in rest if not p.startswith("nb")]
    blocks = extra + ([_R0("+".join(base))] if base else [])
    x = np.concatenate(blocks, 1)
    if nb:
        k = int(nb[0][2:].split("x")[0]); hops = int(nb[0].split("x")[1]) if "x" in nb[0] else 1
        for _ in range(hops):
            x = nbr(x, k)
    return x


if __name__ == "__main__":
    _main()
