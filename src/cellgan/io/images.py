"""Reading H&E images of any common format into 8-bit RGB, and their pixel size.

Every reader in cellgan goes through :func:`read_rgb`, so that PNG, TIFF, JPEG and
BMP files, whether RGB, RGBA, CMYK, greyscale, palette, 16-bit or floating point,
reach the segmentation as one kind of array: ``uint8`` of shape ``(H, W, 3)``. A
file is measured from its header before it is decoded: one larger than the pixel
budget (:data:`DEFAULT_MAX_PIXELS`, or the ``max_pixels`` given) is refused
without its pixels ever reaching memory (:class:`ImageTooLargeError`).
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import numpy as np

from cellgan.errors import CellganError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "SLIDE_SUFFIXES",
    "ImageReadError",
    "ImageTooLargeError",
    "find_images",
    "read_mpp",
    "read_rgb",
    "to_rgb_uint8",
]

#: Suffixes (lower case) of whole-slide images: OpenSlide's formats, and TIFF for OME-TIFF and
#: tiled pyramidal TIFF (a TIFF is a slide when it has a pyramid: :func:`cellgan.io.slides.is_slide`).
SLIDE_SUFFIXES = (".svs", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide", ".tif", ".tiff")

#: File suffixes (lower case) taken as images (or slides) when a directory is searched.
IMAGE_SUFFIXES = tuple(dict.fromkeys((".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp") + SLIDE_SUFFIXES))

_TIFF_SUFFIXES = (".tif", ".tiff")

#: Pixel sizes outside this range (µm per pixel) are taken as meaningless metadata,
#: e.g. the 72 dpi that many writers put in every file (352.8 µm per pixel).
_MPP_RANGE = (0.02, 10.0)

#: The pixel budget of :func:`read_rgb`: larger images are refused from their header.
#: Just under Pillow's own decompression-bomb limit (89,478,485 pixels), so that an image
#: cellgan accepts never trips Pillow's warning, and a round 8944²: the public H&E images
#: and exported fields are 0.25–25 million pixels, while the 12000² images that Pillow
#: only warns about are refused before they are decoded. Segmenting takes about 80 bytes
#: per pixel (measured on bone-marrow images at 0.5 µm per pixel), so an image at the
#: budget needs about 6.5 GB; a whole slide has to be cut into fields first.
DEFAULT_MAX_PIXELS = 80_000_000


class ImageReadError(CellganError, ValueError):
    """An image file that cannot be read as an H&E image; the message names the file."""


class ImageTooLargeError(ImageReadError):
    """An image file whose header claims more pixels than the budget; it is not decoded."""


def find_images(paths) -> list[Path]:
    """Expand files and directories (searched recursively) into a sorted list of image files.

    Parameters
    ----------
    paths : iterable of str or Path
        Image files (taken whatever their suffix) and directories (searched for files
        whose suffix is in :data:`IMAGE_SUFFIXES`, hidden files skipped).

    Returns
    -------
    list of Path
        Without duplicates, in the order given, each directory's files sorted.

    Raises
    ------
    FileNotFoundError
        When a path does not exist.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
                )
            )
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return list(dict.fromkeys(found))


