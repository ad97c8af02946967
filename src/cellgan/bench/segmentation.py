"""``cellgan bench segmentation``: nuclei detection and segmentation scored on public data.

Runs :func:`cellgan.segment.segment_image` with a :class:`~cellgan.segment.SegmentConfig`
(the defaults unless given) over every image of bm_graz, crchistophenotypes or MoNuSeg,
and scores the nuclei it finds against the datasets' ground truth:

- detection: predicted centroids matched one-to-one (Hungarian) to the true centres
  within 12 px on bm_graz, 6 px on crchistophenotypes (its paper's radius), and on
  MoNuSeg within 6 px or inside the true outline; precision, recall and F1 are
  micro-averaged over all cells;
- counting: mean over images of ``|predicted − true| / true``;
- segmentation (MoNuSeg only): foreground Dice and the AJI of Kumar et al. (2017), each
  the mean over images;
- speed: megapixels per second of wall-clock time spent reading and segmenting the
  images (patch extraction included), scoring excluded; also per second of this
  process's CPU time (all its threads), which other programs' load disturbs less.

The pixel size given to the segmentation is the dataset's when it states one (MoNuSeg's
XML). crchistophenotypes says only that its images are at 20×; it is given 0.5 µm/px,
the usual 20× pixel size (``mpp = 10 / objective power``, the convention TIAToolbox
uses to turn an objective power into a pixel size). bm_graz's pixel size was never
published: None. A pixel size already set in the given config takes precedence.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from cellgan.bench._common import machine_info

__all__ = [
    "ASSUMED_MPP",
    "MATCH_RADIUS",
    "SEGMENTATION_DATASETS",
    "draw_truth",
    "run_segmentation_benchmark",
]

#: Datasets this benchmark scores (those with nucleus-level ground truth).
SEGMENTATION_DATASETS = ("bm_graz", "crchistophenotypes", "monuseg")

#: Matching radius in pixels, per dataset (see ``../shared/data/README.md``).
MATCH_RADIUS = {"bm_graz": 12.0, "crchistophenotypes": 6.0, "monuseg": 6.0}

#: Pixel sizes assumed where the dataset does not state one (see the module docstring).
ASSUMED_MPP = {"crchistophenotypes": 0.5}


def run_segmentation_benchmark(
    dataset: str,
    data_root: str | Path,
    *,
    limit: int | None = None,
    config=None,
    overlay_dir: str | Path | None = None,
) -> dict:
    """Segment every image of ``dataset`` and score the nuclei against its ground truth.

    Parameters
    ----------
    dataset : {"bm_graz", "crchistophenotypes", "monuseg"}
    data_root : str or Path
        The folder holding the datasets' folders (``bm_graz/``, ``monuseg_test/``, ...).
    limit : int, optional
        Score only the first ``limit`` images.
    config : SegmentConfig, optional
        Segmentation settings; the defaults when None.
    overlay_dir : str or Path, optional
        Where to write, per image, the segmentation overlay with the true centres
        marked (see :func:`draw_truth`), for looking at the errors.

    Returns
    -------
    dict
        The summary scores, one row per image (``per_image``), the configuration, the
        machine and the date; see the module docstring for the definitions.
    """
    from cellgan.io.datasets import DATASETS
    from cellgan.io.files import atomic_write
    from cellgan.metrics.detection import match_points, scores_from_counts
    from cellgan.metrics.segmentation import aggregated_jaccard_index, dice
    from cellgan.segment import SegmentationError, SegmentConfig, segment_image

    if dataset not in SEGMENTATION_DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(SEGMENTATION_DATASETS)}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    spec = DATASETS[dataset]
    images = spec.loader(Path(data_root) / spec.folder)[:limit]
    config = SegmentConfig() if config is None else config
    radius = MATCH_RADIUS[dataset]

    rows = []
    for image in images:
        mpp = config.mpp
        if mpp is None:
            mpp = image.mpp if image.mpp is not None else ASSUMED_MPP.get(dataset)
        image_config = dataclasses.replace(config, mpp=mpp)
        start, cpu_start = time.perf_counter(), time.process_time()
        rgb = image.read_rgb()
        try:
            result = segment_image(rgb, image_config, image_id=image.image_id)
        except SegmentationError as err:  # e.g. a blank image: no cells found, scored so
            result, error = _no_cells(rgb), str(err)
        else:
            error = None
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start

        pred_xy = result.table[["centroid_x", "centroid_y"]].to_numpy(dtype=float)
        true_mask = image.label_mask(rgb.shape[:2]) if image.outlines is not None else None
        pred_index, true_index = match_points(pred_xy, image.centres, radius, true_label_mask=true_mask)
        n_true, n_pred, tp = len(image.centres), len(pred_xy), len(pred_index)
        row = {
            "image_id": image.image_id,
            "mpp": mpp,
            "n_true": n_true,
            "n_pred": n_pred,
            **scores_from_counts(tp, n_pred - tp, n_true - tp),
            "count_rel_error": abs(n_pred - n_true) / n_true if n_true else None,
            "megapixels": rgb.shape[0] * rgb.shape[1] / 1e6,
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "error": error,
        }
        if true_mask is not None:
            row["dice"] = dice(result.label_mask, true_mask)
            row["aji"] = aggregated_jaccard_index(result.label_mask, true_mask)
        rows.append(row)
        if overlay_dir is not None:
            from PIL import Image

            picture = draw_truth(result.overlay, pred_xy, image.centres, pred_index, true_index)
            target = Path(overlay_dir) / f"{image.image_id}.png"
            atomic_write(target, lambda p: Image.fromarray(picture).save(p, format="PNG"))

    keys = ("tp", "fp", "fn", "n_true", "n_pred", "megapixels", "seconds", "cpu_seconds")
    totals = {k: sum(r[k] for r in rows) for k in keys}
    micro = scores_from_counts(totals["tp"], totals["fp"], totals["fn"])
    count_errors = [r["count_rel_error"] for r in rows if r["count_rel_error"] is not None]
    summary = {
        "benchmark": "segmentation",
        "dataset": dataset,
        "images": len(rows),
        "cells_true": totals["n_true"],
        "cells_pred": totals["n_pred"],
        "match_radius_px": radius,
        "match_rule": "within radius or inside the true outline" if dataset == "monuseg" else "within radius",
        "detection_tp": micro["tp"],
        "detection_fp": micro["fp"],
        "detection_fn": micro["fn"],
        "detection_precision": micro["precision"],
        "detection_recall": micro["recall"],
        "detection_f1": micro["f1"],
        "count_mean_abs_rel_error": _mean(count_errors),
        "megapixels": totals["megapixels"],
        "seconds": totals["seconds"],
        "megapixels_per_second": totals["megapixels"] / totals["seconds"] if totals["seconds"] else None,
        "cpu_seconds": totals["cpu_seconds"],
        "megapixels_per_cpu_second": totals["megapixels"] / totals["cpu_seconds"] if totals["cpu_seconds"] else None,
    }
    if dataset == "monuseg":
        summary["dice"] = _mean([r["dice"] for r in rows])
        summary["aji"] = _mean([r["aji"] for r in rows])
    summary.update(
        config=_config_dict(config),
        assumed_mpp=ASSUMED_MPP.get(dataset),
        machine=machine_info(),
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        per_image=rows,
    )
    return summary


def _no_cells(rgb: np.ndarray):
    """What an image the segmentation refuses (e.g. blank) yields: no cells."""
    import pandas as pd

    from cellgan.segment import CellResult

    return CellResult(
        table=pd.DataFrame({"centroid_x": pd.Series(dtype=float), "centroid_y": pd.Series(dtype=float)}),
        patches=np.zeros((0, 32, 32, 3), np.uint8),
        label_mask=np.zeros(rgb.shape[:2], np.uint32),
        overlay=rgb,
    )


def draw_truth(
    overlay: np.ndarray,
    pred_xy: np.ndarray,
    true_xy: np.ndarray,
    pred_index: np.ndarray,
    true_index: np.ndarray,
) -> np.ndarray:
    """Mark the matching on a copy of the segmentation overlay.

    True centres found are drawn as small cyan squares, true centres missed (false
    negatives) as red squares, predicted centres matched to nothing (false positives)
    as yellow squares.
    """
    picture = np.array(overlay, dtype=np.uint8, copy=True)
    found = np.zeros(len(true_xy), bool)
    found[true_index] = True
    spurious = np.ones(len(pred_xy), bool)
    spurious[pred_index] = False
    for points, colour in (
        (true_xy[found], (0, 255, 255)),
        (true_xy[~found], (255, 0, 0)),
        (pred_xy[spurious], (255, 255, 0)),
    ):
        _squares(picture, points, colour)
    return picture


def _squares(picture: np.ndarray, points: np.ndarray, colour, half: int = 2) -> None:
    height, width = picture.shape[:2]
    for x, y in np.round(points).astype(int):
        picture[max(y - half, 0) : min(y + half + 1, height), max(x - half, 0) : min(x + half + 1, width)] = colour


def _mean(values) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _config_dict(config) -> dict:
    values = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(vars(config))
    return json.loads(json.dumps(values, default=str))
