"""One whole-slide image → its nuclei, tile by tile, in memory that does not grow with the slide.

A slide is read at the working pixel size (``SegmentConfig.work_mpp``, 0.5 µm per
pixel by default: the size the patches are made at) in tiles of :data:`TILE_SIDE`
pixels, each read with a margin of :func:`tile_margin` on every side. A nucleus
is kept by the one tile whose *core* (the tile less its margins; the cores
partition the slide) holds its centroid, so that a nucleus on a tile border is
found once, and it lies wholly inside that tile's read, as does its patch.

What segmentation otherwise measures on the whole image is measured once per slide
(:func:`slide_statistics`, on a few tissue tiles) and is the same for every tile:
the stain vectors (Macenko et al. 2009), the colour statistics Reinhard's transfer
maps from, the foreground threshold and the maxima the watershed's landscape is
divided by; the share of tissue a tile must hold is the slide's too (its overview's). A low-resolution tissue mask of the slide
(:func:`tissue_cores`) leaves out the tiles of bare glass.

Each tile's cells go to a *part* (``TILES_DIR/<index>.npy`` and ``.parquet``, the
table last) as soon as the tile is done, so a killed run resumes with the tiles not
yet done, and tiles can be segmented by any number of workers
(:mod:`cellgan.segment.batch`). :func:`join_parts` then writes the slide's one shard
of the cell store, part after part, numbering the cells in tile order: the same
cells, ids and patches whoever segmented the tiles.

Slide coordinates: ``centroid_*`` and ``bbox_*`` are pixels of the slide at the
working pixel size (like the patches and ``area_px``); :data:`SLIDE_COLUMNS` add the
centroid in level-0 pixels (for QuPath) and in µm from the slide's corner.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cellgan.io.cellstore import PATCH_SIZE
from cellgan.io.files import atomic_write
from cellgan.io.slides import open_slide
from cellgan.segment.config import SegmentConfig
from cellgan.segment.features import cell_table
from cellgan.segment.image import (
    ImageStatistics,
    SegmentationError,
    cell_patches,
    finish_table,
    prepare,
    prepared_nuclei,
    refuse_crop_patches,
    refuse_non_h_and_e,
    tissue_pixels,
)
from cellgan.segment.stain import estimate_stains, lab_statistics, optical_density, reference_stain_matrix

__all__ = [
    "SLIDE_COLUMNS",
    "TILE_SIDE",
    "SlidePlan",
    "Tile",
    "join_parts",
    "plan_slide",
    "read_window",
    "segment_tile",
    "slide_statistics",
    "tile_grid",
    "tile_margin",
    "tissue_cores",
]

#: Side of a tile in pixels at the working pixel size, margins included (2048² at 0.5 µm per pixel
#: is 1 mm²; segmenting takes about 80 bytes per pixel, some 340 MB a tile).
TILE_SIDE = 2048

#: The table columns a slide's cells have beyond the store's: the centroid in level-0 pixels
#: (``slide_x``, ``slide_y``: where QuPath puts it) and in µm from the slide's top-left corner.
SLIDE_COLUMNS = ("slide_x", "slide_y", "x_um", "y_um")

#: At most this many tissue tiles, spread over the slide, give its statistics.
STATISTICS_TILES = 4


@dataclass(frozen=True)
class Tile:
    """A tile's core, in pixels of the slide at the working pixel size; ``index`` orders the tiles."""

    index: int
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class SlidePlan:
    """What every tile of one slide needs: the file, its tiles with tissue, and the slide's statistics."""

    path: Path
    slide_id: str
    slide_mpp: float  # level 0's µm per pixel
    tiles: tuple[Tile, ...]
    margin: int
    statistics: ImageStatistics
    config: SegmentConfig  # the tiles' settings: mpp is the working pixel size


def tile_margin(config: SegmentConfig) -> int:
    """The margin, in working pixels, that a tile is read with on each side.

    Wide enough that a nucleus whose centroid lies in the core (of at most the
    diameter of ``max_area_um2``) and its patch (``context_um`` square) lie inside
    the tile, plus the reach of the widest filter the segmentation applies (the
    local mean over ``local_window`` nucleus radii), so that pixels near the core's
    edge are segmented as in the whole slide.
    """
    diameter = 2.0 * math.sqrt(config.max_area_um2 / math.pi)
    reach = max(diameter, config.context_um / 2) + (config.local_window + 1) * config.nucleus_radius_um
    return int(math.ceil(reach / config.work_mpp))


