"""Stage 1: stain separation, nuclei segmentation and cell patches (Hu et al. 2019).

The public API. The algorithms are pure functions over arrays (:mod:`~cellgan.segment.stain`,
:mod:`~cellgan.segment.nuclei`, :mod:`~cellgan.segment.patches`,
:mod:`~cellgan.segment.features`); the entry points that run them are
:mod:`~cellgan.segment.image` (one image in memory), :mod:`~cellgan.segment.points`
(one cell per given centre), :mod:`~cellgan.segment.folder` (a folder of single-cell
crops) and :mod:`~cellgan.segment.batch` (image files into a cell store).
"""

from cellgan.lazy import lazy_attributes

#: Where each public name lives; imported on first use (PEP 562), so that importing
#: the package (or its light ``config`` module, as the CLI does for ``--help``) stays fast.
_WHERE = {
    "CellResult": "cellgan.segment.image",
    "ImageReadError": "cellgan.io.images",
    "NoTissueError": "cellgan.segment.image",
    "NotHAndEError": "cellgan.segment.image",
    "OUTLINE_COLOUR": "cellgan.segment.image",
    "PATCH_MODES": "cellgan.segment.config",
    "RunSummary": "cellgan.segment.batch",
    "SegmentConfig": "cellgan.segment.config",
    "SegmentationError": "cellgan.segment.image",
    "StainEstimate": "cellgan.segment.stain",
    "cell_table": "cellgan.segment.features",
    "cells_at_points": "cellgan.segment.points",
    "cells_from_folder": "cellgan.segment.folder",
    "cells_from_outlines": "cellgan.segment.outlines",
    "context_patches": "cellgan.segment.patches",
    "estimate_nucleus_radius": "cellgan.segment.nuclei",
    "estimate_stains": "cellgan.segment.stain",
    "find_nuclei": "cellgan.segment.nuclei",
    "image_ids": "cellgan.segment.batch",
    "masked_patches": "cellgan.segment.patches",
    "pixel_sizes": "cellgan.segment.batch",
    "read_outlines": "cellgan.segment.outlines",
    "read_mpp": "cellgan.io.images",
    "read_rgb": "cellgan.io.images",
    "region_measurements": "cellgan.segment.features",
    "reinhard_normalise": "cellgan.segment.stain",
    "segment_image": "cellgan.segment.image",
    "segment_images": "cellgan.segment.batch",
    "segment_nuclei": "cellgan.segment.nuclei",
    "separate_stains": "cellgan.segment.stain",
}

__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, globals())
