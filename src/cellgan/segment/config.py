"""Every setting of the segmentation and cell extraction, with its default."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

from cellgan.errors import ConfigError
from cellgan.fields import check_types

__all__ = ["PATCH_MODES", "SegmentConfig"]

#: Ways to cut a cell's 32×32 patch (see :mod:`cellgan.segment.patches`).
PATCH_MODES = ("masked", "context", "faded", "crop")


@dataclass(frozen=True)
class SegmentConfig:
    """Settings of :func:`cellgan.segment.segment_image` and the functions around it.

    Lengths are physical (µm) and are turned into pixels with the pixel size: ``mpp``
    when given, else the one stored in the image file, else a *segmentation scale*
    estimated from the image itself by assuming its typical nucleus has radius
    ``nucleus_radius_um`` (:func:`cellgan.segment.nuclei.estimate_nucleus_radius`).
    The estimated scale serves the segmentation only: the table's ``area_um2`` stays
    NaN, the size filters use ``min_area_px``/``max_area_px`` when given, and context
    patches use ``context_px``. Hu et al. (2019) used fixed pixel thresholds tuned to
    their scanner (in their code: bounding-box areas of 100–450 px, objects under 200 px
    removed); physical settings carry over to other scanners.

    Attributes
    ----------
    mpp : float or None
        Micrometres per pixel; None reads it from the file (TIFF tags) or estimates it.
    patch_mode : {"masked", "context", "faded", "crop"}
        ``masked``: the paper's patch, the nucleus alone on white, scaled down only
        when larger than 32 px; ``context``: a square crop of ``context_um`` centred
        on the nucleus, scaled to 32 px; ``faded``: that crop with everything but the
        nucleus faded toward white (``context_weight``); ``crop``: for pre-cropped
        single-cell images only (:func:`cellgan.segment.cells_from_folder`), the
        whole crop, scaled to fit keeping its aspect ratio.
    context_um : float
        Side of a context patch when the pixel size is known.
    context_px : int
        Side of a context patch, in pixels, when it is not.
    context_weight : float
        In faded patches, the share of its optical contrast that a pixel outside the
        nucleus keeps: 0 white, 1 as in the image.
    reinhard_reference : str or None
        An image file to normalise every image's colours to (Reinhard) before
        anything else, as the paper does; ``"typical"``: the most typical of the
        images segmented together (:mod:`cellgan.segment.reference`; resolved by
        ``segment_images``, the CLI and the benchmarks); None: no normalisation.
    stain_vectors : {"macenko", "reference"}
        ``macenko``: estimated per image, falling back to the reference H&E vectors
        when the estimate is unreliable; ``reference``: always the reference vectors.
    tissue_od : float
        A pixel is tissue when the sum of its RGB optical densities exceeds this;
        white glass is below about 0.1.
    min_tissue_fraction : float
        An image with a smaller fraction of tissue pixels is reported as blank.
    nucleus_radius_um : float
        Typical nucleus radius: the scale of the blob filter that places the seeds,
        and the assumption behind the estimated scale.
    work_mpp : float
        The segmentation runs on the image block-averaged down to about this pixel
        size (never up-sampled), which halves the work on 40× images and loses
        nothing at the nuclei's scale.
    smooth_um : float
        Gaussian smoothing of the haematoxylin channel before thresholding.
    threshold_factor : float
        Foreground: smoothed haematoxylin above this times the Otsu threshold of the
        tissue pixels (the paper's fixed 160 suits one scanner only).
    local_window : float
        Also require haematoxylin ``local_contrast`` times its local mean, the mean
        over a square of half-side this many nucleus radii; separates crowded
        nuclei. 0 disables.
    local_contrast : float
        See ``local_window``.
    opening_um : float
        Radius of the opening that removes thin strands and specks from the foreground.
    seed_distance_um : float
        Two seeds (nucleus centres) are at least this far apart.
    watershed_blob_weight : float
        Weight of the blob filter's response, against the distance transform's, in
        the watershed that splits touching nuclei (0: distance transform only).
    min_area_um2, max_area_um2 : float
        Nuclei outside this area range are dropped (pixel size known).
    min_area_px, max_area_px : float or None
        The same range in pixels, used when the pixel size is not known; None
        converts the µm² range with the estimated scale.
    max_stain_angle_deg : float
        Objects whose mean optical density lies farther than this from every
        haematoxylin-dominant mixture of the image's H and E vectors are stain
        artefacts (pigment, ink, dye, red blood cells): they are dropped
        (:func:`cellgan.segment.nuclei.drop_stain_artefacts`), and pixels of such
        colours are left out of the threshold's statistics; 90 or more disables both.
        With the reference vectors, 99 % of the nuclei matched on CRCHistoPhenotypes'
        training images lie within 10 degrees, its pigment and dye 15 to 30.
    """

    mpp: float | None = None
    patch_mode: Literal[PATCH_MODES] = "masked"
    context_um: float = 16.0
    context_px: int = 32
    context_weight: float = 0.35
    reinhard_reference: str | None = None
    stain_vectors: Literal["macenko", "reference"] = "macenko"
    tissue_od: float = 0.3
    min_tissue_fraction: float = 0.001
    nucleus_radius_um: float = 2.5
    work_mpp: float = 0.5
    smooth_um: float = 0.5
    threshold_factor: float = 0.7
    local_window: float = 3.0
    local_contrast: float = 1.2
    opening_um: float = 1.0
    seed_distance_um: float = 2.0
    watershed_blob_weight: float = 0.5
    min_area_um2: float = 8.0
    max_area_um2: float = 400.0
    min_area_px: float | None = None
    max_area_px: float | None = None
    max_stain_angle_deg: float = 12.0

    def __post_init__(self) -> None:
        check_types(self)
        positive = (
            "context_um",
            "context_px",
            "nucleus_radius_um",
            "work_mpp",
            "threshold_factor",
            "seed_distance_um",
        )
        non_negative = (
            "tissue_od",
            "min_tissue_fraction",
            "smooth_um",
            "local_window",
            "local_contrast",
            "opening_um",
            "watershed_blob_weight",
            "context_weight",
            "min_area_um2",
            "max_area_um2",
            "max_stain_angle_deg",
        )
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or isinstance(value, str):
                continue
            if not math.isfinite(value):
                raise ConfigError(f"{f.name} must be a finite number, got {value!r}")
            if f.name in positive and value <= 0:
                raise ConfigError(f"{f.name} must be positive, got {value!r}")
            if f.name in non_negative and value < 0:
                raise ConfigError(f"{f.name} must not be negative, got {value!r}")
        if self.mpp is not None and self.mpp <= 0:
            raise ConfigError(f"mpp must be positive, got {self.mpp!r}")
        for name in ("min_area_px", "max_area_px"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)!r}")
        if self.max_area_um2 <= self.min_area_um2:
            raise ConfigError(f"max_area_um2 ({self.max_area_um2}) must exceed min_area_um2 ({self.min_area_um2})")
        if self.context_weight > 1:
            raise ConfigError(f"context_weight must be at most 1, got {self.context_weight!r}")
        if self.min_tissue_fraction >= 1:
            raise ConfigError(f"min_tissue_fraction must be below 1, got {self.min_tissue_fraction!r}")
