"""32×32 cell patches: the paper's masked nucleus, a context crop of fixed physical size,
or that crop with the surroundings faded.

``masked`` (the patch of Hu et al. 2019): the nucleus's bounding box times
its mask, the background white; scaled down, keeping the aspect ratio, only when its
longer side exceeds 32 px; centred on a white 32×32 canvas. Nuclei therefore keep
their size in pixels, which tells small lymphocytes from large blasts.

``context``: a square crop centred on the nucleus with its surroundings, of fixed
physical side (or fixed pixel side when the pixel size is unknown), scaled to
32×32. Beyond the image's edge the crop mirrors the image (symmetric padding): white
padding there reads as glass, and made the cells at the edge a category of their own.

``faded``: the context crop with every pixel outside the cell's nucleus moved toward
white, keeping a fraction ``context_weight`` of its optical contrast. The nucleus
stays as sharp as in the paper's patch, and the faint surroundings (stroma, gland,
a crowd of lymphocytes) tell the GAN where the cell lives, which on
CRCHistoPhenotypes is much of what tells its types apart (benchmarks/README.md).

``crop`` (for pre-cropped single-cell images): the whole crop is the cell, scaled to
fit 32×32 keeping its aspect ratio and centred on a white canvas
(:func:`whole_crop_patch`); nothing is segmented, so nothing of the cell is cut off.

The others are vectorised with fancy indexing for every cell that needs no resampling;
only the cells that must be rescaled go through Pillow one by one.
"""

from __future__ import annotations

import numpy as np

from cellgan.io.cellstore import PATCH_SIZE

__all__ = ["context_patches", "faded_patches", "masked_patches", "whole_crop_patch"]

