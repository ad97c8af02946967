"""The pictures of the HTML report, as RGB arrays or PNG bytes.

Small functions over NumPy arrays and tables: tiles of cell patches, the
generator's category sweep (Hu et al., JBHI 2019, Figs. 4-5: z fixed, the
categorical code c varied), images with every nucleus outlined in its
category's colour, the training curves and the per-image composition chart
(matplotlib figures drawn by the Agg renderer, no pyplot and never a display). Colours come from
:func:`cellgan.io.palette.category_colours`, the palette of the GeoJSON export.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

__all__ = [
    "composition_chart",
    "figure_png",
    "generator_sweep",
    "jpeg_bytes",
    "outline_overlay",
    "png_bytes",
    "scale_bar",
    "surroundings",
    "tile_patches",
    "training_curves",
]

_GAP_COLOUR = (200, 200, 200)  # light grey between tiles, so white patch backgrounds stay visible


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an RGB (or greyscale) uint8 image as PNG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def jpeg_bytes(image: np.ndarray, *, quality: int = 75) -> bytes:
    """Encode an RGB uint8 image as JPEG: tissue photographs at a fraction of their PNG size."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def figure_png(figure) -> bytes:
    """Render a matplotlib figure to a PNG of 256 colours (without the "Software" tag, which holds a URL).

    A chart has few colours; the palette keeps its file about a third of the size of
    a full-colour one.
    """
    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    with Image.open(io.BytesIO(buffer.getvalue())) as rendered:
        paletted = rendered.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    paletted.save(out, format="PNG", optimize=True)
    return out.getvalue()


def tile_patches(patches: np.ndarray, *, columns: int, scale: int = 2, gap: int = 2) -> np.ndarray:
    """Lay patches out in a grid, row by row, enlarged by ``scale`` (nearest neighbour).

    Parameters
    ----------
    patches : ndarray of uint8, shape (n, h, w, 3)
    columns : int
        Tiles per row; the last row is filled with the gap colour.
    scale : int
        Integer enlargement of each patch.
    gap : int
        Pixels of light grey between tiles and around the grid.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
    """
    patches = np.asarray(patches)
    if patches.dtype != np.uint8 or patches.ndim != 4 or patches.shape[3] != 3:
        raise ValueError(f"patches must be uint8 (n, h, w, 3), got {patches.dtype} {patches.shape}")
    if len(patches) == 0:
        raise ValueError("no patches to tile")
    n, h, w, _ = patches.shape
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    big = patches.repeat(scale, axis=1).repeat(scale, axis=2)
    th, tw = h * scale, w * scale
    canvas = np.empty((rows * (th + gap) + gap, columns * (tw + gap) + gap, 3), np.uint8)
    canvas[:] = _GAP_COLOUR
    for i in range(n):
        r, c = divmod(i, columns)
        y, x = gap + r * (th + gap), gap + c * (tw + gap)
        canvas[y : y + th, x : x + tw] = big[i]
    return canvas


def surroundings(
    rgb: np.ndarray, centres_xy: np.ndarray, *, side_px: int, size: int = 64, ring: tuple[int, int, int] = (0, 0, 0)
) -> np.ndarray:
    """A square window around each cell, scaled to ``size``, with a thin ring marking the cell.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
    centres_xy : ndarray of float, shape (n, 2)
        ``(x, y)`` of each cell.
    side_px : int
        Window side in the image's pixels; white beyond the image.
    size : int
        Side of each returned window.
    ring : tuple of int
        RGB colour of the ring (radius a quarter of the window) around the centre.

    Returns
    -------
    ndarray of uint8, shape (n, size, size, 3)
    """
    from cellgan.segment.patches import context_patches

    margin = side_px // 2 + 1  # white beyond the image (the patches mirror it; a window shown to a person does not)
    framed = np.pad(np.asarray(rgb), ((margin, margin), (margin, margin), (0, 0)), constant_values=255)
    centres = np.asarray(centres_xy, dtype=np.float64) + margin
    windows = context_patches(framed, centres, side_px=side_px, size=size).copy()
    yy, xx = np.mgrid[:size, :size]
    distance = np.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2)
    on_ring = np.abs(distance - size / 4) < 0.7
    windows[:, on_ring] = np.asarray(ring, dtype=np.uint8)
    return windows


