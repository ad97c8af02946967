"""Cell types from a trained model, and their scores against reference labels.

A cell's type is the argmax of Q(c | x) on its real patch (Hu et al., JBHI 2019,
Sec. III-C); the pooled features Q reads (the critic's trunk, or Q's own with
``separate_q``) are kept as its representation. A model taught by neighbourhood
self-labels (:mod:`cellgan.model.self_labels`) learnt to tell, from one cell's patch,
the kind of neighbourhood the cell lies in; its cells are then read the same way:
Q's probabilities averaged over the cell and its nearest cells in the image (the
teacher's neighbourhood, :func:`neighbourhood_probabilities`) before the argmax.
``neighbours=0`` keeps the paper's reading of each cell alone.
A model whose Q reads each cell's place (``TrainConfig.q_reads_place``) is given
it from the store's table, as in training (:func:`cell_places`).
:func:`write_assignments` turns a MODEL_DIR and a cell store into an ASSIGNMENTS
directory (see docs/ARCHITECTURE.md)::

    assignments.parquet   image, cell_id, category, prob_0..prob_{K-1}, the cell table's columns
    features.npy          float32 (n, W), row i <-> row i of the table
    meta.json             categories (K), width (W), cells per category, sources, and the
                          label-free diagnostics (:mod:`cellgan.analysis.diagnostics`)

(``gallery.png`` beside them is the report's: ``cellgan assign`` and the run's
assign stage draw it with :func:`cellgan.report.gallery.write_assignments_gallery`.)

:func:`evaluate_assignments` scores such a directory against labels, which are
used nowhere else: the clustering scores of :mod:`cellgan.metrics.clustering` and
a linear probe of the features (:func:`cellgan.analysis.probe.linear_probe`).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np
import pandas as pd

from cellgan.errors import CellganError
from cellgan.io.files import atomic_write, load_npy

__all__ = [
    "AssignmentError",
    "assign_cells",
    "assignments_table",
    "cell_places",
    "evaluate_assignments",
    "neighbourhood_probabilities",
    "reading_neighbours",
    "read_labels",
    "save_assignments",
    "write_assignments",
]

class AssignmentError(CellganError, ValueError):
    """Patches, labels or an ASSIGNMENTS directory that cannot be used."""


def assign_cells(
    model, patches_uint8, *, places=None, batch_size: int = 512, device="cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Q's category probabilities and the features Q reads for real patches.

    Parameters
    ----------
    model : Critic or TrainedModel
        The critic (``forward(x) -> CriticOutput``), or a trained model holding it
        as ``.critic``. It runs in eval mode without gradients; its mode is restored.
    patches_uint8 : array-like, shape (n, 32, 32, 3), uint8
        Real patches, scaled to [-1, 1] as in training (x / 127.5 - 1, Hu et al.;
        :func:`cellgan.model.data.patches_to_tensor`).
    places : array-like, shape (n, P), optional
        The cells' place descriptions (:func:`cell_places`), needed when the
        model's Q reads them (``TrainConfig.q_reads_place``).
    batch_size : int
        Patches per forward pass.
    device : str or torch.device
        Where to run: "cpu", "cuda", "cuda:N" or "auto".

    Returns
    -------
    probs : ndarray of float32, shape (n, K)
        Softmax of Q's logits; each row sums to 1.
    features : ndarray of float32, shape (n, W)
        The globally pooled features of the trunk Q reads (the critic's, or Q's
        own with ``separate_q``).
    """
    import torch

    from cellgan.device import resolve_device
    from cellgan.model.data import patches_to_tensor

    critic = getattr(model, "critic", model)
    patches = np.asarray(patches_uint8)
    if patches.dtype != np.uint8 or patches.ndim != 4 or patches.shape[3] != 3:
        raise AssignmentError(f"patches must be uint8 (n, h, w, 3), got {patches.dtype} {patches.shape}")
    if batch_size < 1:
        raise AssignmentError(f"batch_size must be at least 1, got {batch_size}")
    if critic.place_features:
        if places is None:
            raise AssignmentError(
                "this model's Q reads each cell's place: pass places=cell_places(model, patches, table)"
            )
        places = np.asarray(places, dtype=np.float32)
        if places.shape != (len(patches), critic.place_features):
            raise AssignmentError(f"places must be ({len(patches)}, {critic.place_features}), got {places.shape}")
    device = resolve_device(device, set_threads=False)
    was_training = critic.training
    critic.eval()
    probs, features = [], []
    try:
        with torch.no_grad():
            for start in range(0, len(patches), batch_size):
                batch = np.ascontiguousarray(patches[start : start + batch_size])
                place = None
                if critic.place_features:
                    place = torch.from_numpy(places[start : start + batch_size]).to(device)
                out = critic(patches_to_tensor(batch, device=device), place=place)
                probs.append(torch.softmax(out.q_logits.float(), dim=1).cpu().numpy())
                features.append(out.features.float().cpu().numpy())
    finally:
        critic.train(was_training)
    if not probs:
        return np.zeros((0, critic.categories), np.float32), np.zeros((0, critic.width), np.float32)
    return np.concatenate(probs), np.concatenate(features)


