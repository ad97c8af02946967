"""The files of an image classification (:func:`cellgan.analysis.image_classification.classify_images`).

A CLASSIFICATION directory (``RUN_DIR/classification``, or ``cellgan
classify-images --out``) holds::

    classification.json          the whole result
    kmeans.csv                   image, cluster (and label, when known)
    confusion_<model>.csv        rows = true class, columns = held-out prediction
    confusion_<model>.png        the same, drawn (the report shows it)
    weights_<model>.csv          feature, then one column per class: the fitted coefficients

``<model>`` is each classifier of :data:`~cellgan.analysis.image_classification.CLASSIFIERS`;
the confusion and weight files exist only when the images had labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from cellgan.io.files import atomic_write

__all__ = ["RESULT_FILE", "confusion_chart", "read_classification", "write_classification"]

RESULT_FILE = "classification.json"


def confusion_chart(confusion, classes, *, title: str) -> bytes:
    """Draw a confusion matrix (rows = true class, columns = prediction) as a PNG, counts in the cells."""
    from matplotlib.figure import Figure

    from cellgan.report.figures import figure_png

    counts = np.asarray(confusion, dtype=np.int64)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = 1.6 + 0.55 * len(classes)
    figure = Figure(figsize=(side + 1.2, side))
    ax = figure.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=8, color="white" if shares[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted (held-out fold)")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    figure.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    figure.tight_layout()
    return figure_png(figure)


def write_classification(result: dict, out_dir: Path, *, labels: pd.Series | None = None) -> list[Path]:
    """Write a classification result's files (see the module docstring) into ``out_dir``, atomically.

    Returns
    -------
    list of Path
        The files written.
    """
    from cellgan.analysis.image_classification import CLASSIFIERS

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def write(name: str, save) -> None:
        atomic_write(out_dir / name, save)
        written.append(out_dir / name)

    text = json.dumps(result, indent=2)
    write(RESULT_FILE, lambda p: p.write_text(text))
    if "clusters" in result.get("kmeans", {}):
        clusters = pd.DataFrame(list(result["kmeans"]["clusters"].items()), columns=["image", "cluster"])
        if labels is not None:
            clusters["label"] = clusters["image"].map(labels.astype(str))
        write("kmeans.csv", lambda p: clusters.to_csv(p, index=False))
    for model in (m for m in CLASSIFIERS if m in result):
        scores = result[model]
        classes = scores["classes"]
        confusion = pd.DataFrame(scores["confusion"], index=pd.Index(classes, name="true"), columns=classes)
        write(f"confusion_{model}.csv", lambda p: confusion.to_csv(p))
        title = (
            f"{model.replace('_', ' ')}, {result['feature_set']} features, {scores['n_folds']}-fold CV: "
            f"accuracy {scores['mean']['accuracy']:.3f}"
        )
        png = confusion_chart(scores["confusion"], classes, title=title)
        write(f"confusion_{model}.png", lambda p: p.write_bytes(png))
        weights = pd.DataFrame(scores["weights"]).rename_axis("feature")
        write(f"weights_{model}.csv", lambda p: weights.to_csv(p))
    return written


def read_classification(out_dir: Path) -> dict | None:
    """The result in a CLASSIFICATION directory, or None when there is none."""
    path = Path(out_dir) / RESULT_FILE
    return json.loads(path.read_text()) if path.is_file() else None
