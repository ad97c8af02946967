"""The pixel size of images that do not state it: estimated from their nuclei, or refused.

Every length of the segmentation is physical (µm), so a wrong pixel size loses
nuclei to the size filters (on kather2016 tiles an estimate 15 % low halved the
nuclei found). A pixel size comes, in order, from the user (``given``), from the
image file (``file``, :func:`cellgan.io.images.read_mpp`), else from the nuclei
(``estimated``):

1. Each image, as read (no colour normalisation: the way :data:`BLOB_RADIUS_RATIO`
   was measured), is cut into fields of about :data:`FIELD_SIDE` pixels; in each, the
   typical radius of the haematoxylin foreground's blobs
   (:func:`cellgan.segment.nuclei.blob_scale`) gives a pixel size.
2. The estimates of the fields of the images without a pixel size are pooled
   (their median): images segmented together come from one scanner. At most
   :data:`MAX_ESTIMATE_IMAGES` of them are read for it, spread evenly over the
   run's files, so that a run of thousands of images does not prepare each
   one twice.
3. The pooled value is trusted only when at least :data:`MIN_FIELDS` fields gave
   an estimate and they agree: their spread, the median absolute deviation of
   their logarithms, is at most :data:`MAX_SPREAD`. This test needs no labels.
   Otherwise :class:`PixelSizeError` asks for ``--mpp``.

Measured on the shared datasets (benchmarks/README.md, "Pixel size estimated from
the nuclei"): where trusted, the pooled estimate is within 15 % of the known pixel
size of kather2016 (0.495), MoNuSeg (0.25, from its XML) and CRCHistoPhenotypes
(0.5); on CoNSeP (0.25) it would be 1.5–1.8 times too large, and its fields
disagree, so it is refused; small sets of kather2016's 150-px tiles often are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellgan.errors import CellganError

__all__ = [
    "BLOB_RADIUS_RATIO",
    "FIELD_SIDE",
    "MAX_ESTIMATE_IMAGES",
    "MAX_SPREAD",
    "MIN_FIELDS",
    "MPP_SOURCES",
    "PixelSizeError",
    "PooledEstimate",
    "estimate_sample",
    "field_estimates",
    "pool_estimates",
]

#: Where a cell table's ``mpp`` came from ("unknown": pre-cropped cells of no stated size).
MPP_SOURCES = ("given", "file", "estimated", "unknown")

#: Side, in pixels, of the fields an image is cut into for the estimate.
FIELD_SIDE = 512

#: The foreground blobs' typical radius over ``nucleus_radius_um``: the blobs of the
#: lightly smoothed Otsu foreground are larger than the nuclei the segmentation
#: keeps (touching nuclei merge). Measured as the median ratio of the per-field
#: estimate to the known pixel size on kather2016, MoNuSeg and CRCHistoPhenotypes
#: (0.92, 0.91, 0.90; the datasets' pixel sizes, not their cell labels).
BLOB_RADIUS_RATIO = 1.10

#: The most images whose fields are read for one run's estimate: at least 200 fields (a 500-px tile is one field,
#: a 1.4-MP image about six), whose median moves by about 2 % from sample to sample at the spread trusted.
MAX_ESTIMATE_IMAGES = 200

#: The fewest fields whose agreement can be judged.
MIN_FIELDS = 3

#: The largest spread (median absolute deviation of the log estimates) trusted:
#: 0.06–0.09 on MoNuSeg, CRCHistoPhenotypes and bm_graz, 0.19–0.21 on kather2016
#: and CoNSeP.
MAX_SPREAD = 0.12


class PixelSizeError(CellganError, ValueError):
    """The pixel size is not stated and the estimate from the nuclei cannot be trusted."""


@dataclass(frozen=True)
class PooledEstimate:
    """The pooled pixel size of a set of fields.

    Attributes
    ----------
    mpp : float or None
        The median of the field estimates (None: no field gave one).
    fields : int
        How many fields gave an estimate.
    spread : float
        Median absolute deviation of the log estimates (inf with no field).
    """

    mpp: float | None
    fields: int
    spread: float

    @property
    def trusted(self) -> bool:
        """Enough fields, and they agree (:data:`MIN_FIELDS`, :data:`MAX_SPREAD`)."""
        return self.fields >= MIN_FIELDS and self.spread <= MAX_SPREAD

    def why_not(self) -> str:
        """Why the estimate is not trusted, in a few words."""
        if self.fields < MIN_FIELDS:
            return f"only {self.fields} field(s) of nuclei to estimate it from (at least {MIN_FIELDS} needed)"
        return (
            f"the estimates of its {self.fields} fields disagree (median {self.mpp:.3g} µm/px, "
            f"spread {self.spread:.2f} > {MAX_SPREAD})"
        )


def field_estimates(haematoxylin: np.ndarray, tissue: np.ndarray, config) -> list[float]:
    """The pixel size estimated in each field of one image.

    Parameters
    ----------
    haematoxylin : ndarray of float, shape (H, W)
    tissue : ndarray of bool, shape (H, W)
    config : SegmentConfig
        ``nucleus_radius_um`` is the typical nucleus radius assumed.

    Returns
    -------
    list of float
        One value per field that holds something blob-like, in µm per pixel.
    """
    from cellgan.segment.nuclei import blob_scale

    height, width = haematoxylin.shape
    rows, cols = max(1, round(height / FIELD_SIDE)), max(1, round(width / FIELD_SIDE))
    values = []
    for i in range(rows):
        for j in range(cols):
            window = (slice(i * height // rows, (i + 1) * height // rows), slice(j * width // cols, (j + 1) * width // cols))
            scale = blob_scale(haematoxylin[window], tissue[window], config)
            if scale is not None:
                values.append(scale * BLOB_RADIUS_RATIO)
    return values


def estimate_sample(files: list) -> list:
    """The files whose fields are read for the estimate: all, or :data:`MAX_ESTIMATE_IMAGES` evenly spread.

    The same files for the same list, so that a resumed run estimates as the first did.

    Examples
    --------
    >>> estimate_sample(list(range(5)))
    [0, 1, 2, 3, 4]
    >>> sample = estimate_sample(list(range(1000)))
    >>> len(sample), sample[:3], sample[-1]
    (200, [0, 5, 10], 999)
    """
    if len(files) <= MAX_ESTIMATE_IMAGES:
        return list(files)
    last = len(files) - 1
    return [files[round(i * last / (MAX_ESTIMATE_IMAGES - 1))] for i in range(MAX_ESTIMATE_IMAGES)]


def pool_estimates(values) -> PooledEstimate:
    """Pool field estimates: their median, with the spread of their logarithms.

    Examples
    --------
    >>> pool_estimates([0.5, 0.52, 0.48]).trusted
    True
    >>> pool_estimates([0.5]).trusted
    False
    """
    values = np.asarray(list(values), dtype=np.float64)
    if len(values) == 0:
        return PooledEstimate(None, 0, float("inf"))
    median = float(np.median(values))
    spread = float(np.median(np.abs(np.log(values / median))))
    return PooledEstimate(median, len(values), spread)