def scale_bar(windows: np.ndarray, *, length_px: float, margin: int = 4, thickness: int = 3) -> np.ndarray:
    """Draw a black scale bar, outlined in white, in the lower left corner of each window.

    Parameters
    ----------
    windows : ndarray of uint8, shape (n, h, w, 3)
    length_px : float
        Length of the bar in the windows' pixels (e.g. 10 µm at the shown scale).
    margin, thickness : int
        Distance from the corner and thickness of the bar, in pixels.

    Returns
    -------
    ndarray of uint8, shape (n, h, w, 3)
        A copy with the bar drawn.
    """
    windows = np.array(windows, dtype=np.uint8, copy=True)
    _, h, w, _ = windows.shape
    length = int(round(min(max(length_px, 1), w - 2 * margin - 2)))
    y1, x0 = h - margin, margin
    windows[:, y1 - thickness - 2 : y1, x0 : x0 + length + 2] = 255  # the white outline
    windows[:, y1 - thickness - 1 : y1 - 1, x0 + 1 : x0 + length + 1] = 0
    return windows


def generator_sweep(generator, *, columns: int, seed: int, device=None) -> np.ndarray:
    """Generate the category sweep: one row per category, one column per fixed noise vector.

    As in Hu et al.'s figures, column j uses the same z for every category, so a
    row shows what the categorical code alone changes.

    Parameters
    ----------
    generator : cellgan.model.Generator
        A trained generator (put in eval mode here: batch norm uses its running statistics).
    columns : int
        Number of noise vectors.
    seed : int
        Seed of the noise, so a report is reproducible.
    device : torch.device, optional
        Where to run; default the generator's device.

    Returns
    -------
    ndarray of uint8, shape (K, columns, 32, 32, 3)
    """
    import torch

    k, dim = generator.categories, generator.noise_dim
    device = next(generator.parameters()).device if device is None else device
    z = torch.randn(columns, dim, generator=torch.Generator().manual_seed(seed))
    z = z.repeat(k, 1).to(device)
    codes = torch.eye(k).repeat_interleave(columns, dim=0).to(device)
    was_training = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            images = generator(z, codes).float().cpu()
    finally:
        generator.train(was_training)
    images = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return images.permute(0, 2, 3, 1).numpy().reshape(k, columns, *images.shape[2:], 3)


def outline_overlay(
    rgb: np.ndarray,
    label_mask: np.ndarray,
    label_colours: np.ndarray,
    *,
    size: int,
    width: int = 2,
) -> np.ndarray:
    """Outline every nucleus of an image in a colour of its own.

    The image is first shrunk so its longer side is at most ``size`` (the label
    mask by nearest neighbour), then a band of ``width`` pixels along the inside
    of each nucleus's boundary is painted, so outlines keep their width at the
    shown scale and never cover the tissue between nuclei.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
    label_mask : ndarray of int, shape (H, W)
        0 = background, label l = cell l - 1 (the cell store's convention).
    label_colours : ndarray of uint8, shape (L + 1, 3)
        Colour of each label (row 0 unused); labels beyond it are not drawn.
    size : int
        Longest side of the result.
    width : int
        Thickness of the outlines in pixels of the result.

    Returns
    -------
    ndarray of uint8, shape (h, w, 3)
    """
    from PIL import Image
    from scipy import ndimage as ndi

    rgb = np.asarray(rgb)
    label_mask = np.asarray(label_mask)
    if rgb.shape[:2] != label_mask.shape:
        raise ValueError(f"image is {rgb.shape[:2]} but its label mask is {label_mask.shape}")
    rows, cols = label_mask.shape
    factor = min(1.0, size / max(rows, cols))
    shape = (max(1, round(cols * factor)), max(1, round(rows * factor)))
    if factor < 1.0:
        rgb = np.asarray(Image.fromarray(rgb).resize(shape, Image.Resampling.LANCZOS))
        label_mask = np.asarray(
            Image.fromarray(label_mask.astype(np.int32)).resize(shape, Image.Resampling.NEAREST)
        )
    out = rgb.copy()
    reach = 2 * width + 1  # a pixel is on the band when another label lies within `width` of it
    lowest = ndi.minimum_filter(label_mask, size=reach, mode="constant", cval=0)
    highest = ndi.maximum_filter(label_mask, size=reach, mode="nearest")
    edges = (label_mask > 0) & (label_mask < len(label_colours)) & ((lowest != label_mask) | (highest != label_mask))
    out[edges] = label_colours[label_mask[edges]]
    return out