def to_rgb_uint8(array: np.ndarray, *, name: str = "image") -> np.ndarray:
    """Convert a decoded image array to ``uint8`` RGB of shape ``(H, W, 3)``.

    Greyscale is repeated into three channels; an alpha channel is composited onto
    white (transparent areas are background, like the glass of a slide). Integer
    types wider than 8 bits are scaled by the range of the bits in use, ``2**b - 1``
    with ``b`` the bit length of the largest value (at least 8): 12-bit data stored in
    16-bit files reaches 255 as 16-bit data does (a brightfield image's glass is near
    the top of its range). Floating-point images are taken as lying in [0, 1], or in
    [0, 255] or [0, 65535] when their largest value says so.

    Parameters
    ----------
    array : ndarray
        ``(H, W)``, ``(H, W, C)`` with C in 1..4, or channels-first ``(C, H, W)``.
    name : str
        Used in error messages (usually the file name).

    Raises
    ------
    ImageReadError
        For shapes or types that are not an image, and floating-point values beyond 65535.
    """
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[2] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ImageReadError(f"{name}: not an image array (shape {a.shape})")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageReadError(f"{name}: empty image (shape {a.shape})")
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise ImageReadError(f"{name}: image holds NaN or infinite values")
        scaled = np.clip(a.astype(np.float32) / _float_range(float(a.max()), name), 0.0, 1.0)
    elif np.issubdtype(a.dtype, np.integer):
        if a.dtype == np.uint8:
            scaled = None
        else:
            bits = min(max(8, int(max(int(a.max()), 0)).bit_length()), np.iinfo(a.dtype).bits)
            scaled = np.clip(a.astype(np.float32), 0, None) / float(2**bits - 1)
    else:
        raise ImageReadError(f"{name}: unsupported pixel type {a.dtype}")
    if scaled is not None:
        a = np.round(scaled * 255.0).astype(np.uint8)
    channels = a.shape[2]
    if channels in (2, 4):  # grey+alpha or RGBA: composite onto white
        alpha = a[..., -1:].astype(np.float32) / 255.0
        colour = a[..., :-1].astype(np.float32)
        a = np.round(colour * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
        channels -= 1
    if channels == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a)


def _float_range(top: float, name: str) -> float:
    """The full-scale value of a floating-point image whose largest value is ``top``."""
    for full_scale in (1.0, 255.0, 65535.0):
        if top <= full_scale:
            return full_scale
    raise ImageReadError(
        f"{name}: floating-point values up to {top:.4g}; expected a range of 0–1, 0–255 or 0–65535"
    )


def _check_pixel_budget(path, width: int, height: int, max_pixels: int) -> None:
    """ImageTooLargeError when an image of ``width`` × ``height`` exceeds ``max_pixels``.

    Parameters
    ----------
    path : str or Path
        Named in the message.
    width, height : int
        The size the file's header gives.
    max_pixels : int
        The budget.

    Raises
    ------
    ImageTooLargeError
    """
    pixels = int(width) * int(height)
    if pixels > max_pixels:
        raise ImageTooLargeError(
            f"{path}: image is {width}×{height} px ({pixels:,} pixels), over the budget of {max_pixels:,} "
            "pixels; not decoded (raise the budget with --max-pixels to read it)"
        )


