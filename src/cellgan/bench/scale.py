"""``cellgan bench scale``: how segmentation scales with Dask workers and with a slide's size.

Three measures, each on real pixels (the bone-marrow images of bm_graz):

- **throughput**: the whole segment-and-extract run (the default recipe's segmentation:
  Reinhard to the most typical image, faded patches) of the same images with local Dask
  clusters of 1 and 2 worker processes, in megapixels per second, with and without the
  cluster's start-up;
- **slides**: the peak resident memory (RSS) of segmenting pyramidal OME-TIFF slides of
  4, 16 and 64 times a tile's area (mosaics of the images, written at bench time), each
  in a fresh process, and the seconds per gigapixel: memory must not grow with the slide;
- **training**: critic images per second of DDP training with 1 and 2 ranks, from
  ``cellgan.bench.scale_training.ddp_training_throughput`` where this cellgan has it
  (``"not available"`` otherwise).

Timings depend on what else the machine runs; the JSON says when and where.
"""

from __future__ import annotations

import concurrent.futures
import datetime as _dt
import math
import multiprocessing
import shutil
import time
from pathlib import Path

import numpy as np

__all__ = ["MEASURES", "run_scale_benchmark"]

#: The three measures, in the order they run.
MEASURES = ("throughput", "slides", "training")


def run_scale_benchmark(
    data_root: Path,
    *,
    work_dir: Path,
    workers: tuple[int, ...] = (1, 2),
    slide_tiles: tuple[int, ...] = (4, 16, 64),
    tile_side: int | None = None,
    training_iterations: int = 20,
    measures: tuple[str, ...] = MEASURES,
    log=print,
) -> dict:
    """Run the measures asked for (default: all three); return the JSON-able summary.

    Parameters
    ----------
    data_root : Path
        Holds ``bm_graz/source``.
    work_dir : Path
        Scratch space for the stores and the slides (emptied first; several GB for 64 tiles).
    workers : tuple of int
        The local Dask cluster sizes.
    slide_tiles : tuple of int
        Slide areas, in tile areas.
    tile_side : int, optional
        The tiles' side (default :data:`cellgan.segment.slide.TILE_SIDE`); smaller
        tiles measure the same growth with memory against slide size, sooner.
    training_iterations : int
        Iterations of each DDP measure.
    measures : tuple of str
        Which of :data:`MEASURES` to run; the summary holds only those.
    """
    from cellgan.bench._common import machine_info
    from cellgan.config import resolve_config
    from cellgan.io.images import find_images
    from cellgan.segment.slide import TILE_SIDE

    images = find_images([Path(data_root) / "bm_graz" / "source"])
    if not images:
        raise FileNotFoundError(f"{data_root}: no bm_graz/source images")
    work_dir = Path(work_dir)
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    config = resolve_config().segment
    tile_side = TILE_SIDE if tile_side is None else tile_side
    summary = {
        "benchmark": "scale",
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "segment_config": {"patch_mode": config.patch_mode, "reinhard_reference": config.reinhard_reference},
    }
    if "throughput" in measures:
        summary["throughput"] = [_throughput(images, work_dir, config, n, log=log) for n in workers]
        base = summary["throughput"][0]["megapixels_per_second"]
        for row in summary["throughput"]:
            row["speed_up"] = row["megapixels_per_second"] / base
    if "slides" in measures:
        summary["tile_side"] = tile_side
        summary["slides"] = [_slide_memory(images, work_dir, config, n, tile_side, log=log) for n in slide_tiles]
        rss = [row["peak_rss_mb"] for row in summary["slides"]]
        summary["slide_rss_growth"] = max(rss) / min(rss) - 1 if rss else None
    if "training" in measures:
        summary["training"] = _training(training_iterations, log=log)
    return summary


