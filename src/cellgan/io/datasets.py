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
consep               ``consep``              instance maps; 4 cell types for all 28,546 nuclei
                                             (Graham et al., Medical Image Analysis 2019)
kather2016           ``kather2016``          one tissue class per tile (Kather et al., 2016)
==================== ======================= =============================================

``DATASETS`` maps each name to its loader, default folder and cell types.
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
    "CONSEP_CELL_TYPES",
    "CONSEP_MPP",
    "CRC_CELL_TYPES",
    "DATASETS",
    "KATHER2016_MPP",
    "AnnotatedImage",
    "DatasetError",
    "DatasetSpec",
    "load_bm_graz",
    "load_consep",
    "load_crchistophenotypes",
    "load_kather2016",
    "load_monuseg",
    "polygon_centroid",
    "rasterise_outlines",
]

#: The four nucleus types of CRCHistoPhenotypes, in the order of its file names.
CRC_CELL_TYPES = ("epithelial", "fibroblast", "inflammatory", "others")

#: The four nucleus types of CoNSeP as HoVer-Net merges them; ``inst_type`` k is entry k - 1.
CONSEP_CELL_TYPES = ("other", "inflammatory", "epithelial", "spindle")

#: Pixel size of the CoNSeP patches (40×, as the dataset's README states).
CONSEP_MPP = 0.25

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
        Datasets with cell types (crchistophenotypes, consep): the centres that
        carry a type (on consep all of ``centres``).
    cell_labels : ndarray of str, shape (m,), or None
        Datasets with cell types: the type of each of ``labelled_centres``.
    outlines : tuple of ndarray, or None
        monuseg only: one ``(k, 2)`` float array of ``(x, y)`` vertices per nucleus,
        in the order of the annotation file; ``centres`` are their centroids.
    instances : Path or None
        consep only: the 16-bit instance map, nucleus i (``centres[i - 1]``) = value i.
    image_label : str or None
        kather2016 only: the tissue class of the tile.
    split : str or None
        crchistophenotypes and consep: the split the image belongs to
        (``"train"``, ``"validation"`` or ``"test"``).
    """

    dataset: str
    image_id: str
    path: Path
    mpp: float | None = None
    centres: np.ndarray | None = None
    labelled_centres: np.ndarray | None = None
    cell_labels: np.ndarray | None = None
    outlines: tuple[np.ndarray, ...] | None = None
    instances: Path | None = None
    image_label: str | None = None
    split: str | None = None

    def read_rgb(self) -> np.ndarray:
        """The image as uint8 ``(H, W, 3)`` (via :func:`cellgan.io.images.read_rgb`)."""
        from cellgan.io.images import read_rgb

        return read_rgb(self.path)

    def label_mask(self, shape: tuple[int, int] | None = None) -> np.ndarray:
        """The nuclei as an int32 label mask: nucleus i (``centres[i - 1]``) has label i.

        monuseg's outlines are rasterised (a later outline wins where two overlap);
        consep's instance map is read as it is.

        Parameters
        ----------
        shape : (int, int), optional
            ``(H, W)`` of the mask; by default the image's size, read from its header.
            An instance map must have this size.

        Raises
        ------
        DatasetError
            If the record has neither outlines nor an instance map, or its instance map
            is not of ``shape``.
        """
        if self.outlines is None and self.instances is None:
            raise DatasetError(f"{self.path}: dataset {self.dataset!r} has no nucleus outlines or instance map")
        if shape is None:
            from PIL import Image

            with Image.open(self.path) as image:
                width, height = image.size
            shape = (height, width)
        if self.outlines is not None:
            return rasterise_outlines(self.outlines, shape)
        mask = read_instance_map(self.instances)
        if mask.shape != tuple(shape):
            raise DatasetError(f"{self.instances}: instance map is {mask.shape}, expected {tuple(shape)}")
        return mask


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's loader, the name of its folder under a data root, and its cell types.

    ``cell_types`` is empty for a dataset without them; a dataset with cell types gives
    every image ``labelled_centres`` and their ``cell_labels``.
    """

    loader: Callable[..., list[AnnotatedImage]]
    folder: str
    cell_types: tuple[str, ...] = ()


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
    path = Path(path)
    array = _mat_array(_loadmat(path), "detection", path)
    if array.size == 0:
        return np.zeros((0, 2))
    if array.ndim != 2 or array.shape[1] != 2 or not np.issubdtype(array.dtype, np.number):
        raise DatasetError(f"{path}: 'detection' must be an N×2 numeric array, got {array.dtype} {array.shape}")
    xy = array.astype(float) - 1.0
    if not np.isfinite(xy).all():
        raise DatasetError(f"{path}: 'detection' holds non-finite coordinates")
    return xy


# -- consep ---------------------------------------------------------------------------


