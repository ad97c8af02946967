"""Choosing the Reinhard reference among a run's own images.

Hu et al. (2019) normalise every image to a reference image
with Reinhard's colour transfer but do not say which image. With
``--reinhard-reference typical`` the reference is the run's *most typical* image: the
one whose CIELAB means and standard deviations (:func:`~cellgan.segment.stain.lab_statistics`)
lie nearest the median image's, each statistic measured in units of its spread over
the images. It needs no file from the user and no label, and it is the same image
whichever order the files come in.

Why normalise at all: on CRCHistoPhenotypes the cells of one type in one image mostly
fall in the same k-means cluster, and which cluster depends on the image's staining;
after normalisation to the typical image the clusters follow the types better
(README, "best recipe").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["TYPICAL", "most_typical", "resolve_reference", "typical_image"]

#: The ``reinhard_reference`` value that asks for :func:`typical_image`.
TYPICAL = "typical"


def most_typical(statistics: np.ndarray) -> int:
    """Index of the row nearest the column-wise median, each column scaled by its MAD.

    ``statistics``: shape (n_images, n_statistics), e.g. the flattened
    :func:`~cellgan.segment.stain.lab_statistics` of each image. Ties go to the
    first row; a column that does not vary counts for nothing.
    """
    statistics = np.asarray(statistics, dtype=np.float64)
    if statistics.ndim != 2 or len(statistics) == 0:
        raise ValueError(f"need a non-empty (images, statistics) array, got shape {statistics.shape}")
    median = np.median(statistics, axis=0)
    spread = np.median(np.abs(statistics - median), axis=0)
    scaled = np.divide(statistics - median, spread, out=np.zeros_like(statistics), where=spread > 0)
    return int(np.argmin((scaled**2).sum(axis=1)))


def typical_image(paths, *, runner=None) -> Path:
    """The most typical of the images at ``paths`` (:func:`most_typical` of their Lab statistics).

    A slide counts by its overview (:func:`cellgan.io.slides.image_or_overview`). A
    file that cannot be read is left out (segmenting it fails later, with its
    reason); ValueError when none can be read. ``runner``: what measures the
    images (:func:`cellgan.segment.batch.task_runner`'s), default this process.
    """
    paths = sorted(Path(p) for p in paths)
    if runner is None:
        measured = ((path, _lab_statistics_or_none(path)) for path in paths)
    else:
        measured = runner.map(_lab_statistics_or_none, paths)
    statistics = {path: value for path, value in measured if isinstance(value, np.ndarray)}  # not: unreadable
    readable = [path for path in paths if path in statistics]
    if not readable:
        raise ValueError("no readable image to choose a Reinhard reference from")
    return readable[most_typical(np.stack([statistics[path] for path in readable]))]


def _lab_statistics_or_none(path: Path) -> np.ndarray | None:
    """The flattened Lab statistics of an image file (a slide's overview), None when it cannot be read."""
    from cellgan.io.images import ImageReadError
    from cellgan.io.slides import image_or_overview
    from cellgan.segment.stain import lab_statistics

    try:
        return lab_statistics(image_or_overview(path)).ravel()
    except ImageReadError:
        return None


def resolve_reference(reference, paths, *, runner=None) -> str | None:
    """``reference`` as a file path: :data:`TYPICAL` becomes :func:`typical_image` of ``paths``."""
    if reference is None:
        return None
    if str(reference) == TYPICAL:
        return str(typical_image(paths, runner=runner))
    return str(reference)
