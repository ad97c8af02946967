"""Issue 11, step 4: the library's self-labels (what the trainer computes) scored on the cached store.

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes/issue11_teacher_scores.py OUT.json

Reads .cache/issue11/ (issue11_windows.py); for each teacher below and seeds 0..2, runs
cellgan.model.self_labels.neighbourhood_clusters exactly as cellgan.model.train does (8
neighbours) and scores it against the labels (labels only score). Writes per-seed and mean ± sd
acc / ARI / NMI, cluster sizes and the label-free seed agreement (mean pairwise ARI).
"""
import json
import sys
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from cellgan.metrics.clustering import adjusted_rand, clustering_scores
from cellgan.model.self_labels import neighbourhood_clusters

C = Path(".cache/issue11")
TEACHERS = {
    "pixels+moments+crowding (default now)": {"moments_weight": 0.5, "crowding_weight": 0.2},
    "pixels+moments (default before)": {"moments_weight": 0.5},
    "pixels": {},
}


def main(out):
    patches = np.load(C / "patches_faded.npy")
    table = pd.read_parquet(C / "table.parquet")
    labels = table["label"].astype(str).to_numpy()
    cells = table.drop(columns=["label"])
    result = {"dataset": "crchistophenotypes", "cells": len(table), "neighbours": 8,
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "teachers": {}}
    for name, weights in TEACHERS.items():
        runs = [neighbourhood_clusters(patches, cells, clusters=4, neighbours=8, seed=s, **weights) for s in range(3)]
        seeds = [{k: float(v) for k, v in clustering_scores(r, labels).items() if k in ("acc", "ari", "nmi")}
                 | {"sizes": np.bincount(r, minlength=4).tolist()} for r in runs]
        summary = {k: {"mean": float(np.mean([s[k] for s in seeds])), "std": float(np.std([s[k] for s in seeds]))}
                   for k in ("acc", "ari", "nmi")}
        agree = float(np.mean([adjusted_rand(a, b) for a, b in combinations(runs, 2)]))
        result["teachers"][name] = {"weights": weights, "seeds": seeds, **summary, "seed_agreement_ari": agree}
        print(name, {k: round(v["mean"], 3) for k, v in summary.items()}, "agree", round(agree, 2), flush=True)
        Path(out).write_text(json.dumps(result, indent=1) + "\n")  # after each teacher: a stopped run keeps what it did


if __name__ == "__main__":
    main(sys.argv[1])
