"""``cellgan bench composition``: per-image cell-type composition on CRCHistoPhenotypes.

The run's stages run as a user would run them (:mod:`cellgan.pipeline`), with no
label anywhere: the nuclei of each image are segmented
(:func:`~cellgan.pipeline.segment_stage`, with the 0.5 µm/px that ``cellgan bench
segmentation`` assumes for these 20x images), the GAN is trained on their patches
(:func:`~cellgan.pipeline.train_stage`), each nucleus gets the category argmax Q
(:func:`~cellgan.pipeline.assign_stage`), and each image its composition
(:func:`cellgan.analysis.composition.composition`).
Masked patches and the default recipe, unless a run configuration's ``segment``
and ``train`` sections (``--config``) say otherwise.

Only the scoring sees the labels: every labelled nucleus centre is matched
one-to-one to a detected nucleus within 6 px (the dataset's radius,
Sirinukunwattana et al., IEEE TMI 2016); categories are mapped to cell types by
a Hungarian matching on those pairs; and for each image the proportions of the
types among its matched detected cells are compared with the true proportions of
its labelled cells (``composition_mae``, ``composition_pearson``). The image
label "dominant true cell type" is then predicted from the image's composition
(the paper's image feature) by a cross-validated linear SVM and by k-means
(Hu et al., Sec. III-D).
"""

from __future__ import annotations

import datetime as _dt
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cellgan.bench._common import digest, machine_info
from cellgan.fields import as_dict

__all__ = [
    "category_class_mapping",
    "composition_scores",
    "image_classification_scores",
    "run_composition_benchmark",
]

#: Match radius between labelled and detected nucleus centres, in pixels.
MATCH_RADIUS = 6.0