def training_curves(log: pd.DataFrame, *, colours: np.ndarray, names: list[str], smooth: int = 0) -> bytes:
    """Plot the training log: the critic's losses, the gradient penalty, the MI term, the real-cell shares.

    Parameters
    ----------
    log : DataFrame
        One row per generator step (``MODEL_DIR/log.csv``), with ``step`` and
        ``critic_loss``, ``wasserstein``, ``gradient_penalty``, ``generator_loss``,
        ``mi_loss`` and ``share_k`` columns, whichever are present
        (a column that is all zero, such as a disabled term, is left out).
    colours : ndarray of uint8, shape (K, 3)
        Category colours, for the share panel.
    names : list of str
        Category names.
    smooth : int
        Width of the running mean drawn over each raw curve; 0 picks about 1/25 of the steps.

    Returns
    -------
    bytes
        A PNG.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    steps = log["step"].to_numpy() if "step" in log.columns else np.arange(1, len(log) + 1)
    smooth = smooth or max(1, len(log) // 25)
    panels = [
        ("Critic", "loss", [("critic_loss", "critic loss"), ("wasserstein", "Wasserstein estimate")]),
        ("Gradient penalty", "penalty", [("gradient_penalty", "gradient penalty")]),
        (
            "Generator and information terms",
            "loss",
            [("generator_loss", "generator loss"), ("mi_loss", "MI loss")],
        ),
    ]
    present = {c for c in log.columns if pd.to_numeric(log[c], errors="coerce").fillna(0).ne(0).any()}
    panels = [(t, y, [(c, lbl) for c, lbl in curves if c in present]) for t, y, curves in panels]
    panels = [(t, y, curves) for t, y, curves in panels if curves]
    share_columns = [f"share_{k}" for k in range(len(names)) if f"share_{k}" in log.columns]
    count = len(panels) + bool(share_columns)
    if count == 0:
        raise ValueError(f"the training log has none of the known columns; it has {list(log.columns)}")
    columns = min(count, 2)
    grid_rows = -(-count // columns)
    figure = Figure(figsize=(5.5 * columns, 3.9 * grid_rows))
    axes = list(figure.subplots(grid_rows, columns, squeeze=False).ravel())
    for extra in axes[count:]:
        extra.set_visible(False)
    for ax in axes[:count]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=10)
        ax.set_xlabel("generator iteration", fontsize=11)
    for ax, (title, ylabel, curves) in zip(axes, panels):
        for i, (column, label) in enumerate(curves):
            values = pd.to_numeric(log[column], errors="coerce")
            colour = f"C{i}"
            ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
            ax.plot(steps, values.rolling(smooth, min_periods=1).mean(), color=colour, label=label)
        ax.set_title(title, fontsize=12)
        ax.set_ylabel(ylabel, fontsize=11)
        ax.legend(fontsize=10)
    if share_columns:
        ax = axes[count - 1]
        for column in share_columns:
            k = int(column.split("_")[1])
            values = pd.to_numeric(log[column], errors="coerce").rolling(smooth, min_periods=1).mean()
            ax.plot(steps, values, color=colours[k] / 255.0, label=names[k], linewidth=1.8)
        ax.set_ylim(0, 1)
        ax.set_title("Share of real cells per category", fontsize=12)
        ax.set_ylabel("share of the batch", fontsize=11)
        ax.legend(fontsize=10)
    figure.tight_layout()
    return figure_png(figure)


def composition_chart(table: pd.DataFrame, *, colours: np.ndarray, names: list[str]) -> bytes:
    """Draw each image's composition as a horizontal stacked bar (the paper's P_i).

    Parameters
    ----------
    table : DataFrame
        ``image``, ``n_cells`` and ``prop_0`` ... ``prop_{K-1}`` (a COMPOSITION table).
    colours : ndarray of uint8, shape (K, 3)
    names : list of str
        Category names, one per ``prop_k``.

    Returns
    -------
    bytes
        A PNG.
    """
    from matplotlib.figure import Figure

    from cellgan.analysis.composition import proportion_columns

    props = table[proportion_columns(table)].to_numpy(dtype=float)
    labels = [f"{image} ({n})" for image, n in zip(table["image"], table["n_cells"])]
    rows = np.arange(len(table))[::-1]
    figure = Figure(figsize=(10, 1.3 + 0.34 * max(len(table), 1)))
    ax = figure.subplots()
    left = np.zeros(len(table))
    for k, name in enumerate(names):
        ax.barh(rows, props[:, k], left=left, color=colours[k] / 255.0, label=name, edgecolor="white", linewidth=0.5)
        left += props[:, k]
    ax.set_yticks(rows, labels, fontsize=10)
    ax.tick_params(axis="x", labelsize=10)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the image's cells", fontsize=11)
    ax.legend(ncol=min(len(names), 4), fontsize=10, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    figure.tight_layout()
    return figure_png(figure)
