"""Galleries of real cells per category: how a category looks, at a glance.

Hu et al. show each category by the real cells the Q head puts there (JBHI 2019,
Figs. 5-6). :func:`category_gallery` draws one row per category with its most
typical cells (highest score first: the Q probability for the GAN, minus the
distance to the centre for k-means), labelled with the category's index, its
number of cells and its share of all cells; :func:`write_assignments_gallery`
draws it for an ASSIGNMENTS directory (argmax Q, most confident cells first).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cellgan.io.files import atomic_write
from cellgan.io.palette import category_colours

__all__ = ["category_gallery", "write_assignments_gallery", "write_png"]

_BACKGROUND = (225, 225, 225)  # light grey, so that white patch backgrounds stay visible
_GAP = 4
_LABEL_WIDTH = 190


def category_gallery(
    patches_uint8,
    categories,
    scores,
    *,
    n_categories: int,
    per_category: int = 16,
    scale: int = 2,
    notes: list[str] | None = None,
    title: str | None = None,
) -> np.ndarray:
    """Draw, for each category, a row of its cells with the highest scores.

    Parameters
    ----------
    patches_uint8 : array-like, shape (n, h, w, 3), uint8
        The cells' patches.
    categories : array-like of int, shape (n,)
        Category of each cell, 0..n_categories-1.
    scores : array-like of float, shape (n,)
        How typical each cell is of its category; higher first.
    n_categories : int
        K; every category gets a row, an empty one says so.
    per_category : int
        Most cells per row.
    scale : int
        Each patch is enlarged this many times (nearest neighbour).
    notes : list of str, optional
        One extra line of text per category (e.g. its majority class).
    title : str, optional
        A line above the rows.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
        The gallery as an RGB image.
    """
    from PIL import Image, ImageDraw, ImageFont

    patches = np.asarray(patches_uint8)
    categories = np.asarray(categories)
    scores = np.asarray(scores, dtype=np.float64)
    if patches.dtype != np.uint8 or patches.ndim != 4 or patches.shape[3] != 3:
        raise ValueError(f"patches must be uint8 (n, h, w, 3), got {patches.dtype} {patches.shape}")
    if not len(patches) == len(categories) == len(scores):
        raise ValueError(f"{len(patches)} patches, {len(categories)} categories and {len(scores)} scores")
    if len(categories) and (categories.min() < 0 or categories.max() >= n_categories):
        raise ValueError(f"categories must lie in 0..{n_categories - 1}")
    if notes is not None and len(notes) != n_categories:
        raise ValueError(f"{len(notes)} notes for {n_categories} categories")

    tile_h, tile_w = patches.shape[1] * scale, patches.shape[2] * scale
    row_h = max(tile_h, 52) + _GAP
    top = 26 if title else _GAP
    width = _LABEL_WIDTH + per_category * (tile_w + _GAP) + _GAP
    canvas = Image.new("RGB", (width, top + n_categories * row_h), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=13)
    if title:
        draw.text((_GAP, 6), title, fill=(0, 0, 0), font=font)
    colours = category_colours(n_categories)
    total = max(len(categories), 1)
    for k in range(n_categories):
        y = top + k * row_h
        members = np.flatnonzero(categories == k)
        best = members[np.argsort(-scores[members], kind="stable")[:per_category]]
        draw.rectangle((_GAP, y, _GAP + 10, y + tile_h - 1), fill=tuple(int(c) for c in colours[k]))
        lines = [f"Category {k}", f"{len(members)} cells ({100 * len(members) / total:.1f}%)"]
        if notes is not None:
            lines.append(notes[k])
        draw.multiline_text((_GAP + 16, y + 2), "\n".join(lines), fill=(0, 0, 0), font=font, spacing=2)
        for i, index in enumerate(best):
            tile = Image.fromarray(patches[index]).resize((tile_w, tile_h), Image.Resampling.NEAREST)
            canvas.paste(tile, (_LABEL_WIDTH + i * (tile_w + _GAP), y))
    return np.asarray(canvas)


def write_png(path: Path, image: np.ndarray) -> Path:
    """Write an RGB image as PNG, atomically."""
    from PIL import Image

    path = Path(path)
    atomic_write(path, lambda p: Image.fromarray(np.asarray(image, dtype=np.uint8)).save(p, format="PNG"))
    return path


def write_assignments_gallery(assignments_dir, patches_uint8) -> Path:
    """Write ``ASSIGNMENTS/gallery.png``: each category's real cells, most confident (max Q) first.

    Parameters
    ----------
    assignments_dir : path
        An ASSIGNMENTS directory (:func:`cellgan.analysis.assign.write_assignments`).
    patches_uint8 : ndarray, shape (n, 32, 32, 3)
        The patches of its cells, in its row order (the cell store's).

    Returns
    -------
    Path
        The gallery's path.
    """
    from cellgan.analysis.composition import read_assignments

    table, meta = read_assignments(assignments_dir)
    categories = int(meta["categories"])
    category = table["category"].to_numpy()
    probs = table[[f"prob_{k}" for k in range(categories)]].to_numpy()
    gallery = category_gallery(
        patches_uint8,
        category,
        probs[np.arange(len(category)), category],
        n_categories=categories,
        title=f"argmax Q of {len(table)} cells from {meta['n_images']} images, most confident first",
    )
    return write_png(Path(assignments_dir) / "gallery.png", gallery)
