"""Image files and slides → a cell store, one shard per image or slide, resumable: :func:`segment_images`.

The work is a set of independent tasks, one per image and one per slide tile
(:mod:`cellgan.segment.slide`), run in this process or by Dask workers
(``scheduler``: :func:`task_runner`); each task writes its own shard or tile part,
and the ids and the order of the cells are fixed before any task runs, so the store
is the same whoever ran the tasks. Also what the runs over many files share:
:class:`RunSummary`, the image ids (:func:`image_ids`) and the one-line reason a
file failed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cellgan.errors import CellganError
from cellgan.fields import as_dict, settings_digest
from cellgan.io.cellstore import ShardStatus, shard_identity
from cellgan.io.files import atomic_write, outside, safe_image_id
from cellgan.io.images import DEFAULT_MAX_PIXELS, find_images, read_mpp, read_rgb
from cellgan.io.slides import is_slide
from cellgan.segment.config import SegmentConfig
from cellgan.segment.image import NO_NUCLEUS, prepare, refuse_crop_patches, reinhard_target, segment_image
from cellgan.segment.pixel_size import PixelSizeError, estimate_sample, field_estimates, pool_estimates
from cellgan.segment.reference import resolve_reference

__all__ = [
    "LOCAL_WORKER_ENVIRON",
    "NO_NUCLEUS",
    "SCHEDULER_FORMS",
    "RunSummary",
    "SchedulerError",
    "image_ids",
    "parse_scheduler",
    "pixel_sizes",
    "segment_images",
    "task_runner",
]

#: How a scheduler is named (``--scheduler``): in this process, a local Dask cluster of N
#: worker processes, or a running Dask scheduler's address.
SCHEDULER_FORMS = ("serial", "local:N", "tcp://HOST:PORT")

#: The environment a local Dask cluster's worker processes start with, beside Dask's own. Dask sets
#: ``MALLOC_TRIM_THRESHOLD_`` (64 KiB) so that workers hand freed memory back to the system; setting
#: it also freezes glibc's mmap threshold at 128 KiB, so every image-sized array is mapped and
#: unmapped afresh, page faults and all: the segmentation ran 1.4× slower in a worker than in this
#: process (benchmarks/README.md, issue 13, 2026-12-05). An mmap threshold of 32 MiB, the ceiling glibc
#: itself would adapt up to, keeps those arrays on the heap and the trimming on. Workers started by
#: hand for ``tcp://`` need the same variable (README, "Whole slides and clusters").
LOCAL_WORKER_ENVIRON = {"MALLOC_MMAP_THRESHOLD_": 32 * 2**20}


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


class SchedulerError(CellganError, ValueError):
    """A scheduler that cannot be used: a malformed name, Dask not installed, an address not answering."""


class _InProcess:
    """Runs the tasks one after another in this process."""

    def map(self, task, items):
        for item in items:
            yield item, task(item)


class _Dask:
    """Runs the tasks on a Dask cluster (``distributed.Client``), yielding each result as it comes."""

    def __init__(self, client):
        self.client = client

    def map(self, task, items):
        from distributed import as_completed

        items = list(items)
        futures = self.client.map(task, items, pure=False)
        which = {future.key: item for future, item in zip(futures, items)}
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as err:  # a worker lost, a task that could not be sent: that item fails
                result = _Failed(f"{type(err).__name__}: {err}")
            yield which[future.key], result


@contextlib.contextmanager
def task_runner(scheduler: str | None):
    """What runs the tasks of :func:`segment_images`: this process, or a Dask cluster.

    Parameters
    ----------
    scheduler : str or None
        None or ``"serial"``: this process. ``"local:N"``: a ``distributed.LocalCluster``
        of N single-threaded worker processes on this machine, closed afterwards.
        ``"tcp://HOST:PORT"`` (or ``tls://``): the running Dask scheduler at that
        address, whose workers must reach the input files and the store's folder
        under the same paths (a shared file system). A local cluster's workers
        start with :data:`LOCAL_WORKER_ENVIRON`.

    Raises
    ------
    SchedulerError
    """
    kind, workers = parse_scheduler(scheduler)
    if kind == "serial":
        yield _InProcess()
        return
    from distributed import Client, LocalCluster

    if kind == "local":
        import dask

        environ = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in LOCAL_WORKER_ENVIRON.items()}
        with dask.config.set(environ):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        with cluster, Client(cluster) as client:
            yield _Dask(client)
        return
    try:
        client = Client(scheduler, timeout="30s")
    except OSError as err:
        raise SchedulerError(f"--scheduler {scheduler}: no Dask scheduler answers there ({err})") from err
    with client:
        yield _Dask(client)


def parse_scheduler(scheduler: str | None) -> tuple[str, int]:
    """``("serial", 0)``, ``("local", N)`` or ``("address", 0)`` for a scheduler name (:func:`task_runner`).

    Raises
    ------
    SchedulerError
        The name has none of the forms of :data:`SCHEDULER_FORMS`, or Dask is needed and not installed.
    """
    if scheduler in (None, "serial"):
        return "serial", 0
    if scheduler.startswith("local:"):
        workers = scheduler.removeprefix("local:")
        if not workers.isdigit() or int(workers) < 1:
            raise SchedulerError(f"--scheduler {scheduler}: expected local:N with N a whole number of at least 1")
        kind = ("local", int(workers))
    elif scheduler.startswith(("tcp://", "tls://")):
        kind = ("address", 0)
    else:
        raise SchedulerError(f"--scheduler {scheduler}: not one of {', '.join(SCHEDULER_FORMS)}")
    if importlib.util.find_spec("distributed") is None:
        raise SchedulerError(f"--scheduler {scheduler}: Dask is not installed; pip install 'cellgan[dask]'")
    return kind


@dataclass(frozen=True)
class _Failed:
    """A task's failure, as a one-line reason (tasks return it rather than raise, so that the others go on)."""

    reason: str


def _image_task(item, *, store_root: Path, config: SegmentConfig, max_pixels: int):
    """Segment one image file at its pixel size (:func:`pixel_sizes`) into its shard.

    Returns its number of cells and, when none, why (:attr:`CellResult.empty_reason`); or :class:`_Failed`.
    """
    from cellgan.io.cellstore import CellStore

    path, image_id, identity, mpp, mpp_source = item
    try:
        rgb = read_rgb(path, max_pixels=max_pixels)
        result = segment_image(rgb, dataclasses.replace(config, mpp=mpp), image_id=image_id)
        table = result.table.assign(mpp_source=mpp_source)
        CellStore.open(store_root).write_image(
            image_id,
            table,
            result.patches,
            label_mask=result.label_mask,
            overlay=result.overlay,
            identity=identity,
            image_info=result.image_info,
        )
    except Exception as err:  # one bad image must not stop the run; it is reported
        return _Failed(failure_reason(err, path))
    return len(result.table), result.empty_reason


def _plan_task(item, *, config: SegmentConfig, tile_side: int):
    """A slide's :class:`~cellgan.segment.slide.SlidePlan`, or :class:`_Failed`."""
    from cellgan.segment.slide import plan_slide

    path, slide_id = item
    try:
        return plan_slide(path, slide_id, config, tile_side=tile_side)
    except Exception as err:  # one bad slide must not stop the run; it is reported
        return _Failed(failure_reason(err, path))


def _tile_task(item, *, store_root: Path):
    """Segment one tile of a slide into its part; the number of cells, or :class:`_Failed`."""
    from cellgan.segment.slide import segment_tile

    plan, tile = item
    try:
        return segment_tile(plan, tile, _tiles_dir(store_root, plan.slide_id))
    except Exception as err:  # the slide fails with this reason; its other tiles are kept for a re-run
        return _Failed(f"tile {tile.index} at ({tile.x}, {tile.y}): {failure_reason(err, plan.path)}")


def _tiles_dir(store_root: Path, slide_id: str) -> Path:
    """Where a slide's tile parts wait until :func:`cellgan.segment.slide.join_parts` makes its shard."""
    return Path(store_root) / "tiles" / slide_id


#: In a cell store: each file's field estimates of the pixel size (:func:`pixel_sizes`), kept for resuming.
FIELD_ESTIMATES_FILE = "pixel_size_fields.json"


def pixel_sizes(
    files,
    config: SegmentConfig,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    cache: Path | None = None,
    runner=None,
) -> dict[Path, tuple[float | None, str]]:
    """Each file's pixel size and where it came from: ``given``, ``file`` or ``estimated``.

    ``config.mpp`` when set; else the file's own (:func:`cellgan.io.images.read_mpp`);
    else the estimate pooled over the fields of the files without one (at most
    :data:`~cellgan.segment.pixel_size.MAX_ESTIMATE_IMAGES` of them, evenly spread:
    :func:`~cellgan.segment.pixel_size.estimate_sample`). The estimate prepares the
    images as it was calibrated (:data:`~cellgan.segment.pixel_size.BLOB_RADIUS_RATIO`),
    without ``config.reinhard_reference``: normalised, the haematoxylin's foreground
    moved, and all 100 CRCHistoPhenotypes images were refused where unnormalised
    they give 0.495 µm/px for the known 0.5 (benchmarks/README.md, issue 13). A file
    that cannot be read or prepared adds nothing to the estimate (the segmentation reports it).

    Parameters
    ----------
    files : list of Path
    config : SegmentConfig
    max_pixels : int
    cache : Path, optional
        A JSON file of each file's field estimates (keyed by its path, size,
        modification time and the options), read and brought up to date, so that
        a resumed run does not prepare every image again to estimate the same size.
    runner : optional
        What prepares the images to estimate from (:func:`task_runner`'s); default this process.

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
    config = dataclasses.replace(config, reinhard_reference=None)  # as calibrated; see above
    known = _read_field_estimates(cache)
    keys = {path: _estimate_key(path, config, max_pixels) for path in unstated}
    task = functools.partial(_estimate_task, config=config, max_pixels=max_pixels)
    runner = _InProcess() if runner is None else runner

    def estimate(paths):
        for path, estimates in runner.map(task, [path for path in paths if keys[path] not in known]):
            if not isinstance(estimates, _Failed):  # unreadable, blank, not H&E: segment_images names it
                known[keys[path]] = estimates

    sample = estimate_sample(unstated)
    estimate(sample)
    if len(sample) < len(unstated) and not any(keys[path] in known for path in sample):
        sample = unstated  # none of the sample could be read: the others are tried
        estimate(sample)
    found = {keys[path]: known[keys[path]] for path in sample if keys[path] in known}
    values = [value for path in sample if keys[path] in found for value in found[keys[path]]]
    if cache is not None and found:
        atomic_write(cache, lambda p: p.write_text(json.dumps(found)))
    pooled = pool_estimates(values)
    if not found:  # nothing to segment either: each file's own failure says why
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


def _estimate_task(path: Path, *, config: SegmentConfig, max_pixels: int):
    """One image file's field estimates of the pixel size, or :class:`_Failed` when it cannot be prepared."""
    try:
        prepared = prepare(read_rgb(path, max_pixels=max_pixels), config)
    except Exception as err:  # the segmentation task reports the file's failure
        return _Failed(f"{type(err).__name__}: {err}")
    return field_estimates(prepared.stains[..., 0], prepared.tissue, config)


def _estimate_key(path: Path, config: SegmentConfig, max_pixels: int) -> str:
    """What a file's field estimates depend on: the file (path, size, modification time) and the options."""
    stat = Path(path).stat()
    options = settings_digest({**as_dict(config), "max_pixels": max_pixels})
    return f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{options}"


def _read_field_estimates(cache: Path | None) -> dict[str, list[float]]:
    """The field estimates kept in ``cache`` ({} when there is none, or it cannot be read: they are made again)."""
    if cache is None or not Path(cache).is_file():
        return {}
    try:
        known = json.loads(Path(cache).read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def segment_images(
    paths,
    store,
    config: SegmentConfig | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = True,
    scheduler: str | None = None,
    tile_side: int | None = None,
) -> RunSummary:
    """Segment image files and slides into a cell store, one shard per image or slide; resumable.

    Images already in the store from the same file contents and options are skipped;
    one whose file or options changed is re-made, and one whose id is taken by another
    file is refused (:meth:`cellgan.io.cellstore.CellStore.shard_status`); files inside
    the store are never read. The store is locked while this runs. An image that
    fails (unreadable, empty, over the pixel budget, smaller than a patch, not
    H&E, ...) is reported with the reason and the others go on; one segmented
    of blank glass or without a nucleus is written without cells and named in ``empty``. The pixel size is
    ``config.mpp`` or, when None, the file's own
    (:func:`cellgan.io.images.read_mpp`), else estimated from the nuclei of all
    the files without one (:func:`pixel_sizes`); the table records it (``mpp``,
    ``mpp_source``). Slides
    (:func:`cellgan.io.slides.is_slide`) are segmented tile by tile at
    ``config.work_mpp`` (:mod:`cellgan.segment.slide`; ``config.mpp``, when set, is
    their level 0's pixel size), without a pixel budget; a slide's finished tiles
    are kept when it is interrupted. A ``config.reinhard_reference`` of
    ``"typical"`` is the most typical of these images
    (:func:`cellgan.segment.reference.typical_image`).

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
    scheduler : str, optional
        What runs the tasks (:func:`task_runner`); the store is the same whatever it is.
    tile_side : int, optional
        A slide tile's side in pixels, margins included (default
        :data:`cellgan.segment.slide.TILE_SIDE`).

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
    parse_scheduler(scheduler)  # a bad name fails before any work
    files = outside(find_images(paths), store.root)
    summary = {"skipped": [], "failed": {}, "remade": {}}
    cells: dict[Path, int] = {}
    failed: dict[Path, str] = {}
    empty: dict[Path, str] = {}
    with task_runner(scheduler) as runner:
        if config.reinhard_reference is not None:
            reference = resolve_reference(config.reinhard_reference, files, runner=runner)
            config = dataclasses.replace(config, reinhard_reference=reference)
            reinhard_target(config.reinhard_reference)  # fail now, not once per image
        ids = image_ids(files)
        options = as_dict(config)
        with store.writing():
            todo = {}  # path -> the identity its shard is written with
            decided: set[str] = set()  # ids to write or already done: a file given twice (two spellings) is one
            for path in files:
                if ids[path] in decided:
                    continue
                identity = shard_to_write(store, ids[path], {"image": path}, options, name=str(path), summary=summary)
                if identity is not None:
                    todo[path] = identity
                if identity is not None or summary["skipped"][-1:] == [ids[path]]:
                    decided.add(ids[path])
            slides = [p for p in todo if is_slide(p)]
            images = [p for p in todo if not is_slide(p)]
            # pooled over every image file, done or not, so that a resumed run estimates as the first did
            sizes = {}
            if images:
                image_files = [p for p in files if not is_slide(p)]
                cache = store.root / FIELD_ESTIMATES_FILE
                sizes = pixel_sizes(image_files, config, max_pixels=max_pixels, cache=cache, runner=runner)
            task = functools.partial(_image_task, store_root=store.root, config=config, max_pixels=max_pixels)
            bar = tqdm(total=len(images), desc="segment", unit="image", disable=not progress or not images)
            for (path, *_), result in runner.map(task, [(p, ids[p], todo[p], *sizes[p]) for p in images]):
                bar.update()
                _record(path, result, cells, failed, empty)
            bar.close()
            if slides:
                _segment_slides(
                    runner, slides, ids, todo, store, config, cells, failed, progress=progress, tile_side=tile_side
                )
    done = [ids[p] for p in todo if p in cells]
    empty = {str(p): empty.get(p, NO_NUCLEUS) for p in todo if cells.get(p) == 0}
    failed = {**summary["failed"], **{str(p): failed[p] for p in todo if p in failed}}
    return RunSummary(tuple(done), tuple(summary["skipped"]), failed, empty, summary["remade"])


def _record(path: Path, result, cells: dict, failed: dict, empty: dict) -> None:
    if isinstance(result, _Failed):
        failed[path] = result.reason
    else:
        cells[path], reason = result
        if cells[path] == 0:
            empty[path] = reason or NO_NUCLEUS


def _segment_slides(
    runner, slides, ids, identities, store, config, cells: dict, failed: dict, *, progress: bool, tile_side: int | None
) -> None:
    """Plan each slide, segment all their tiles not yet done as one set of tasks, then join each slide's parts.

    Tile parts left by an earlier run are reused only when made from the same file and
    options (the slide's ``identities``); other parts are removed first.
    """
    from tqdm.auto import tqdm

    from cellgan.segment.slide import TILE_SIDE, join_parts, keep_parts_of, part_paths

    for path in slides:
        keep_parts_of(_tiles_dir(store.root, ids[path]), identities[path])
    plan = functools.partial(_plan_task, config=config, tile_side=tile_side or TILE_SIDE)
    plans = {}
    for (path, _), result in runner.map(plan, [(p, ids[p]) for p in slides]):
        if isinstance(result, _Failed):
            failed[path] = result.reason
        else:
            plans[path] = result
    tiles = [
        (plan, tile)
        for plan in plans.values()
        for tile in plan.tiles
        if not part_paths(_tiles_dir(store.root, plan.slide_id), tile)[1].is_file()
    ]
    slide_of = {plan.slide_id: path for path, plan in plans.items()}
    bar = tqdm(total=len(tiles), desc="segment slides", unit="tile", disable=not progress or not tiles)
    for (plan, _), result in runner.map(functools.partial(_tile_task, store_root=store.root), tiles):
        bar.update()
        if isinstance(result, _Failed):
            failed.setdefault(slide_of[plan.slide_id], result.reason)
    bar.close()
    for path, plan in plans.items():
        if path in failed:
            continue
        try:
            cells[path] = join_parts(store, plan, _tiles_dir(store.root, plan.slide_id), identity=identities[path])
        except Exception as err:  # one bad slide must not stop the others
            failed[path] = failure_reason(err, path)
