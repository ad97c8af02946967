"""Issue 13: how many of a slide's nuclei, segmented tile by tile, are those of the same pixels read whole.

`python benchmarks/probes/issue13_tiles.py TILE_SIDE [TILE_SIDE ...]`: for each tile side, a
pyramidal OME-TIFF (0.5 µm/px) written under a temporary folder, segmented tile by tile
(`segment_images`, as `cellgan segment` does) and as one image with the slide's statistics
(`segment_image`), as tests/test_slides.py does. Slides: tiles of 420 px, the test's
800² crop of BM_GRAZ_HE_0001_01 beside a 500-px strip of glass; larger tiles, a 2 × 2
mosaic (2400²) of the first four bm_graz images. Prints one JSON line per tile side: the
nuclei found each way, the share of the tiled ones found whole to the last bit (centroid
within 1e-6 px) and the other way round, and the share of those with the same patch.
"""

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from cellgan.io.cellstore import CellStore
from cellgan.io.images import find_images, read_rgb
from cellgan.io.slides import write_pyramid_tiff
from cellgan.segment import SegmentConfig, segment_images
from cellgan.segment import slide as slide_module
from cellgan.segment.image import segment_image

SOURCE = Path("/work/shared/data/bm_graz/source")


def slide_pixels(tile_side: int) -> np.ndarray:
    images = [read_rgb(p) for p in find_images([SOURCE])[:4]]
    if tile_side <= 512:
        return np.concatenate([images[0][:800, :800], np.full((800, 500, 3), 255, np.uint8)], axis=1)
    return np.concatenate([np.concatenate(images[:2], axis=1), np.concatenate(images[2:4], axis=1)], axis=0)


def agreement(tile_side: int, folder: Path) -> dict:
    rgb = slide_pixels(tile_side)
    path = folder / f"slide_{tile_side}.ome.tif"
    write_pyramid_tiff(path, rgb, mpp=0.5)
    config = SegmentConfig(patch_mode="faded")
    store = CellStore.create(folder / f"cells_{tile_side}", patch_mode="faded")
    segment_images([path], store, config, progress=False, tile_side=tile_side)
    tiled, patches = store.read_table(), store.read_patches()
    plan = slide_module.plan_slide(path, "slide", config, tile_side=tile_side)
    whole = segment_image(rgb, plan.config, image_id="slide", statistics=plan.statistics)
    a = tiled[["centroid_x", "centroid_y"]].to_numpy()
    b = whole.table[["centroid_x", "centroid_y"]].to_numpy()
    distance = np.linalg.norm(a[:, None] - b[None], axis=2)
    same, which = distance.min(axis=1) < 1e-6, distance.argmin(axis=1)
    equal = [np.array_equal(patches[i], whole.patches[j]) for i, j in zip(np.flatnonzero(same), which[same])]
    return {
        "tile_side": tile_side,
        "slide_px": list(rgb.shape[:2]),
        "tiles": len(plan.tiles),
        "tiled_nuclei": len(a),
        "whole_nuclei": len(b),
        "tiled_found_whole": float(same.mean()),
        "whole_found_tiled": float((distance.min(axis=0) < 1e-6).mean()),
        "same_patch": float(np.mean(equal)),
    }


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        for side in sys.argv[1:]:
            print(json.dumps(agreement(int(side), Path(tmp))), flush=True)
