"""Whole-slide images: pyramidal files read region by region at a chosen pixel size.

OpenSlide's formats (Aperio ``.svs``, Hamamatsu ``.ndpi``, MIRAX ``.mrxs``, Leica
``.scn``, …) are read through ``openslide-python`` with the ``openslide-bin`` wheel;
OME-TIFF and other tiled pyramidal TIFFs through ``tiffslide`` (tifffile underneath),
which also reads OME-TIFF's sub-resolutions. Both libraries share OpenSlide's API, so
one :class:`Slide` serves both. They are imported on first use; without them a
:class:`SlideReadError` names the ``slides`` extra to install.

A slide is never read whole: its size comes from the header, and
:meth:`Slide.read` returns one region at a pixel size given in µm per pixel, read
from the nearest pyramid level at least as fine and resampled from there. The pixel
budget of :func:`cellgan.io.images.read_rgb` does not apply to slides.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

from cellgan.io.images import SLIDE_SUFFIXES, ImageReadError, to_rgb_uint8

__all__ = ["Slide", "SlideReadError", "is_slide", "image_or_overview", "open_slide", "write_pyramid_tiff"]

#: The suffixes OpenSlide reads (``SLIDE_SUFFIXES`` less the TIFF ones, which tiffslide reads).
_OPENSLIDE_SUFFIXES = tuple(s for s in SLIDE_SUFFIXES if s not in (".tif", ".tiff"))

#: The most pixels of a pyramid level that :meth:`Slide.overview` reads at once.
_STRIP_PIXELS = 16_000_000

_INSTALL_HINT = "install the slides extra: pip install 'cellgan[slides]'"


class SlideReadError(ImageReadError):
    """A slide that cannot be opened or read; the message names the file and the problem."""


def is_slide(path) -> bool:
    """True when ``path`` is a whole-slide image: an OpenSlide suffix, or a tiled TIFF with a pyramid.

    A TIFF counts as a slide when its first image is tiled and has at least one
    lower-resolution level (OME-TIFF sub-resolutions or further pages), as slide
    scanners and converters write them; a plain or single-level TIFF stays an image.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in _OPENSLIDE_SUFFIXES:
        return True
    if suffix not in (".tif", ".tiff") or not path.is_file():
        return False
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return bool(tif.pages) and tif.pages[0].is_tiled and len(tif.series[0].levels) > 1
    except Exception:  # an unreadable TIFF is not a slide; reading it as an image reports why
        return False


