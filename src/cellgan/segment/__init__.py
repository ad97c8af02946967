"""Stage 1: stain separation, nuclei segmentation and cell patches (Hu et al. 2019).

The public API; see :mod:`cellgan.segment.pipeline` for the functions that run it all.
"""

from cellgan.io.images import ImageReadError, read_mpp, read_rgb
from cellgan.segment.config import PATCH_MODES, SegmentConfig
from cellgan.segment.features import cell_table, region_measurements
from cellgan.segment.nuclei import estimate_nucleus_radius, find_nuclei, segment_nuclei
from cellgan.segment.patches import context_patches, masked_patches
from cellgan.segment.pipeline import (
    CellResult,
    RunSummary,
    SegmentationError,
    cells_at_points,
    cells_from_folder,
    image_ids,
    segment_image,
    segment_images,
)
from cellgan.segment.stain import (
    StainEstimate,
    estimate_stains,
    reinhard_normalize,
    separate_stains,
)

__all__ = [
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
    "reinhard_normalize",
    "region_measurements",
    "segment_image",
    "segment_images",
    "segment_nuclei",
    "separate_stains",
]
