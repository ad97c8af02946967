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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cellgan.errors import CellganError
from cellgan.io.files import safe_image_id
from cellgan.io.images import DEFAULT_MAX_PIXELS, find_images, read_mpp, read_rgb
from cellgan.io.slides import is_slide
from cellgan.segment.config import SegmentConfig
from cellgan.segment.image import refuse_crop_patches, reinhard_target, segment_image
from cellgan.segment.reference import resolve_reference

__all__ = [
    "SCHEDULER_FORMS",
    "RunSummary",
    "SchedulerError",
    "image_ids",
    "parse_scheduler",
    "segment_images",
    "task_runner",
]

#: How a scheduler is named (``--scheduler``): in this process, a local Dask cluster of N
#: worker processes, or a running Dask scheduler's address.
SCHEDULER_FORMS = ("serial", "local:N", "tcp://HOST:PORT")


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
        under the same paths (a shared file system).

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
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            with Client(cluster) as client:
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
    """Segment one image file into its shard; the number of cells, or :class:`_Failed`."""
    from cellgan.io.cellstore import CellStore

    path, image_id = item
    try:
        rgb = read_rgb(path, max_pixels=max_pixels)
        mpp = config.mpp if config.mpp is not None else read_mpp(path)
        result = segment_image(rgb, dataclasses.replace(config, mpp=mpp), image_id=image_id)
        CellStore.open(store_root).write_image(
            image_id, result.table, result.patches, label_mask=result.label_mask, overlay=result.overlay
        )
    except Exception as err:  # one bad image must not stop the run; it is reported
        return _Failed(failure_reason(err, path))
    return len(result.table)


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

    Images already in the store (``store.has_image``) are skipped. An image that
    fails (unreadable, empty, over the pixel budget, blank, smaller than a patch, not
    H&E, ...) is reported with the reason and the others go on; one segmented
    without a nucleus is written and named in ``empty``. The pixel size is
    ``config.mpp`` or, when None, the file's own
    (:func:`cellgan.io.images.read_mpp`), else estimated. Slides
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
        file without a cell to :data:`NO_NUCLEUS`.
    """
    from tqdm.auto import tqdm

    config = SegmentConfig() if config is None else config
    refuse_crop_patches(config)
    check_patch_mode(store, config)
    parse_scheduler(scheduler)  # a bad name fails before any work
    files = find_images(paths)
    if config.reinhard_reference is not None:
        config = dataclasses.replace(config, reinhard_reference=resolve_reference(config.reinhard_reference, files))
        reinhard_target(config.reinhard_reference)  # fail now, not once per image
    ids = image_ids(files)
    skipped = [ids[p] for p in files if store.has_image(ids[p])]
    todo = [p for p in files if not store.has_image(ids[p])]
    slides = [p for p in todo if is_slide(p)]
    images = [p for p in todo if p not in set(slides)]
    cells: dict[Path, int] = {}
    failed: dict[Path, str] = {}
    with task_runner(scheduler) as runner:
        task = functools.partial(_image_task, store_root=store.root, config=config, max_pixels=max_pixels)
        bar = tqdm(total=len(images), desc="segment", unit="image", disable=not progress or not images)
        for (path, _), result in runner.map(task, [(p, ids[p]) for p in images]):
            bar.update()
            _record(path, result, cells, failed)
        bar.close()
        if slides:
            _segment_slides(runner, slides, ids, store, config, cells, failed, progress=progress, tile_side=tile_side)
    done = [ids[p] for p in todo if p in cells]
    empty = {str(p): NO_NUCLEUS for p in todo if cells.get(p) == 0}
    return RunSummary(tuple(done), tuple(skipped), {str(p): failed[p] for p in todo if p in failed}, empty)


def _record(path: Path, result, cells: dict, failed: dict) -> None:
    if isinstance(result, _Failed):
        failed[path] = result.reason
    else:
        cells[path] = result


def _segment_slides(
    runner, slides, ids, store, config, cells: dict, failed: dict, *, progress: bool, tile_side: int | None
) -> None:
    """Plan each slide, segment all their tiles not yet done as one set of tasks, then join each slide's parts."""
    from tqdm.auto import tqdm

    from cellgan.segment.slide import TILE_SIDE, join_parts, part_paths

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
            cells[path] = join_parts(store, plan, _tiles_dir(store.root, plan.slide_id))
        except Exception as err:  # one bad slide must not stop the others
            failed[path] = failure_reason(err, path)
