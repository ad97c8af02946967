"""``cellgan bench clustering``: how well the GAN's categories find cell types.

On a dataset with cell types (crchistophenotypes: 22,444 of its 29,756 nuclei typed
as epithelial / fibroblast / inflammatory / others; consep: 28,546 typed as other /
inflammatory / epithelial / spindle, the held-out set on which a recipe chosen on
crchistophenotypes is confirmed once), one patch (masked, as the paper, unless the
segment options ask for another ``patch_mode``) is cut at every annotated nucleus
centre with :func:`cellgan.segment.cells_at_points`, so that the score measures the
representation and not the detection. The cells are *every* annotated nucleus, typed
or not (:func:`every_nucleus`), as a user's cells are every nucleus: a recipe that
looks at a cell's neighbours must not see only the nuclei an annotator chose to type
(on crchistophenotypes that choice alone raised the default recipe's self-labels from
0.576 to 0.646 accuracy; benchmarks/README.md, issue 11 step 27). Only the typed cells
are scored. The pixel size is the one the dataset states
(consep: 0.25 µm), else the one the benchmarks assume
(:data:`cellgan.bench.segmentation.ASSUMED_MPP`). Then, for each seed, without labels:

- ``gan``: the InfoGAN-style WGAN-GP is trained with K = 4 on every cell and each
  cell gets argmax Q (Hu et al., JBHI 2019), read over its neighbourhood when the
  recipe's Q was taught by neighbourhood self-labels
  (:func:`cellgan.analysis.assign.reading_neighbours`; each seed's ``own_q`` then
  scores the cells' own argmax);
- ``kmeans_pixels``: k-means (k = K) on the PCA-50 of the patches' pixels;
- ``kmeans_features``: k-means on the cell table's standardised shape and stain
  features (:data:`cellgan.analysis.baselines.SHAPE_STAIN_COLUMNS`);
- ``kmeans_colour``: k-means on the RGB mean and spread of the 8 µm square at each
  centre of the image as read (:func:`cellgan.analysis.baselines.centre_colour`);
- ``kmeans_neighbourhood``: k-means on the PCA-50 pixels, joined by the nucleus
  moments and the crowding of the recipe's ``self_label_moments`` and
  ``self_label_crowding``, averaged over each cell and its ``self_label_neighbours``
  nearest cells:
  the self-labels that teach Q when ``lambda_self_label`` > 0,
  scored on their own so that the GAN can be compared with its teacher.

Each clustering is scored against the labels (Hungarian accuracy, ARI, NMI, AMI
and the paper's purity, entropy and F-score), and each method's representation
(the critic trunk's features, the PCA-50 pixels, the standardised table features)
by a linear probe cross-validated by image. The JSON holds the mean and the
(population) standard deviation over the seeds and every seed's values, with the
GAN's mean top probability, training time, iterations and throughput (real patches
through the critic per second of training), the configuration, the machine and
the date.

On bm_graz (Hu et al.'s own images, one dot per cell and no published type) only
the unsupervised figures are reported: cells per category, the share of the
largest category, the number of categories used and the agreement between seeds
(ARI of each pair of seeds' clusterings, also reported with cell types).

Intermediate files live in a work directory: the cell store (built once per
dataset, image subset and segmentation setting, reused by every seed), each seed's
model directory and assignments (an interrupted run resumes training), and a
gallery PNG per method and seed, each category's most typical real cells.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path

import numpy as np

from cellgan.bench._common import digest, machine_info, threads_per_job
from cellgan.errors import CellganError

__all__ = [
    "CLUSTERING_DATASETS",
    "METHODS",
    "BenchmarkError",
    "build_point_store",
    "dataset_images",
    "every_nucleus",
    "run_clustering_benchmark",
]

#: Datasets with one annotated centre per cell; those whose
#: :attr:`~cellgan.io.datasets.DatasetSpec.cell_types` are not empty are scored against them.
CLUSTERING_DATASETS = ("crchistophenotypes", "consep", "bm_graz")

#: Clustering methods, in reporting order.
METHODS = ("gan", "kmeans_pixels", "kmeans_features", "kmeans_colour", "kmeans_neighbourhood")

_SCORE_SUMMARY = ("acc", "ari", "nmi", "ami", "purity", "entropy", "f_score", "linear_probe_acc")
_UNSUPERVISED_KEYS = ("categories_used", "largest_category_share")
_GAN_KEYS = ("mean_max_probability", "train_seconds", "generator_iterations", "critic_images_per_second")


class BenchmarkError(CellganError, ValueError):
    """Benchmark options or data that cannot be used."""


def run_clustering_benchmark(
    dataset: str,
    data_root,
    *,
    work_dir,
    minutes: float | None = 30.0,
    iterations: int | None = None,
    seeds: int = 3,
    width: int | None = None,
    categories: int = 4,
    limit_images: int | None = None,
    train_options: dict | None = None,
    segment_options: dict | None = None,
    device="auto",
    jobs: int = 1,
    progress: bool = False,
) -> dict:
    """Train, assign and score the GAN and the two baselines over several seeds.

    Parameters
    ----------
    dataset : {"crchistophenotypes", "consep", "bm_graz"}
    data_root : path
        The folder holding the datasets' folders.
    work_dir : path
        Where the cell store, the models, the assignments and the galleries go.
    minutes, iterations : float or int, optional
        Training budget of each seed (whichever ends first; at least one).
    seeds : int
        Seeds 0..seeds-1, each a GAN run and a run of each baseline.
    width : int, optional
        Width of both networks; None takes it from ``train_options``, else the
        :class:`~cellgan.model.TrainConfig` default.
    categories : int
        K, for the GAN and the k of both k-means.
    limit_images : int, optional
        Use only the dataset's first ``limit_images`` images.
    train_options : dict, optional
        Further :class:`cellgan.model.TrainConfig` fields (the arguments above win).
    segment_options : dict, optional
        :class:`cellgan.segment.SegmentConfig` fields; ``patch_mode`` defaults to masked.
    device : str or torch.device
    jobs : int
        Seeds trained at the same time, each in its own process with an equal share
        of the free CPU threads; every seed keeps its full ``minutes`` of wall time,
        so with ``jobs`` > 1 on a CPU each gets less computation than alone.
    progress : bool
        Show the training progress bar.

    Returns
    -------
    dict
        For each of :data:`METHODS`: ``{"mean", "std", "seed_agreement_ari",
        "per_seed"}``; and ``dataset``, ``cells``, ``config``, ``machine``,
        ``date``, ``work_dir``. See the module docstring.
    """
    from cellgan.device import resolve_device
    from cellgan.metrics.clustering import clustering_scores
    from cellgan.model import TrainConfig

    if dataset not in CLUSTERING_DATASETS:
        raise BenchmarkError(f"unknown dataset {dataset!r}; choose from {', '.join(CLUSTERING_DATASETS)}")
    if seeds < 1:
        raise BenchmarkError(f"seeds must be at least 1, got {seeds}")
    if jobs < 1:
        raise BenchmarkError(f"jobs must be at least 1, got {jobs}")
    device = resolve_device(device, set_threads=False)
    work_dir = Path(work_dir)
    images = dataset_images(dataset, data_root, limit_images)
    segment_config = _segment_config(dataset, segment_options or {}, images)
    store, skipped = build_point_store(dataset, images, work_dir, config=segment_config)
    table = store.read_table()
    patches = store.read_patches()
    colours = _centre_colours(images, table)
    labels = _labels(table) if _has_cell_types(dataset) else None
    typed = None if labels is None else labels != ""  # the cells scored
    groups = table["image"].astype(str).to_numpy()
    options = {**(train_options or {}), "categories": categories}
    if width is not None:
        options["width"] = width
    options.update(minutes=minutes, iterations=iterations)

    configs = [TrainConfig.from_dict({**options, "seed": s}, source="benchmark training options") for s in range(seeds)]
    if jobs > 1 and seeds > 1:
        _train_in_parallel(store, configs, work_dir, jobs=min(jobs, seeds), device=device)
    runs = {method: [] for method in METHODS}
    clusterings = {method: [] for method in METHODS}
    for seed, config in enumerate(configs):
        row, clusters = _run_gan(
            store, patches, table, config, work_dir, labels=labels, typed=typed, device=device, progress=progress
        )
        runs["gan"].append(row)
        clusterings["gan"].append(clusters)
        for method, result in _baselines(table, patches, colours, config, seed).items():
            row = {"seed": seed, **_unsupervised(result.clusters, categories)}
            if labels is not None:
                row.update(clustering_scores(result.clusters[typed], labels[typed]))
                row["linear_probe_acc"] = _probe_acc(result.embedding[typed], labels[typed], groups[typed], seed)
            row["gallery"] = _gallery(
                work_dir / "galleries" / f"{method}_seed{seed}.png",
                patches,
                result.clusters,
                result.score,
                labels,
                categories=categories,
                title=f"{method}, seed {seed}: most typical cells first",
            )
            runs[method].append(row)
            clusterings[method].append(result.clusters)
        _say(f"seed {seed}: " + "; ".join(f"{m} {_brief(runs[m][-1])}" for m in METHODS))

    keys = (_SCORE_SUMMARY if labels is not None else ()) + _UNSUPERVISED_KEYS
    class_sizes = None
    if labels is not None:
        class_sizes = {str(c): int(n) for c, n in zip(*np.unique(labels[typed], return_counts=True))}
    out = {
        "benchmark": "clustering",
        "dataset": dataset,
        "cells": {
            "images": len(np.unique(groups)),
            "cells": len(table),
            "typed_cells": None if typed is None else int(typed.sum()),
            "class_sizes": class_sizes,
            "store": str(store.root),
            "skipped_images": skipped,
        },
    }
    for method in METHODS:
        method_keys = keys + (_GAN_KEYS if method == "gan" else ())
        out[method] = {
            "mean": {k: _over_seeds(runs[method], k, np.mean) for k in method_keys},
            "std": {k: _over_seeds(runs[method], k, np.std) for k in method_keys},
            "seed_agreement_ari": _agreement(clusterings[method]),
            "per_seed": runs[method],
        }
    out.update(
        config={
            "seeds": seeds,
            "categories": categories,
            "limit_images": limit_images,
            "train": TrainConfig.from_dict({**options, "seed": 0}).to_dict() | {"seed": list(range(seeds))},
            "segment": dataclasses.asdict(segment_config),
            "device": str(device),
            "jobs": min(jobs, seeds),
        },
        machine=machine_info(device),
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        work_dir=str(work_dir),
    )
    return out


def dataset_images(dataset: str, data_root, limit_images: int | None = None) -> list:
    """The dataset's images (:data:`cellgan.io.datasets.DATASETS` loaders), the first ``limit_images`` only if given."""
    from cellgan.io.datasets import DATASETS

    spec = DATASETS[dataset]
    images = spec.loader(Path(data_root) / spec.folder)
    if limit_images is not None:
        if limit_images < 1:
            raise BenchmarkError(f"limit_images must be at least 1, got {limit_images}")
        images = images[:limit_images]
    return images