def tile_grid(width: int, height: int, *, core: int) -> list[Tile]:
    """Cores of side ``core`` (smaller at the right and bottom) that partition a ``width`` × ``height`` slide."""
    tiles = []
    for y in range(0, height, core):
        for x in range(0, width, core):
            tiles.append(Tile(len(tiles), x, y, min(core, width - x), min(core, height - y)))
    return tiles


def tissue_cores(overview: np.ndarray, scale: float, tiles, config: SegmentConfig) -> list[Tile]:
    """The tiles whose core holds tissue in ``overview`` (the slide at ``scale`` overview pixels per pixel).

    Tissue is what :func:`cellgan.segment.image.prepare` takes as tissue
    (:func:`~cellgan.segment.image.tissue_pixels`); each overview pixel is widened by one, so that
    a tile with a sliver of tissue at its edge is kept.
    """
    from scipy import ndimage as ndi

    tissue = ndi.binary_dilation(tissue_pixels(optical_density(overview), config), iterations=1)
    kept = []
    for tile in tiles:
        x0, y0 = int(math.floor(tile.x * scale)), int(math.floor(tile.y * scale))
        x1, y1 = int(math.ceil((tile.x + tile.width) * scale)), int(math.ceil((tile.y + tile.height) * scale))
        if tissue[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)].any():
            kept.append(tile)
    return kept