def category_class_mapping(category, cell_type, *, categories: int, classes) -> dict[int, str | None]:
    """Map categories to classes one-to-one, maximising the cells that agree (Hungarian).

    Parameters
    ----------
    category : array-like of int, shape (n,)
        Category of each labelled-and-matched cell.
    cell_type : array-like of str, shape (n,)
        Its true class.
    categories : int
        K.
    classes : sequence of str
        The classes, in reporting order.

    Returns
    -------
    dict
        category -> class, or None for a category left without a class (when
        K exceeds the number of classes, or no cell falls in it).
    """
    from scipy.optimize import linear_sum_assignment

    classes = list(classes)
    index = {c: j for j, c in enumerate(classes)}
    counts = np.zeros((categories, len(classes)), dtype=np.int64)
    np.add.at(counts, (np.asarray(category, dtype=np.int64), [index[t] for t in cell_type]), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    mapping: dict[int, str | None] = {k: None for k in range(categories)}
    mapping.update({int(r): classes[c] for r, c in zip(rows, cols) if counts[r].sum() > 0})
    return mapping


def composition_scores(assignments: pd.DataFrame, records, *, categories: int, radius: float = MATCH_RADIUS) -> dict:
    """Score the per-image composition of the detected cells against the labelled cells.

    Parameters
    ----------
    assignments : DataFrame
        The ASSIGNMENTS table of the detected nuclei (``image``, ``category``,
        ``centroid_x``, ``centroid_y``).
    records : sequence
        One per image, with ``image_id``, ``labelled_centres`` ((m, 2) xy) and
        ``cell_labels`` ((m,) str), as from
        :func:`cellgan.io.datasets.load_crchistophenotypes`.
    categories : int
        K.
    radius : float
        Match radius in pixels.

    Returns
    -------
    dict
        ``classes``, ``mapping`` (category -> class), ``labelled_cells``,
        ``matched_cells``, ``composition_mae`` (mean over images and classes of
        the absolute difference between the predicted and true proportions),
        ``composition_pearson`` (over the same pairs; None when either side is
        constant), ``reference_mae_constant`` (the MAE of predicting every
        image to have the mean true composition of the scored images: what an
        uninformative composition scores; it peeks at the labels, so it is a
        reference, not a method), ``scored_images`` and ``per_image`` rows (true
        and predicted proportions, dominant true type).
    """
    from cellgan.metrics.detection import match_points

    classes = sorted({str(t) for r in records for t in r.cell_labels})
    if not classes:
        raise ValueError("no labelled cells in the records")
    by_image = {str(image): cells for image, cells in assignments.groupby("image", sort=False)}
    pairs = []  # per record: (categories of matched detections, their true types)
    for record in records:
        cells = by_image.get(str(record.image_id))
        labelled = np.asarray(record.labelled_centres, dtype=np.float64).reshape(-1, 2)
        if cells is None or len(labelled) == 0:
            pairs.append((np.zeros(0, np.int64), np.zeros(0, object)))
            continue
        detected = cells[["centroid_x", "centroid_y"]].to_numpy(dtype=np.float64)
        det_index, lab_index = match_points(detected, labelled, radius)
        matched_categories = cells["category"].to_numpy(dtype=np.int64)[det_index]
        pairs.append((matched_categories, np.asarray(record.cell_labels, dtype=object)[lab_index]))
    all_categories = np.concatenate([p[0] for p in pairs])
    all_types = np.concatenate([p[1] for p in pairs]).astype(str)
    if len(all_categories) == 0:
        raise ValueError(f"no labelled nucleus lies within {radius} px of a detected one")
    mapping = category_class_mapping(all_categories, all_types, categories=categories, classes=classes)
    mapped = np.array([mapping[k] if mapping[k] is not None else "" for k in range(categories)], dtype=object)
    rows, pred, true = [], [], []
    for record, (matched_categories, _) in zip(records, pairs):
        true_counts = np.array([np.sum(np.asarray(record.cell_labels) == c) for c in classes], dtype=np.float64)
        row = {
            "image": str(record.image_id),
            "labelled": int(true_counts.sum()),
            "matched": int(len(matched_categories)),
        }
        if true_counts.sum() > 0:
            true_props = true_counts / true_counts.sum()
            row["true_proportions"] = dict(zip(classes, np.round(true_props, 6).tolist()))
            row["dominant_type"] = classes[int(np.argmax(true_counts))]
        if len(matched_categories) > 0 and true_counts.sum() > 0:
            types = mapped[matched_categories]
            pred_props = np.array([np.mean(types == c) for c in classes])
            row["predicted_proportions"] = dict(zip(classes, np.round(pred_props, 6).tolist()))
            pred.append(pred_props)
            true.append(true_props)
        rows.append(row)
    pred, true = np.array(pred), np.array(true)
    defined = pred.size > 1 and pred.std() > 0 and true.std() > 0
    pearson = float(np.corrcoef(pred.ravel(), true.ravel())[0, 1]) if defined else None
    return {
        "classes": classes,
        "mapping": {str(k): v for k, v in mapping.items()},
        "labelled_cells": int(sum(r["labelled"] for r in rows)),
        "matched_cells": int(len(all_categories)),
        "mapped_agreement": float(np.mean(mapped[all_categories] == all_types)),
        "composition_mae": float(np.mean(np.abs(pred - true))),
        "composition_pearson": pearson,
        "reference_mae_constant": float(np.mean(np.abs(true - true.mean(axis=0)))),
        "scored_images": int(len(pred)),
        "per_image": rows,
    }


def image_classification_scores(comp: pd.DataFrame, dominant: pd.Series, *, folds: int, seed: int) -> dict:
    """Predict each image's dominant true type from its composition: SVM CV and k-means.

    Images whose dominant type is dominant in fewer than ``folds`` images cannot
    be stratified over the folds; they are left out of the SVM (and listed).
    k-means uses as many clusters as there are dominant types (at least 2).
    """
    from cellgan.analysis.composition import proportion_columns
    from cellgan.analysis.image_classification import (
        ImageClassificationError,
        cluster_images,
        cross_validate,
        score_clusters,
    )

    comp = comp[comp["image"].isin(dominant.index)].reset_index(drop=True)
    labels = dominant.loc[comp["image"]].to_numpy().astype(str)
    props = comp[proportion_columns(comp)].to_numpy(dtype=np.float64)
    counts = pd.Series(labels).value_counts()
    result: dict = {"images": int(len(comp)), "type_counts": {str(k): int(v) for k, v in counts.items()}}
    n_clusters = max(len(counts), 2)
    try:
        clusters, _ = cluster_images(props, n_clusters=n_clusters, seed=seed)
        result["kmeans"] = {"n_clusters": n_clusters, **score_clusters(clusters, labels)}
    except ImageClassificationError as err:
        result["kmeans"] = {"error": str(err)}
    keep = np.isin(labels, counts[counts >= folds].index)
    result["svm_left_out_images"] = comp.loc[~keep, "image"].tolist()
    try:
        svm = cross_validate(props[keep], labels[keep], model="linear_svm", folds=folds, seed=seed)
        result["svm"] = {k: svm[k] for k in ("mean", "std", "class_counts")} | {"folds": folds}
    except ImageClassificationError as err:
        result["svm"] = {"error": f"{err} (types with fewer than {folds} images are left out)"}
    return result


def run_composition_benchmark(
    data_root: Path,
    *,
    minutes: float | None = 30.0,
    iterations: int | None = None,
    seed: int = 0,
    seeds: int = 1,
    jobs: int = 1,
    limit_images: int | None = None,
    categories: int = 4,
    width: int | None = None,
    folds: int = 4,
    device: str = "cpu",
    work_dir: Path | None = None,
    train_options: dict | None = None,
    segment_options: dict | None = None,
) -> dict:
    """Segment, train, assign and compose on CRCHistoPhenotypes; score the compositions.

    Parameters
    ----------
    data_root : Path
        The folder holding ``crchistophenotypes/``.
    minutes, iterations
        Training budget of each seed (:class:`cellgan.model.TrainConfig`).
    seed : int
        The first seed of the training and of the image-level k-means and folds.
    seeds : int
        How many GANs to train (seeds ``seed`` .. ``seed + seeds - 1``), on the same cells.
    jobs : int
        Seeds trained at the same time, each in its own process with an equal share
        of the free CPU threads (each keeps its full ``minutes``).
    limit_images : int, optional
        Use only the first N images (train split first), for quick runs.
    categories : int
        K.
    width : int, optional
        Network width; the training default when None.
    folds : int
        Cross-validation folds of the image-level SVM.
    device : str
        Torch device for training and assignment.
    work_dir : Path, optional
        Keeps the cell store (re-used by later runs with the same segmentation
        settings: segmented images are skipped), the models and the assignments; a
        temporary folder when None.
    train_options, segment_options : dict, optional
        Further :class:`cellgan.model.TrainConfig` and
        :class:`cellgan.segment.SegmentConfig` fields (a run configuration's
        ``train`` and ``segment`` sections); the arguments above win. Patches
        are masked and the pixel size 0.5 µm unless ``segment_options`` say
        otherwise.

    Returns
    -------
    dict
        ``composition_mae``, ``composition_pearson`` and ``mapped_agreement``: the
        mean over the seeds, with their spread in ``over_seeds``; the first seed's
        ``category_to_type``, ``cells_per_category``, ``image_classification`` (SVM CV
        and k-means for the dominant true type) and ``per_image`` rows; every seed's
        own under ``per_seed``; timings, the configuration, the machine and the date.
    """
    from cellgan.bench.segmentation import ASSUMED_MPP
    from cellgan.io.cellstore import CellStore
    from cellgan.io.datasets import DATASETS, load_crchistophenotypes
    from cellgan.io.files import safe_image_id
    from cellgan.model import TrainConfig
    from cellgan.pipeline import segment_stage
    from cellgan.segment import SegmentConfig
    from cellgan.segment.reference import resolve_reference

    if seeds < 1 or jobs < 1:
        raise ValueError(f"seeds and jobs must be at least 1, got {seeds} and {jobs}")
    records = load_crchistophenotypes(Path(data_root) / DATASETS["crchistophenotypes"].folder)
    if limit_images is not None:
        records = records[:limit_images]
    with tempfile.TemporaryDirectory(prefix="cellgan-bench-composition-") as tmp:
        work = Path(work_dir) if work_dir is not None else Path(tmp)
        timings = {}
        start = time.perf_counter()
        options = {"mpp": ASSUMED_MPP["crchistophenotypes"], "patch_mode": "masked", **(segment_options or {})}
        paths = [r.path for r in records]
        options["reinhard_reference"] = resolve_reference(options.get("reinhard_reference"), paths)
        segment_config = SegmentConfig(**options)
        store_dir = work / f"cells_{digest(as_dict(segment_config))}"
        failed = segment_stage(paths, store_dir, segment_config, progress=False)["failed"]
        timings["segment_seconds"] = time.perf_counter() - start
        store = CellStore.open(store_dir)
        ids = {safe_image_id(r.path.stem): r for r in records}
        records = [r for image_id, r in ids.items() if store.has_image(image_id)]
        if not records:
            raise ValueError(f"segmentation failed on every image: {failed}")

        train_kwargs = {"categories": categories, "minutes": minutes, "iterations": iterations}
        if width is not None:
            train_kwargs["width"] = width
        configs = [
            TrainConfig.from_dict({**(train_options or {}), **train_kwargs, "seed": s}, source="training options")
            for s in range(seed, seed + seeds)
        ]
        runs = _train_and_score(
            configs, store_dir, work, records, categories=categories, folds=folds, device=device, jobs=jobs
        )

    first = runs[0]
    summary = {m: [run[m] for run in runs] for m in ("composition_mae", "composition_pearson", "mapped_agreement")}
    return {
        "benchmark": "composition",
        "dataset": "crchistophenotypes",
        "images": len(records),
        "segmentation_failed": failed,
        "detected_cells": first["detected_cells"],
        "seeds": [c.seed for c in configs],
        **{m: _mean(values) for m, values in summary.items()},
        "over_seeds": {m: {"mean": _mean(v), "std": _std(v), "per_seed": v} for m, v in summary.items()},
        "reference_mae_constant": first["reference_mae_constant"],
        "labelled_cells": first["labelled_cells"],
        "matched_cells": first["matched_cells"],
        "matched_share": first["matched_cells"] / max(first["labelled_cells"], 1),
        "cells_per_category": first["cells_per_category"],
        "category_to_type": first["category_to_type"],
        "image_classification": first["image_classification"],
        "per_image": first["per_image"],
        "per_seed": runs,
        "timings": {"segment_seconds": round(timings["segment_seconds"], 2), **first["timings"]},
        "config": {
            "segment": as_dict(segment_config),
            "train": configs[0].to_dict() | {"seed": [c.seed for c in configs]},
            "match_radius_px": MATCH_RADIUS,
            "folds": folds,
            "limit_images": limit_images,
            "device": device,
            "jobs": min(jobs, seeds),
        },
        "machine": machine_info(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _train_and_score(configs, store_dir: Path, work: Path, records, *, categories: int, folds: int, device, jobs: int):
    """Train each config's GAN afresh (``jobs`` at a time), assign the cells and score each seed's compositions."""
    import torch

    from cellgan.analysis.composition import composition, read_assignments
    from cellgan.bench._common import threads_per_job, train_fresh
    from cellgan.model.trainer import LOG_NAME
    from cellgan.pipeline import assign_stage

    jobs = min(jobs, len(configs))
    model_dirs = [work / f"model_seed{c.seed}" for c in configs]
    threads = threads_per_job(jobs) if jobs > 1 else torch.get_num_threads()
    train_seconds = train_fresh(store_dir, model_dirs, configs, device=device, jobs=jobs, threads=threads)
    runs = []
    for config, model_dir, seconds in zip(configs, model_dirs, train_seconds):
        start = time.perf_counter()
        assign_dir = work / f"assignments_seed{config.seed}"
        assign_stage(model_dir, store_dir, assign_dir, device=device)
        table, _ = read_assignments(assign_dir)
        assign_seconds = time.perf_counter() - start
        comp = composition(table, categories=categories)
        scores = composition_scores(table, records, categories=categories)
        dominant = pd.Series(
            {row["image"]: row["dominant_type"] for row in scores["per_image"] if "dominant_type" in row}, dtype=object
        )
        n_cells = comp.set_index("image")["n_cells"]
        for row in scores["per_image"]:
            row["detected"] = int(n_cells.get(row["image"], 0))
        runs.append(
            {
                "seed": config.seed,
                "detected_cells": int(len(table)),
                "cells_per_category": np.bincount(table["category"], minlength=categories).tolist(),
                "composition_mae": scores["composition_mae"],
                "composition_pearson": scores["composition_pearson"],
                "reference_mae_constant": scores["reference_mae_constant"],
                "labelled_cells": scores["labelled_cells"],
                "matched_cells": scores["matched_cells"],
                "mapped_agreement": scores["mapped_agreement"],
                "category_to_type": scores["mapping"],
                "image_classification": image_classification_scores(comp, dominant, folds=folds, seed=config.seed),
                "per_image": scores["per_image"],
                "timings": {
                    "train_seconds": round(seconds, 2),
                    "generator_iterations": int(pd.read_csv(model_dir / LOG_NAME)["step"].max()),
                    "assign_seconds": round(assign_seconds, 2),
                },
            }
        )
    return runs


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _std(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.std(values)) if values else None
