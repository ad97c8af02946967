"""32×32 cell patches: the paper's masked nucleus, or a context crop of fixed physical size.

``masked`` (Hu et al. 2019, PAPER.md stage 1 step 6): the nucleus's bounding box times
its mask, the background white; scaled down, keeping the aspect ratio, only when its
longer side exceeds 32 px; centred on a white 32×32 canvas. Nuclei therefore keep
their size in pixels, which tells small lymphocytes from large blasts.

``context``: a square crop centred on the nucleus with its surroundings, of fixed
physical side (or fixed pixel side when the pixel size is unknown), padded with
white beyond the image border, and scaled to 32×32.

Both are vectorised with fancy indexing for every cell that needs no resampling;
only the cells that must be rescaled go through Pillow one by one.
"""

from __future__ import annotations

import numpy as np

from cellgan.io.cellstore import PATCH_SIZE

__all__ = ["context_patches", "masked_patches"]

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
        ``round(y - side/2) .. + side`` and likewise columns; pixels beyond the image
        are white.
    size : int
        Patch side.
    chunk : int
        Cells gathered at a time (bounds the memory of large crops).

    Returns
    -------
    ndarray, uint8, shape (n, size, size, 3)
    """
    side = int(side_px)
    if side < 1:
        raise ValueError(f"side_px must be at least 1, got {side_px}")
    centres = np.asarray(centres_xy, dtype=np.float64).reshape(-1, 2)
    n = len(centres)
    out = np.empty((n, size, size, 3), np.uint8)
    height, width = rgb.shape[:2]
    offset = np.arange(side)
    for start in range(0, n, chunk):
        part = centres[start : start + chunk]
        rows = np.floor(part[:, 1] - side / 2 + 0.5).astype(np.int64)[:, None] + offset
        cols = np.floor(part[:, 0] - side / 2 + 0.5).astype(np.int64)[:, None] + offset
        r_ok = (rows >= 0) & (rows < height)
        c_ok = (cols >= 0) & (cols < width)
        r = np.clip(rows, 0, height - 1)[:, :, None]
        c = np.clip(cols, 0, width - 1)[:, None, :]
        crops = np.where((r_ok[:, :, None] & c_ok[:, None, :])[..., None], rgb[r, c], _WHITE).astype(np.uint8)
        if side == size:
            out[start : start + len(part)] = crops
        else:
            for j, crop in enumerate(crops):
                out[start + j] = _resize(crop, size, size)
    return out
