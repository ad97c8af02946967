"""Loaders for the four public datasets cellgan is tested and benchmarked on.

Each loader reads the layout that the dataset's source distributes (see
``../shared/data/README.md``) and returns a list of light :class:`AnnotatedImage`
records: paths and ground truth, with the pixels read only on demand
(:meth:`AnnotatedImage.read_rgb`). All coordinates are ``(x, y)`` = (column, row),
0-based, in pixels.

==================== ======================= =============================================
name                 default folder          ground truth
==================== ======================= =============================================
bm_graz              ``bm_graz``             one dot per cell (Kainz et al., MICCAI 2015)
crchistophenotypes   ``crchistophenotypes``  nucleus centres; 4 cell types for 22,444 of them
                                             (Sirinukunwattana et al., IEEE TMI 2016)
monuseg              ``monuseg_test``        nucleus outlines, pixel size (Kumar et al., 2017)
kather2016           ``kather2016``          one tissue class per tile (Kather et al., 2016)
==================== ======================= =============================================

``DATASETS`` maps each name to its loader and default folder.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from cellgan.errors import CellganError

__all__ = [
    "CRC_CELL_TYPES",
    "DATASETS",
    "KATHER2016_MPP",
    "AnnotatedImage",
    "DatasetError",
    "DatasetSpec",
    "load_bm_graz",
    "load_crchistophenotypes",
    "load_kather2016",
    "load_monuseg",
    "polygon_centroid",
    "rasterise_outlines",
]

#: The four nucleus types of CRCHistoPhenotypes, in the order of its file names.
CRC_CELL_TYPES = ("epithelial", "fibroblast", "inflammatory", "others")

#: Pixel size of the Kather et al. 2016 tiles (150 px = 74 µm, stated by the dataset).
KATHER2016_MPP = 0.495


class DatasetError(CellganError, ValueError):
    """A dataset folder or annotation file that is missing or malformed."""


@dataclass(frozen=True, eq=False)
class AnnotatedImage:
    """One image of a public dataset and its ground truth.

    Attributes
    ----------
    dataset : str
        Name of the dataset (a key of ``DATASETS``).
    image_id : str
        Identifier unique within the dataset (the file stem).
    path : Path
        The image file.
    mpp : float or None
        Microns per pixel when the dataset states it, else None.
    centres : ndarray of float, shape (n, 2), or None
        ``(x, y)`` of every annotated nucleus; None when the dataset has no cell-level
        annotation (kather2016).
    labelled_centres : ndarray of float, shape (m, 2), or None
        crchistophenotypes only: the centres that carry a cell type.
    cell_labels : ndarray of str, shape (m,), or None
        crchistophenotypes only: the type of each of ``labelled_centres``.
    outlines : tuple of ndarray, or None
        monuseg only: one ``(k, 2)`` float array of ``(x, y)`` vertices per nucleus,
        in the order of the annotation file; ``centres`` are their centroids.
    image_label : str or None
        kather2016 only: the tissue class of the tile.
    split : str or None
        crchistophenotypes only: ``"train"``, ``"validation"`` or ``"test"``.
    """

    dataset: str
    image_id: str
    path: Path
    mpp: float | None = None
    centres: np.ndarray | None = None
    labelled_centres: np.ndarray | None = None
    cell_labels: np.ndarray | None = None
    outlines: tuple[np.ndarray, ...] | None = None
    image_label: str | None = None
    split: str | None = None

    def read_rgb(self) -> np.ndarray:
        """The image as uint8 ``(H, W, 3)`` (via :func:`cellgan.io.images.read_rgb`)."""
        from cellgan.io.images import read_rgb

        return read_rgb(self.path)

    def label_mask(self, shape: tuple[int, int] | None = None) -> np.ndarray:
        """The outlines rasterised to a label mask (nucleus i has label i + 1).

        Parameters
        ----------
        shape : (int, int), optional
            ``(H, W)`` of the mask; by default the image's size, read from its header.

        Raises
        ------
        DatasetError
            If the record has no outlines (only monuseg has them).
        """
        if self.outlines is None:
            raise DatasetError(f"{self.path}: dataset {self.dataset!r} has no nucleus outlines")
        if shape is None:
            from PIL import Image

            with Image.open(self.path) as image:
                width, height = image.size
            shape = (height, width)
        return rasterise_outlines(self.outlines, shape)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's loader and the name of its folder under a data root."""

    loader: Callable[..., list[AnnotatedImage]]
    folder: str


# -- bm_graz -------------------------------------------------------------------------