def read_rgb(path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as ``uint8`` RGB of shape ``(H, W, 3)``.

    TIFF files are read with ``tifffile`` (first page); the other formats with
    Pillow. The size is read from the header first, and a file over ``max_pixels``
    is not decoded. TIFF's photometric interpretation is followed: CMYK is converted
    to RGB, a fourth sample is alpha only when the file says so (an unspecified extra
    sample is ignored), and a file with 2, or more than 4, channels, or 4 that are
    not RGB, is refused. See :func:`to_rgb_uint8` for the other conversions.

    Parameters
    ----------
    path : str or Path
    max_pixels : int
        The pixel budget (width × height).

    Raises
    ------
    ImageTooLargeError
        The header claims more than ``max_pixels`` pixels.
    ImageReadError
        When the file is missing, empty, not an image, or not a 2-D colour or grey image.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: file is empty (0 bytes)")
    try:
        if path.suffix.lower() in _TIFF_SUFFIXES or _looks_like_tiff(path):
            array = _read_tiff(path, max_pixels)
        else:
            array = _read_pillow(path, max_pixels)
    except ImageReadError:
        raise
    except Exception as err:  # decoders raise many types for corrupt files
        raise ImageReadError(f"{path}: cannot decode image ({type(err).__name__}: {err})") from err
    return to_rgb_uint8(array, name=str(path))


def _looks_like_tiff(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4)
    return head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _read_tiff(path: Path, max_pixels: int) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if not tif.pages:
            raise ImageReadError(f"{path}: TIFF holds no image")
        page = tif.pages[0]
        _check_pixel_budget(path, page.imagewidth, page.imagelength * page.imagedepth, max_pixels)
        samples, photometric = page.samplesperpixel, tifffile.PHOTOMETRIC(page.photometric)
        cmyk = photometric == tifffile.PHOTOMETRIC.SEPARATED
        if samples == 2 or samples > 4 or (samples == 4 and photometric != tifffile.PHOTOMETRIC.RGB and not cmyk):
            raise ImageReadError(
                f"{path}: {samples} channels ({photometric.name}), not an RGB or RGBA image; "
                "H&E needs three colour channels"
            )
        array = page.asarray()
        if samples > 1 and page.planarconfig == tifffile.PLANARCONFIG.SEPARATE:
            array = np.moveaxis(array, 0, -1)
        if cmyk:
            return _cmyk_to_rgb(array, path)
        if samples == 4 and page.extrasamples[:1] not in ((1,), (2,)):  # not associated or unassociated alpha
            return array[..., :3]
        return array


def _cmyk_to_rgb(array: np.ndarray, path: Path) -> np.ndarray:
    """RGB in [0, 1] (float32) from CMYK ink coverage: each colour is (1 − ink)(1 − black)."""
    if array.ndim != 3 or array.shape[2] != 4:
        raise ImageReadError(f"{path}: separated (ink) image with {array.shape[-1]} inks, not CMYK")
    full = np.iinfo(array.dtype).max if np.issubdtype(array.dtype, np.integer) else 1.0
    ink = array.astype(np.float32) / float(full)
    return (1.0 - ink[..., :3]) * (1.0 - ink[..., 3:])


@contextlib.contextmanager
def _without_pillow_limit():
    """Pillow's own decompression-bomb check off, for an ``Image.open`` whose size cellgan checks itself."""
    from PIL import Image

    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _read_pillow(path: Path, max_pixels: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with _without_pillow_limit():
            im = Image.open(path)  # the header only
        with im:
            _check_pixel_budget(path, *im.size, max_pixels)
            im.load()
            if im.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
                im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
            elif im.mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(im).astype(np.uint16)
            elif im.mode == "I":
                return _int32_to_uint16(np.asarray(im))
            elif im.mode == "F":
                return np.asarray(im)
            return np.asarray(im)
    except UnidentifiedImageError as err:
        raise ImageReadError(f"{path}: not a recognised image file") from err


def _int32_to_uint16(a: np.ndarray) -> np.ndarray:
    # Pillow decodes 16-bit PNG greyscale as mode "I" (int32 holding 0..65535).
    return np.clip(a, 0, 65535).astype(np.uint16)


def read_mpp(path) -> float | None:
    """Return the pixel size in micrometres per pixel stored in an image file, if any.

    Looked for, in order: an Aperio-style ``MPP = 0.2527`` in the TIFF
    ImageDescription; the TIFF resolution tags with a centimetre or inch unit; a
    PNG/JPEG/BMP resolution (``dpi``). Values outside 0.02–10 µm per pixel are
    ignored: they are writer defaults (72 dpi is 352.8 µm per pixel), not a
    microscope's pixel size.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    float or None
        ``None`` when the file says nothing usable (the usual case for PNG).
    """
    path = Path(path)
    try:
        if path.suffix.lower() in _TIFF_SUFFIXES or _looks_like_tiff(path):
            return _tiff_mpp(path)
        return _pillow_mpp(path)
    except Exception:  # metadata is optional: unreadable metadata means unknown size
        return None


def _plausible(mpp: float | None) -> float | None:
    if mpp is None or not np.isfinite(mpp):
        return None
    return float(mpp) if _MPP_RANGE[0] <= mpp <= _MPP_RANGE[1] else None


def _tiff_mpp(path: Path) -> float | None:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        description = page.tags.get("ImageDescription")
        if description is not None:
            match = re.search(r"\bMPP\s*=\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)", str(description.value))
            mpp = _plausible(float(match.group(1))) if match else None
            if mpp is not None:
                return mpp
        xres = page.tags.get("XResolution")
        unit = page.tags.get("ResolutionUnit")
        if xres is None or unit is None:
            return None
        num, den = xres.value if isinstance(xres.value, tuple) else (xres.value, 1)
        if not num or not den:
            return None
        pixels_per_unit = num / den
        microns_per_unit = {2: 25400.0, 3: 10000.0}.get(int(unit.value))
        if microns_per_unit is None:
            return None
        return _plausible(microns_per_unit / pixels_per_unit)


def _pillow_mpp(path: Path) -> float | None:
    from PIL import Image

    with Image.open(path) as im:
        dpi = im.info.get("dpi")
    if not dpi or not dpi[0]:
        return None
    return _plausible(25400.0 / float(dpi[0]))
