"""One H&E image in memory → its nuclei: table, patches, label mask and overlay.

Stage 1 of Hu et al. (2019), as their code runs it: optional Reinhard colour normalisation,
stain separation, nuclei segmentation on the haematoxylin channel, one 32×32 patch
per nucleus. :func:`segment_image` is the entry point; the helpers below it
(:func:`prepare`, :func:`prepared_nuclei`, :func:`cell_patches`, :func:`finish_table`,
:func:`overlay_outlines`) are shared with :mod:`cellgan.segment.points` and
:mod:`cellgan.segment.folder`.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cellgan.errors import CellganError
from cellgan.io.cellstore import PATCH_SIZE, TABLE_COLUMNS
from cellgan.io.images import to_rgb_uint8
from cellgan.segment.colour import colour_statistics
from cellgan.segment.config import SegmentConfig
from cellgan.segment.features import cell_table, outline_mask
from cellgan.segment.nuclei import Nuclei, drop_stain_artefacts, find_nuclei
from cellgan.segment.patches import context_patches, faded_patches, masked_patches
from cellgan.segment.stain import (
    deconvolve,
    estimate_stains,
    lab_statistics,
    off_stain_pixels,
    optical_density,
    reference_stain_matrix,
    reinhard_normalise,
)

__all__ = [
    "NO_NUCLEUS",
    "OUTLINE_COLOUR",
    "CellResult",
    "ImageStatistics",
    "NoTissueError",
    "NotHAndEError",
    "SegmentationError",
    "segment_image",
]

#: Why an image with tissue holds no cell (:attr:`CellResult.empty_reason`).
NO_NUCLEUS = "no nucleus found"

#: Colour of the nuclei outlines in overlays (green stands out on H&E's pink and purple).
OUTLINE_COLOUR = (0, 255, 0)

#: At most this many pixels (an even stride) go into the Macenko estimate and the
#: tests of :func:`refuse_non_h_and_e`.
_STAIN_SAMPLE_PIXELS = 250_000

#: A pixel with no channel above this (of 255) is near black. An image of which half
#: the pixels are has a dark background, as fluorescence and dark field have: in H&E
#: even the darkest fields, of dense lymphocytes (Kather et al. 2016: median brightest
#: channel 52), have at most 13 % such pixels.
_NEAR_BLACK = 32

#: Tissue whose channels differ by at most this much (of 255) in 99 % of its pixels
#: has no colour: H&E's pink and purple differ by 30 or more, a JPEG of a
#: greyscale image by 3 or less.
_GREY_SPREAD = 8


class SegmentationError(CellganError, ValueError):
    """An image that cannot be segmented: blank (no tissue), smaller than a patch, or not H&E."""


class NotHAndEError(SegmentationError):
    """An image that is not a brightfield H&E image: greyscale, or on a dark background."""


class NoTissueError(SegmentationError):
    """An image (or crop) of blank glass: too few stained pixels to hold tissue.

    :func:`segment_image` turns it into an image without cells; the entry points
    that must find a cell (:mod:`cellgan.segment.points`) raise it.
    """

    def __init__(self, message: str, *, tissue_fraction: float):
        super().__init__(message)
        self.tissue_fraction = tissue_fraction


@dataclass(frozen=True)
class CellResult:
    """The cells of one image.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per cell, the columns of ``cellgan.io.cellstore.TABLE_COLUMNS``.
    patches : ndarray, uint8, shape (n, 32, 32, 3)
        Row i is cell ``cell_id`` i.
    label_mask : ndarray of uint32, shape (H, W)
        0 background, ``cell_id + 1`` the cell's nucleus.
    overlay : ndarray, uint8, shape (H, W, 3)
        The image with the nuclei outlined in :data:`OUTLINE_COLOUR`.
    image_info : dict
        What is known of the whole image (:func:`image_info`): its size, pixel size,
        tissue fraction and colour statistics; written beside the cells.
    empty_reason : str
        Why the image holds no cell (blank glass, or :data:`NO_NUCLEUS`); empty when it has cells.
    """

    table: pd.DataFrame
    patches: np.ndarray
    label_mask: np.ndarray
    overlay: np.ndarray
    image_info: dict = field(default_factory=dict)
    empty_reason: str = ""


@dataclass(frozen=True)
class Prepared:
    """An image ready for nuclei segmentation (the output of :func:`prepare`)."""

    rgb: np.ndarray  # after optional Reinhard normalisation
    stains: np.ndarray  # (H, W, 3) concentrations: H, E, residual
    tissue: np.ndarray  # bool (H, W): stained, and not by an artefact
    matrix: np.ndarray  # (3, 3) stain vectors: H, E, residual
    tissue_fraction: float  # share of the pixels stained, before normalisation and artefacts


@dataclass(frozen=True)
class ImageStatistics:
    """What segmentation otherwise estimates from the whole image, fixed beforehand.

    A slide is segmented tile by tile, and each tile must be treated as a part of
    one image, not as an image of its own: its stain vectors, colour statistics and
    foreground threshold are the slide's (:mod:`cellgan.segment.slide`).

    Attributes
    ----------
    matrix : ndarray, shape (3, 3)
        Stain vectors: H, E, residual.
    lab : ndarray, shape (2, 3) or None
        The CIELAB means and standard deviations the Reinhard normalisation maps
        from (None: no normalisation asked).
    threshold : float or None
        The foreground threshold on the smoothed haematoxylin at the working scale.
    landscape_scale : (float, float) or None
        The maxima of the distance transform and of the blob response the watershed
        divides its landscape by (:func:`cellgan.segment.nuclei.landscape_maxima`).
    """

    matrix: np.ndarray
    lab: np.ndarray | None = None
    threshold: float | None = None
    landscape_scale: tuple[float, float] | None = None


@functools.lru_cache(maxsize=4)
def reinhard_target(path: str) -> np.ndarray:
    """The CIELAB statistics of the Reinhard reference image (or slide's overview) at ``path`` (cached)."""
    from cellgan.io.slides import image_or_overview

    return lab_statistics(image_or_overview(path))


def tissue_pixels(od: np.ndarray, config: SegmentConfig) -> np.ndarray:
    """The tissue: pixels whose optical density summed over the channels (od: (..., 3)) exceeds ``config.tissue_od``."""
    return od[..., 0] + od[..., 1] + od[..., 2] > config.tissue_od  # od.sum(axis=-1)'s values, 13x faster


def _tissue(od: np.ndarray, config: SegmentConfig, *, whole_image: bool = True) -> np.ndarray:
    """:func:`tissue_pixels`; NoTissueError when too few and the pixels are a ``whole_image`` (a slide's
    tile has the slide's tissue, however little its own)."""
    tissue = tissue_pixels(od, config)
    fraction = float(tissue.mean())
    if whole_image and fraction < config.min_tissue_fraction:
        raise NoTissueError(
            f"no tissue: {100 * fraction:.3f}% of pixels have optical density above {config.tissue_od} "
            f"(blank glass or a white image; at least {100 * config.min_tissue_fraction:g}% needed)",
            tissue_fraction=fraction,
        )
    return tissue


def _sample(image: np.ndarray) -> np.ndarray:
    """An even stride of at most about :data:`_STAIN_SAMPLE_PIXELS` pixels of an (H, W, ...) array."""
    stride = max(1, int(np.ceil(np.sqrt(image.shape[0] * image.shape[1] / _STAIN_SAMPLE_PIXELS))))
    return image[::stride, ::stride]


def refuse_non_h_and_e(rgb: np.ndarray, tissue: np.ndarray) -> None:
    """NotHAndEError when ``rgb`` cannot be a brightfield H&E image.

    Two tests, on an even stride of the pixels: a *dark background* (half the pixels
    or more with no channel above :data:`_NEAR_BLACK`: fluorescence or dark field,
    whose "tissue" would be the whole image), and *greyscale* (the tissue's
    channels equal to within :data:`_GREY_SPREAD` in 99 % of its pixels: without
    colour, colour deconvolution cannot tell haematoxylin from eosin).

    Parameters
    ----------
    rgb : ndarray, uint8, shape (H, W, 3)
    tissue : ndarray of bool, shape (H, W)
        The tissue pixels (:func:`_tissue`), the only ones the greyscale test looks at.

    Raises
    ------
    NotHAndEError
    """
    sample = _sample(rgb).reshape(-1, 3)
    brightest = sample.max(axis=1)
    black = float(np.mean(brightest <= _NEAR_BLACK))
    if black >= 0.5:
        raise NotHAndEError(
            f"not H&E-like (dark background): {100 * black:.0f}% of the pixels are near black (no channel above "
            f"{_NEAR_BLACK} of 255), where H&E is bright glass and stroma (a fluorescence or dark-field image?)"
        )
    spread = (brightest - sample.min(axis=1))[_sample(tissue).ravel()]
    if spread.size and float(np.quantile(spread, 0.99)) <= _GREY_SPREAD:
        raise NotHAndEError(
            "greyscale image: its tissue has no colour (red, green and blue within "
            f"{_GREY_SPREAD} of 255 of each other), so haematoxylin cannot be told from eosin; "
            "H&E needs the colour image"
        )


def _stain_matrix(rgb: np.ndarray, config: SegmentConfig) -> np.ndarray:
    """The (3, 3) stain vectors: Macenko's estimate on an even stride of pixels, or the reference."""
    if config.stain_vectors != "macenko":
        return reference_stain_matrix()
    return estimate_stains(_sample(rgb)).matrix


def prepare(
    rgb: np.ndarray, config: SegmentConfig, *, min_side: int = PATCH_SIZE, statistics: ImageStatistics | None = None
) -> Prepared:
    """Normalise (optionally), separate the stains and find the tissue of one image.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3)
    config : SegmentConfig
    min_side : int
        The smallest image side accepted.
    statistics : ImageStatistics, optional
        The stain vectors and colour statistics of the slide ``rgb`` is a tile of;
        the tests of :func:`refuse_non_h_and_e` and of the share of tissue were made
        on the slide.

    Returns
    -------
    Prepared

    Raises
    ------
    SegmentationError
        The image is smaller than ``min_side``.
    NoTissueError
        The image is blank glass (not raised with ``statistics``).
    NotHAndEError
        The image is greyscale or on a dark background (:func:`refuse_non_h_and_e`).
    """
    rgb = to_rgb_uint8(rgb)
    height, width = rgb.shape[:2]
    if min(height, width) < min_side:
        raise SegmentationError(f"image is {width}×{height} px, smaller than a {min_side}×{min_side} patch")
    od = optical_density(rgb)
    whole_image = statistics is None
    tissue = _tissue(od, config, whole_image=whole_image)  # before normalisation stretches blank glass into tissue
    tissue_fraction = float(tissue.mean())
    if statistics is None:
        refuse_non_h_and_e(rgb, tissue)
    if config.reinhard_reference is not None:
        source = None if statistics is None else statistics.lab
        rgb = reinhard_normalise(rgb, target=reinhard_target(str(config.reinhard_reference)), source=source)
        od = optical_density(rgb)
        tissue = _tissue(od, config, whole_image=whole_image)
    matrix = _stain_matrix(rgb, config) if statistics is None else statistics.matrix
    # Pigment, dye and blood are not tissue the threshold should adapt to: they would
    # raise it above the nuclei. Tested on every second pixel each way, enough for a
    # mask that only chooses the pixels of the threshold's statistics.
    if config.max_stain_angle_deg < 90:
        off = off_stain_pixels(od[::2, ::2], max_angle_deg=config.max_stain_angle_deg, stains=matrix)
        tissue &= ~np.repeat(np.repeat(off, 2, axis=0), 2, axis=1)[:height, :width]
    return Prepared(rgb, deconvolve(od, matrix), tissue, matrix, tissue_fraction)


def prepared_nuclei(
    prepared: Prepared, config: SegmentConfig, *, statistics: ImageStatistics | None = None
) -> Nuclei:
    """:func:`~cellgan.segment.nuclei.find_nuclei` on the haematoxylin channel, less the stain artefacts.

    ``statistics``: the foreground threshold and the watershed's landscape scale when
    fixed beforehand (a slide's); else the image's own.
    """
    fixed = ImageStatistics(prepared.matrix) if statistics is None else statistics
    nuclei = find_nuclei(
        prepared.stains[..., 0],
        prepared.tissue,
        mpp=config.mpp,
        config=config,
        threshold=fixed.threshold,
        landscape_scale=fixed.landscape_scale,
    )
    labels = drop_stain_artefacts(
        nuclei.labels, prepared.rgb, max_angle_deg=config.max_stain_angle_deg, stains=prepared.matrix
    )
    return dataclasses.replace(nuclei, labels=labels)


def overlay_outlines(rgb: np.ndarray, label_mask: np.ndarray) -> np.ndarray:
    """A copy of ``rgb`` with the outlines of ``label_mask``'s objects in :data:`OUTLINE_COLOUR`."""
    overlay = rgb.copy()
    overlay[outline_mask(label_mask)] = OUTLINE_COLOUR
    return overlay


def context_side(config: SegmentConfig) -> int:
    """Side of a context crop in pixels: ``context_um`` at the known pixel size, else ``context_px``."""
    return config.context_px if config.mpp is None else max(1, int(round(config.context_um / config.mpp)))


def refuse_crop_patches(config: SegmentConfig) -> None:
    """SegmentationError when ``config`` asks for crop patches, which only pre-cropped single cells have."""
    if config.patch_mode == "crop":
        raise SegmentationError(
            "crop patches are for pre-cropped single-cell images (cellgan cells from-folder); "
            "choose masked, context or faded patches for whole images"
        )


def cell_patches(rgb, label_mask, table, config: SegmentConfig, *, centres=None, cell_labels=None) -> np.ndarray:
    """One patch per table row, cut by ``config.patch_mode`` (masked, faded or context).

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3)
    label_mask : ndarray of int, shape (H, W)
    table : pandas.DataFrame
        Rows with the ``bbox_*`` columns (masked) or ``centroid_*`` columns (the others).
    config : SegmentConfig
    centres : ndarray, shape (n, 2), optional
        ``(x, y)`` crop centres instead of the table's centroids.
    cell_labels : ndarray of int, shape (n,), optional
        The label of each row's nucleus in ``label_mask``.

    Returns
    -------
    ndarray of uint8, shape (n, 32, 32, 3)

    Raises
    ------
    SegmentationError
        ``patch_mode`` is ``crop``, which only pre-cropped single cells have.
    """
    refuse_crop_patches(config)
    if config.patch_mode == "masked":
        bboxes = table[["bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"]].to_numpy()
        return masked_patches(rgb, label_mask, bboxes, cell_labels=cell_labels)
    if centres is None:
        centres = table[["centroid_x", "centroid_y"]].to_numpy()
    if config.patch_mode == "faded":
        return faded_patches(
            rgb,
            label_mask,
            centres,
            cell_labels=cell_labels,
            side_px=context_side(config),
            context_weight=config.context_weight,
        )
    return context_patches(rgb, centres, side_px=context_side(config))


def finish_table(table: pd.DataFrame, image_id: str) -> pd.DataFrame:
    """A copy of ``table`` with its ``image`` column set and the store's columns first."""
    table = table.copy()
    table["image"] = image_id
    return table[list(TABLE_COLUMNS) + [c for c in table.columns if c not in TABLE_COLUMNS]]


def image_info(rgb: np.ndarray, config: SegmentConfig, *, tissue_fraction: float) -> dict:
    """What the cell store keeps of a whole image beside its cells.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
        The image as read (before any normalisation).
    config : SegmentConfig
        Its ``mpp`` (None: unknown) is kept.
    tissue_fraction : float
        The share of its pixels that are stained (``config.tissue_od``).

    Returns
    -------
    dict
        ``height``, ``width`` (pixels), ``mpp`` (µm per pixel, or None),
        ``tissue_fraction`` and :func:`cellgan.segment.colour.colour_statistics` of an
        even stride of the pixels.
    """
    height, width = rgb.shape[:2]
    return {
        "height": int(height),
        "width": int(width),
        "mpp": None if config.mpp is None else float(config.mpp),
        "tissue_fraction": float(tissue_fraction),
        **colour_statistics(_sample(rgb)),
    }


def _without_cells(rgb: np.ndarray, config: SegmentConfig, *, image_id: str, reason: NoTissueError) -> CellResult:
    """The result of an image of blank glass: no cell, the image itself as overlay."""
    labels = np.zeros(rgb.shape[:2], np.uint32)
    table = cell_table(labels, np.zeros((*rgb.shape[:2], 2)), mpp=config.mpp, source="segment")
    info = image_info(rgb, config, tissue_fraction=reason.tissue_fraction)
    patches = np.zeros((0, PATCH_SIZE, PATCH_SIZE, 3), np.uint8)
    return CellResult(finish_table(table, image_id), patches, labels, rgb.copy(), image_info=info, empty_reason=str(reason))


def segment_image(
    rgb: np.ndarray, config: SegmentConfig | None = None, *, image_id: str, statistics: ImageStatistics | None = None
) -> CellResult:
    """Segment the nuclei of one H&E image and cut one patch per nucleus.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3)
        The image, ``uint8`` RGB (other types and shapes are converted with
        :func:`cellgan.io.images.to_rgb_uint8`).
    config : SegmentConfig, optional
        Settings; ``config.mpp`` is the pixel size (None: estimated, see
        :class:`SegmentConfig`).
    image_id : str
        Written to the table's ``image`` column.
    statistics : ImageStatistics, optional
        Stain vectors, colour statistics and threshold fixed beforehand (a slide's).

    Returns
    -------
    CellResult
        Blank glass (:class:`NoTissueError`) and tissue without a nucleus give a
        result without cells whose ``empty_reason`` says why: for image-level
        classification an image without nuclei is information, not a failure.

    Raises
    ------
    SegmentationError
        The image is smaller than a patch, or not H&E (:class:`NotHAndEError`).
    """
    config = SegmentConfig() if config is None else config
    rgb = to_rgb_uint8(rgb)
    try:
        prepared = prepare(rgb, config, statistics=statistics)
    except NoTissueError as err:
        return _without_cells(rgb, config, image_id=image_id, reason=err)
    labels = prepared_nuclei(prepared, config, statistics=statistics).labels
    table = cell_table(labels, prepared.stains, mpp=config.mpp, source="segment")
    patches = cell_patches(prepared.rgb, labels, table, config)
    overlay = overlay_outlines(prepared.rgb, labels)
    info = image_info(rgb, config, tissue_fraction=prepared.tissue_fraction)
    reason = "" if len(table) else NO_NUCLEUS
    return CellResult(
        finish_table(table, image_id), patches, labels.astype(np.uint32), overlay, image_info=info, empty_reason=reason
    )
