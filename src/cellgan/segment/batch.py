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
from cellgan.segment.image import NO_NUCLEUS, refuse_crop_patches, reinhard_target, segment_image
from cellgan.segment.reference import resolve_reference

__all__ = ["NO_NUCLEUS", "RunSummary", "image_ids", "segment_images"]


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
        File → reason, for the images written without a cell (among ``done``): blank
        glass, or tissue without a nucleus.
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
    fails (unreadable, empty, over the pixel budget, smaller than a patch, not
    H&E, ...) is reported with the reason and the others go on; one of blank glass
    or without a nucleus is written without cells and named in ``empty``. The pixel size is
    ``config.mpp`` or, when None, the file's own
    (:func:`cellgan.io.images.read_mpp`), else estimated. A
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
        file without a cell to why (``no tissue: ...`` or :data:`NO_NUCLEUS`).
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
            mpp = config.mpp if config.mpp is not None else read_mpp(path)
            result = segment_image(rgb, dataclasses.replace(config, mpp=mpp), image_id=image_id)
            store.write_image(
                image_id,
                result.table,
                result.patches,
                label_mask=result.label_mask,
                overlay=result.overlay,
                image_info=result.image_info,
            )
        except Exception as err:  # one bad image must not stop the run; it is reported
            failed[str(path)] = failure_reason(err, path)
            continue
        done.append(image_id)
        if result.table.empty:
            empty[str(path)] = result.empty_reason or NO_NUCLEUS
    return RunSummary(tuple(done), tuple(skipped), failed, empty)
