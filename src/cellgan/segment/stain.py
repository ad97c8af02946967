"""Stain handling: optical density, Macenko stain vectors, colour deconvolution, Reinhard.

Hu et al. (2019) normalise each image to a reference
with Reinhard's method, estimate the stain matrix with Macenko's method and keep the
haematoxylin channel of the colour deconvolution. Here Reinhard normalisation is
optional, and the Macenko estimate is checked and replaced by the standard H&E
vectors of Ruifrok & Johnston (scikit-image's ``rgb_from_hed``) when it is unreliable.
:mod:`cellgan.segment.reference` chooses a reference among the images themselves.

References
----------
.. [1] Macenko et al., "A method for normalizing histology slides for quantitative
   analysis", ISBI 2009.
.. [2] Ruifrok & Johnston, "Quantification of histochemical staining by color
   deconvolution", Anal. Quant. Cytol. Histol. 23(4), 2001.
.. [3] Reinhard et al., "Color transfer between images", IEEE CG&A 21(5), 2001.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = [
    "REFERENCE_STAINS",
    "StainEstimate",
    "deconvolve",
    "distinct_colours",
    "estimate_stains",
    "haematoxylin_sector_angle",
    "lab_statistics",
    "off_stain_pixels",
    "macenko_vectors",
    "optical_density",
    "reference_stain_matrix",
    "reinhard_normalise",
    "separate_stains",
]

#: Unit stain vectors (rows: haematoxylin, eosin, DAB) in optical-density RGB space,
#: from Ruifrok & Johnston [2] (scikit-image's ``skimage.color.rgb_from_hed``).
REFERENCE_STAINS = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
REFERENCE_STAINS = REFERENCE_STAINS / np.linalg.norm(REFERENCE_STAINS, axis=1, keepdims=True)

# Optical density of each 8-bit intensity, OD = -log10(I / 255), with I = 0 read as 1.
_OD_LUT = (-np.log10(np.maximum(np.arange(256), 1) / 255.0)).astype(np.float32)


def optical_density(rgb: np.ndarray) -> np.ndarray:
    """Return the optical density ``-log10(I / 255)`` of a ``uint8`` RGB image (float32)."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {rgb.dtype}")
    return np.take(_OD_LUT, rgb)  # faster than fancy indexing


@dataclass(frozen=True)
class StainEstimate:
    """A 3×3 stain matrix (rows H, E, residual; unit OD vectors) and how it was obtained.

    ``method`` is ``"macenko"`` or ``"reference"``; ``reason`` says why the reference
    vectors were used (empty for Macenko).
    """

    matrix: np.ndarray
    method: str
    reason: str = ""


