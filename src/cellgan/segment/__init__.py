"""Stage 1: stain separation, nuclei segmentation and cell patches (Hu et al. 2019).

The public API. The algorithms are pure functions over arrays (:mod:`~cellgan.segment.stain`,
:mod:`~cellgan.segment.nuclei`, :mod:`~cellgan.segment.patches`,
:mod:`~cellgan.segment.features`); the entry points that run them are
:mod:`~cellgan.segment.image` (one image in memory), :mod:`~cellgan.segment.points`
(one cell per given centre), :mod:`~cellgan.segment.folder` (a folder of single-cell
crops) and :mod:`~cellgan.segment.batch` (image files into a cell store).
"""

from cellgan.io.images import ImageReadError, read_mpp, read_rgb
from cellgan.segment.batch import RunSummary, image_ids, segment_images
from cellgan.segment.config import PATCH_MODES, SegmentConfig
from cellgan.segment.features import cell_table, region_measurements
from cellgan.segment.folder import cells_from_folder
from cellgan.segment.image import OUTLINE_COLOUR, CellResult, SegmentationError, segment_image
from cellgan.segment.nuclei import estimate_nucleus_radius, find_nuclei, segment_nuclei
from cellgan.segment.patches import context_patches, masked_patches
from cellgan.segment.points import cells_at_points
from cellgan.segment.stain import (
    StainEstimate,
    estimate_stains,
    reinhard_normalise,
    separate_stains,
)

__all__ = [
    "OUTLINE_COLOUR",
    "PATCH_MODES",
    "CellResult",
    "ImageReadError",
    "RunSummary",
    "SegmentConfig",
    "SegmentationError",
    "StainEstimate",
    "cell_table",
    "cells_at_points",
    "cells_from_folder",
    "context_patches",
    "estimate_nucleus_radius",
    "estimate_stains",
    "find_nuclei",
    "image_ids",
    "masked_patches",
    "read_mpp",
    "read_rgb",
    "reinhard_normalise",
    "region_measurements",
    "segment_image",
    "segment_images",
    "segment_nuclei",
    "separate_stains",
]