def build_point_store(dataset: str, images: list, work_dir, *, config):
    """The cell store of one patch per annotated centre of ``images``, built once and reused.

    A dataset with cell types (crchistophenotypes, consep) contributes its labelled
    centres with their type as ``label``, bm_graz its dots without a label. The store
    lives in ``work_dir`` under a name that fixes the dataset, the images and the
    segmentation settings, so a later run with the same ones reuses it and an
    interrupted build goes on where it stopped.

    Returns
    -------
    store : CellStore
    skipped : list of dict
        ``{"image", "cells", "reason"}`` for each image the segmentation refused
        (e.g. too little tissue); its annotated cells are not in the store.
    """
    from cellgan.io.cellstore import CellStore
    from cellgan.segment import SegmentationError, cells_at_points

    key = digest(
        {
            "dataset": dataset,
            "images": [i.image_id for i in images],
            "segment": dataclasses.asdict(config),
            "cells": "every nucleus",
        }
    )
    store = CellStore.create(Path(work_dir) / f"cells_{dataset}_{key}", patch_mode=config.patch_mode)
    skipped = []
    for image in images:
        if store.has_image(image.image_id):
            continue
        if _has_cell_types(dataset):
            xy, labels = every_nucleus(image.centres, image.labelled_centres, image.cell_labels)
        else:
            xy, labels = image.centres, None
        if len(xy) == 0:
            continue
        rgb = image.read_rgb()
        # A few crchistophenotypes centres lie up to 0.85 px outside the image: put them on its edge.
        xy = np.clip(xy, 0, [rgb.shape[1] - 1, rgb.shape[0] - 1])
        try:
            result = cells_at_points(rgb, xy, config, image_id=image.image_id, labels=labels)
        except SegmentationError as err:
            skipped.append({"image": image.image_id, "cells": len(xy), "reason": str(err)})
            _say(f"{image.path}: skipped, {err}")
            continue
        store.write_image(
            image.image_id, result.table, result.patches, label_mask=result.label_mask, overlay=result.overlay
        )
    if not store.image_ids():
        raise BenchmarkError(f"{dataset}: no annotated cell in the {len(images)} images")
    return store, skipped