def read_window(tile: Tile, margin: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the tile's core widened by ``margin``, within the slide of ``size`` (width, height).

    Not beyond the slide's edge, so that a tile at the edge sees the edge as the
    whole slide read as one image would.
    """
    width, height = size
    x0, y0 = max(tile.x - margin, 0), max(tile.y - margin, 0)
    return x0, y0, min(tile.x + tile.width + margin, width), min(tile.y + tile.height + margin, height)


def _read_tile(slide, tile: Tile, margin: int, mpp: float) -> tuple[np.ndarray, int, int]:
    """The tile's pixels within :func:`read_window`, and the window's top-left corner."""
    x0, y0, x1, y1 = read_window(tile, margin, slide.size_at(mpp))
    return slide.read(x0, y0, x1 - x0, y1 - y0, mpp=mpp), x0, y0


def slide_statistics(slide, tiles, margin: int, config: SegmentConfig) -> ImageStatistics:
    """The stain vectors, colour statistics, foreground threshold and watershed scale of a slide, from a few tiles.

    The central quarters of the cores of at most :data:`STATISTICS_TILES` tissue
    tiles, evenly spaced in tile order, stand for the slide: the Macenko estimate (or the reference vectors) and
    the CIELAB statistics are those of their pixels together, the threshold is
    ``config.threshold_factor`` × the Otsu threshold of their smoothed haematoxylin
    over their tissue, and the watershed landscape's scale the largest of their
    :func:`~cellgan.segment.nuclei.landscape_maxima` at that threshold, as
    :func:`cellgan.segment.nuclei.segment_nuclei` computes them for one image. The
    slide must pass :func:`~cellgan.segment.image.refuse_non_h_and_e`.

    Parameters
    ----------
    slide : cellgan.io.slides.Slide
    tiles : sequence of Tile
        The tiles with tissue.
    margin : int
    config : SegmentConfig
        Its ``mpp`` is the working pixel size.

    Raises
    ------
    SegmentationError
        No tile with tissue; the slide is not H&E (:class:`~cellgan.segment.image.NotHAndEError`).
    """
    from scipy import ndimage as ndi

    from cellgan.segment.nuclei import find_landscape_maxima, foreground_threshold

    if not tiles:
        raise SegmentationError("no tissue: the slide's overview holds none")
    chosen = [tiles[i] for i in sorted(set(np.linspace(0, len(tiles) - 1, STATISTICS_TILES).round().astype(int)))]
    cores = [_read_tile(slide, _central_quarter(tile), 0, config.mpp)[0] for tile in chosen]
    pixels = np.concatenate([core.reshape(-1, 1, 3) for core in cores])
    refuse_non_h_and_e(pixels, tissue_pixels(optical_density(pixels), config))
    if config.stain_vectors == "macenko":
        matrix = estimate_stains(pixels[:: max(1, len(pixels) // 250_000)]).matrix
    else:
        matrix = reference_stain_matrix()
    lab = None if config.reinhard_reference is None else lab_statistics(pixels)
    prepared = [prepare(core, config, min_side=1, statistics=ImageStatistics(matrix, lab)) for core in cores]
    prepared = [p for p in prepared if p.tissue.any()]  # a core without tissue adds nothing to the statistics
    if not prepared:
        raise SegmentationError("no tissue in the tiles the slide's statistics are taken from")
    sigma = config.smooth_um / config.mpp
    haematoxylin = [p.stains[..., 0] for p in prepared]
    smooth = [(ndi.gaussian_filter(h, sigma) if sigma > 0 else h).ravel() for h in haematoxylin]
    tissue = np.concatenate([p.tissue.ravel() for p in prepared])
    threshold = float(foreground_threshold(np.concatenate(smooth), tissue, factor=config.threshold_factor))
    maxima = [
        find_landscape_maxima(h, p.tissue, mpp=config.mpp, config=config, threshold=threshold)
        for h, p in zip(haematoxylin, prepared)
    ]
    maxima = [m for m in maxima if m is not None]
    landscape_scale = None if not maxima else tuple(float(v) for v in np.max(maxima, axis=0))
    return ImageStatistics(matrix, lab, threshold, landscape_scale)


def _central_quarter(tile: Tile) -> Tile:
    """The middle of a tile's core, half its width and height (at least a patch's side, within the core)."""
    width = min(tile.width, max(tile.width // 2, PATCH_SIZE))
    height = min(tile.height, max(tile.height // 2, PATCH_SIZE))
    return Tile(tile.index, tile.x + (tile.width - width) // 2, tile.y + (tile.height - height) // 2, width, height)


def plan_slide(path, slide_id: str, config: SegmentConfig, *, tile_side: int = TILE_SIDE) -> SlidePlan:
    """Open a slide, find its tissue tiles and measure its statistics.

    ``config.mpp``, when set, is level 0's pixel size (over the slide's metadata);
    the tiles, of ``tile_side`` pixels with their margins, are segmented at
    ``config.work_mpp``.

    Raises
    ------
    cellgan.io.slides.SlideReadError, SegmentationError
    """
    refuse_crop_patches(config)
    work = dataclasses.replace(config, mpp=config.work_mpp)
    margin = tile_margin(work)
    with open_slide(path, mpp=config.mpp) as slide:
        width, height = slide.size_at(work.mpp)
        overview, overview_mpp = slide.overview()
        grid = tile_grid(width, height, core=tile_side - 2 * margin)
        tiles = tissue_cores(overview, work.mpp / overview_mpp, grid, work)
        statistics = slide_statistics(slide, tiles, margin, work)
        slide_mpp = slide.mpp
    return SlidePlan(Path(path), slide_id, slide_mpp, tuple(tiles), margin, statistics, work)


def part_paths(tiles_dir: Path, tile: Tile) -> tuple[Path, Path]:
    """A tile's part: its patches (``.npy``) and its table (``.parquet``, written last: the part is done)."""
    return tiles_dir / f"{tile.index:06d}.npy", tiles_dir / f"{tile.index:06d}.parquet"


def segment_tile(plan: SlidePlan, tile: Tile, tiles_dir: Path) -> int:
    """Segment one tile of a slide and write its part; return its number of cells.

    The tile is read with its margins; only the nuclei whose centroid lies in the
    core are kept. The tile is segmented with the slide's statistics, however little
    tissue it holds (the overview chose it); a slide narrower than a patch holds no cell.
    """
    config, margin = plan.config, plan.margin
    with open_slide(plan.path, mpp=plan.slide_mpp) as slide:
        rgb, x0, y0 = _read_tile(slide, tile, margin, config.mpp)
    try:
        prepared = prepare(rgb, config, statistics=plan.statistics)
        labels = prepared_nuclei(prepared, config, statistics=plan.statistics).labels
    except SegmentationError:
        labels = None
    if labels is None or not labels.any():
        table, patches = _empty_table(plan.slide_id), np.zeros((0, PATCH_SIZE, PATCH_SIZE, 3), np.uint8)
    else:
        table = cell_table(labels, prepared.stains, mpp=config.mpp, source="segment")
        x, y = table["centroid_x"].to_numpy() + x0, table["centroid_y"].to_numpy() + y0
        core = (x >= tile.x) & (x < tile.x + tile.width) & (y >= tile.y) & (y < tile.y + tile.height)
        table = table[core].reset_index(drop=True)
        patches = cell_patches(prepared.rgb, labels, table, config, cell_labels=table["cell_id"].to_numpy() + 1)
        table = _to_slide_coordinates(finish_table(table, plan.slide_id), x0, y0, plan)
    npy, parquet = part_paths(tiles_dir, tile)
    atomic_write(npy, lambda p: np.save(p, patches))
    atomic_write(parquet, lambda p: table.to_parquet(p, index=False))
    return len(table)


