"""Whole-image colour statistics: the texture-free description of an H&E image.

Written beside each image's cells at segmentation (``CellStore`` image info), so
that the image-level classifiers (:mod:`cellgan.analysis.image_features`) can set
the cells against the simplest description of the image: the mean and spread of
each RGB channel and of the haematoxylin, eosin and DAB concentrations of
colour deconvolution (Ruifrok & Johnston, Anal. Quant. Cytol. Histol. 2001, the
fixed vectors of ``skimage.color.rgb2hed``), and an 8-bin histogram of each RGB
channel, as the colour baselines of texture classification of colorectal tissue
(Kather et al., Sci. Rep. 2016) use them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["COLOUR_FEATURES", "HISTOGRAM_BINS", "colour_statistics"]

#: Bins of each RGB channel's histogram, over 0..255.
HISTOGRAM_BINS = 8

_RGB = ("r", "g", "b")
_HED = ("h", "e", "d")

#: The names :func:`colour_statistics` returns, in order.
COLOUR_FEATURES = (
    tuple(f"colour_rgb_{stat}_{c}" for stat in ("mean", "std") for c in _RGB)
    + tuple(f"colour_hed_{stat}_{c}" for stat in ("mean", "std") for c in _HED)
    + tuple(f"colour_hist_{c}_{b}" for c in _RGB for b in range(HISTOGRAM_BINS))
)


def colour_statistics(rgb: np.ndarray) -> dict[str, float]:
    """The colour statistics of an image, one named value each (:data:`COLOUR_FEATURES`).

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3) or (n, 3)
        The image, or a sample of its pixels.

    Returns
    -------
    dict
        ``colour_rgb_{mean,std}_{r,g,b}`` (of 0..255), ``colour_hed_{mean,std}_{h,e,d}``
        (``rgb2hed`` concentrations) and ``colour_hist_{r,g,b}_{0..7}`` (the share of
        pixels in each of 8 equal bins of 0..255; each channel's sum to 1).
    """
    from skimage.color import rgb2hed

    pixels = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)
    values = pixels.astype(np.float64)
    hed = rgb2hed(pixels[None]).reshape(-1, 3)
    stats = list(values.mean(axis=0)) + list(values.std(axis=0)) + list(hed.mean(axis=0)) + list(hed.std(axis=0))
    edges = np.linspace(0, 256, HISTOGRAM_BINS + 1)
    for channel in range(3):
        counts, _ = np.histogram(pixels[:, channel], bins=edges)
        stats += list(counts / max(len(pixels), 1))
    return dict(zip(COLOUR_FEATURES, (float(v) for v in stats)))