def load_consep(root: str | Path, *, splits: tuple[str, ...] = ("train", "test")) -> list[AnnotatedImage]:
    """Load CoNSeP (Graham et al., Medical Image Analysis 2019) as cut into 256×256 patches.

    ``root/<split>/images/NAME.jpg`` is the patch, ``instances/NAME.png`` its 16-bit
    instance map (0 background, nucleus i = value i) and ``labels/NAME.mat`` its
    ``inst_type`` (N×1, 1-4, :data:`CONSEP_CELL_TYPES`) and ``inst_centroid`` (N×2,
    0-based ``(x, y)``), row i - 1 for nucleus i. Every nucleus is typed, so
    ``labelled_centres`` are the ``centres``. The patches are at 40×, ``mpp``
    :data:`CONSEP_MPP`. Patches of one original tile overlap: a nucleus on a patch
    border can appear in two of them.

    Raises
    ------
    DatasetError
        Naming the file, when a label or instance file is missing or unreadable, the
        ``.mat``'s arrays disagree in length, a type is outside 1-4, a centre lies
        outside the instance map, or the instance map's largest id is not N.
    """
    root = _require_dir(root)
    images = []
    for split in splits:
        split_dir = _require_dir(root / split)
        for path in _files(split_dir / "images", (".jpg",)):
            mat = split_dir / "labels" / f"{path.stem}.mat"
            centres, types = read_consep_labels(mat)
            instances = _require_file(split_dir / "instances" / f"{path.stem}.png")
            _check_consep_instances(instances, centres, mat)
            images.append(
                AnnotatedImage(
                    dataset="consep",
                    image_id=path.stem,
                    path=path,
                    mpp=CONSEP_MPP,
                    centres=centres,
                    labelled_centres=centres,
                    cell_labels=types,
                    instances=instances,
                    split=split,
                )
            )
    return images


def read_consep_labels(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CoNSeP ``labels/NAME.mat``.

    Returns
    -------
    centres : ndarray of float, shape (N, 2)
        ``inst_centroid``, 0-based ``(x, y)``.
    types : ndarray of str, shape (N,)
        ``inst_type`` as names (:data:`CONSEP_CELL_TYPES`).
    """
    path = Path(path)
    types, xy = _consep_arrays(path)
    if len(types) != len(xy):
        raise DatasetError(f"{path}: 'inst_type' has {len(types)} rows but 'inst_centroid' {len(xy)}")
    unknown = sorted(set(types.tolist()) - set(range(1, len(CONSEP_CELL_TYPES) + 1)))
    if unknown:
        raise DatasetError(f"{path}: 'inst_type' holds {unknown}, expected 1-{len(CONSEP_CELL_TYPES)}")
    if not np.isfinite(xy).all():
        raise DatasetError(f"{path}: 'inst_centroid' holds non-finite coordinates")
    return xy.astype(float), np.array(CONSEP_CELL_TYPES)[types.astype(int) - 1]


def _consep_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``inst_type`` as ``(N,)`` and ``inst_centroid`` as ``(M, 2)`` numeric arrays (an empty one as ``(0, 2)``)."""
    contents = _loadmat(path)
    types = _mat_array(contents, "inst_type", path)
    xy = _mat_array(contents, "inst_centroid", path)
    if not (np.issubdtype(types.dtype, np.number) and np.issubdtype(xy.dtype, np.number)):
        raise DatasetError(f"{path}: 'inst_type' and 'inst_centroid' must be numeric, got {types.dtype}, {xy.dtype}")
    types = types.reshape(-1) if types.ndim == 2 and types.shape[1] == 1 else types
    xy = xy.reshape(0, 2) if xy.size == 0 else xy
    if types.ndim != 1 or xy.ndim != 2 or xy.shape[1] != 2:
        raise DatasetError(f"{path}: 'inst_type' must be N×1 and 'inst_centroid' N×2, got {types.shape}, {xy.shape}")
    return types, xy


def read_instance_map(path: str | Path) -> np.ndarray:
    """Read an instance map (a 2-D integer image, 0 = background); return it as int32 ``(H, W)``."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            mask = np.asarray(image)
    except (OSError, UnidentifiedImageError) as err:
        raise DatasetError(f"{path}: cannot read instance map ({err})") from err
    if mask.ndim != 2 or not np.issubdtype(mask.dtype, np.integer):
        raise DatasetError(f"{path}: instance map must be a 2-D integer image, got {mask.dtype} {mask.shape}")
    return mask.astype(np.int32)


def _check_consep_instances(instances: Path, centres: np.ndarray, mat: Path) -> None:
    """Check that the instance map numbers the ``.mat``'s N nuclei 1..N and holds their centres."""
    mask = read_instance_map(instances)
    largest = int(mask.max(initial=0))
    if largest != len(centres):
        raise DatasetError(f"{mat}: types {len(centres)} nuclei but instance map {instances} has ids up to {largest}")
    height, width = mask.shape
    if ((centres < 0) | (centres > [width - 1, height - 1])).any():
        raise DatasetError(f"{mat}: 'inst_centroid' lies outside the {width}×{height} instance map")


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


#: Dataset name -> loader, the folder it lives in under a data root, and its cell types.
DATASETS: dict[str, DatasetSpec] = {
    "bm_graz": DatasetSpec(load_bm_graz, "bm_graz"),
    "crchistophenotypes": DatasetSpec(load_crchistophenotypes, "crchistophenotypes", CRC_CELL_TYPES),
    "monuseg": DatasetSpec(load_monuseg, "monuseg_test"),
    "consep": DatasetSpec(load_consep, "consep", CONSEP_CELL_TYPES),
    "kather2016": DatasetSpec(load_kather2016, "kather2016"),
}


# -- helpers --------------------------------------------------------------------------


def _require_dir(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: dataset folder not found")
    return path


def _loadmat(path: Path) -> dict:
    """``scipy.io.loadmat`` of ``path``, any failure a :class:`DatasetError` naming it."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        return loadmat(path)
    except (OSError, ValueError, TypeError, MatReadError) as err:
        raise DatasetError(f"{path}: cannot read MATLAB file ({err})") from err


def _mat_array(contents: dict, key: str, path: Path) -> np.ndarray:
    """The array ``key`` of a loaded ``.mat``, or a :class:`DatasetError` listing the keys it has."""
    if key not in contents:
        keys = sorted(k for k in contents if not k.startswith("__"))
        raise DatasetError(f"{path}: no {key!r} array (keys: {keys})")
    return np.asarray(contents[key])


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