def _empty_table(slide_id: str) -> pd.DataFrame:
    """A slide's table without a cell: the store's columns and :data:`SLIDE_COLUMNS`."""
    table = finish_table(cell_table(np.zeros((1, 1), np.int32), np.zeros((1, 1, 3))), slide_id)
    return table.assign(**{c: pd.Series(dtype="float64") for c in SLIDE_COLUMNS})


def _to_slide_coordinates(table: pd.DataFrame, dx: int, dy: int, plan: SlidePlan) -> pd.DataFrame:
    """``table`` with the coordinates of a window at ``(dx, dy)`` moved to the slide's; :data:`SLIDE_COLUMNS` added."""
    table = table.copy()
    for column in ("centroid_x", "bbox_x0", "bbox_x1"):
        table[column] += dx
    for column in ("centroid_y", "bbox_y0", "bbox_y1"):
        table[column] += dy
    # A pixel's centre at working size, (i + 0.5) · mpp µm from the corner, centroids being pixel indices.
    table["x_um"] = (table["centroid_x"] + 0.5) * plan.config.mpp
    table["y_um"] = (table["centroid_y"] + 0.5) * plan.config.mpp
    table["slide_x"] = table["x_um"] / plan.slide_mpp - 0.5
    table["slide_y"] = table["y_um"] / plan.slide_mpp - 0.5
    return table


def keep_parts_of(tiles_dir: Path, identity: dict) -> None:
    """Keep the tile parts in ``tiles_dir`` only if made from the slide and options of ``identity``.

    The identity (:func:`cellgan.io.cellstore.shard_identity`) is written beside the
    parts, so that a re-run with another file or other options starts the slide afresh
    instead of joining old tiles with new ones.
    """
    import json
    import shutil

    from cellgan.io.files import atomic_write

    recorded = tiles_dir / "identity.json"
    text = json.dumps(identity, sort_keys=True)
    if recorded.is_file() and recorded.read_text() == text:
        return
    if tiles_dir.exists():
        shutil.rmtree(tiles_dir)
    tiles_dir.mkdir(parents=True)
    atomic_write(recorded, lambda p: p.write_text(text))


def join_parts(store, plan: SlidePlan, tiles_dir: Path, *, identity: dict | None = None) -> int:
    """Write the slide's shard from its tiles' parts, in tile order; return its number of cells.

    The cells are numbered 0..n-1 in tile order (and, within a tile, in the
    segmentation's raster order of seeds). The parts are removed once the shard is written.

    Raises
    ------
    SegmentationError
        A tile's part is missing (its tile was not segmented).
    """
    parts = [part_paths(tiles_dir, tile) for tile in plan.tiles]
    missing = [str(parquet) for _, parquet in parts if not parquet.is_file()]
    if missing:
        raise SegmentationError(f"{len(missing)} tiles not segmented (first: {missing[0]})")
    tables = [pd.read_parquet(parquet) for _, parquet in parts]
    tables = [t for t in tables if len(t)]
    table = pd.concat(tables, ignore_index=True) if tables else _empty_table(plan.slide_id)
    table["cell_id"] = np.arange(len(table), dtype=np.int64)
    store.write_image_in_parts(plan.slide_id, table, [npy for npy, _ in parts], identity=identity)
    for npy, parquet in parts:
        npy.unlink(missing_ok=True)
        parquet.unlink(missing_ok=True)
    (tiles_dir / "identity.json").unlink(missing_ok=True)
    for folder in (tiles_dir, tiles_dir.parent):  # the slide's folder, then the store's tiles/ when it was the last
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return len(table)
