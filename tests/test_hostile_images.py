"""Hostile image files (issue 14): memory bombs, odd names, odd pixel sizes and odd pixel formats.

Each must be segmented correctly or refused with a one-line reason naming the file,
never by a traceback, an exhausted memory or a silent 0 cells.
"""

from __future__ import annotations

import numpy as np
import pytest

from cellgan.segment import SegmentConfig, segment_image


# -- images without nuclei at fine pixel sizes (IndexError in find_nuclei) -------------


@pytest.mark.parametrize(
    ("shape", "mpp"),
    [((256, 256), 0.25), ((40, 40), 0.25), ((48, 64), 0.12), ((300, 300), 0.03)],
    ids=["no-nucleus-0.25", "small-crop", "small-crop-0.12", "mpp-0.03"],
)
def test_no_nucleus_at_a_fine_pixel_size_gives_no_cell(shape, mpp):
    rgb = np.full((*shape, 3), (200, 140, 190), np.uint8)  # pink stroma, no nucleus
    result = segment_image(rgb, SegmentConfig(mpp=mpp), image_id="pink")
    assert len(result.table) == 0 and result.label_mask.shape == shape and result.overlay.shape == (*shape, 3)
