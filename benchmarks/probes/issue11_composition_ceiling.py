"""Issue 11: how low the composition bench's MAE can go from what the nuclei carry, even with their labels.

  OMP_NUM_THREADS=2 PYTHONPATH=benchmarks/probes .venv/bin/python benchmarks/probes/issue11_composition_ceiling.py [SEED]

Reads the composition bench's last run as it left it in ``.cache/bench/composition_crchistophenotypes`` (the
default recipe's 29,107 detected nuclei, each seed's ASSIGNMENTS table and Q's pooled features), matches the
labelled centres to the detections as the bench does, and scores the bench's MAE for:

- the oracle: each matched detection given its own true type (what the matching alone costs);
- supervised classifiers trained on the labels (5 folds grouped by image, so each image's cells are predicted by
  a model that never saw that image): logistic regression and gradient-boosted trees on Q's features, on the
  table's shape and stain columns, and on both, each read alone or averaged over the cell and its 8 nearest as
  the assign stage reads Q;
- the true types with a share of the cells given another type at random (which accuracy the target asks for);
- a small CNN (the critic's trunk, width 32 as the default recipe's, and a linear layer; 15 epochs) trained on
  the labelled patches with flips and turns, each fold's cells predicted by a network that never saw their
  image; read alone or its probabilities averaged over the cell and its 8 nearest;
- the label-free default itself (its categories mapped by the bench's Hungarian rule).

The supervised rows use labels to train, so they are ceilings for what these features carry, not methods.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from _issue11 import detected_nuclei

from cellgan.bench.composition import MATCH_RADIUS, composition_scores
from cellgan.io.datasets import load_crchistophenotypes
from cellgan.metrics.detection import match_points
from cellgan.neighbourhood import nearest_cells, neighbourhood_average

BENCH = Path(".cache/bench/composition_crchistophenotypes")
TABLE_COLUMNS = ["area_um2", "perimeter_px", "eccentricity", "solidity", "mean_haematoxylin", "mean_eosin"]


def matched_types(table: pd.DataFrame, records) -> np.ndarray:
    """The true type of each detection matched to a labelled centre within the bench's radius, '' elsewhere."""
    types = np.full(len(table), "", dtype=object)
    by_image = table.groupby("image", sort=False).indices
    for record in records:
        rows = by_image.get(str(record.image_id))
        if rows is None or len(record.labelled_centres) == 0:
            continue
        xy = table[["centroid_x", "centroid_y"]].to_numpy()[rows]
        det, lab = match_points(xy, np.asarray(record.labelled_centres, float), MATCH_RADIUS)
        types[rows[det]] = np.asarray(record.cell_labels)[lab]
    return types


def scored(table: pd.DataFrame, category: np.ndarray, records, classes) -> dict:
    frame = table[["image", "centroid_x", "centroid_y"]].copy()
    frame["category"] = category
    s = composition_scores(frame, records, categories=len(classes))
    return {k: s[k] for k in ("composition_mae", "composition_pearson", "mapped_agreement", "reference_mae_constant")}


