"""Nuclei segmentation on the haematoxylin channel: threshold, seeds, watershed, size filters.

The method follows the nuclei segmentation of Hu et al. (2019) in its steps —
foreground by thresholding the haematoxylin channel, holes filled, touching nuclei
split by a Laplacian-of-Gaussian blob filter, small objects removed — but replaces
their fixed settings, tuned to one scanner, by ones adapted to each image:

- the threshold is Otsu's on the image's tissue pixels (theirs: 160 of 255),
  sharpened by a local-contrast test so that crowded nuclei separate;
- lengths are physical (µm) and follow the pixel size, or, when that is unknown,
  a scale estimated from the image (:func:`estimate_nucleus_radius`);
- seeds are the maxima of a Laplacian of Gaussian at the typical nucleus scale,
  grown by a marker-controlled watershed on the distance transform and the blob
  response (their max-clustering plays the same part);
- objects whose colour is not a haematoxylin-dominant mix of H and E (pigment,
  ink, dye, red blood cells) are dropped (:func:`drop_stain_artefacts`).

References
----------
.. [1] Otsu, "A threshold selection method from gray-level histograms", IEEE TSMC 9(1), 1979.
.. [2] Lindeberg, "Feature detection with automatic scale selection", IJCV 30(2), 1998.
.. [3] Al-Kofahi et al., "Improved automatic detection and segmentation of cell nuclei
   in histopathology images", IEEE TBME 57(4), 2010.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "Nuclei",
    "area_limits_px",
    "blob_scale",
    "disk",
    "distance_to_background",
    "downsample_mean",
    "drop_stain_artefacts",
    "estimate_nucleus_radius",
    "fill_holes",
    "find_landscape_maxima",
    "find_nuclei",
    "foreground_threshold",
    "landscape_maxima",
    "nucleus_at",
    "nucleus_near",
    "otsu_threshold",
    "segment_nuclei",
    "upsample_labels",
]


def disk(radius: float) -> np.ndarray:
    """A boolean disc footprint of the given radius (at least one pixel)."""
    r = max(1, int(round(radius)))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return xx * xx + yy * yy <= r * r


def downsample_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Block-average a 2-D array by an integer ``factor`` (edges padded by replication)."""
    if factor == 1:
        return np.asarray(image, dtype=np.float32)
    h, w = image.shape
    ph, pw = -h % factor, -w % factor
    a = np.pad(np.asarray(image, dtype=np.float32), ((0, ph), (0, pw)), mode="edge")
    return a.reshape(a.shape[0] // factor, factor, a.shape[1] // factor, factor).mean(axis=(1, 3))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """A 2-D ``mask`` with its holes filled: the parts of its background (4-connected) that do not reach the edge.

    The same pixels as :func:`scipy.ndimage.binary_fill_holes`, which grows the outside
    in through the background one pixel per pass; labelling the background once is
    about 3.5× faster on a 2048² tile.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.size == 0:
        return mask.copy()
    background, n = ndi.label(~mask)
    outside = np.zeros(n + 1, bool)
    for edge in (background[0], background[-1], background[:, 0], background[:, -1]):
        outside[edge] = True
    outside[0] = False  # the mask itself
    return ~outside[background]


def distance_to_background(mask: np.ndarray) -> np.ndarray:
    """Each pixel's Euclidean distance to the nearest background pixel of a 2-D ``mask`` (float64).

    The values of :func:`scipy.ndimage.distance_transform_edt`, bit for bit: with the
    ``edt`` package (installed with the ``slides`` extra) the squared distances come
    from its one-thread transform, about 3× faster on a 2048² tile, as float32
    integers, exact below 2**24 (4,096 px), and their square roots are taken in
    float64 as scipy takes them. Scipy's own without ``edt``, for a mask without
    background (whose distances scipy leaves undefined) or one with a distance past that.
    """
    mask = np.asarray(mask, dtype=bool)
    try:
        import edt
    except ImportError:
        edt = None
    if edt is not None and not mask.all():
        squared = edt.edtsq(mask, black_border=False, parallel=1)
        if squared.max() < 2**24:
            return np.sqrt(squared, dtype=np.float64)
    return ndi.distance_transform_edt(mask)


def upsample_labels(labels: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour inverse of :func:`downsample_mean` for a label image, cropped to ``shape``."""
    if factor == 1:
        return labels
    return np.repeat(np.repeat(labels, factor, axis=0), factor, axis=1)[: shape[0], : shape[1]]


def otsu_threshold(values: np.ndarray, *, max_values: int = 200_000) -> float:
    """Otsu's threshold [1]_ of ``values`` (an even stride of at most ``max_values`` of them)."""
    from skimage.filters import threshold_otsu

    values = np.asarray(values).ravel()
    if len(values) > max_values:
        values = values[:: int(np.ceil(len(values) / max_values))]
    return float(threshold_otsu(values))


def foreground_threshold(smooth: np.ndarray, tissue: np.ndarray, *, factor: float) -> float:
    """``factor`` × Otsu's threshold [1]_ of the smoothed haematoxylin over the tissue pixels."""
    return otsu_threshold(smooth[tissue]) * factor


def estimate_nucleus_radius(
    foreground: np.ndarray,
    *,
    max_pixels: int = 150_000,
    sigma_range: tuple[float, float] = (1.0, 16.0),
    steps_per_octave: int = 2,
) -> float | None:
    """Typical radius, in pixels, of the blobs of a nuclei foreground mask.

    Automatic scale selection [2]_: the scale-normalised Laplacian of Gaussian of the
    (hole-filled) mask is computed over a range of scales, its maxima in space and
    scale are the blobs, and the typical radius is the median of the blobs' radii
    ``σ√2``, weighted by response × σ² (so by area: a field of small specks does not
    outvote the nuclei) and restricted to the stronger half of the responses. The
    mask is first block-averaged to at most ``max_pixels``.

    Parameters
    ----------
    foreground : ndarray of bool, shape (H, W)
    max_pixels : int
    sigma_range : (float, float)
        Scales tried, in pixels of the reduced mask.
    steps_per_octave : int

    Returns
    -------
    float or None
        None when the mask holds no blob.
    """
    factor = max(1, int(np.ceil(np.sqrt(foreground.size / max_pixels))))
    mask = fill_holes(downsample_mean(foreground, factor) > 0.5)
    if not mask.any():
        return None
    source = mask.astype(np.float32)
    n = int(round(np.log2(sigma_range[1] / sigma_range[0]) * steps_per_octave)) + 1
    sigmas = sigma_range[0] * 2.0 ** (np.arange(n) / steps_per_octave)
    response = np.stack([-ndi.gaussian_laplace(source, s) * s * s for s in sigmas])
    peaks = (response == ndi.maximum_filter(response, size=3, mode="nearest")) & (response > 0) & mask
    peaks[0] = peaks[-1] = False  # a maximum at the edge of the scale range is not a blob's scale
    k, y, x = np.nonzero(peaks)
    if len(k) == 0:
        return None
    strength = response[k, y, x]
    strong = strength >= np.median(strength)
    weights = np.bincount(k[strong], weights=strength[strong] * sigmas[k[strong]] ** 2, minlength=n)
    cumulative = np.concatenate([[0.0], np.cumsum(weights)])
    edges = np.log(sigmas[0]) + (np.arange(n + 1) - 0.5) * np.log(2.0) / steps_per_octave
    sigma = float(np.exp(np.interp(cumulative[-1] / 2, cumulative, edges)))
    return sigma * np.sqrt(2.0) * factor


def segment_nuclei(
    haematoxylin: np.ndarray,
    *,
    tissue: np.ndarray,
    radius_px: float,
    smooth_px: float,
    threshold_factor: float,
    local_window: float,
    local_contrast: float,
    opening_px: float,
    seed_distance_px: float,
    min_area_px: float,
    max_area_px: float,
    threshold: float | None = None,
    blob_weight: float = 0.5,
    landscape_scale: tuple[float, float] | None = None,
) -> np.ndarray:
    """Label the nuclei of a haematoxylin concentration image.

    1. Foreground: the smoothed channel above ``threshold_factor`` × Otsu's threshold
       of the tissue pixels [1]_ and, when ``local_window > 0``, above
       ``local_contrast`` × its mean over a square of half-side ``local_window`` radii;
       holes filled (vesicular nuclei are dark rims around pale chromatin); opened
       with a disc of ``opening_px``.
    2. Seeds: maxima of the scale-normalised Laplacian of Gaussian at
       ``σ = radius_px / √2`` (the scale of a blob of that radius [2]_), at least
       ``seed_distance_px`` apart, inside the foreground; computed on the channel
       with the filled holes set to their rim's mean.
    3. Marker-controlled watershed [3]_ on the distance transform of the foreground
       (touching nuclei split at their neck) plus ``blob_weight`` times the blob
       filter's response, each divided by its maximum over the image (crowded nuclei
       that touch along a wide front, without a neck, split along the paler chromatin
       between them); a foreground part without a seed stays background.
    4. Nuclei with an area outside ``[min_area_px, max_area_px]`` removed; labels
       renumbered 1..n in raster order of their seeds.

    Parameters
    ----------
    haematoxylin : ndarray of float, shape (H, W)
        Haematoxylin concentration (optical density units).
    tissue : ndarray of bool, shape (H, W)
        Pixels that are tissue, not glass; the threshold is computed on them.
    radius_px, smooth_px, threshold_factor, local_window, local_contrast, opening_px,
    seed_distance_px, min_area_px, max_area_px
        See above; lengths in pixels of ``haematoxylin``.
    threshold : float, optional
        The foreground threshold on the smoothed channel, when already known
        (:func:`foreground_threshold`); it replaces the Otsu threshold × factor.
    blob_weight : float
        See step 3; 0 splits on the distance transform alone.
    landscape_scale : (float, float), optional
        The maxima of the distance transform and of the blob response that step 3
        divides by, when already known (:func:`landscape_maxima` of a slide: a
        tile's own maxima would split touching nuclei otherwise than the slide's);
        else this image's.

    Returns
    -------
    ndarray of int32, shape (H, W)
        0 background, 1..n the nuclei.
    """
    from skimage.segmentation import watershed

    found = _foreground_and_blob(
        haematoxylin,
        tissue,
        radius_px=radius_px,
        smooth_px=smooth_px,
        threshold_factor=threshold_factor,
        local_window=local_window,
        local_contrast=local_contrast,
        opening_px=opening_px,
        threshold=threshold,
    )
    if found is None:
        return np.zeros(np.shape(haematoxylin), np.int32)
    foreground, blob = found
    window = 2 * max(1, int(round(seed_distance_px))) + 1
    seeds = (blob == ndi.maximum_filter(blob, size=window)) & foreground & (blob > 0)
    markers, _ = ndi.label(seeds)
    distance = distance_to_background(foreground)
    distance_max, blob_max = (float(distance.max()), float(blob.max())) if landscape_scale is None else landscape_scale
    landscape = distance / max(distance_max, 1e-6)
    if blob_weight > 0:
        landscape = landscape + blob_weight * np.maximum(blob, 0) / max(blob_max, 1e-6)
    labels = watershed(-landscape, markers, mask=foreground)
    return _filter_areas(labels, min_area_px, max_area_px)


def landscape_maxima(haematoxylin: np.ndarray, tissue: np.ndarray, **settings) -> tuple[float, float] | None:
    """The maxima of the distance transform and of the blob response that :func:`segment_nuclei`
    divides its watershed landscape by (step 3); None without foreground.

    ``settings``: those of :func:`segment_nuclei`'s steps 1 and 2 (``radius_px``,
    ``smooth_px``, ``threshold_factor``, ``local_window``, ``local_contrast``,
    ``opening_px``, ``threshold``).
    """
    found = _foreground_and_blob(haematoxylin, tissue, **settings)
    if found is None:
        return None
    foreground, blob = found
    return float(distance_to_background(foreground).max()), float(blob.max())


def _foreground_and_blob(
    haematoxylin, tissue, *, radius_px, smooth_px, threshold_factor, local_window, local_contrast, opening_px,
    threshold=None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Steps 1 and 2 of :func:`segment_nuclei` (its arguments): the foreground and the blob response;
    None without foreground."""
    h = np.asarray(haematoxylin, dtype=np.float32)
    smooth = ndi.gaussian_filter(h, smooth_px) if smooth_px > 0 else h
    if not tissue.any():
        return None
    if threshold is None:
        threshold = foreground_threshold(smooth, tissue, factor=threshold_factor)
    foreground = smooth > threshold
    if local_window > 0:
        side = 2 * max(1, int(round(local_window * radius_px))) + 1
        foreground &= smooth > local_contrast * ndi.uniform_filter(smooth, side)
    filled = fill_holes(foreground)  # before the opening, which would break thin rims
    holes = filled & ~foreground
    foreground = filled
    if opening_px >= 0.5:
        foreground = ndi.binary_opening(foreground, disk(opening_px))
    if not foreground.any():
        return None

    # Seeds come from the channel with each filled hole set to its rim's mean, so that
    # a vesicular nucleus is one blob, not a ring of them.
    seed_source = _fill_holes_with_rim(h, filled, holes)
    sigma = radius_px / np.sqrt(2.0)
    return foreground, -ndi.gaussian_laplace(seed_source, sigma) * sigma * sigma


def _fill_holes_with_rim(h: np.ndarray, filled: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """``h`` with each hole of the foreground set to the mean of its object's other pixels."""
    if not holes.any():
        return h
    parts, n = ndi.label(filled)
    rim = np.where(holes, 0, parts)
    mean = ndi.mean(h, rim, index=np.arange(1, n + 1))
    out = h.copy()
    out[holes] = np.asarray(mean, np.float32)[parts[holes] - 1]
    return out


def drop_stain_artefacts(
    labels: np.ndarray, rgb: np.ndarray, *, max_angle_deg: float, stains: np.ndarray | None = None
) -> np.ndarray:
    """Remove the objects whose colour no haematoxylin-stained nucleus can have.

    An object's mean optical density must lie within ``max_angle_deg`` of the
    haematoxylin-dominant mixtures of H and E
    (:func:`cellgan.segment.stain.haematoxylin_sector_angle`); black pigment, ink,
    blue marking dye and red blood cells lie farther. Hu et al. (2019) threshold the
    haematoxylin channel only, which such artefacts pass because
    colour deconvolution gives every dark pixel some haematoxylin.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        0 background, 1..n the objects.
    rgb : ndarray, uint8, shape (H, W, 3)
        The image the labels were found in.
    stains : ndarray, shape (3, 3), optional
        The stain matrix the image was deconvolved with; None: the reference.
    max_angle_deg : float
        90 or more keeps every object (a non-negative optical density is always
        less than 90 degrees from haematoxylin).

    Returns
    -------
    ndarray of int32, shape (H, W)
        The kept objects renumbered 1..m in their previous order.
    """
    from cellgan.segment.stain import haematoxylin_sector_angle, optical_density

    n = int(labels.max())
    if n == 0 or max_angle_deg >= 90:
        return labels
    inside = labels > 0
    ids = labels[inside]
    od = optical_density(rgb[inside])
    count = np.maximum(np.bincount(ids, minlength=n + 1), 1)
    mean = np.stack([np.bincount(ids, weights=od[:, c], minlength=n + 1) for c in range(3)], axis=1)
    angle = haematoxylin_sector_angle(mean / count[:, None], stains=stains)
    return _keep(labels, np.nan_to_num(angle, nan=180.0) <= max_angle_deg)


def _filter_areas(labels: np.ndarray, min_area: float, max_area: float) -> np.ndarray:
    area = np.bincount(labels.ravel())
    return _keep(labels, (area >= min_area) & (area <= max_area))


def _keep(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``labels`` with only the labels where ``keep`` (indexed by label) is true, renumbered."""
    keep = np.asarray(keep, bool).copy()
    keep[0] = False
    new_ids = np.zeros(len(keep), np.int32)
    new_ids[keep] = np.arange(1, keep.sum() + 1, dtype=np.int32)
    return new_ids[labels]


@dataclass(frozen=True)
class Nuclei:
    """The nuclei of one image.

    Attributes
    ----------
    labels : ndarray of int32, shape (H, W)
        0 background, 1..n the nuclei, at the image's resolution.
    mpp : float or None
        The pixel size used, when known (given or read from the file).
    scale_mpp : float
        The pixel size the segmentation assumed: ``mpp``, or the estimate.
    """

    labels: np.ndarray
    mpp: float | None
    scale_mpp: float


def find_nuclei(
    haematoxylin: np.ndarray,
    tissue: np.ndarray,
    *,
    mpp: float | None,
    config,
    threshold: float | None = None,
    landscape_scale: tuple[float, float] | None = None,
) -> Nuclei:
    """Segment nuclei with :func:`segment_nuclei`, settings from a ``SegmentConfig``.

    Physical lengths become pixels with ``mpp``; when it is None, with the scale
    ``config.nucleus_radius_um / r``, ``r`` the image's typical nucleus radius in
    pixels (:func:`estimate_nucleus_radius` on the plain Otsu foreground), and the
    area limits are ``config.min_area_px``/``max_area_px`` when those are set. The
    image is block-averaged by the integer factor closest to ``config.work_mpp /
    scale`` (at least 1) and segmented; the labels are brought back to full size,
    their blocky rims trimmed to the full-resolution foreground. The labels have the
    shape of ``haematoxylin`` whatever the factor, also when no nucleus is found.

    Parameters
    ----------
    haematoxylin : ndarray of float, shape (H, W)
    tissue : ndarray of bool, shape (H, W)
    mpp : float or None
    config : SegmentConfig
    threshold : float, optional
        The foreground threshold at the working scale, when known beforehand (a
        slide's, the same for each of its tiles); else Otsu's of this image.
    landscape_scale : (float, float), optional
        The watershed landscape's maxima at the working scale, when known beforehand
        (a slide's: :func:`find_landscape_maxima`); else this image's.

    Returns
    -------
    Nuclei
    """
    work = _working_scale(haematoxylin, tissue, mpp=mpp, config=config, threshold=threshold)
    labels = segment_nuclei(
        work.haematoxylin,
        tissue=work.tissue,
        **work.foreground,
        seed_distance_px=config.seed_distance_um / work.scale,
        min_area_px=work.area_px[0],
        max_area_px=work.area_px[1],
        blob_weight=config.watershed_blob_weight,
        landscape_scale=landscape_scale,
    )
    factor = work.factor
    if factor > 1 and labels.any():
        labels = _refine_outlines(
            labels, haematoxylin, factor, threshold=work.foreground["threshold"], smooth_px=config.smooth_um / work.mpp
        )
    elif factor > 1:  # no nucleus: an empty label image of the full size
        labels = np.zeros(haematoxylin.shape, np.int32)
    return Nuclei(labels, mpp, work.mpp)


def find_landscape_maxima(
    haematoxylin: np.ndarray, tissue: np.ndarray, *, mpp: float, config, threshold: float
) -> tuple[float, float] | None:
    """:func:`landscape_maxima` of an image with the settings :func:`find_nuclei` gives it."""
    work = _working_scale(haematoxylin, tissue, mpp=mpp, config=config, threshold=threshold)
    return landscape_maxima(work.haematoxylin, work.tissue, **work.foreground)


@dataclass(frozen=True)
class _WorkingScale:
    """An image block-averaged to the working scale, and the settings of :func:`segment_nuclei`'s
    steps 1 and 2 there (``foreground``); ``mpp`` the image's (given or estimated) pixel size,
    ``scale`` the working one, ``area_px`` the area limits in working pixels."""

    haematoxylin: np.ndarray
    tissue: np.ndarray
    factor: int
    mpp: float
    scale: float
    area_px: tuple[float, float]
    foreground: dict


def _working_scale(haematoxylin, tissue, *, mpp, config, threshold) -> _WorkingScale:
    """What :func:`find_nuclei` segments: the image at the working scale, and its settings."""
    scale = mpp
    if scale is None:  # no blob (and so no nucleus to find): any scale will do
        scale = blob_scale(haematoxylin, tissue, config) or config.work_mpp
    factor = max(1, int(np.floor(config.work_mpp / scale + 0.5)))
    work_scale = scale * factor
    min_area, max_area = (a / factor**2 for a in area_limits_px(config, mpp=mpp, scale_mpp=scale))
    small = downsample_mean(haematoxylin, factor)
    small_tissue = downsample_mean(tissue, factor) > 0.5
    smooth_px = config.smooth_um / work_scale
    if threshold is None and factor > 1 and small_tissue.any():
        threshold = foreground_threshold(
            ndi.gaussian_filter(small, smooth_px), small_tissue, factor=config.threshold_factor
        )
    foreground = {
        "radius_px": config.nucleus_radius_um / work_scale,
        "smooth_px": smooth_px,
        "threshold_factor": config.threshold_factor,
        "local_window": config.local_window,
        "local_contrast": config.local_contrast,
        "opening_px": config.opening_um / work_scale,
        "threshold": threshold,
    }
    return _WorkingScale(small, small_tissue, factor, scale, work_scale, (min_area, max_area), foreground)


def area_limits_px(config, *, mpp: float | None, scale_mpp: float) -> tuple[float, float]:
    """The nucleus area range in pixels: ``config``'s µm² range at ``mpp`` (or at the
    estimated ``scale_mpp``, unless ``min_area_px``/``max_area_px`` are set)."""
    low = config.min_area_um2 / scale_mpp**2
    high = config.max_area_um2 / scale_mpp**2
    if mpp is None and config.min_area_px is not None:
        low = config.min_area_px
    if mpp is None and config.max_area_px is not None:
        high = config.max_area_px
    return low, high


def nucleus_at(
    haematoxylin: np.ndarray,
    point_xy,
    *,
    radius_px: float,
    smooth_px: float,
    min_area_px: float,
    max_area_px: float,
) -> tuple[np.ndarray, tuple[int, int]] | None:
    """The nucleus around a given point, thresholded locally (for pale nuclei a global
    threshold misses).

    In a window of half-side ``3 × radius_px`` around the point, the smoothed
    haematoxylin above the window's own Otsu threshold, holes filled, restricted to
    ``2 × radius_px`` from the point; the connected part under the point (or the
    nearest within ``radius_px / 2``), filled to its convex hull (a pale nucleus
    often shows only part of its rim), is the nucleus if its area is in range.

    Parameters
    ----------
    haematoxylin : ndarray of float, shape (H, W)
    point_xy : (float, float)
    radius_px, smooth_px, min_area_px, max_area_px : float

    Returns
    -------
    (mask, (x0, y0)) or None
        A boolean mask of the window whose top-left pixel is ``(x0, y0)``.
    """
    height, width = haematoxylin.shape
    x, y = point_xy
    half = max(2, int(np.ceil(3 * radius_px)))
    cx, cy = int(np.clip(round(x), 0, width - 1)), int(np.clip(round(y), 0, height - 1))
    x0, x1 = max(0, cx - half), min(width, cx + half + 1)
    y0, y1 = max(0, cy - half), min(height, cy + half + 1)
    window = np.asarray(haematoxylin[y0:y1, x0:x1], dtype=np.float32)
    if smooth_px > 0:
        window = ndi.gaussian_filter(window, smooth_px)
    if window.max() <= window.min():
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1]
    near = (xx - x) ** 2 + (yy - y) ** 2 <= (2 * radius_px) ** 2
    mask = fill_holes(window > otsu_threshold(window)) & near
    parts, n = ndi.label(mask)
    if n == 0:
        return None
    distance, (iy, ix) = ndi.distance_transform_edt(parts == 0, return_indices=True)
    if distance[cy - y0, cx - x0] > radius_px / 2:
        return None
    part = parts[iy[cy - y0, cx - x0], ix[cy - y0, cx - x0]]
    from skimage.morphology import convex_hull_image

    mask = convex_hull_image(parts == part)  # closes the open rims of pale nuclei
    if not min_area_px <= mask.sum() <= max_area_px:
        return None
    return mask, (x0, y0)


def nucleus_near(labels: np.ndarray, points: np.ndarray, radius: float) -> np.ndarray:
    """Label of the nucleus under each point, else of the nearest within ``radius``, else 0.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        0 background, else the nucleus's label.
    points : ndarray of float, shape (n, 2)
        ``(x, y)`` pixel coordinates (rounded to the nearest pixel, clipped to the image).
    radius : float
        In pixels.

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    if len(points) == 0:
        return np.zeros(0, np.int64)
    rows = np.clip(np.round(points[:, 1]).astype(np.int64), 0, labels.shape[0] - 1)
    cols = np.clip(np.round(points[:, 0]).astype(np.int64), 0, labels.shape[1] - 1)
    hit = labels[rows, cols].astype(np.int64)
    missing = np.flatnonzero(hit == 0)
    if len(missing) and labels.any():
        distance, (iy, ix) = ndi.distance_transform_edt(labels == 0, return_indices=True)
        near = distance[rows[missing], cols[missing]] <= radius
        m = missing[near]
        hit[m] = labels[iy[rows[m], cols[m]], ix[rows[m], cols[m]]]
    return hit


def _refine_outlines(labels: np.ndarray, haematoxylin: np.ndarray, factor: int, *, threshold: float, smooth_px: float):
    """Up-sample labels found at reduced resolution, trimming their blocky rims.

    A pixel on the rim of a nucleus (the outer ring of blocks) stays only where the
    full-resolution smoothed haematoxylin is above the threshold; the nucleus's
    interior is kept whole, so that pale chromatin does not punch holes in it.
    """
    shape = haematoxylin.shape
    interior = upsample_labels(ndi.binary_erosion(labels > 0), factor, shape)
    labels = upsample_labels(labels, factor, shape)
    fine = ndi.gaussian_filter(np.asarray(haematoxylin, dtype=np.float32), smooth_px) > threshold
    return _filter_areas(np.where(fine | interior, labels, 0), 1, np.inf)


def blob_scale(haematoxylin: np.ndarray, tissue: np.ndarray, config, *, max_pixels: int = 150_000) -> float | None:
    """The pixel size at which the image's typical nucleus has radius ``nucleus_radius_um``.

    Computed on the image block-averaged to at most ``max_pixels``: the Otsu
    foreground of the lightly smoothed haematoxylin, then :func:`estimate_nucleus_radius`.
    None when the image holds nothing blob-like.
    """
    factor = max(1, int(np.ceil(np.sqrt(haematoxylin.size / max_pixels))))
    smooth = ndi.gaussian_filter(downsample_mean(haematoxylin, factor), 1.0)
    small_tissue = downsample_mean(tissue, factor) > 0.5
    if not small_tissue.any():
        return None
    foreground = smooth > otsu_threshold(smooth[small_tissue])
    radius = estimate_nucleus_radius(foreground, max_pixels=foreground.size)
    return None if radius is None else config.nucleus_radius_um / (radius * factor)