def _run_gan(
    store, patches, table, config, work_dir: Path, *, labels, typed, device, progress: bool
) -> tuple[dict, np.ndarray]:
    """Train one seed (resuming its directory if there is one), assign every cell, score the typed ones."""
    import pandas as pd

    from cellgan.analysis.assign import evaluate_assignments
    from cellgan.metrics.clustering import clustering_scores
    from cellgan.pipeline import assign_stage

    model_dir = _model_dir(work_dir, store, config)
    result = _train_seed(patches, table, model_dir, config, device=device, progress=progress)
    assignments_dir = model_dir / "assignments"
    assign_stage(model_dir, store.root, assignments_dir, device=device)
    assignment = pd.read_parquet(assignments_dir / "assignments.parquet")
    clusters = assignment["category"].to_numpy(dtype=np.int64)
    probs = assignment[[f"prob_{k}" for k in range(config.categories)]].to_numpy()
    row = {
        "seed": config.seed,
        "train_seconds": result.elapsed_seconds,
        "generator_iterations": result.step,
        # real patches through the critic per second of training
        "critic_images_per_second": result.step * config.critic_steps * config.batch_size / result.elapsed_seconds,
        "stopped_by": result.stopped_by,
        **_unsupervised(clusters, config.categories),
        "mean_max_probability": float(probs.max(axis=1).mean()),
    }
    if labels is not None:
        evaluation = evaluate_assignments(assignments_dir, seed=config.seed)
        row.update(evaluation["scores"])
        row["linear_probe_acc"] = evaluation["linear_probe"].get("acc")  # None when it could not run
        row["linear_probe_majority_acc"] = evaluation["linear_probe"].get("majority_acc")
        if "own_category" in assignment.columns:  # read over neighbours: also score each cell's own argmax Q
            own = clustering_scores(assignment["own_category"].to_numpy(dtype=np.int64)[typed], labels[typed])
            row["own_q"] = {k: own[k] for k in ("acc", "ari", "nmi")}
    row["gallery"] = _gallery(
        work_dir / "galleries" / f"gan_seed{config.seed}.png",
        patches,
        clusters,
        probs[np.arange(len(clusters)), clusters],
        labels,
        categories=config.categories,
        title=f"gan, seed {config.seed}: argmax Q{_reading(assignments_dir)}, most confident cells first",
    )
    row["model_dir"] = str(model_dir)
    return row, clusters


