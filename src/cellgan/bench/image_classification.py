"""``cellgan bench image-classification``: tissue classes of whole images from their cells (kather2016).

The 800 tiles of Kather et al. (Sci. Rep. 2016; 8 tissue classes, 100 each) run
through the stages a user runs (:mod:`cellgan.pipeline`), with no label anywhere:
segmentation (tiles of blank glass or without a nucleus become images without
cells), the GAN trained on every tile's nuclei, argmax Q per nucleus, and each
tile's named image features (:mod:`cellgan.analysis.image_features`). Only the
scoring sees the tissue labels: a linear SVM and a logistic regression per
feature set, scored by stratified k-fold cross-validation on held-out tiles
(:func:`cellgan.analysis.image_classification.cross_validate`), and a k-means of
the tiles with k = the number of classes.

Feature sets: ``all`` (cells and colour), ``cells`` (every cell feature, the GAN
categories' included), ``composition`` (the paper's proportions alone), and two
baselines that need no GAN: ``segmentation_only`` (the same cell features without
categories) and ``colour_statistics`` (the whole-tile colour statistics of the
data's README, 0.856 ± 0.010 with a linear SVM). The folds are the same for every
set and seed (fold seed 0), so that the sets differ only by their features; each
set's ``accuracy`` and ``weighted_f1`` are the linear SVM's, as ``{"mean", "std"}``
over folds and GAN seeds.
"""

from __future__ import annotations

import datetime as _dt
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cellgan.bench._common import digest, machine_info, threads_per_job, train_fresh
from cellgan.fields import as_dict

__all__ = ["GAN_SETS", "run_image_classification_benchmark", "summarise"]

#: Feature sets that depend on the GAN (scored once per seed); the others once.
GAN_SETS = ("all", "cells", "composition")

#: Feature sets that need only the segmentation.
SEGMENTATION_SETS = ("segmentation_only", "colour_statistics")

#: The seed of the folds: the same split for every feature set and GAN seed.
FOLD_SEED = 0


def score_feature_set(features: pd.DataFrame, labels: pd.Series, feature_set: str, *, folds: int) -> dict:
    """Both classifiers' cross-validated scores of one feature set (each fold's, and the confusion)."""
    from cellgan.analysis.image_classification import CLASSIFIERS, cross_validate
    from cellgan.analysis.image_features import feature_columns

    columns = feature_columns(features, feature_set)
    values = features[columns].to_numpy(dtype=np.float64)
    y = labels.loc[features["image"]].to_numpy()
    out = {"features": len(columns)}
    for model in CLASSIFIERS:
        result = cross_validate(values, y, model=model, folds=folds, seed=FOLD_SEED, feature_names=columns)
        out[model] = {
            "fold_accuracy": [f["accuracy"] for f in result["folds"]],
            "fold_weighted_f1": [f["f1_weighted"] for f in result["folds"]],
            "classes": result["classes"],
            "confusion": result["confusion"],
            "top_weights": _top_weights(result["weights"]),
        }
    return out


def kmeans_scores(features: pd.DataFrame, labels: pd.Series, feature_set: str, *, seed: int) -> dict:
    """k-means of the standardised features of ``feature_set``, k = the number of classes: accuracy, NMI."""
    from cellgan.analysis.image_classification import classify_images

    result = classify_images(features, feature_set=feature_set, labels=labels, folds=2, seed=seed)
    scores = result["kmeans"]["scores"]
    return {"n_clusters": result["kmeans"]["n_clusters"], "accuracy": scores["acc"], "nmi": scores["nmi"]}


def summarise(runs: list[dict], model: str = "linear_svm") -> dict:
    """``accuracy`` and ``weighted_f1`` of ``model`` as mean and std over every fold of every run."""
    out = {}
    for key, name in (("fold_accuracy", "accuracy"), ("fold_weighted_f1", "weighted_f1")):
        values = np.concatenate([r[model][key] for r in runs])
        out[name] = {"mean": float(values.mean()), "std": float(values.std())}
    return out


