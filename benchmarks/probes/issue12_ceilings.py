"""Probe (issue 12): how far other classifiers take the bench's own feature sets (a ceiling, not a recipe).

  PYTHONPATH=benchmarks/probes nice .venv/bin/python benchmarks/probes/issue12_ceilings.py .cache/bench/image_classification_kather2016

Seed 0's image features of a `bench image-classification` work directory, the bench's folds: the
bench's linear SVM (C = 1), a logistic regression and an RBF SVM whose C is chosen by an inner
3-fold CV on the training folds, and a random forest of 500 trees. Labels only score.
"""
import sys
from pathlib import Path

import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from cellgan.analysis.image_features import feature_columns
from issue12_features import labels_of

work = Path(sys.argv[1])
labels = labels_of(Path("../shared/data"))
feats = pd.read_parquet(work / "composition_seed0" / "image_features.parquet")
y = labels.loc[feats["image"].astype(str)].to_numpy()
folds = StratifiedKFold(5, shuffle=True, random_state=0)
models = {
    "linear SVM C=1": make_pipeline(StandardScaler(), LinearSVC(C=1.0, random_state=0, max_iter=20_000)),
    "logistic, C by CV": make_pipeline(
        StandardScaler(), GridSearchCV(LogisticRegression(max_iter=5_000), {"C": [0.01, 0.1, 1, 10]}, cv=3)
    ),
    "RBF SVM, C by CV": make_pipeline(StandardScaler(), GridSearchCV(SVC(), {"C": [1, 10, 100]}, cv=3)),
    "random forest": RandomForestClassifier(500, random_state=0, n_jobs=2),
}
for feature_set in ("colour_statistics", "segmentation_only", "cells", "all"):
    x = feats[feature_columns(feats, feature_set)].to_numpy(float)
    scores = {name: cross_val_score(model, x, y, cv=folds).mean() for name, model in models.items()}
    print(feature_set, "  ".join(f"{name} {value:.3f}" for name, value in scores.items()), flush=True)