def _reading(assignments_dir: Path) -> str:
    """" over N neighbours" when the assignments read Q over each cell's neighbourhood, else ""."""
    neighbours = json.loads((assignments_dir / "meta.json").read_text()).get("neighbours", 0)
    return f" over {neighbours} neighbours" if neighbours else ""


def _model_dir(work_dir: Path, store, config) -> Path:
    return Path(work_dir) / f"gan_{digest({'train': config.to_dict(), 'cells': store.root.name})}_seed{config.seed}"


def _train_seed(patches, table, model_dir: Path, config, *, device, progress: bool):
    """Train one seed on the cells (patches and table) in ``model_dir``, resuming the run there if there is one."""
    from cellgan.model import train
    from cellgan.pipeline import prepare_training

    resume = prepare_training(model_dir)
    _say(f"seed {config.seed}: training{' (resuming)' if resume else ''} in {model_dir}")
    return train(patches, model_dir, config, device=device, resume=resume, progress=progress, table=table)


def _train_in_parallel(store, configs, work_dir: Path, *, jobs: int, device) -> None:
    """Train every seed's GAN, ``jobs`` processes at a time (each resumes its directory).

    The workers share the free CPU threads; :func:`_run_gan` then finds every run
    finished and only assigns and scores.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = threads_per_job(jobs)
    _say(f"training {len(configs)} seeds, {jobs} at a time, {threads} thread(s) each")
    tasks = [(str(store.root), str(_model_dir(work_dir, store, c)), c.to_dict(), str(device), threads) for c in configs]
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for config, result in zip(configs, pool.map(_train_worker, tasks)):
            _say(f"seed {config.seed}: {result} generator iterations")


def _train_worker(task) -> int:
    """One seed's training in a worker process; returns its generator iterations."""
    import torch

    from cellgan.io.cellstore import CellStore
    from cellgan.model import TrainConfig

    store_root, model_dir, values, device, threads = task
    torch.set_num_threads(threads)
    store = CellStore.open(Path(store_root))
    patches, table, config = store.read_patches(), store.read_table(), TrainConfig.from_dict(values)
    return _train_seed(patches, table, Path(model_dir), config, device=device, progress=False).step