def load_bm_graz(root: str | Path) -> list[AnnotatedImage]:
    """Load the 11 bone-marrow images of Kainz et al. (MICCAI 2015), Hu et al.'s Dataset A.

    ``root/source/<id>.png`` is the image, ``root/annotations/<id>.txt`` its dots: a header
    line ``N 3 0`` then ``N`` lines ``x y k`` (0-based column, row, and an undocumented
    code ``k`` that is not a cell type and is not kept). The pixel size is not published.
    """
    root = _require_dir(root)
    images = []
    for path in _files(root / "source", (".png",)):
        dots = root / "annotations" / f"{path.stem}.txt"
        images.append(
            AnnotatedImage(dataset="bm_graz", image_id=path.stem, path=path, centres=read_bm_graz_dots(dots))
        )
    return images


def read_bm_graz_dots(path: str | Path) -> np.ndarray:
    """Read one bm_graz dot file; return ``(N, 2)`` float ``(x, y)``, 0-based."""
    path = Path(path)
    try:
        lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    except OSError as err:
        raise DatasetError(f"{path}: cannot read dot annotations ({err.strerror or err})") from err
    if not lines or len(lines[0]) != 3 or not all(_is_int(v) for v in lines[0]):
        raise DatasetError(f"{path}: first line must be the header 'N 3 0'")
    count, columns = int(lines[0][0]), int(lines[0][1])
    rows = lines[1:]
    if columns != 3:
        raise DatasetError(f"{path}: header says {columns} columns, expected 3")
    if count != len(rows):
        raise DatasetError(f"{path}: header says {count} dots but the file has {len(rows)}")
    try:
        values = np.array(rows, dtype=float).reshape(count, 3)
    except ValueError as err:
        raise DatasetError(f"{path}: every dot line must be three numbers 'x y k' ({err})") from err
    xy = values[:, :2]
    if not np.isfinite(xy).all() or (xy < 0).any():
        raise DatasetError(f"{path}: dot coordinates must be finite and non-negative")
    return xy


# -- crchistophenotypes ---------------------------------------------------------------


def load_crchistophenotypes(
    root: str | Path, *, splits: tuple[str, ...] = ("train", "validation", "test")
) -> list[AnnotatedImage]:
    """Load CRCHistoPhenotypes (Sirinukunwattana et al., IEEE TMI 2016).

    ``root/<split>/imgN/imgN.png`` is the image; ``imgN_detection.mat`` holds every nucleus
    centre and ``imgN_<type>.mat`` the centres of each of the four types
    (:data:`CRC_CELL_TYPES`), 1-based MATLAB ``(x, y)``, converted here to 0-based. The
    typed centres are kept as their own list (``labelled_centres``, ``cell_labels``): they
    are the labelled cells (22,444), a subset of the 29,756 detection centres. The files do
    not state the pixel size (the images are at 20×), so ``mpp`` is None.
    """
    root = _require_dir(root)
    images = []
    for split in splits:
        split_dir = _require_dir(root / split)
        folders = sorted((p for p in split_dir.iterdir() if p.is_dir()), key=_natural_key)
        for folder in folders:
            name = folder.name
            centres = read_crc_centres(folder / f"{name}_detection.mat")
            typed = [read_crc_centres(folder / f"{name}_{kind}.mat") for kind in CRC_CELL_TYPES]
            labels = np.concatenate([np.full(len(xy), kind, dtype=object) for kind, xy in zip(CRC_CELL_TYPES, typed)])
            images.append(
                AnnotatedImage(
                    dataset="crchistophenotypes",
                    image_id=name,
                    path=_require_file(folder / f"{name}.png"),
                    centres=centres,
                    labelled_centres=np.concatenate(typed, axis=0),
                    cell_labels=labels.astype(str),
                    split=split,
                )
            )
    return images


