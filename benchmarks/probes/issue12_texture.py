"""Probe (issue 12, step 6): whole-tile grey-level texture (LBP and GLCM) beside the bench's feature sets.

  PYTHONPATH=benchmarks/probes OMP_NUM_THREADS=2 .venv/bin/python benchmarks/probes/issue12_texture.py .cache/bench/image_classification_kather2016

Each kather2016 tile's grey image described by uniform local binary patterns (P, R = 8, 1 / 16, 2 / 24, 3;
histograms) and grey-level co-occurrence statistics (32 levels; distances 1, 2, 4, 8 px, four angles averaged:
contrast, dissimilarity, homogeneity, energy, correlation), the texture descriptors of Kather et al. (Sci. Rep.
2016) that these tiles were published with; 74 columns. Joined to each seed's image features of a `bench
image-classification` work directory and scored with the bench's linear SVM (C = 1) and folds; an RBF SVM with C
chosen by an inner 3-fold CV on seed 0. Labels only score.
"""
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from issue12_features import labels_of
from skimage.color import rgb2gray
from skimage.feature import graycomatrix, graycoprops, local_binary_pattern
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from cellgan.analysis.image_features import feature_columns
from cellgan.io.datasets import DATASETS, load_kather2016
from cellgan.io.images import read_rgb
from cellgan.segment import image_ids

DISTANCES = (1, 2, 4, 8)


def texture(rgb: np.ndarray) -> dict:
    grey = (rgb2gray(rgb) * 255).astype(np.uint8)
    out = {}
    for points, radius in ((8, 1), (16, 2), (24, 3)):
        codes = local_binary_pattern(grey, points, radius, "uniform").astype(int)
        histogram = np.bincount(codes.ravel(), minlength=points + 2) / codes.size
        out.update({f"lbp{points}_{radius}_{i}": v for i, v in enumerate(histogram)})
    angles = (0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
    matrix = graycomatrix(grey // 8, DISTANCES, angles, levels=32, symmetric=True, normed=True)
    for prop in ("contrast", "dissimilarity", "homogeneity", "energy", "correlation"):
        out.update({f"glcm_{prop}_{d}": v for d, v in zip(DISTANCES, graycoprops(matrix, prop).mean(1))})
    return out


work, root = Path(sys.argv[1]), Path("../shared/data")
records = load_kather2016(root / DATASETS["kather2016"].folder)
ids = image_ids([r.path for r in records])
start = time.time()
tex = pd.DataFrame.from_dict({ids[r.path]: texture(read_rgb(r.path)) for r in records}, orient="index")
print(f"texture of {len(tex)} tiles, {tex.shape[1]} columns, {time.time() - start:.1f} s", flush=True)
labels = labels_of(root)
folds = StratifiedKFold(5, shuffle=True, random_state=0)


def linear():
    return make_pipeline(StandardScaler(), LinearSVC(C=1.0, random_state=0, max_iter=20_000))


def rbf():
    return make_pipeline(StandardScaler(), GridSearchCV(SVC(), {"C": [1, 10, 100]}, cv=3))


for seed in range(3):
    feats = pd.read_parquet(work / f"composition_seed{seed}" / "image_features.parquet")
    images = feats["image"].astype(str)
    y = labels.loc[images].to_numpy()
    t = tex.loc[images].to_numpy(float)
    block = {s: feats[feature_columns(feats, s)].to_numpy(float) for s in ("colour_statistics", "cells", "all")}
    sets = {"texture": t, "colour": block["colour_statistics"], "colour + texture": np.hstack([block["colour_statistics"], t]),
            "cells + texture": np.hstack([block["cells"], t]), "all": block["all"], "all + texture": np.hstack([block["all"], t])}
    for name, x in sets.items():
        x = np.nan_to_num(x)
        a = cross_val_score(linear(), x, y, cv=folds)
        b = f"  RBF SVM {cross_val_score(rbf(), x, y, cv=folds).mean():.3f}" if seed == 0 else ""
        print(f"seed {seed} {name}: linear SVM {a.mean():.3f} ± {a.std():.3f}{b}", flush=True)