def _centre_colours(images: list, table) -> np.ndarray:
    """:func:`cellgan.analysis.baselines.centre_colour` of every cell of ``table``, in its order."""
    from cellgan.analysis.baselines import centre_colour, centre_side

    out = np.empty((len(table), 6), np.float64)
    ids = table["image"].astype(str).to_numpy()
    for image in images:
        rows = np.flatnonzero(ids == str(image.image_id))
        if len(rows):
            xy = table.iloc[rows][["centroid_x", "centroid_y"]].to_numpy(np.float64)
            side = centre_side(float(table["mpp"].iloc[rows[0]]))
            out[rows] = centre_colour(image.read_rgb(), xy, side=side)
    return out


def _baselines(table, patches, colours, config, seed: int) -> dict:
    """The k-means baselines with k = the GAN's K; the neighbourhood one is the recipe's self-labels exactly."""
    from cellgan.analysis.baselines import (
        kmeans_centre_colour,
        kmeans_neighbourhood_pixels,
        kmeans_pixels,
        kmeans_shape_stain,
    )

    k = config.categories
    teacher = kmeans_neighbourhood_pixels(
        patches,
        table,
        clusters=k,
        neighbours=config.self_label_neighbours,
        seed=seed,
        moments_weight=config.self_label_moments,
        crowding_weight=config.self_label_crowding,
    )
    return {
        "kmeans_pixels": kmeans_pixels(patches, clusters=k, seed=seed),
        "kmeans_features": kmeans_shape_stain(table, clusters=k, seed=seed),
        "kmeans_colour": kmeans_centre_colour(colours, clusters=k, seed=seed),
        "kmeans_neighbourhood": teacher,
    }


def _probe_acc(embedding, labels, groups, seed: int) -> float | None:
    """The linear probe's accuracy, or None when the cells come from a single image."""
    from cellgan.analysis.probe import ProbeError, linear_probe

    try:
        return linear_probe(embedding, labels, groups, seed=seed)["acc"]
    except ProbeError:
        return None


def _over_seeds(rows: list[dict], key: str, statistic) -> float | None:
    """``statistic`` of ``key`` over the seeds that have a value (None if none has)."""
    values = [row[key] for row in rows if row[key] is not None]
    return float(statistic(values)) if values else None


def _labels(table) -> np.ndarray:
    """The cells' types as strings, "" for a nucleus left untyped; at least one cell must be typed."""
    labels = table["label"].fillna("").astype(str).to_numpy()
    if not (labels != "").any():
        raise BenchmarkError("no cell of the store has a type")
    return labels


