"""Issue 13: the whole segment-and-extract run on a whole slide, with 1 and 2 local Dask workers.

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes/issue13_slide_throughput.py [WORKERS ...]   # default: 1 2

Writes, once, the slide `cellgan bench scale` writes for 16 tile areas (a mosaic of the 11 bm_graz images, an
8192² pyramidal OME-TIFF at 0.5 µm/px, 4 levels) under /tmp/issue13_slide, then segments it with the default
recipe (the pixel size from the slide's metadata, Reinhard to the slide's overview, faded patches) on a local
Dask cluster of each number of single-threaded workers (0: in this process), and prints the seconds (the
cluster's start-up included) and megapixels per second of level 0.
"""
import shutil
import sys
import time
from pathlib import Path

from cellgan.bench.scale import _mosaic_slide
from cellgan.config import resolve_config
from cellgan.io.cellstore import CellStore
from cellgan.io.images import find_images
from cellgan.segment.batch import segment_images

WORK = Path("/tmp/issue13_slide")
SIDE = 8192


def main(workers_list: list[int]) -> None:
    config = resolve_config().segment
    slide = WORK / "slide_16.ome.tif"
    if not slide.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        _mosaic_slide(find_images([Path("../shared/data/bm_graz/source")]), slide, SIDE)
    megapixels = SIDE * SIDE / 1e6
    for workers in workers_list:
        out = WORK / f"cells_{workers}"
        shutil.rmtree(out, ignore_errors=True)
        store = CellStore.create(out, patch_mode=config.patch_mode)
        start = time.perf_counter()
        segment_images([slide], store, config, progress=False, scheduler=f"local:{workers}" if workers else None)
        seconds = time.perf_counter() - start
        print(f"{workers} workers: {seconds:.1f} s, {megapixels / seconds:.2f} MP/s, {len(store)} cells", flush=True)


if __name__ == "__main__":
    main([int(w) for w in sys.argv[1:]] or [1, 2])