_WHITE = 255


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def masked_patches(
    rgb: np.ndarray,
    labels: np.ndarray,
    bboxes: np.ndarray,
    *,
    cell_labels: np.ndarray | None = None,
    size: int = PATCH_SIZE,
) -> np.ndarray:
    """The masked patch of every nucleus.

    Parameters
    ----------
    rgb : ndarray, uint8, shape (H, W, 3)
    labels : ndarray of int, shape (H, W)
    bboxes : ndarray of int, shape (n, 4)
        ``(x0, y0, x1, y1)`` per cell, end exclusive.
    cell_labels : ndarray of int, shape (n,), optional
        The label of each cell in ``labels``; default ``1..n``.
    size : int
        Patch side.

    Returns
    -------
    ndarray, uint8, shape (n, size, size, 3)
    """
    bboxes = np.asarray(bboxes, dtype=np.int64).reshape(-1, 4)
    n = len(bboxes)
    cell_labels = np.arange(1, n + 1) if cell_labels is None else np.asarray(cell_labels)
    out = np.full((n, size, size, 3), _WHITE, np.uint8)
    if n == 0:
        return out
    x0, y0, x1, y1 = bboxes.T
    width, height = x1 - x0, y1 - y0
    small = np.maximum(width, height) <= size
    if small.any():
        s = np.flatnonzero(small)
        offset = np.arange(size)
        rows = (y0[s] - (size - height[s]) // 2)[:, None] + offset  # (m, size)
        cols = (x0[s] - (size - width[s]) // 2)[:, None] + offset
        row_ok = (rows >= y0[s, None]) & (rows < y1[s, None])
        col_ok = (cols >= x0[s, None]) & (cols < x1[s, None])
        r = np.clip(rows, 0, rgb.shape[0] - 1)[:, :, None]
        c = np.clip(cols, 0, rgb.shape[1] - 1)[:, None, :]
        inside = row_ok[:, :, None] & col_ok[:, None, :] & (labels[r, c] == cell_labels[s, None, None])
        out[s] = np.where(inside[..., None], rgb[r, c], _WHITE)
    for i in np.flatnonzero(~small):
        crop = rgb[y0[i] : y1[i], x0[i] : x1[i]].copy()
        crop[labels[y0[i] : y1[i], x0[i] : x1[i]] != cell_labels[i]] = _WHITE
        scale = size / max(width[i], height[i])
        w = min(size, max(1, int(round(width[i] * scale))))
        h = min(size, max(1, int(round(height[i] * scale))))
        top, left = (size - h) // 2, (size - w) // 2
        out[i, top : top + h, left : left + w] = _resize(crop, w, h)
    return out


def context_patches(
    rgb: np.ndarray,
    centres_xy: np.ndarray,
    *,
    side_px: int,
    size: int = PATCH_SIZE,
    chunk: int = 256,
) -> np.ndarray:
    """A square crop of ``side_px`` pixels centred on each point, scaled to ``size``.

    Parameters
    ----------
    rgb : ndarray, uint8, shape (H, W, 3)
    centres_xy : ndarray of float, shape (n, 2)
        ``(x, y)`` = (column, row) of each crop's centre.
    side_px : int
        Crop side in pixels (at least 1); the crop covers rows
        ``round(y - side/2) .. + side`` and likewise columns; beyond the image's
        edge the image is mirrored (:func:`_mirrored`).
    size : int
        Patch side.
    chunk : int
        Cells gathered at a time (bounds the memory of large crops).

    Returns
    -------
    ndarray, uint8, shape (n, size, size, 3)
    """
    centres = np.asarray(centres_xy, dtype=np.float64).reshape(-1, 2)
    out = np.empty((len(centres), size, size, 3), np.uint8)
    for start, (r, c, _) in _square_crops(rgb.shape[:2], centres, side_px, chunk):
        out[start : start + len(r)] = _to_size(rgb[r, c], size)
    return out


def faded_patches(
    rgb: np.ndarray,
    labels: np.ndarray,
    centres_xy: np.ndarray,
    *,
    side_px: int,
    context_weight: float,
    cell_labels: np.ndarray | None = None,
    size: int = PATCH_SIZE,
    chunk: int = 256,
) -> np.ndarray:
    """The context crop of each cell with the pixels outside its nucleus faded toward white.

    Parameters
    ----------
    rgb : ndarray, uint8, shape (H, W, 3)
    labels : ndarray of int, shape (H, W)
        The nuclei; pixels of ``cell_labels[i]`` are cell i's nucleus and keep their colour.
    centres_xy : ndarray of float, shape (n, 2)
        Crop centres, as :func:`context_patches`.
    side_px : int
        Crop side in pixels, as :func:`context_patches`.
    context_weight : float
        In [0, 1]: a pixel outside the nucleus becomes ``255 − w·(255 − value)``; 0 gives
        the nucleus on white (the paper's patch, but at the crop's scale), 1 the
        plain context crop. The nucleus's mirror image beyond the image's edge is
        faded like the rest of its surroundings.
    cell_labels : ndarray of int, shape (n,), optional
        The label of each cell in ``labels``; default ``1..n``.
    size, chunk : int
        As :func:`context_patches`.

    Returns
    -------
    ndarray, uint8, shape (n, size, size, 3)
    """
    if not 0.0 <= context_weight <= 1.0:
        raise ValueError(f"context_weight must be in [0, 1], got {context_weight!r}")
    centres = np.asarray(centres_xy, dtype=np.float64).reshape(-1, 2)
    n = len(centres)
    cell_labels = np.arange(1, n + 1) if cell_labels is None else np.asarray(cell_labels).reshape(-1)
    out = np.empty((n, size, size, 3), np.uint8)
    for start, (r, c, inside) in _square_crops(rgb.shape[:2], centres, side_px, chunk):
        crops = rgb[r, c].astype(np.float32)
        own = inside & (labels[r, c] == cell_labels[start : start + len(crops), None, None])
        faded = _WHITE - context_weight * (_WHITE - crops)
        crops = np.where(own[..., None], crops, faded)
        out[start : start + len(crops)] = _to_size(np.rint(crops).astype(np.uint8), size)
    return out


def whole_crop_patch(rgb: np.ndarray, *, size: int = PATCH_SIZE) -> np.ndarray:
    """A whole single-cell image as one patch: scaled to fit ``size``², aspect kept, on white.

    Parameters
    ----------
    rgb : ndarray, uint8, shape (H, W, 3)
        The crop of one cell.
    size : int
        Patch side.

    Returns
    -------
    ndarray, uint8, shape (size, size, 3)
        The crop scaled (up or down) so that its longer side is ``size``, centred;
        the rest white.

    Examples
    --------
    >>> whole_crop_patch(np.zeros((64, 32, 3), np.uint8)).shape
    (32, 32, 3)
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) < 1:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    scaled = rgb if (new_w, new_h) == (width, height) else _resize(rgb, new_w, new_h)
    out = np.full((size, size, 3), _WHITE, dtype=np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    out[top : top + new_h, left : left + new_w] = scaled
    return out


def _square_crops(shape: tuple[int, int], centres: np.ndarray, side_px: int, chunk: int):
    """Yield ``(start, (rows, cols, inside))`` per chunk of centres: index arrays that
    gather each ``side_px`` square (rows (m, side, 1), cols (m, 1, side), mirrored at the
    image's edge by :func:`_mirrored`) and the mask of the pixels that lie inside the
    image (m, side, side)."""
    side = int(side_px)
    if side < 1:
        raise ValueError(f"side_px must be at least 1, got {side_px}")
    height, width = shape
    offset = np.arange(side)
    for start in range(0, len(centres), chunk):
        part = centres[start : start + chunk]
        rows = np.floor(part[:, 1] - side / 2 + 0.5).astype(np.int64)[:, None] + offset
        cols = np.floor(part[:, 0] - side / 2 + 0.5).astype(np.int64)[:, None] + offset
        r_ok = (rows >= 0) & (rows < height)
        c_ok = (cols >= 0) & (cols < width)
        r = _mirrored(rows, height)[:, :, None]
        c = _mirrored(cols, width)[:, None, :]
        yield start, (r, c, r_ok[:, :, None] & c_ok[:, None, :])


def _mirrored(index: np.ndarray, length: int) -> np.ndarray:
    """Indices into ``range(length)`` with those beyond either end mirrored, the edge
    pixel repeated (``numpy.pad``'s ``symmetric`` mode, however far beyond).

    Examples
    --------
    >>> _mirrored(np.arange(-3, 7), 4).tolist()
    [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]
    """
    folded = np.mod(index, 2 * length)
    return np.where(folded < length, folded, 2 * length - 1 - folded)


def _to_size(crops: np.ndarray, size: int) -> np.ndarray:
    """uint8 crops (m, s, s, 3) scaled to (m, size, size, 3)."""
    if crops.shape[1] == size:
        return crops
    return np.stack([_resize(crop, size, size) for crop in crops])