def every_nucleus(centres, labelled_centres, cell_labels, *, tolerance: float = 1.0) -> tuple[np.ndarray, list]:
    """Every annotated nucleus, each typed one with its type: the cells a clustering is run on.

    A dataset may type only some of its nuclei (crchistophenotypes: 22,444 of the
    29,756 centres of its detection files). The typed centres are matched one to one
    to the nearest detection centre within ``tolerance`` pixels (the same nucleus,
    its centre written twice); a typed centre without one is a nucleus of its own.

    Parameters
    ----------
    centres : array_like, shape (n, 2)
        Every nucleus centre (x, y).
    labelled_centres : array_like, shape (m, 2)
        The typed centres.
    cell_labels : sequence of str, length m
        Their types.

    Returns
    -------
    xy : ndarray, shape (n + unmatched, 2)
        ``centres``, then the typed centres that match none of them.
    labels : list
        Each cell's type, None for an untyped nucleus.

    Examples
    --------
    >>> xy, labels = every_nucleus([[0, 0], [10, 10]], [[10.4, 10], [30, 30]], ["a", "b"])
    >>> xy.tolist(), labels
    ([[0.0, 0.0], [10.0, 10.0], [30.0, 30.0]], [None, 'a', 'b'])
    """
    from cellgan.metrics.detection import match_points

    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    typed = np.asarray(labelled_centres, dtype=np.float64).reshape(-1, 2)
    types = [str(t) for t in cell_labels]
    if len(types) != len(typed):
        raise BenchmarkError(f"{len(typed)} typed centres but {len(types)} types")
    labels: list = [None] * len(centres)
    centre_index, typed_index = match_points(centres, typed, tolerance) if len(centres) and len(typed) else ([], [])
    for i, j in zip(centre_index, typed_index):
        labels[int(i)] = types[int(j)]
    extra = np.setdiff1d(np.arange(len(typed)), np.asarray(typed_index, dtype=np.int64))
    return np.concatenate([centres, typed[extra]]), labels + [types[j] for j in extra]


def _unsupervised(clusters: np.ndarray, categories: int) -> dict:
    counts = np.bincount(clusters, minlength=categories)
    return {
        "cells_per_category": counts.tolist(),
        "categories_used": int((counts > 0).sum()),
        "largest_category_share": float(counts.max() / counts.sum()),
    }


def _agreement(clusterings: list[np.ndarray]) -> float | None:
    """Mean ARI between the clusterings of every pair of seeds (None for one seed)."""
    from cellgan.metrics.clustering import adjusted_rand

    pairs = [adjusted_rand(a, b) for a, b in combinations(clusterings, 2)]
    return float(np.mean(pairs)) if pairs else None


def _gallery(path: Path, patches, clusters, score, labels, *, categories: int, title: str) -> str:
    """Write a gallery PNG; with labels, each row notes its majority class."""
    from cellgan.report.gallery import category_gallery, write_png

    notes = None
    if labels is not None:
        notes = []
        for k in range(categories):
            members = labels[(clusters == k) & (labels != "")]
            if len(members) == 0:
                notes.append("")
                continue
            names, counts = np.unique(members, return_counts=True)
            notes.append(f"{names[counts.argmax()]} {100 * counts.max() / len(members):.0f}%")
    image = category_gallery(patches, clusters, score, n_categories=categories, notes=notes, title=title)
    return str(write_png(path, image))


def _segment_config(dataset: str, options: dict, images: list):
    """The segmentation settings: the recipe's (``options``) over the dataset's pixel size (:func:`_pixel_size`).

    ``reinhard_reference: typical`` becomes the most typical of ``images``
    (:func:`cellgan.segment.reference.typical_image`).
    """
    from cellgan.segment import SegmentConfig
    from cellgan.segment.reference import resolve_reference

    values = {"mpp": _pixel_size(dataset, images), **options}
    values["reinhard_reference"] = resolve_reference(values.get("reinhard_reference"), [i.path for i in images])
    return SegmentConfig(**values)


def _pixel_size(dataset: str, images: list) -> float | None:
    """The microns per pixel the images state (consep), else the one assumed for the dataset, else None."""
    from cellgan.bench.segmentation import ASSUMED_MPP

    stated = next((image.mpp for image in images if image.mpp is not None), None)
    return stated if stated is not None else ASSUMED_MPP.get(dataset)


def _has_cell_types(dataset: str) -> bool:
    """Whether the dataset's spec names cell types (its labelled centres then carry them)."""
    from cellgan.io.datasets import DATASETS

    return bool(DATASETS[dataset].cell_types)


def _brief(row: dict) -> str:
    if "acc" in row:
        probe = "-" if row["linear_probe_acc"] is None else f"{row['linear_probe_acc']:.3f}"
        return f"acc {row['acc']:.3f} nmi {row['nmi']:.3f} probe {probe}"
    return "cells per category " + "/".join(str(n) for n in row["cells_per_category"])


def _say(message: str) -> None:
    print(f"[bench clustering] {message}", file=sys.stderr, flush=True)