def _throughput(images, work_dir: Path, config, workers: int, *, log) -> dict:
    """Segment ``images`` with a local cluster of ``workers``; megapixels per second, with and without start-up."""
    from PIL import Image

    from cellgan.io.cellstore import CellStore
    from cellgan.segment.batch import task_runner

    megapixels = sum(math.prod(Image.open(p).size) for p in images) / 1e6
    start = time.perf_counter()
    with task_runner(f"local:{workers}"):
        pass
    startup = time.perf_counter() - start
    store = CellStore.create(work_dir / f"throughput_{workers}", patch_mode=config.patch_mode)
    start = time.perf_counter()
    from cellgan.segment.batch import segment_images

    summary = segment_images(images, store, config, progress=False, scheduler=f"local:{workers}")
    seconds = time.perf_counter() - start
    row = {
        "workers": workers,
        "images": len(summary.done),
        "cells": len(store),
        "megapixels": megapixels,
        "seconds": seconds,
        "cluster_startup_seconds": startup,
        "megapixels_per_second": megapixels / seconds,
        "megapixels_per_second_after_startup": megapixels / max(seconds - startup, 1e-9),
    }
    rate = row["megapixels_per_second"]
    log(f"throughput, {workers} workers: {rate:.2f} MP/s ({seconds:.1f} s, {row['cells']} cells)")
    return row


def _mosaic_slide(images, path: Path, side: int) -> None:
    """A ``side``² pyramidal OME-TIFF at 0.5 µm per pixel, tiled with the images in turn (via a memory map)."""
    from cellgan.io.images import read_rgb
    from cellgan.io.slides import write_pyramid_tiff

    sources = [read_rgb(p) for p in images]
    canvas = np.lib.format.open_memmap(path.with_suffix(".npy"), mode="w+", dtype=np.uint8, shape=(side, side, 3))
    tile, k = min(s.shape[0] for s in sources), 0
    for y in range(0, side, tile):
        for x in range(0, side, tile):
            block = sources[k % len(sources)][: min(tile, side - y), : min(tile, side - x)]
            canvas[y : y + block.shape[0], x : x + block.shape[1]] = block
            k += 1
    canvas.flush()
    write_pyramid_tiff(path, canvas, mpp=0.5, levels=4)
    del canvas
    path.with_suffix(".npy").unlink()


def _segment_in_fresh_process(slide: str, store_dir: str, config, tile_side: int) -> dict:
    """Segment one slide in this (fresh) process; its seconds and peak RSS."""
    from cellgan.bench._common import peak_rss_mb
    from cellgan.io.cellstore import CellStore
    from cellgan.segment.batch import segment_images

    store = CellStore.create(Path(store_dir), patch_mode=config.patch_mode)
    start = time.perf_counter()
    summary = segment_images([slide], store, config, progress=False, tile_side=tile_side)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "cells": len(store),
        "failed": summary.failed,
    }


def _slide_memory(images, work_dir: Path, config, tiles: int, tile_side: int, *, log) -> dict:
    """Peak RSS and seconds per gigapixel of segmenting a slide of ``tiles`` tile areas, in a fresh process."""
    side = int(round(math.sqrt(tiles) * tile_side))
    path = work_dir / f"slide_{tiles}.ome.tif"
    _mosaic_slide(images, path, side)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        cells = str(work_dir / f"slide_{tiles}_cells")
        result = pool.submit(_segment_in_fresh_process, str(path), cells, config, tile_side).result()
    gigapixels = side * side / 1e9
    row = {"tile_areas": tiles, "side_px": side, "gigapixels": gigapixels, **result}
    row["seconds_per_gigapixel"] = result["seconds"] / gigapixels
    log(f"slide of {tiles} tiles ({side}² px): {result['peak_rss_mb']:.0f} MB peak RSS, {result['seconds']:.0f} s")
    path.unlink(missing_ok=True)
    return row


def _training(iterations: int, *, log) -> dict | str:
    """DDP training throughput for 1 and 2 ranks, where ``cellgan.bench.scale_training`` exists."""
    try:
        from cellgan.bench.scale_training import ddp_training_throughput
    except ImportError:
        log("training: cellgan.bench.scale_training is not available in this cellgan")
        return "not available"
    return {
        str(ranks): ddp_training_throughput(ranks=ranks, iterations=iterations, width=32, batch_size=64)
        for ranks in (1, 2)
    }