def cell_places(model, patches_uint8, table: pd.DataFrame) -> np.ndarray | None:
    """The place descriptions a trained model's Q reads for these cells, or None when it reads none.

    As in training (:func:`cellgan.neighbourhood.place_description` over the
    model's ``self_label_neighbours`` nearest cells), from this table's positions.
    """
    from cellgan.neighbourhood import place_description

    if not model.config.q_reads_place:
        return None
    if len(table) != len(patches_uint8):
        raise AssignmentError(f"the cell table has {len(table)} rows but there are {len(patches_uint8)} patches")
    return place_description(np.asarray(patches_uint8), table, neighbours=model.config.self_label_neighbours)


def reading_neighbours(config, neighbours: int | None = None) -> int:
    """How many nearest cells a model's Q is read over: ``neighbours`` when given, else the model's own.

    A model taught by neighbourhood self-labels (``lambda_self_label`` > 0) is read
    over the neighbourhood its teacher described (``self_label_neighbours``); any
    other model reads each cell alone, as Hu et al.
    """
    if neighbours is not None:
        if neighbours < 0:
            raise AssignmentError(f"neighbours must be at least 0, got {neighbours}")
        return int(neighbours)
    return int(config.self_label_neighbours) if config.lambda_self_label > 0 else 0


def neighbourhood_probabilities(table: pd.DataFrame, probs: np.ndarray, neighbours: int) -> np.ndarray:
    """Q's probabilities averaged over each cell and its ``neighbours`` nearest cells in its image (0: unchanged).

    The mean of the members' votes for the kind of neighbourhood they share
    (:func:`cellgan.neighbourhood.nearest_cells`); each row still sums to 1.
    """
    from cellgan.neighbourhood import nearest_cells, neighbourhood_average

    probs = np.asarray(probs)
    if neighbours == 0 or len(probs) == 0:
        return probs
    return neighbourhood_average(probs, nearest_cells(table, neighbours))


def assignments_table(table: pd.DataFrame, probs: np.ndarray, *, neighbours: int = 0) -> pd.DataFrame:
    """The ASSIGNMENTS table: ``image``, ``cell_id``, ``category``, ``prob_k``, then ``table``'s columns.

    ``category`` is the argmax of ``prob_k`` (Hu et al.: the cell type is argmax Q), where
    ``prob_k`` is Q's probabilities over the cell and its ``neighbours`` nearest cells
    (:func:`neighbourhood_probabilities`); with ``neighbours`` > 0 ``own_category``, the
    argmax of the cell's own Q, follows them.
    """
    probs = np.asarray(probs)
    if probs.ndim != 2 or len(probs) != len(table):
        raise AssignmentError(f"{len(table)} cells but probabilities of shape {probs.shape}")
    read = neighbourhood_probabilities(table, probs, neighbours)
    out = pd.DataFrame(
        {
            "image": table["image"].astype(str).to_numpy(),
            "cell_id": table["cell_id"].to_numpy(dtype=np.int64),
            "category": read.argmax(axis=1).astype(np.int64),
        }
    )
    for k in range(probs.shape[1]):
        out[f"prob_{k}"] = read[:, k].astype(np.float64)
    if neighbours:
        out["own_category"] = probs.argmax(axis=1).astype(np.int64)
    rest = table.drop(columns=["image", "cell_id"]).reset_index(drop=True)
    clash = [c for c in rest.columns if c in out.columns]
    if clash:
        raise AssignmentError(f"cell table columns {clash} clash with the assignment columns")
    return pd.concat([out, rest], axis=1)


def write_assignments(
    model_dir, cells, out_dir, *, device="cpu", batch_size: int = 512, neighbours: int | None = None
) -> dict:
    """Assign every cell of a store with a trained model and write an ASSIGNMENTS directory.

    Parameters
    ----------
    model_dir : path
        A MODEL_DIR written by :func:`cellgan.model.train`.
    cells : path
        A cell store (or the run directory above it).
    out_dir : path
        The ASSIGNMENTS directory to write (created if needed).
    device, batch_size
        As in :func:`assign_cells`.
    neighbours : int, optional
        Read Q over each cell and this many nearest cells; None: the model's own
        (:func:`reading_neighbours`).

    Returns
    -------
    dict
        The metadata written to ``meta.json``.
    """
    from cellgan.io.cellstore import CellStore
    from cellgan.model import load_trained

    store = CellStore.open(cells)
    table = store.read_table()
    if len(table) == 0:
        raise AssignmentError(f"{store.root}: the cell store holds no cells")
    patches = store.read_patches(mmap=True)
    model = load_trained(model_dir, device=device)
    places = cell_places(model, patches, table)
    probs, features = assign_cells(model, patches, places=places, batch_size=batch_size, device=device)
    sources = {
        "model_dir": str(Path(model_dir).resolve()),
        "cells": str(store.root.resolve()),
        "patch_mode": store.info.patch_mode,
    }
    neighbours = reading_neighbours(model.config, neighbours)
    return save_assignments(out_dir, table, probs, features, extra_meta=sources, neighbours=neighbours)