def cross_validated(model, x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Out-of-fold class indices for the labelled rows (5 folds grouped by image)."""
    pred = np.empty(len(y), dtype=np.int64)
    for train, test in GroupKFold(n_splits=5).split(x, y, groups):
        pred[test] = model().fit(x[train], y[train]).predict(x[test])
    return pred


def cnn_probabilities(patches: np.ndarray, y: np.ndarray, groups: np.ndarray, *, epochs: int = 15) -> np.ndarray:
    """Out-of-fold class probabilities of a CNN trained on the labelled patches (5 folds grouped by image)."""
    import torch
    from torch import nn

    from cellgan.model.critic import CriticTrunk
    from cellgan.model.data import N_DIHEDRAL, dihedral, patches_to_tensor

    torch.manual_seed(0)
    x = patches_to_tensor(patches)
    out = np.zeros((len(y), int(y.max()) + 1), dtype=np.float64)
    for fold, (train, test) in enumerate(GroupKFold(n_splits=5).split(x, y, groups)):
        net = nn.Sequential(CriticTrunk(32), nn.Linear(32, out.shape[1]))
        optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
        target = torch.as_tensor(y)
        for _ in range(epochs):
            for batch in torch.randperm(len(train)).split(128):
                rows = torch.as_tensor(train)[batch]
                views = dihedral(x[rows], torch.randint(0, N_DIHEDRAL, (len(rows),)))
                loss = nn.functional.cross_entropy(net(views), target[rows])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        with torch.no_grad():
            out[test] = torch.softmax(net(x[torch.as_tensor(test)]), 1).numpy()
        print(f"CNN fold {fold}: accuracy {np.mean(out[test].argmax(1) == y[test]):.3f}", flush=True)
    return out


def main(seed: int) -> None:
    table = pd.read_parquet(BENCH / f"assignments_seed{seed}" / "assignments.parquet")
    features = np.load(BENCH / f"assignments_seed{seed}" / "features.npy").astype(np.float64)
    records = load_crchistophenotypes("../shared/data/crchistophenotypes")
    classes = sorted({str(t) for r in records for t in r.cell_labels})
    types = matched_types(table, records)
    labelled = types != ""
    y = np.array([classes.index(t) if t else -1 for t in types])
    groups = table["image"].to_numpy()
    near = nearest_cells(table, 8)  # each cell's 8 nearest in its image, as the assign stage reads Q
    described = {
        "Q's features": features,
        "table columns": table[TABLE_COLUMNS].to_numpy(np.float64),
    }
    described["both"] = np.hstack(list(described.values()))
    for name in list(described):
        described[name + ", over 8 nearest"] = neighbourhood_average(described[name], near)
    models = {
        "logistic regression": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0)),
        "gradient-boosted trees": lambda: HistGradientBoostingClassifier(max_iter=200, random_state=0),
    }
    rows = []
    category = y.copy()
    category[~labelled] = 0  # unmatched detections do not enter the bench's proportions
    rows.append({"classifier": "oracle (true type of each matched detection)", "accuracy": 1.0,
                 **scored(table, category, records, classes)})
    rows.append({"classifier": "label-free default (Q over 8 nearest)", "features": "-",
                 "accuracy": None, **scored(table, table["category"].to_numpy(), records, classes)})
    rng = np.random.default_rng(seed)
    for keep in (0.9, 0.8, 0.7, 0.6):
        # each matched cell keeps its true type with probability `keep`, else takes one of the other three
        wrong = (y + rng.integers(1, len(classes), size=len(y))) % len(classes)
        category = np.where(rng.random(len(y)) < keep, y, wrong)
        category[~labelled] = 0
        rows.append({"classifier": f"true type kept with probability {keep}, else another at random",
                     "accuracy": float(np.mean(category[labelled] == y[labelled])),
                     **scored(table, category, records, classes)})
    for fname, x in described.items():
        for mname, model in models.items():
            pred = cross_validated(model, x[labelled], y[labelled], groups[labelled])
            category = np.zeros(len(table), dtype=np.int64)
            category[labelled] = pred
            row = {"classifier": mname, "features": fname, "accuracy": float(np.mean(pred == y[labelled])),
                   **scored(table, category, records, classes)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    store_table, patches, _ = detected_nuclei()
    centres = ["centroid_x", "centroid_y"]
    assert (store_table[centres].to_numpy() == table[centres].to_numpy()).all(), "the store and the table differ"
    probabilities = cnn_probabilities(patches[labelled], y[labelled], groups[labelled])
    full = np.zeros((len(table), probabilities.shape[1]))
    full[labelled] = probabilities
    for fname, p in (("patches", full), ("patches, probabilities over 8 nearest", neighbourhood_average(full, near))):
        category = p.argmax(1)
        row = {"classifier": "CNN", "features": fname, "accuracy": float(np.mean(category[labelled] == y[labelled])),
               **scored(table, category, records, classes)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\nseed {seed}: {int(labelled.sum())} matched detections of {len(table)}\n")
    print("| classifier | features | accuracy (5 folds by image) | composition MAE | Pearson |")
    print("|---|---|---|---|---|")
    for r in rows:
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        print(f"| {r['classifier']} | {r.get('features', '-')} | {acc} | {r['composition_mae']:.3f} | "
              f"{r['composition_pearson']:.3f} |")
    print(f"\nmean composition: {rows[0]['reference_mae_constant']:.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
