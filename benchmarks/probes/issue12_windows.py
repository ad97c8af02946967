"""Probe (issue 12): the critic's trunk read over a grid of windows of each tile, as a tissue texture.

  PYTHONPATH=benchmarks/probes nice .venv/bin/python benchmarks/probes/issue12_windows.py .cache/bench/image_classification_kather2016

The cell features only see the tissue where a nucleus is. Here every tile is cut into
32-px windows (the default recipe's 16 µm context at 0.495 µm/px) every 8 px, Reinhard-normalised
to the reference the bench's cell store was made with, and each window goes through the trained critic of each seed as a cell
patch would: ``raw`` as it is, ``nuclei`` with the pixels outside the tile's segmented nuclei faded
as the patches are (weight 0.35). The mean and spread of the trunk's pooled features over a tile's
windows are its texture block, scored with the bench's linear SVM and folds alone and joined to the
bench's `cells`, `colour_statistics` and `all` columns. Labels only score.
"""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from cellgan.analysis.assign import assign_cells
from cellgan.analysis.image_features import feature_columns
from cellgan.io.cellstore import CellStore
from cellgan.io.datasets import DATASETS, load_kather2016
from cellgan.io.images import read_rgb
from cellgan.model.trainer import load_trained
from cellgan.segment import image_ids
from cellgan.segment.image import reinhard_target
from cellgan.segment.stain import reinhard_normalise

WINDOW, STRIDE, FADE = 32, 8, 0.35
work = Path(sys.argv[1])
records = load_kather2016(Path("../shared/data") / DATASETS["kather2016"].folder)
ids = image_ids([r.path for r in records])
labels = pd.Series({ids[r.path]: r.image_label for r in records})
store = next(work.glob("cells_*"))
cells = CellStore.open(store)
target = reinhard_target(cells.read_identity(cells.image_ids()[0])["options"]["reinhard_reference"])  # the bench's

windows = {"raw": [], "nuclei": []}
owner = []
for record in records:
    image = ids[record.path]
    rgb = reinhard_normalise(read_rgb(record.path), target=target).astype(np.float32)
    nuclei = tifffile.imread(store / "masks" / f"{image}.tif") > 0
    height, width = nuclei.shape
    for y in range(0, height - WINDOW + 1, STRIDE):
        for x in range(0, width - WINDOW + 1, STRIDE):
            crop, inside = rgb[y : y + WINDOW, x : x + WINDOW], nuclei[y : y + WINDOW, x : x + WINDOW, None]
            windows["raw"].append(crop)
            windows["nuclei"].append(np.where(inside, crop, 255 - FADE * (255 - crop)))
            owner.append(image)
windows = {k: np.rint(np.stack(v)).astype(np.uint8) for k, v in windows.items()}
owner = np.asarray(owner)
folds = StratifiedKFold(5, shuffle=True, random_state=0)


def score(x, y):
    svm = make_pipeline(StandardScaler(), LinearSVC(C=1.0, random_state=0, max_iter=20_000))
    return cross_val_score(svm, x, y, cv=folds).mean()


for seed_dir in sorted(work.glob("model_seed*")):
    seed = seed_dir.name.removeprefix("model_seed")
    model = load_trained(seed_dir, device="cpu")
    feats = pd.read_parquet(work / f"composition_seed{seed}" / "image_features.parquet")
    y = labels.loc[feats["image"]].to_numpy()
    cells = feats[feature_columns(feats, "cells")].to_numpy(np.float64)
    colour = feats[feature_columns(feats, "colour_statistics")].to_numpy(np.float64)
    for name, patches in windows.items():
        places = np.zeros((len(patches), model.critic.place_features), np.float32)
        _, pooled = assign_cells(model, patches, places=places, batch_size=1024)
        grouped = pd.DataFrame(pooled).groupby(owner)
        texture = np.hstack([grouped.mean().reindex(feats["image"]), grouped.std().reindex(feats["image"])])
        print(
            f"seed {seed} {name:6s} texture {score(texture, y):.3f}  cells+texture {score(np.hstack([cells, texture]), y):.3f}"
            f"  colour+texture {score(np.hstack([colour, texture]), y):.3f}"
            f"  all+texture {score(np.hstack([cells, colour, texture]), y):.3f}",
            flush=True,
        )