def save_assignments(out_dir, table: pd.DataFrame, probs, features, *, extra_meta=None, neighbours: int = 0) -> dict:
    """Write an ASSIGNMENTS directory from the cells' probabilities and features.

    Parameters
    ----------
    out_dir : path
        Directory to write (created if needed); each file is written atomically,
        ``assignments.parquet`` last (an older one is deleted first, so that a run killed
        half-way never leaves an old table beside new features).
    table : DataFrame
        The cell table (rows aligned with ``probs`` and ``features``).
    probs : ndarray, shape (n, K)
        Q's probabilities (:func:`assign_cells`).
    features : ndarray, shape (n, W)
        The trunk's features.
    extra_meta : dict, optional
        Added to ``meta.json`` (e.g. where the model and the cells came from).
    neighbours : int
        Nearest cells Q is read over (:func:`assignments_table`).

    Returns
    -------
    dict
        The metadata written to ``meta.json``.

    Raises
    ------
    AssignmentError
        A probability or feature is NaN or infinite (a model that diverged, or
        whose weights overflow on these cells); nothing is written.
    """
    from cellgan.analysis.diagnostics import diagnose

    features = np.asarray(features, dtype=np.float32)
    _refuse_non_finite(probs, features, source=(extra_meta or {}).get("model_dir", out_dir))
    result = assignments_table(table, probs, neighbours=neighbours)
    if features.ndim != 2 or len(features) != len(result):
        raise AssignmentError(f"{len(result)} cells but features of shape {features.shape}")
    categories = int(np.shape(probs)[1])
    category = result["category"].to_numpy()
    meta = {
        "categories": categories,
        "width": int(features.shape[1]),
        "n_cells": int(len(result)),
        "n_images": int(result["image"].nunique()),
        "neighbours": int(neighbours),
        "cells_per_category": np.bincount(category, minlength=categories).tolist(),
        "diagnostics": diagnose(result, category, categories=categories),
        **(extra_meta or {}),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    out_dir = Path(out_dir)
    (out_dir / "assignments.parquet").unlink(missing_ok=True)  # not done until the new table is in place
    atomic_write(out_dir / "features.npy", lambda p: np.save(p, features))
    atomic_write(out_dir / "meta.json", lambda p: p.write_text(json.dumps(meta, indent=2)))
    atomic_write(out_dir / "assignments.parquet", lambda p: result.to_parquet(p, index=False))
    return meta


def _refuse_non_finite(probs, features, *, source) -> None:
    """AssignmentError naming ``source`` when Q's probabilities or features hold NaN or infinite values."""
    for name, values in (("probabilities", np.asarray(probs)), ("features", features)):
        bad = ~np.isfinite(values).all(axis=1) if values.ndim == 2 else ~np.isfinite(values)
        if bad.any():
            raise AssignmentError(
                f"{source}: Q gives NaN or infinite {name} for {int(bad.sum())} of {len(bad)} cells "
                f"(first: row {int(np.argmax(bad))}); the model diverged or overflows on these cells, retrain it"
            )


def read_labels(path) -> pd.DataFrame:
    """Read reference labels: a CSV or Parquet file with columns ``image``, ``cell_id``, ``label``.

    Rows without a label are dropped; an (image, cell_id) pair may appear once.
    """
    path = Path(path)
    if not path.is_file():
        raise AssignmentError(f"{path}: no such labels file")
    try:
        if path.suffix == ".parquet":
            labels = pd.read_parquet(path)
        elif path.suffix == ".csv":
            labels = pd.read_csv(path, dtype={"image": str, "label": str})
        else:
            raise AssignmentError(f"{path}: labels must be a .csv or .parquet file")
    except AssignmentError:
        raise
    except Exception as err:  # pandas and pyarrow raise several types for bad files
        raise AssignmentError(f"{path}: unreadable labels ({err})") from err
    return _clean_labels(labels, path)


def _clean_labels(labels: pd.DataFrame, source) -> pd.DataFrame:
    """Check a labels table and keep its labelled rows, typed."""
    missing = [c for c in ("image", "cell_id", "label") if c not in labels.columns]
    if missing:
        raise AssignmentError(f"{source}: labels lack the columns {missing}")
    labels = labels[["image", "cell_id", "label"]].dropna(subset=["label"]).copy()
    labels["image"] = labels["image"].astype(str)
    try:
        labels["cell_id"] = labels["cell_id"].astype(np.int64)
    except (ValueError, TypeError) as err:
        raise AssignmentError(f"{source}: cell_id must be integers ({err})") from err
    labels["label"] = labels["label"].astype(str)
    duplicated = labels.duplicated(subset=["image", "cell_id"])
    if duplicated.any():
        first = labels.loc[duplicated, ["image", "cell_id"]].iloc[0]
        raise AssignmentError(f"{source}: cell ({first['image']}, {first['cell_id']}) is labelled twice")
    return labels


def evaluate_assignments(assignments_dir, *, labels=None, probe_folds: int = 5, seed: int = 0) -> dict:
    """Score an ASSIGNMENTS directory against reference labels.

    Parameters
    ----------
    assignments_dir : path
        Written by :func:`write_assignments`.
    labels : path or DataFrame, optional
        Labels with columns ``image``, ``cell_id``, ``label`` (see :func:`read_labels`);
        by default the ``label`` column of the assignments (from the cell table).
        Cells without a label are left out of the scores.
    probe_folds : int
        Folds of the linear probe, split by image.
    seed : int
        Seed of the probe's solver.

    Returns
    -------
    dict
        ``n_cells``, ``n_labelled``, ``categories`` (K), ``cells_per_category``,
        ``class_sizes``, ``contingency`` (category -> class -> cells), ``scores``
        (:func:`~cellgan.metrics.clustering.clustering_scores`) and ``linear_probe``
        (:func:`~cellgan.analysis.probe.linear_probe`, or ``{"error": reason}`` when
        the labelled cells come from a single image or class).
    """
    from cellgan.analysis.composition import read_assignments
    from cellgan.analysis.probe import ProbeError, linear_probe
    from cellgan.metrics.clustering import clustering_scores, contingency_table

    assignments_dir = Path(assignments_dir)
    table, meta = read_assignments(assignments_dir)
    categories = int(meta["categories"])
    features_path = assignments_dir / "features.npy"
    try:
        features = load_npy(features_path, mmap=True)
    except (OSError, ValueError) as err:
        raise AssignmentError(f"{features_path}: unreadable features ({err})") from err
    if features.ndim != 2 or len(features) != len(table):
        raise AssignmentError(f"{features_path}: shape {features.shape} does not match the {len(table)} cells")

    reference = _reference_labels(table, labels, assignments_dir)
    labelled = reference.notna().to_numpy()
    if not labelled.any():
        raise AssignmentError(
            f"{assignments_dir}: no cell has a label (the cell table has none; give a labels file)"
        )
    pred = table["category"].to_numpy(dtype=np.int64)[labelled]
    true = reference.to_numpy()[labelled].astype(str)
    contingency = contingency_table(pred, true)
    try:
        probe = linear_probe(
            np.asarray(features)[labelled],
            true,
            table["image"].astype(str).to_numpy()[labelled],
            folds=probe_folds,
            seed=seed,
        )
    except ProbeError as err:
        probe = {"error": str(err)}
    classes, sizes = np.unique(true, return_counts=True)
    return {
        "n_cells": int(len(table)),
        "n_labelled": int(labelled.sum()),
        "categories": categories,
        "cells_per_category": np.bincount(table["category"], minlength=categories).tolist(),
        "class_sizes": {str(c): int(s) for c, s in zip(classes, sizes)},
        "contingency": {
            str(q): {str(c): int(n) for c, n in zip(contingency.classes, row)}
            for q, row in zip(contingency.clusters, contingency.counts)
        },
        "scores": clustering_scores(pred, true),
        "linear_probe": probe,
    }


def _reference_labels(table: pd.DataFrame, labels, source: Path) -> pd.Series:
    """The label of each row of ``table`` (NaN where there is none)."""
    if labels is None:
        if "label" not in table.columns:
            raise AssignmentError(f"{source}: the assignments have no 'label' column; give a labels file")
        return table["label"].where(table["label"].notna()).astype(object).reset_index(drop=True)
    labels = _clean_labels(labels, "labels") if isinstance(labels, pd.DataFrame) else read_labels(labels)
    keys = pd.DataFrame({"image": table["image"].astype(str), "cell_id": table["cell_id"].astype(np.int64)})
    merged = keys.merge(labels[["image", "cell_id", "label"]], on=["image", "cell_id"], how="left")
    return merged["label"].astype(object).reset_index(drop=True)