class Slide:
    """An open whole-slide image (use :func:`open_slide`; a context manager).

    Attributes
    ----------
    path : Path
    dimensions : tuple of int
        ``(width, height)`` of level 0, in pixels.
    mpp : float
        Level 0's pixel size in µm per pixel.
    """

    def __init__(self, path: Path, handle, mpp: float):
        self.path, self._handle, self.mpp = path, handle, float(mpp)
        self.dimensions = tuple(int(v) for v in handle.dimensions)

    def __enter__(self) -> "Slide":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._handle.close()

    def size_at(self, mpp: float) -> tuple[int, int]:
        """``(width, height)`` of the whole slide at ``mpp`` µm per pixel."""
        scale = self.mpp / mpp
        return max(1, int(round(self.dimensions[0] * scale))), max(1, int(round(self.dimensions[1] * scale)))

    def overview(self, *, max_pixels: int = 1_000_000, finest_mpp: float = 2.0) -> tuple[np.ndarray, float]:
        """The whole slide at low resolution: ``(rgb, mpp)``, at most ``max_pixels`` and no finer than ``finest_mpp``.

        Read in strips of at most :data:`_STRIP_PIXELS` pixels of the level it comes
        from, so that a slide without a pyramid is not read whole either.
        """
        width_um, height_um = self.dimensions[0] * self.mpp, self.dimensions[1] * self.mpp
        mpp = max(finest_mpp, self.mpp, math.sqrt(width_um * height_um / max_pixels))
        width, height = self.size_at(mpp)
        level = int(self._handle.get_best_level_for_downsample(mpp / self.mpp))
        scale = mpp / self.mpp / self._handle.level_downsamples[level]  # level pixels per overview pixel
        level_pixels_per_row = self._handle.level_dimensions[level][0] * scale**2
        rows = max(1, int(_STRIP_PIXELS / level_pixels_per_row))
        out = np.empty((height, width, 3), np.uint8)
        for top in range(0, height, rows):
            out[top : top + rows] = self.read(0, top, width, min(rows, height - top), mpp=mpp)
        return out, mpp

    def read(self, x: int, y: int, width: int, height: int, *, mpp: float) -> np.ndarray:
        """The region ``[x, x + width) × [y, y + height)`` of the slide at ``mpp`` µm per pixel.

        Read from the pyramid level whose pixels are the largest not coarser than
        ``mpp`` (OpenSlide's ``get_best_level_for_downsample``) and resampled
        (Lanczos) to exactly ``width × height``; at a level of exactly that pixel
        size the pixels are returned as stored. Outside the slide is white (glass).

        Parameters
        ----------
        x, y : int
            Top-left corner in pixels at ``mpp``.
        width, height : int
        mpp : float

        Returns
        -------
        ndarray, uint8, shape (height, width, 3)
        """
        downsample = mpp / self.mpp
        level = int(self._handle.get_best_level_for_downsample(downsample))
        level_downsample = float(self._handle.level_downsamples[level])
        scale = downsample / level_downsample  # level pixels per output pixel
        if math.isclose(scale, 1.0, rel_tol=1e-9):
            return self._read_level(level, level_downsample, x, y, width, height)
        from PIL import Image

        pad = int(math.ceil(3 * scale)) + 1  # the Lanczos filter's support, in level pixels
        left, top = int(math.floor(x * scale)) - pad, int(math.floor(y * scale)) - pad
        right, bottom = int(math.ceil((x + width) * scale)) + pad, int(math.ceil((y + height) * scale)) + pad
        region = self._read_level(level, level_downsample, left, top, right - left, bottom - top)
        box = (x * scale - left, y * scale - top, (x + width) * scale - left, (y + height) * scale - top)
        resized = Image.fromarray(region).resize((width, height), Image.Resampling.LANCZOS, box=box)
        return np.asarray(resized)

    def _read_level(self, level: int, level_downsample: float, x: int, y: int, width: int, height: int) -> np.ndarray:
        """Pixels ``[x, x + width) × [y, y + height)`` of ``level``, white outside the slide."""
        level_width, level_height = self._handle.level_dimensions[level]
        out = np.full((height, width, 3), 255, np.uint8)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + width, level_width), min(y + height, level_height)
        if x1 <= x0 or y1 <= y0:
            return out
        location = (int(round(x0 * level_downsample)), int(round(y0 * level_downsample)))
        try:
            region = self._handle.read_region(location, level, (x1 - x0, y1 - y0))
        except Exception as err:  # the libraries raise their own types for corrupt tiles
            raise SlideReadError(f"{self.path}: cannot read a region ({type(err).__name__}: {err})") from err
        region = np.asarray(region)
        if region.ndim == 3 and region.shape[2] == 4 and region[..., 3].min() == 255:
            region = region[..., :3]  # opaque (all of a scanned area): no compositing to do
        out[y0 - y : y1 - y, x0 - x : x1 - x] = to_rgb_uint8(region, name=str(self.path))
        return out


def open_slide(path, *, mpp: float | None = None) -> Slide:
    """Open a whole-slide image with OpenSlide (its formats) or tiffslide (OME-TIFF, tiled TIFF).

    Parameters
    ----------
    path : str or Path
    mpp : float, optional
        Level 0's pixel size in µm per pixel, over the slide's metadata (for a
        slide whose metadata lacks it, or states it wrongly).

    Raises
    ------
    SlideReadError
        The file is missing, not a slide these libraries read, lacks a pixel size
        (none in its metadata and none given), or the library is not installed.
    """
    path = Path(path)
    if not path.is_file():
        raise SlideReadError(f"{path}: no such file")
    openslide_format = path.suffix.lower() in _OPENSLIDE_SUFFIXES
    try:
        if openslide_format:
            import openslide as library

            handle, prefix = library.OpenSlide(str(path)), "openslide"
        else:
            import tiffslide as library

            handle, prefix = library.TiffSlide(str(path)), "tiffslide"
    except ImportError as err:
        raise SlideReadError(f"{path}: reading slides needs {err.name}; {_INSTALL_HINT}") from err
    except Exception as err:  # OpenSlideError, tifffile's errors, …
        raise SlideReadError(f"{path}: not a readable slide ({type(err).__name__}: {err})") from err
    if mpp is None:
        mpp = _metadata_mpp(handle.properties, prefix)
    if mpp is None or not mpp > 0:
        handle.close()
        raise SlideReadError(
            f"{path}: no pixel size in the slide's metadata; give it with --mpp (level 0, µm per pixel)"
        )
    return Slide(path, handle, mpp)


