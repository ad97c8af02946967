"""Image files → a cell store, one shard per image, resumable: :func:`segment_images`.

Also what the runs over many files share: :class:`RunSummary`, the image ids
(:func:`image_ids`) and the one-line reason a file failed.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cellgan.io.files import safe_image_id
from cellgan.io.images import DEFAULT_MAX_PIXELS, find_images, read_mpp, read_rgb
from cellgan.segment.config import SegmentConfig
from cellgan.segment.image import prepare, refuse_crop_patches, reinhard_target, segment_image
from cellgan.segment.pixel_size import PixelSizeError, field_estimates, pool_estimates
from cellgan.segment.reference import resolve_reference

__all__ = ["RunSummary", "image_ids", "pixel_sizes", "segment_images"]


#: The reason :class:`RunSummary` gives for an image segmented without finding a cell.
NO_NUCLEUS = "no nucleus found"


@dataclass(frozen=True)
class RunSummary:
    """What a run over many images did.

    Attributes
    ----------
    done : tuple of str
        Ids written.
    skipped : tuple of str
        Ids already done.
    failed : dict
        File (as given) → reason, for the images that could not be segmented.
    empty : dict
        File → reason, for the images written without a cell (among ``done``).
    """

    done: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: dict[str, str]
    empty: dict[str, str] = field(default_factory=dict)


def image_ids(paths) -> dict[Path, str]:
    """A unique, file-name-safe image id per path: its stem, or ``parent_stem`` when stems clash.

    Parameters
    ----------
    paths : iterable of str or Path

    Returns
    -------
    dict
        ``Path(path)`` → id, in the order given.
    """
    paths = [Path(p) for p in dict.fromkeys(map(Path, paths))]
    stems = Counter(safe_image_id(p.stem) for p in paths)
    ids: dict[Path, str] = {}
    used: set[str] = set()
    for p in paths:
        stem = safe_image_id(p.stem)
        candidate = stem if stems[stem] == 1 else safe_image_id(f"{p.parent.name}_{p.stem}")
        unique, k = candidate, 2
        while unique in used:
            unique, k = f"{candidate}_{k}", k + 1
        used.add(unique)
        ids[p] = unique
    return ids


def failure_reason(err: BaseException, path: Path) -> str:
    """The message of ``err`` without the path it starts with; the exception's type unless a ValueError."""
    text = str(err)
    for prefix in (f"{path}: ", f"{path.name}: "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    if isinstance(err, ValueError):
        return text
    return f"{type(err).__name__}: {text}"


def check_patch_mode(store, config: SegmentConfig) -> None:
    """ValueError unless ``store`` holds patches of ``config.patch_mode``."""
    if store.info.patch_mode != config.patch_mode:
        raise ValueError(
            f"{store.root}: store holds {store.info.patch_mode!r} patches, config asks for {config.patch_mode!r}"
        )


def pixel_sizes(
    files, config: SegmentConfig, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> dict[Path, tuple[float | None, str]]:
    """Each file's pixel size and where it came from: ``given``, ``file`` or ``estimated``.

    ``config.mpp`` when set; else the file's own (:func:`cellgan.io.images.read_mpp`);
    else the estimate pooled over the fields of all the files without one
    (:mod:`cellgan.segment.pixel_size`). A file that cannot be read or prepared
    adds nothing to the estimate (the segmentation reports it).

    Parameters
    ----------
    files : list of Path
    config : SegmentConfig
    max_pixels : int

    Returns
    -------
    dict
        file -> (µm per pixel, source); (None, "unknown") for all of them when
        none of the files without a pixel size can be read.

    Raises
    ------
    PixelSizeError
        Some files state no pixel size and the estimate is not to be trusted.
    """
    if config.mpp is not None:
        return {path: (config.mpp, "given") for path in files}
    stated = {path: read_mpp(path) for path in files}
    sizes = {path: (mpp, "file") for path, mpp in stated.items() if mpp is not None}
    unstated = [path for path, mpp in stated.items() if mpp is None]
    if not unstated:
        return sizes
    values, readable = [], 0
    for path in unstated:
        try:
            prepared = prepare(read_rgb(path, max_pixels=max_pixels), config)
        except Exception:  # unreadable, blank, not H&E: segment_images names it
            continue
        readable += 1
        values += field_estimates(prepared.stains[..., 0], prepared.tissue, config)
    pooled = pool_estimates(values)
    if not readable:  # nothing to segment either: each file's own failure says why
        sizes.update({path: (None, "unknown") for path in unstated})
    elif not pooled.trusted:
        where = unstated[0] if len(unstated) == 1 else f"{unstated[0]} and {len(unstated) - 1} other image(s)"
        raise PixelSizeError(
            f"{where}: no pixel size in the file, and estimating it from the nuclei is not safe here "
            f"({pooled.why_not()}); give it with --mpp (µm per pixel: about 0.5 at 20×, 0.25 at 40×)"
        )
    else:
        sizes.update({path: (pooled.mpp, "estimated") for path in unstated})
    return sizes


def segment_images(
    paths,
    store,
    config: SegmentConfig | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = True,
) -> RunSummary:
    """Segment image files into a cell store, one shard per image; resumable.

    Images already in the store (``store.has_image``) are skipped. An image that
    fails (unreadable, empty, over the pixel budget, blank, smaller than a patch, not
    H&E, ...) is reported with the reason and the others go on; one segmented
    without a nucleus is written and named in ``empty``. The pixel size is
    ``config.mpp`` or, when None, the file's own
    (:func:`cellgan.io.images.read_mpp`), else estimated from the nuclei of all
    the files without one (:func:`pixel_sizes`); the table records it (``mpp``,
    ``mpp_source``). A
    ``config.reinhard_reference`` of ``"typical"`` is the most typical of these
    images (:func:`cellgan.segment.reference.typical_image`).

    Parameters
    ----------
    paths : iterable of str or Path
        Image files, or directories searched recursively for images.
    store : cellgan.io.cellstore.CellStore
        Must hold ``config.patch_mode`` patches.
    config : SegmentConfig, optional
    max_pixels : int
        The pixel budget of each image (:func:`cellgan.io.images.read_rgb`).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    RunSummary
        ``failed`` maps each failed file (as given) to its reason, ``empty`` each
        file without a cell to :data:`NO_NUCLEUS`.
    """
    from tqdm.auto import tqdm

    config = SegmentConfig() if config is None else config
    refuse_crop_patches(config)
    check_patch_mode(store, config)
    files = find_images(paths)
    if config.reinhard_reference is not None:
        config = dataclasses.replace(config, reinhard_reference=resolve_reference(config.reinhard_reference, files))
        reinhard_target(config.reinhard_reference)  # fail now, not once per image
    ids = image_ids(files)
    todo = [path for path in files if not store.has_image(ids[path])]
    sizes = pixel_sizes(files, config, max_pixels=max_pixels) if todo else {}
    done, skipped, failed, empty = [], [], {}, {}
    bar = tqdm(files, desc="segment", unit="image", disable=not progress)
    for path in bar:
        image_id = ids[path]
        if store.has_image(image_id):
            skipped.append(image_id)
            continue
        bar.set_postfix_str(path.name, refresh=False)
        try:
            rgb = read_rgb(path, max_pixels=max_pixels)
            mpp, source = sizes[path]
            result = segment_image(rgb, dataclasses.replace(config, mpp=mpp), image_id=image_id)
            table = result.table.assign(mpp_source=source)
            store.write_image(image_id, table, result.patches, label_mask=result.label_mask, overlay=result.overlay)
        except Exception as err:  # one bad image must not stop the run; it is reported
            failed[str(path)] = failure_reason(err, path)
            continue
        done.append(image_id)
        if table.empty:
            empty[str(path)] = NO_NUCLEUS
    return RunSummary(tuple(done), tuple(skipped), failed, empty)