def read_crc_centres(path: str | Path) -> np.ndarray:
    """Read one CRCHistoPhenotypes ``.mat``; return ``(N, 2)`` float ``(x, y)``, 0-based."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    path = Path(path)
    try:
        contents = loadmat(path)
    except (OSError, ValueError, TypeError, MatReadError) as err:
        raise DatasetError(f"{path}: cannot read MATLAB file ({err})") from err
    if "detection" not in contents:
        keys = sorted(k for k in contents if not k.startswith("__"))
        raise DatasetError(f"{path}: no 'detection' array (keys: {keys})")
    array = np.asarray(contents["detection"])
    if array.size == 0:
        return np.zeros((0, 2))
    if array.ndim != 2 or array.shape[1] != 2 or not np.issubdtype(array.dtype, np.number):
        raise DatasetError(f"{path}: 'detection' must be an N×2 numeric array, got {array.dtype} {array.shape}")
    xy = array.astype(float) - 1.0
    if not np.isfinite(xy).all():
        raise DatasetError(f"{path}: 'detection' holds non-finite coordinates")
    return xy


# -- monuseg --------------------------------------------------------------------------


def load_monuseg(root: str | Path) -> list[AnnotatedImage]:
    """Load MoNuSeg (Kumar et al., IEEE TMI 2017): ``<id>.tif`` images, ``<id>.xml`` outlines.

    Each ``<Region>`` of the Aperio XML is one nucleus, its ``<Vertex X Y>`` the outline;
    ``MicronsPerPixel`` on the root element gives ``mpp``. ``centres`` are the outlines'
    area centroids; :meth:`AnnotatedImage.label_mask` rasterises the outlines.
    """
    root = _require_dir(root)
    images = []
    for path in _files(root, (".tif", ".tiff")):
        outlines, mpp = read_monuseg_xml(root / f"{path.stem}.xml")
        centres = np.array([polygon_centroid(o) for o in outlines]).reshape(-1, 2)
        images.append(
            AnnotatedImage(
                dataset="monuseg", image_id=path.stem, path=path, mpp=mpp, centres=centres, outlines=outlines
            )
        )
    return images


def read_monuseg_xml(path: str | Path) -> tuple[tuple[np.ndarray, ...], float | None]:
    """Read one MoNuSeg XML; return (outlines as ``(k, 2)`` ``(x, y)`` arrays, microns per pixel)."""
    path = Path(path)
    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError) as err:
        raise DatasetError(f"{path}: cannot parse annotation XML ({err})") from err
    root = tree.getroot()
    mpp = root.get("MicronsPerPixel")
    if mpp is not None:
        try:
            mpp = float(mpp)
        except ValueError as err:
            raise DatasetError(f"{path}: MicronsPerPixel={mpp!r} is not a number") from err
        if not (np.isfinite(mpp) and mpp > 0):
            raise DatasetError(f"{path}: MicronsPerPixel={mpp!r} must be positive")
    outlines = []
    for region in root.iter("Region"):
        try:
            vertices = [(float(v.attrib["X"]), float(v.attrib["Y"])) for v in region.iter("Vertex")]
        except (KeyError, ValueError) as err:
            raise DatasetError(f"{path}: region {region.get('Id')!r} has a vertex without numeric X and Y") from err
        if len(vertices) < 3:
            raise DatasetError(f"{path}: region {region.get('Id')!r} has {len(vertices)} vertices, need at least 3")
        outlines.append(np.array(vertices))
    return tuple(outlines), mpp


def polygon_centroid(vertices: np.ndarray) -> np.ndarray:
    """Area centroid ``(x, y)`` of a simple polygon (shoelace); the vertex mean if degenerate."""
    x, y = np.asarray(vertices, dtype=float).T
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    area = cross.sum() / 2.0
    if abs(area) < 1e-9:
        return np.array([x.mean(), y.mean()])
    return np.array([((x + x1) * cross).sum(), ((y + y1) * cross).sum()]) / (6.0 * area)


def rasterise_outlines(outlines, shape: tuple[int, int]) -> np.ndarray:
    """Fill each outline into an int32 label mask; outline i gets label i + 1, later ones win."""
    from skimage.draw import polygon

    mask = np.zeros(shape, dtype=np.int32)
    for label, outline in enumerate(outlines, start=1):
        rows, cols = polygon(outline[:, 1], outline[:, 0], shape=shape)
        mask[rows, cols] = label
    return mask


# -- kather2016 -----------------------------------------------------------------------


def load_kather2016(root: str | Path) -> list[AnnotatedImage]:
    """Load the Kather et al. (Sci. Rep. 2016) texture tiles: one folder per class.

    Folders are named ``NN_CLASS`` (``01_TUMOR`` … ``08_EMPTY``); the class is the part
    after the number. Tiles are 150×150 px at 0.495 µm/px (:data:`KATHER2016_MPP`).
    """
    root = _require_dir(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise DatasetError(f"{root}: no class folders (expected 01_TUMOR, 02_STROMA, ...)")
    images = []
    for folder in folders:
        label = folder.name.split("_", 1)[1] if "_" in folder.name else folder.name
        for path in _files(folder, (".tif", ".tiff", ".png", ".jpg")):
            images.append(
                AnnotatedImage(
                    dataset="kather2016", image_id=path.stem, path=path, mpp=KATHER2016_MPP, image_label=label
                )
            )
    return images


#: Dataset name -> loader and the folder it lives in under a data root.
DATASETS: dict[str, DatasetSpec] = {
    "bm_graz": DatasetSpec(load_bm_graz, "bm_graz"),
    "crchistophenotypes": DatasetSpec(load_crchistophenotypes, "crchistophenotypes"),
    "monuseg": DatasetSpec(load_monuseg, "monuseg_test"),
    "kather2016": DatasetSpec(load_kather2016, "kather2016"),
}


# -- helpers --------------------------------------------------------------------------


def _require_dir(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: dataset folder not found")
    return path


def _require_file(path: Path) -> Path:
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    return path


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Image files in ``folder`` (not hidden), in natural order; error when there are none."""
    folder = _require_dir(folder)
    files = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in suffixes and not p.name.startswith(".")),
        key=_natural_key,
    )
    if not files:
        raise DatasetError(f"{folder}: no images ({', '.join(suffixes)})")
    return files


def _natural_key(path: Path):
    """Sort ``img2`` before ``img10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