def _metadata_mpp(properties, prefix: str) -> float | None:
    """Level 0's µm per pixel from OpenSlide's (or tiffslide's) ``mpp-x`` and ``mpp-y`` properties."""
    values = []
    for axis in ("x", "y"):
        try:
            values.append(float(properties.get(f"{prefix}.mpp-{axis}")))
        except (TypeError, ValueError):
            return None
    if not all(math.isfinite(v) and v > 0 for v in values):
        return None
    return float(np.mean(values))


def write_pyramid_tiff(path, rgb: np.ndarray, *, mpp: float, levels: int = 3, tile: int = 256) -> None:
    """Write ``rgb`` as a tiled, pyramidal OME-TIFF (halved ``levels - 1`` times) with its pixel size.

    The layout slide converters write (``bfconvert``, QuPath's OME-TIFF export): level 0
    in the main image, the lower levels as its sub-images, tiles of ``tile`` pixels,
    zlib-compressed; ``PhysicalSizeX``/``Y`` in µm. Turns an image into a slide (the tests
    and ``cellgan bench scale`` make theirs so).

    Parameters
    ----------
    path : str or Path
    rgb : ndarray, uint8, shape (H, W, 3)
    mpp : float
        Level 0's µm per pixel.
    levels : int
    tile : int
        A multiple of 16.
    """
    import tifffile

    from cellgan.io.files import atomic_write

    rgb = np.asarray(rgb)
    options = dict(tile=(tile, tile), photometric="rgb", compression="zlib", resolutionunit="CENTIMETER")
    metadata = {"axes": "YXS", "PhysicalSizeX": mpp, "PhysicalSizeXUnit": "µm"}
    metadata.update(PhysicalSizeY=mpp, PhysicalSizeYUnit="µm")

    def write(tmp: Path) -> None:
        with tifffile.TiffWriter(tmp, ome=True, bigtiff=rgb.nbytes > 2**31) as tif:
            tif.write(rgb, subifds=levels - 1, resolution=(1e4 / mpp, 1e4 / mpp), metadata=metadata, **options)
            for level in range(1, levels):
                factor = 2**level
                small = _halve(rgb, factor)
                tif.write(small, subfiletype=1, resolution=(1e4 / mpp / factor, 1e4 / mpp / factor), **options)

    atomic_write(Path(path), write)


def _halve(rgb: np.ndarray, factor: int, *, rows: int = 256) -> np.ndarray:
    """``rgb`` block-averaged by ``factor`` (the size rounded down), as pyramid levels are made.

    In strips of ``rows`` output rows, so that a memory-mapped ``rgb`` larger than memory can be halved.
    """
    height, width = rgb.shape[0] // factor, rgb.shape[1] // factor
    out = np.empty((height, width, 3), np.uint8)
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        strip = np.asarray(rgb[top * factor : bottom * factor, : width * factor], dtype=np.float32)
        blocks = strip.reshape(bottom - top, factor, width, factor, 3)
        out[top:bottom] = np.round(blocks.mean(axis=(1, 3)))
    return out


def image_or_overview(path) -> np.ndarray:
    """An image file's pixels (:func:`cellgan.io.images.read_rgb`), or a slide's overview (:meth:`Slide.overview`).

    For what needs a whole picture of each input at once, such as the colour
    statistics of a Reinhard reference (:mod:`cellgan.segment.reference`).
    """
    from cellgan.io.images import read_rgb

    if not is_slide(path):
        return read_rgb(path)
    return _overview(str(Path(path).resolve()), Path(path).stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _overview(path: str, mtime_ns: int) -> np.ndarray:
    """A slide's overview, read once per process while the file is unchanged (the reference is asked for often)."""
    with open_slide(path) as slide:
        return slide.overview()[0]