def macenko_vectors(
    od_pixels: np.ndarray, *, percentile: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Macenko's two stain vectors from optical-density pixels of stained tissue [1]_.

    The pixels are projected onto the plane of their two main principal directions;
    the stain vectors are the directions at the ``percentile`` and ``100 - percentile``
    percentiles of the angle in that plane.

    Parameters
    ----------
    od_pixels : ndarray, shape (n, 3)
        Optical densities of tissue pixels (background already removed).
    percentile : float
        Robust extreme of the angle distribution (Macenko's alpha, 1 %).

    Returns
    -------
    (v1, v2) : two unit vectors with non-negative sum, ``v1`` the one with the
        larger red component (haematoxylin absorbs red light more than eosin does).
    """
    od = np.asarray(od_pixels, dtype=np.float64)
    _, vectors = np.linalg.eigh(np.cov(od, rowvar=False))
    plane = vectors[:, [2, 1]]  # first and second principal directions
    plane = plane * np.where(plane.sum(axis=0) < 0, -1.0, 1.0)
    projected = od @ plane
    angle = np.arctan2(projected[:, 1], projected[:, 0])
    lo, hi = np.percentile(angle, [percentile, 100.0 - percentile])
    v_lo = plane @ np.array([np.cos(lo), np.sin(lo)])
    v_hi = plane @ np.array([np.cos(hi), np.sin(hi)])
    out = []
    for v in (v_lo, v_hi):
        v = v * (-1.0 if v.sum() < 0 else 1.0)
        out.append(v / np.linalg.norm(v))
    v1, v2 = out
    return (v1, v2) if v1[0] >= v2[0] else (v2, v1)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def _complete(h: np.ndarray, e: np.ndarray) -> np.ndarray:
    residual = np.cross(h, e)
    residual = residual * (-1.0 if residual.sum() < 0 else 1.0)
    residual /= np.linalg.norm(residual)
    return np.stack([h, e, residual])


def reference_stain_matrix() -> np.ndarray:
    """The 3×3 stain matrix of :data:`REFERENCE_STAINS` H and E, completed by their cross product."""
    return _complete(REFERENCE_STAINS[0], REFERENCE_STAINS[1])


def estimate_stains(
    rgb: np.ndarray,
    *,
    od_threshold: float = 0.15,
    min_pixels: int = 2000,
    max_h_angle_deg: float = 25.0,
    max_e_angle_deg: float = 40.0,
    min_separation_deg: float = 15.0,
    max_samples: int = 100_000,
    percentile: float = 1.0,
) -> StainEstimate:
    """Estimate an image's H&E stain matrix by Macenko's method, with a checked fallback.

    The reference vectors (:data:`REFERENCE_STAINS`) are used instead of the estimate
    when it is unreliable:

    - fewer than ``min_pixels`` stained pixels (every channel's OD above
      ``od_threshold``, Macenko's beta): nearly blank images give noise;
    - the two estimated vectors closer than ``min_separation_deg`` to each other: the
      image holds essentially one stain;
    - the haematoxylin vector more than ``max_h_angle_deg`` from its reference, or
      the eosin vector more than ``max_e_angle_deg`` from its: not H&E, or dominated
      by pigment, ink or blood. Eosin gets the wider margin because the reference's
      is nearly pure green absorption, and real eosin is not: Macenko's own
      reference eosin lies 29 degrees from it.

    Before the angle check the two estimates are assigned to H and E by the pairing
    with the smaller total angle to the references, so swapped H and E are corrected.

    Parameters
    ----------
    rgb : ndarray, uint8, shape (H, W, 3)
    od_threshold, min_pixels, max_h_angle_deg, max_e_angle_deg, min_separation_deg, percentile
        See above.
    max_samples : int
        At most this many tissue pixels (an even stride through them, so the estimate
        is deterministic) are used.

    Returns
    -------
    StainEstimate
    """
    od = optical_density(rgb).reshape(-1, 3)
    tissue = od[np.all(od > od_threshold, axis=1)]
    if len(tissue) < min_pixels:
        return StainEstimate(
            reference_stain_matrix(),
            "reference",
            f"only {len(tissue)} stained pixels (< {min_pixels})",
        )
    if len(tissue) > max_samples:
        tissue = tissue[:: int(np.ceil(len(tissue) / max_samples))]
    v1, v2 = macenko_vectors(tissue, percentile=percentile)
    ref_h, ref_e = REFERENCE_STAINS[0], REFERENCE_STAINS[1]
    if _angle_deg(v1, v2) < min_separation_deg:
        return StainEstimate(
            reference_stain_matrix(),
            "reference",
            f"estimated stains only {_angle_deg(v1, v2):.1f} degrees apart",
        )
    straight = _angle_deg(v1, ref_h) + _angle_deg(v2, ref_e)
    swapped = _angle_deg(v2, ref_h) + _angle_deg(v1, ref_e)
    h, e = (v1, v2) if straight <= swapped else (v2, v1)
    off_h, off_e = _angle_deg(h, ref_h), _angle_deg(e, ref_e)
    if off_h > max_h_angle_deg or off_e > max_e_angle_deg:
        return StainEstimate(
            reference_stain_matrix(),
            "reference",
            f"estimated stains {off_h:.1f} and {off_e:.1f} degrees from H and E "
            f"(limits {max_h_angle_deg:g} and {max_e_angle_deg:g})",
        )
    return StainEstimate(_complete(h, e), "macenko")


def deconvolve(od: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Colour deconvolution [2]_ of optical densities: stain concentrations, float32.

    Parameters
    ----------
    od : ndarray, shape (..., 3)
        Optical densities (:func:`optical_density`).
    matrix : ndarray, shape (3, 3)
        Stain vectors as rows (see :class:`StainEstimate`).

    Returns
    -------
    ndarray, float32, shape (..., 3)
        Channel 0 haematoxylin, 1 eosin, 2 residual; negative values clipped to 0.
    """
    od = np.asarray(od, dtype=np.float32)
    inverse = np.linalg.inv(np.asarray(matrix, dtype=np.float64)).astype(np.float32)
    conc = np.empty(od.shape, np.float32)
    # Three multiply-adds per stain rather than a BLAS product: a (n, 3) @ (3, 3)
    # product gains nothing from BLAS and suffers from its threads on a busy machine.
    for k in range(3):
        out = conc[..., k]
        np.multiply(od[..., 0], inverse[0, k], out=out)
        out += od[..., 1] * inverse[1, k]
        out += od[..., 2] * inverse[2, k]
    np.maximum(conc, 0.0, out=conc)
    return conc


def haematoxylin_sector_angle(
    od: np.ndarray, *, max_eosin_ratio: float = 1.0, stains: np.ndarray | None = None
) -> np.ndarray:
    """Angle, in degrees, between optical densities and the nearest haematoxylin-dominant
    mixture of two stain vectors.

    By Beer–Lambert's law the optical density of a pixel stained only by haematoxylin
    and eosin is ``h·H + e·E`` with non-negative amounts ``h`` and ``e`` [2]_; a
    nucleus is haematoxylin-dominant, ``e <= max_eosin_ratio · h``. Such mixtures form
    a sector of the plane of H and E. The angle
    to that sector measures how far a colour is from anything a nucleus can be:
    black pigment and ink absorb all colours alike and lie out of the plane, blue
    dyes absorb red light more than haematoxylin does and lie beyond H (negative
    eosin), red blood cells absorb blue light (haemoglobin) and lie out of the plane
    or on the eosin side. The stain vectors should be those the image was
    deconvolved with: its own Macenko estimate follows its lab's stain hues, and an
    artefact that dominates an image makes that estimate fail the checks of
    :func:`estimate_stains`, which then give the reference vectors.

    Parameters
    ----------
    od : ndarray, shape (..., 3)
        Optical densities, e.g. an object's mean (:func:`optical_density`).
    max_eosin_ratio : float
        The sector's edge on the eosin side: ``e / h`` at most this.
    stains : ndarray, shape (2, 3) or (3, 3), optional
        H and E unit vectors as the first two rows (:class:`StainEstimate`'s
        ``matrix``); None: :data:`REFERENCE_STAINS`.

    Returns
    -------
    ndarray, shape (...)
        0 inside the sector; NaN for a zero optical density.
    """
    u, w, _, edge = _sector_frame(max_eosin_ratio, stains)
    od = np.asarray(od, dtype=np.float64)
    # In-plane angle from H, clipped to the sector [0, edge]: the nearest ray.
    angle = np.clip(np.arctan2(od @ w, od @ u), 0.0, np.arctan2(edge @ w, edge @ u))
    ray = np.cos(angle)[..., None] * u + np.sin(angle)[..., None] * w
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.sum(od * ray, axis=-1) / np.linalg.norm(od, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _sector_frame(max_eosin_ratio: float, stains: np.ndarray | None):
    """Orthonormal ``u`` (along H), ``w`` (in the H–E plane), ``n`` (normal to it), and
    the unit ray of the sector's eosin-side edge; H and E are the first two rows of
    ``stains``, or the reference vectors when None."""
    h, e = (REFERENCE_STAINS if stains is None else np.asarray(stains, np.float64))[:2]
    u = h / np.linalg.norm(h)
    w = e - (e @ u) * u
    w /= np.linalg.norm(w)
    edge = h + max_eosin_ratio * e
    return u, w, np.cross(u, w), edge / np.linalg.norm(edge)


def off_stain_pixels(
    od: np.ndarray, *, max_angle_deg: float, max_eosin_ratio: float = 1.0, stains: np.ndarray | None = None
) -> np.ndarray:
    """Whether each optical density lies farther than ``max_angle_deg`` from the
    haematoxylin-dominant sector (:func:`haematoxylin_sector_angle`), computed without
    trigonometry per pixel, for whole images.

    Parameters
    ----------
    od : ndarray, shape (..., 3)
    max_angle_deg : float
        Below 90.
    max_eosin_ratio, stains
        As for :func:`haematoxylin_sector_angle`.

    Returns
    -------
    ndarray of bool, shape (...)
        False for a zero optical density.
    """
    u, w, n, edge = _sector_frame(max_eosin_ratio, stains)
    od = np.asarray(od, dtype=np.float32)
    r, g, b = od[..., 0], od[..., 1], od[..., 2]
    pu = u[0] * r + u[1] * g + u[2] * b
    pw = w[0] * r + w[1] * g + w[2] * b
    pn = n[0] * r + n[1] * g + n[2] * b
    cos2 = np.float32(np.cos(np.radians(max_angle_deg)) ** 2)
    norm2 = pu * pu + pw * pw + pn * pn
    edge_u, edge_w = np.float32(edge @ u), np.float32(edge @ w)
    beyond_edge = pu * edge_w - pw * edge_u < 0  # past the eosin-side edge
    # Cosine to the nearest ray: H below the sector, the edge beyond it, else the
    # projection onto the plane.
    near = np.where(pw < 0, pu, np.where(beyond_edge, pu * edge_u + pw * edge_w, 0))
    inside = (pw >= 0) & ~beyond_edge
    ok = np.where(inside, pn * pn <= (1 - cos2) * norm2, (near >= 0) & (near * near >= cos2 * norm2))
    return ~ok & (norm2 > 0)


def separate_stains(rgb: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """:func:`deconvolve` the optical density of a ``uint8`` RGB image, shape (H, W, 3)."""
    return deconvolve(optical_density(rgb), matrix)


def distinct_colours(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct colours of a ``uint8`` RGB image, how many pixels have each, and each pixel's.

    A stained slide has far fewer distinct colours than pixels, so a per-colour
    transform (CIELAB for Reinhard) is computed once per colour, not once per pixel.

    Returns
    -------
    colours : ndarray, uint8, shape (m, 3)
        In increasing order of their packed value (as ``np.unique``'s).
    counts : ndarray of int, shape (m,)
    inverse : ndarray of int, shape (H * W,)
        ``colours[inverse]`` is the image's pixels in row-major order.
    """
    codes, first_seen = _colour_codes(rgb)
    # A hash table (pandas.factorize) then a sort of the few distinct colours: the same
    # result as np.unique(..., return_inverse=True), whose sort of every pixel is ~10x slower.
    order = np.argsort(codes)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    inverse = rank[first_seen]
    counts = np.bincount(inverse, minlength=len(codes))
    return _unpack(codes[order]), counts, inverse


def _colour_codes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct packed colours (0xRRGGBB) of a ``uint8`` RGB image in order of first
    appearance, and each pixel's index into them (row-major)."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
    import pandas as pd

    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    first_seen, codes = pd.factorize(packed.ravel(), sort=False)
    return codes, first_seen


def _unpack(codes: np.ndarray) -> np.ndarray:
    """Packed colours (0xRRGGBB) as ``uint8`` rows (m, 3)."""
    return np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], axis=-1).astype(np.uint8)


def _lab_of_colours(colours: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of ``uint8`` colours, shape (m, 3) -> float64 (m, 3)."""
    from skimage.color import rgb2lab

    return rgb2lab(colours[:, None, :])[:, 0, :]


def _weighted_statistics(lab: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean and standard deviation of each channel of ``lab`` (m, 3), colour i counted ``counts[i]`` times."""
    weights = counts / counts.sum()
    mean = weights @ lab
    return np.stack([mean, np.sqrt(weights @ (lab - mean) ** 2)])


def lab_statistics(rgb: np.ndarray) -> np.ndarray:
    """Mean and standard deviation of each CIELAB channel over a ``uint8`` image's pixels, shape (2, 3) [3]_."""
    colours, counts, _ = distinct_colours(rgb)
    return _weighted_statistics(_lab_of_colours(colours), counts)


def reinhard_normalise(rgb: np.ndarray, *, target: np.ndarray, source: np.ndarray | None = None) -> np.ndarray:
    """Reinhard colour transfer [3]_: match each CIELAB channel's mean and std to ``target``.

    Computed once per distinct colour (:func:`distinct_colours`): the same as per pixel.
    With ``source`` given, the colours are neither sorted nor counted.

    Parameters
    ----------
    rgb : ndarray, uint8, shape (H, W, 3)
    target : ndarray, shape (2, 3)
        :func:`lab_statistics` of the reference image.
    source : ndarray, shape (2, 3), optional
        The statistics to map from, when they are not ``rgb``'s own: a slide's,
        so that each of its tiles is mapped alike.

    Returns
    -------
    ndarray, uint8, shape (H, W, 3)
    """
    from skimage.color import lab2rgb

    target = np.asarray(target, dtype=np.float64)
    if source is None:
        colours, counts, inverse = distinct_colours(rgb)
        lab = _lab_of_colours(colours)
        mean, std = _weighted_statistics(lab, counts)  # summed in the colours' sorted order: reproducible
    else:  # each colour is mapped on its own: no counts, and any order of the colours does
        codes, inverse = _colour_codes(rgb)
        lab = _lab_of_colours(_unpack(codes))
        mean, std = np.asarray(source, dtype=np.float64)
    lab = (lab - mean) / np.maximum(std, 1e-6) * target[1] + target[0]
    with warnings.catch_warnings():
        # Colours pushed outside the sRGB gamut are clipped, here as below.
        warnings.filterwarnings("ignore", message="Conversion from CIE-LAB", category=UserWarning)
        mapped = lab2rgb(lab[:, None, :])[:, 0, :]
    mapped = np.round(np.clip(mapped, 0.0, 1.0) * 255.0).astype(np.uint8)
    return mapped[inverse].reshape(np.shape(rgb))