def _top_weights(weights: dict, n: int = 5) -> dict:
    """The ``n`` features of largest absolute weight of each class."""
    return {cls: dict(sorted(w.items(), key=lambda item: -abs(item[1]))[:n]) for cls, w in weights.items()}


def run_image_classification_benchmark(
    data_root: Path,
    *,
    seeds: int = 3,
    iterations: int | None = 400,
    minutes: float | None = None,
    categories: int = 4,
    folds: int = 5,
    limit_per_class: int | None = None,
    jobs: int = 1,
    device: str = "cpu",
    work_dir: Path | None = None,
    train_options: dict | None = None,
    segment_options: dict | None = None,
    log=print,
) -> dict:
    """Segment, train (per seed), assign and compose the kather2016 tiles; score image classes.

    Parameters
    ----------
    data_root : Path
        The folder holding ``kather2016/``.
    seeds : int
        GAN seeds 0..seeds-1.
    iterations, minutes
        Training length per seed (:class:`cellgan.model.TrainConfig`).
    categories : int
        K. The default 4 is the recipe's (the four nucleus types of colorectal
        H&E of Sirinukunwattana et al., IEEE TMI 2016), chosen without these labels.
    folds : int
        Stratified cross-validation folds.
    limit_per_class : int, optional
        Use only the first N tiles of each class, for quick runs.
    jobs : int
        Seeds trained at the same time, one process each (one CPU thread each).
    device : str
        Torch device of training and assignment.
    work_dir : Path, optional
        Keeps the cell store (re-used when the segmentation settings are the same),
        the models, assignments and compositions; a temporary folder when None.
    train_options, segment_options : dict, optional
        A run configuration's ``train`` and ``segment`` sections (the recipe's
        and ``--config``'s); the pixel size is the dataset's (0.495 µm).
    log : callable
        Receives a line per step.

    Returns
    -------
    dict
        ``all``, ``cells``, ``composition``, ``segmentation_only``,
        ``colour_statistics`` (each ``accuracy`` and ``weighted_f1`` as mean and
        std over folds and seeds, the logistic regression's beside them, and per
        seed the folds, confusion matrices and the largest weights), ``kmeans``
        (of the ``all`` features, and of the colour statistics: ``accuracy`` and
        ``nmi`` over seeds), the images without cells per class, timings, the
        configuration, the machine and the date.
    """

    from cellgan.analysis.composition import compose
    from cellgan.io.cellstore import CellStore
    from cellgan.io.datasets import DATASETS, KATHER2016_MPP, load_kather2016
    from cellgan.model import TrainConfig
    from cellgan.pipeline import assign_stage, segment_stage
    from cellgan.segment import SegmentConfig, image_ids
    from cellgan.segment.reference import resolve_reference

    records = load_kather2016(Path(data_root) / DATASETS["kather2016"].folder)
    if limit_per_class is not None:
        records = [
            r
            for r in records
            if sum(o.image_label == r.image_label for o in records[: records.index(r)]) < limit_per_class
        ]
    paths = [r.path for r in records]
    ids = image_ids(paths)
    labels = pd.Series({ids[r.path]: r.image_label for r in records})
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="cellgan-bench-images-") as tmp:
        work = Path(work_dir) if work_dir is not None else Path(tmp)
        options = {**(segment_options or {}), "mpp": KATHER2016_MPP}
        options["reinhard_reference"] = resolve_reference(options.get("reinhard_reference"), paths)
        segment_config = SegmentConfig(**options)
        store_dir = work / f"cells_{digest(as_dict(segment_config))}"
        start = time.perf_counter()
        segmented = segment_stage(paths, store_dir, segment_config, progress=False)
        timings["segment_seconds"] = time.perf_counter() - start
        store = CellStore.open(store_dir)
        labels = labels.loc[store.image_ids()]
        n_cells = len(store)
        log(f"segmented {len(labels)} tiles, {n_cells} cells, {len(segmented['failed'])} failed")
        baselines: dict[str, dict] = {}
        per_seed: dict[str, list] = {name: [] for name in GAN_SETS}
        kmeans: dict[str, list] = {"all": [], "colour_statistics": []}
        configs = [
            TrainConfig.from_dict(
                {
                    **(train_options or {}),
                    "categories": categories,
                    "iterations": iterations,
                    "minutes": minutes,
                    "seed": seed,
                },
                source="training options",
            )
            for seed in range(seeds)
        ]
        train_config = configs[0]
        model_dirs = [work / f"model_seed{seed}" for seed in range(seeds)]
        jobs = min(jobs, seeds)
        trained = train_fresh(store_dir, model_dirs, configs, device=device, jobs=jobs, threads=threads_per_job(jobs))
        for seed, seconds in enumerate(trained):
            timings[f"train_seconds_seed{seed}"] = seconds
            log(f"seed {seed}: trained in {seconds / 60:.1f} min")
        for seed, model_dir in enumerate(model_dirs):
            assign_dir, comp_dir = (work / f"{name}_seed{seed}" for name in ("assignments", "composition"))
            assign_stage(model_dir, store_dir, assign_dir, device=device)
            _, features = compose(assign_dir, comp_dir, cells_dir=store_dir)
            for name in GAN_SETS:
                per_seed[name].append(score_feature_set(features, labels, name, folds=folds))
            if not baselines:  # the same for every seed: the segmentation's features and the colour
                empty = labels.loc[features.loc[features["n_cells"] == 0, "image"]]
                for name in SEGMENTATION_SETS:
                    baselines[name] = score_feature_set(features, labels, name, folds=folds)
                kmeans["colour_statistics"].append(kmeans_scores(features, labels, "colour_statistics", seed=0))
            kmeans["all"].append(kmeans_scores(features, labels, "all", seed=seed))
            log(
                f"seed {seed}: all {summarise([per_seed['all'][-1]])['accuracy']['mean']:.3f}, "
                f"cells {summarise([per_seed['cells'][-1]])['accuracy']['mean']:.3f}"
            )
    result: dict = {"benchmark": "image_classification", "dataset": "kather2016", "images": int(len(labels))}
    for name, runs in per_seed.items():
        result[name] = {
            **summarise(runs),
            "logistic_regression": summarise(runs, "logistic_regression"),
            "features": runs[0]["features"],
            "per_seed": runs,
        }
    for name, run in baselines.items():
        result[name] = {
            **summarise([run]),
            "logistic_regression": summarise([run], "logistic_regression"),
            "features": run["features"],
            "run": run,
        }
    result["kmeans"] = {
        name: {
            "n_clusters": runs[0]["n_clusters"],
            "accuracy": {
                "mean": float(np.mean([r["accuracy"] for r in runs])),
                "std": float(np.std([r["accuracy"] for r in runs])),
            },
            "nmi": {"mean": float(np.mean([r["nmi"] for r in runs])), "std": float(np.std([r["nmi"] for r in runs]))},
        }
        for name, runs in kmeans.items()
    }
    result["kmeans"].update({k: result["kmeans"]["all"][k] for k in ("accuracy", "nmi", "n_clusters")})
    result.update(
        {
            "images_without_cells": {str(k): int(v) for k, v in empty.value_counts().sort_index().items()},
            "segmentation_failed": segmented["failed"],
            "detected_cells": int(n_cells),
            "timings": {k: round(v, 1) for k, v in timings.items()},
            "config": {
                "segment": as_dict(segment_config),
                "train": train_config.to_dict(),
                "jobs": min(jobs, seeds),
                "seeds": seeds,
                "folds": folds,
                "fold_seed": FOLD_SEED,
                "limit_per_class": limit_per_class,
                "device": device,
            },
            "machine": machine_info(device),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
    )
    return result
