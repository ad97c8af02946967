"""One colour and one name per cell category, the same in every output.

The overlays and charts of the HTML report and the QuPath GeoJSON export all take
their category colours from :func:`category_colours`, so a category looks the same
wherever it appears.
"""

from __future__ import annotations

import colorsys

import numpy as np

__all__ = ["MAX_CATEGORIES", "category_colours", "category_names"]

#: Okabe & Ito's colour-blind-safe qualitative palette ("Color Universal Design",
#: 2008), reordered so that the first categories get the colours that stand out
#: best against haematoxylin (purple-blue) and eosin (pink).
_BASE = (
    (0, 158, 115),  # bluish green
    (240, 228, 66),  # yellow
    (86, 180, 233),  # sky blue
    (230, 159, 0),  # orange
    (213, 94, 0),  # vermillion
    (0, 114, 178),  # blue
    (204, 121, 167),  # reddish purple
    (0, 0, 0),  # black
)

_GOLDEN = 0.618033988749895

#: The colours stay pairwise distinct up to this many categories (the golden-ratio
#: hues first repeat after rounding to 8 bits at about 600).
MAX_CATEGORIES = 256


def category_colours(categories: int) -> np.ndarray:
    """Return a distinct RGB colour for each of ``categories`` categories.

    Parameters
    ----------
    categories : int
        Number of categories K, 1 to :data:`MAX_CATEGORIES`.

    Returns
    -------
    colours : ndarray of uint8, shape (K, 3)
        Row k is the colour of category k, 0-255. The first eight are the
        Okabe-Ito palette; further ones step round the hue circle by the golden
        ratio, alternating two brightness levels. The colours for K are a prefix
        of those for any larger K.
    """
    categories = int(categories)
    if not 1 <= categories <= MAX_CATEGORIES:
        raise ValueError(f"categories must be between 1 and {MAX_CATEGORIES}, got {categories}")
    colours = list(_BASE[:categories])
    for k in range(len(colours), categories):
        extra = k - len(_BASE)
        hue = (0.05 + extra * _GOLDEN) % 1.0
        value = 0.95 if extra % 2 == 0 else 0.65
        r, g, b = colorsys.hsv_to_rgb(hue, 0.8, value)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return np.asarray(colours, dtype=np.uint8)


def category_names(categories: int, names: list[str] | None = None) -> list[str]:
    """Return the display name of each category: ``"Category k"`` unless named.

    Parameters
    ----------
    categories : int
        Number of categories K.
    names : list of str, optional
        User names, one per category, in category order.
    """
    categories = int(categories)
    if categories < 1:
        raise ValueError(f"categories must be at least 1, got {categories}")
    if names is None:
        return [f"Category {k}" for k in range(categories)]
    names = [str(n).strip() for n in names]
    if len(names) != categories:
        raise ValueError(f"{len(names)} category names given for {categories} categories")
    if any(not n for n in names) or len(set(names)) != len(names):
        raise ValueError(f"category names must be non-empty and distinct, got {names}")
    return names
