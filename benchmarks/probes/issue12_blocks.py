"""Probe (issue 12): does weighing the cells block and the colour block equally help `all`?

  PYTHONPATH=benchmarks/probes nice .venv/bin/python benchmarks/probes/issue12_blocks.py .cache/bench/image_classification_kather2016

For each GAN seed of a `bench image-classification` work directory: the bench's linear SVM (C = 1)
and folds on `all` with every column standardised (the bench), then with each block's standardised
columns divided by the square root of the block's width (cells 107, colour 36), so that each block
has the same total variance and the L2 penalty no longer favours the wider one. Labels only score.
"""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import LinearSVC

from cellgan.analysis.image_features import feature_columns
from issue12_features import labels_of

work = Path(sys.argv[1])
labels = labels_of(Path("../shared/data"))


def cv(x, y, weights, C=1.0):
    accs = []
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(x, y):
        model = make_pipeline(StandardScaler(), FunctionTransformer(lambda z: z * weights),
                              LinearSVC(C=C, random_state=0, max_iter=20000))
        accs.append((model.fit(x[train], y[train]).predict(x[test]) == y[test]).mean())
    return np.mean(accs), np.std(accs)


for comp in sorted(work.glob("composition_seed*")):
    feats = pd.read_parquet(comp / "image_features.parquet")
    y = labels.loc[feats["image"].astype(str)].to_numpy()
    cells, colour = feature_columns(feats, "cells"), feature_columns(feats, "colour_statistics")
    x = feats[cells + colour].to_numpy(np.float64)
    equal = np.ones(x.shape[1])
    blocks = np.r_[np.full(len(cells), 1 / np.sqrt(len(cells))), np.full(len(colour), 1 / np.sqrt(len(colour)))]
    for name, w in (("standardised", equal), ("blocks equal", blocks)):
        for C in (0.1, 1.0):
            m, s = cv(x, y, w, C)
            print(f"{comp.name} {name:13s} C={C:<4} {m:.3f} ± {s:.3f}", flush=True)
