"""Image files → a cell store, one shard per image, resumable: :func:`segment_images`.

Also what the runs over many files share: :class:`RunSummary`, the image ids
(:func:`image_ids`) and the one-line reason a file failed.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cellgan.fields import as_dict
from cellgan.io.cellstore import ShardStatus, shard_identity
from cellgan.io.files import outside, safe_image_id
from cellgan.io.images import DEFAULT_MAX_PIXELS, find_images, read_mpp, read_rgb
from cellgan.segment.config import SegmentConfig
from cellgan.segment.image import refuse_crop_patches, reinhard_target, segment_image
from cellgan.segment.reference import resolve_reference

__all__ = ["RunSummary", "image_ids", "segment_images"]


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
    remade : dict
        File → why its shard was made again (the file changed, other options; among ``done``).
    """

    done: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: dict[str, str]
    empty: dict[str, str] = field(default_factory=dict)
    remade: dict[str, str] = field(default_factory=dict)


def image_ids(paths) -> dict[Path, str]:
    """A unique, file-name-safe image id per file: its stem, or ``parent_stem`` when stems clash.

    Paths to the same file (``a/x.png``, ``./a/../a/x.png``) are one file and get one id.

    Parameters
    ----------
    paths : iterable of str or Path

    Returns
    -------
    dict
        ``Path(path)`` → id, in the order given.
    """
    given = [Path(p) for p in paths]
    files = list(dict.fromkeys(p.resolve() for p in given))
    stems = Counter(safe_image_id(f.stem) for f in files)
    by_file: dict[Path, str] = {}
    used: set[str] = set()
    for f in files:
        stem = safe_image_id(f.stem)
        candidate = stem if stems[stem] == 1 else safe_image_id(f"{f.parent.name}_{f.stem}")
        unique, k = candidate, 2
        while unique in used:
            unique, k = f"{candidate}_{k}", k + 1
        used.add(unique)
        by_file[f] = unique
    return {p: by_file[p.resolve()] for p in given}


def failure_reason(err: BaseException, path: Path) -> str:
    """The message of ``err`` without the path it starts with; the exception's type unless a ValueError."""
    text = str(err)
    for prefix in (f"{path}: ", f"{path.name}: "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    if isinstance(err, ValueError):
        return text
    return f"{type(err).__name__}: {text}"


def shard_to_write(store, image_id: str, sources: dict, options: dict, *, name: str, summary: dict):
    """The identity of the shard ``image_id`` when it is to be (re-)made, else None (done, or refused).

    ``summary`` holds the run's ``skipped`` list and ``failed`` and ``remade`` dicts,
    which this records in under ``name`` (the file as given);
    :meth:`cellgan.io.cellstore.CellStore.shard_status` decides.
    """
    try:
        identity = shard_identity(sources, options)
    except OSError as err:
        summary["failed"][name] = f"unreadable ({err.strerror or err})"
        return None
    status: ShardStatus = store.shard_status(image_id, identity)
    if status.action == "skip":
        summary["skipped"].append(image_id)
        return None
    if status.action == "refuse":
        summary["failed"][name] = status.reason
        return None
    if status.action == "remake":
        summary["remade"][name] = status.reason
    return identity


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

    Images already in the store from the same file contents and options are skipped;
    one whose file or options changed is re-made, and one whose id is taken by another
    file is refused (:meth:`cellgan.io.cellstore.CellStore.shard_status`); files inside
    the store are never read. The store is locked while this runs. An image that
    fails (unreadable, empty, over the pixel budget, blank, smaller than a patch, not
    H&E, ...) is reported with the reason and the others go on; one segmented
    without a nucleus is written and named in ``empty``. The pixel size is
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
        file without a cell to :data:`NO_NUCLEUS`.
    """
    from tqdm.auto import tqdm

    config = SegmentConfig() if config is None else config
    refuse_crop_patches(config)
    check_patch_mode(store, config)
    files = outside(find_images(paths), store.root)
    if config.reinhard_reference is not None:
        config = dataclasses.replace(config, reinhard_reference=resolve_reference(config.reinhard_reference, files))
        reinhard_target(config.reinhard_reference)  # fail now, not once per image
    ids = image_ids(files)
    options = as_dict(config)
    done, empty, summary = [], {}, {"skipped": [], "failed": {}, "remade": {}}
    failed = summary["failed"]
    bar = tqdm(files, desc="segment", unit="image", disable=not progress)
    with store.writing():
        for path in bar:
            image_id = ids[path]
            if image_id in done or image_id in summary["skipped"]:  # the same file given twice
                continue
            identity = shard_to_write(store, image_id, {"image": path}, options, name=str(path), summary=summary)
            if identity is None:
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
                    identity=identity,
                )
            except Exception as err:  # one bad image must not stop the run; it is reported
                failed[str(path)] = failure_reason(err, path)
                continue
            done.append(image_id)
            if result.table.empty:
                empty[str(path)] = NO_NUCLEUS
    return RunSummary(tuple(done), tuple(summary["skipped"]), failed, empty, summary["remade"])
