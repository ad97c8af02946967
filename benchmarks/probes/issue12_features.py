"""Probe (issue 12): which cell-derived image features classify the kather2016 tiles.

Reads a work directory of ``cellgan bench image-classification`` (its cell store,
``assignments_seed*`` and ``composition_seed*``) and scores, with the bench's
linear SVM and folds, the feature sets it makes today beside candidate blocks:
quantiles of the cells' morphology and stain per tile, and the per-tile mean and
spread of the features Q reads (``features.npy``), alone and with the colour
statistics. Labels only score.

    .venv/bin/python benchmarks/probes/issue12_features.py .cache/k12probe [words]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from cellgan.analysis.image_classification import cross_validate
from cellgan.analysis.image_features import feature_columns
from cellgan.io.cellstore import CellStore
from cellgan.io.datasets import DATASETS, load_kather2016
from cellgan.segment import image_ids

QUANTILES = (0.1, 0.5, 0.9)
MEASURES = ("area_um2", "eccentricity", "solidity", "mean_haematoxylin", "mean_eosin")


def labels_of(data_root: Path) -> pd.Series:
    records = load_kather2016(data_root / DATASETS["kather2016"].folder)
    ids = image_ids([r.path for r in records])
    return pd.Series({ids[r.path]: r.image_label for r in records})


def quantile_block(table: pd.DataFrame, images: pd.Index) -> pd.DataFrame:
    grouped = table.groupby(table["image"].astype(str))
    parts = {f"q{int(q * 100)}_{m}": grouped[m].quantile(q) for q in QUANTILES for m in MEASURES}
    return pd.DataFrame(parts).reindex(images).fillna(0.0)


def learned_block(table: pd.DataFrame, features: np.ndarray, images: pd.Index, *, spread: bool) -> pd.DataFrame:
    frame = pd.DataFrame(features, columns=[f"learned_{j}" for j in range(features.shape[1])])
    frame["image"] = table["image"].astype(str).to_numpy()
    grouped = frame.groupby("image")
    out = grouped.mean()
    if spread:
        out = out.join(grouped.std(ddof=0).add_suffix("_std"))
    return out.reindex(images).fillna(0.0)


def score(name: str, values: pd.DataFrame, y: np.ndarray, results: dict) -> None:
    accs = []
    for model in ("linear_svm", "logistic_regression"):
        result = cross_validate(values.to_numpy(np.float64), y, model=model, folds=5, seed=0)
        accs.append((result["mean"]["accuracy"], result["std"]["accuracy"]))
    results[name] = {"columns": values.shape[1], "svm": accs[0], "logistic": accs[1]}
    print(f"{name:42s} {values.shape[1]:4d}  svm {accs[0][0]:.3f}±{accs[0][1]:.3f}  lr {accs[1][0]:.3f}±{accs[1][1]:.3f}")


def seed_inputs(work: Path, comp_dir: Path, labels: pd.Series):
    """One seed's tiles, their labels, the bench's feature sets without ``learned_*``, and its assigned cells."""
    seed = comp_dir.name.removeprefix("composition_seed")
    feats = pd.read_parquet(comp_dir / "image_features.parquet").set_index("image")
    feats = feats[[c for c in feats.columns if not str(c).startswith("learned_")]]
    feats.index = feats.index.astype(str)
    sets = ("segmentation_only", "cells", "colour_statistics", "all")
    base = {s: feats[feature_columns(feats.reset_index(), s)] for s in sets}
    assign_dir = work / f"assignments_seed{seed}"
    assigned = pd.read_parquet(assign_dir / "assignments.parquet")
    return seed, feats.index, labels.loc[feats.index].to_numpy(), base, assigned, np.load(assign_dir / "features.npy")


def main(work: Path, data_root: Path = Path("../shared/data")) -> None:
    labels = labels_of(data_root)
    store = CellStore.open(next(work.glob("cells_*")))
    table = store.read_table()
    results: dict = {}
    for comp_dir in sorted(work.glob("composition_seed*")):
        seed, images, y, base, assigned, learned = seed_inputs(work, comp_dir, labels)
        quant = quantile_block(table, images)
        mean_only = learned_block(assigned, learned, images, spread=False)
        with_spread = learned_block(assigned, learned, images, spread=True)
        print(f"seed {seed}: {len(images)} tiles, learned width {learned.shape[1]}")
        candidates = {
            "segmentation_only": base["segmentation_only"],
            "cells": base["cells"],
            "colour_statistics": base["colour_statistics"],
            "all": base["all"],
            "segmentation+quantiles": base["segmentation_only"].join(quant),
            "learned mean": mean_only,
            "learned mean+std": with_spread,
            "cells+learned mean": base["cells"].join(mean_only),
            "cells+quantiles+learned mean": base["cells"].join(quant).join(mean_only),
            "cells+learned mean+std": base["cells"].join(with_spread),
            "all+learned mean": base["all"].join(mean_only),
            "all+quantiles+learned mean": base["all"].join(quant).join(mean_only),
            "all+learned mean+std": base["all"].join(with_spread),
        }
        for name, values in candidates.items():
            score(f"s{seed} {name}", values, y, results)
    Path("/tmp/issue12_features.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__" and len(sys.argv) == 2:
    main(Path(sys.argv[1]))


def words_block(table: pd.DataFrame, features: np.ndarray, images: pd.Index, *, words: int, seed: int = 0) -> pd.DataFrame:
    """Each tile's share of its cells in each of ``words`` k-means clusters of the cells' features (no label)."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.preprocessing import StandardScaler

    scaled = StandardScaler().fit_transform(features)
    word = MiniBatchKMeans(words, random_state=seed, n_init=3, batch_size=4096).fit_predict(scaled)
    frame = pd.crosstab(table["image"].astype(str).to_numpy(), word, normalize="index")
    frame.columns = [f"word_{w}" for w in frame.columns]
    return frame.reindex(images).fillna(0.0)


def main_words(work: Path, data_root: Path = Path("../shared/data")) -> None:
    labels = labels_of(data_root)
    results: dict = {}
    for comp_dir in sorted(work.glob("composition_seed*")):
        seed, images, y, base, assigned, learned = seed_inputs(work, comp_dir, labels)
        spread = learned_block(assigned, learned, images, spread=True)
        for words in (8, 16, 32, 64):
            bag = words_block(assigned, learned, images, words=words)
            score(f"s{seed} words{words}", bag, y, results)
            score(f"s{seed} cells+mean+std+words{words}", base["cells"].join(spread).join(bag), y, results)
            score(f"s{seed} all+mean+std+words{words}", base["all"].join(spread).join(bag), y, results)


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[2] == "words":
    main_words(Path(sys.argv[1]))
