"""A run: its stages, from H&E images to the report, and the one layout of a run directory.

The stages run in order, each reading the previous one's files (:class:`RunFiles`)::

    segment  -> RUN_DIR/cells          the cell store (nuclei, patches, masks)
    train    -> RUN_DIR/model          the GAN (Hu et al., JBHI 2019)
    assign   -> RUN_DIR/assignments    argmax Q of every cell
    compose  -> RUN_DIR/composition    cells per category per image
    export   -> RUN_DIR/export         QuPath GeoJSON per image, cell tables
    report   -> RUN_DIR/report.html    one self-contained page

A stage that finishes writes ``RUN_DIR/<stage>.done`` (JSON) last. Its
fingerprint covers the stage's configuration and the previous stage's
fingerprint, so a re-run skips every stage already done with the same inputs,
and re-runs a stage (and those after it) whose configuration changed. A killed
run continues where it stopped: segmentation skips the images already in the
store, training resumes from its last checkpoint. Changing the segmentation or
the model's recipe under an existing run is refused; a longer training time
continues the training.

:func:`run_pipeline` runs them all; each ``*_stage`` function runs one stage on
explicit folders, so that the benchmarks run the same stages in their own layouts.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cellgan.errors import CellganError
from cellgan.fields import settings_digest
from cellgan.io.images import DEFAULT_MAX_PIXELS

__all__ = [
    "DEFAULT_IMAGES",
    "RunFiles",
    "StageConflict",
    "StageError",
    "assign_stage",
    "compose_stage",
    "default_images",
    "export_stage",
    "prepare_training",
    "report_stage",
    "run_pipeline",
    "segment_stage",
    "train_stage",
]

#: Where the default input is looked for, under each data root.
DEFAULT_IMAGES = Path("bm_graz") / "source"


class StageConflict(CellganError, ValueError):
    """A run directory whose finished work does not match the asked-for inputs or options."""


class StageError(CellganError, ValueError):
    """A stage whose input leaves it nothing to work on; the message says why."""


@dataclass(frozen=True)
class RunFiles:
    """The layout of a run directory: every path a run writes, and the report reads."""

    root: Path

    @property
    def cells(self) -> Path:
        return self.root / "cells"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def assignments(self) -> Path:
        return self.root / "assignments"

    @property
    def composition(self) -> Path:
        return self.root / "composition"

    @property
    def classification(self) -> Path:
        return self.root / "classification"

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def config(self) -> Path:
        """``config.yaml``: the resolved options of every stage."""
        return self.root / "config.yaml"

    def done(self, stage: str) -> Path:
        """``<stage>.done``: the marker a finished stage writes last."""
        return self.root / f"{stage}.done"

    def started(self, stage: str) -> Path:
        """``<stage>.started``: the marker of a stage running, or killed while it ran."""
        return self.root / f"{stage}.started"

    @property
    def sources(self) -> Path:
        """``segment.done``: the image file of each image id, written by the segment stage."""
        return self.done("segment")


def run_pipeline(
    images: list[Path],
    run_dir: Path,
    config=None,
    *,
    device="auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = True,
    log=print,
    scheduler: str | None = None,
) -> dict:
    """Run every stage not yet done; return the images segmentation failed on (name -> reason).

    Parameters
    ----------
    images : list of Path
        The image files.
    run_dir : Path
        The run directory; created if needed.
    config : cellgan.config.RunConfig, optional
        Resolved options of every stage (:func:`cellgan.config.resolve_config`);
        written to ``RUN_DIR/config.yaml``. Default: the default recipe.
    device : str or torch.device
        Where training, assignment and the report's generator sweep run
        (``auto``: CUDA when available).
    max_pixels : int
        The pixel budget of an image (:func:`cellgan.io.images.read_rgb`). A budget
        other than the default re-runs the segmentation, which tries the images that
        failed again (the store's images stay): it is in the stage's key, not its lock.
    progress : bool
        Show the stages' progress bars.
    log : callable
        Receives one line per stage.
    scheduler : str, optional
        What runs the segmentation's tasks (:func:`cellgan.segment.batch.task_runner`);
        not in the stage's key, as the cells are the same whatever it is.

    Raises
    ------
    StageConflict
        The run directory holds a finished or half-done segmentation or model made
        from other images or options.
    cellgan.io.lock.FolderLocked
        Another process is running in ``run_dir``.

    Notes
    -----
    Inside a process group of several ranks (``torchrun``:
    :func:`cellgan.model.distributed.process_group`) rank 0 alone runs the stages and
    writes the run directory; the other ranks wait for its segmentation, train with it
    (DDP) and return an empty dict.
    """
    from cellgan.config import config_to_dict, resolve_config, write_config
    from cellgan.device import resolve_device
    from cellgan.io.files import outside
    from cellgan.io.lock import folder_lock
    from cellgan.model import distributed

    config = resolve_config() if config is None else config
    device = resolve_device(device, set_threads=False)
    files = RunFiles(Path(run_dir))
    ranks = distributed.current_ranks()
    followers = None if ranks is None else distributed.waiting_group()
    if ranks is not None and not ranks.leads:
        return _follow_rank_zero(files, config.train, device=device, group=followers)
    kept = outside(images, files.root)
    if len(kept) < len(images):
        log(f"input: {len(images) - len(kept)} file(s) inside the run directory {files.root} left out (its own outputs)")
    images = kept
    plain = config_to_dict(config)
    sources = sorted(str(Path(p).resolve()) for p in images)
    segment_key = {"config": plain["segment"], "images": sources}
    budget = {} if max_pixels == DEFAULT_MAX_PIXELS else {"max_pixels": max_pixels}  # the default keeps its key
    segment = _Stage(files, "segment", {**segment_key, **budget}, locked=segment_key)
    recipe = {"config": config.train.recipe(), "after": segment.fingerprint}
    length = {k: v for k, v in plain["train"].items() if k not in recipe["config"]}
    train = _Stage(files, "train", {**recipe, "length": length}, locked=recipe)
    assign = _Stage(files, "assign", {"config": plain["assign"], "after": train.fingerprint})
    names = None if config.report.names is None else list(config.report.names)
    compose = _Stage(files, "compose", {"config": plain["compose"], "names": names, "after": assign.fingerprint})
    export = _Stage(files, "export", {"config": plain["export"], "names": names, "after": compose.fingerprint})
    report = _Stage(files, "report", {"config": plain["report"], "after": export.fingerprint})
    with _telling_followers(followers) as tell, folder_lock(files.root):  # one run at a time in a run directory
        for stage in (segment, train):
            stage.check_lock()  # before anything is written, config.yaml included
        write_config(config, files.config)
        segment.run(
            lambda: segment_stage(
                images, files.cells, config.segment, max_pixels=max_pixels, progress=progress, scheduler=scheduler
            ),
            log=log,
        )
        resume = prepare_training(files.model)
        tell(_TRAINED if train.is_done() else _RESUME if resume else _TRAIN)
        train.run(
            lambda: train_stage(
                files.cells, files.model, config.train, device=device, progress=progress, resume=resume
            ),
            log=log,
        )
        assign.run(
            lambda: assign_stage(
                files.model,
                files.cells,
                files.assignments,
                device=device,
                batch_size=config.assign.batch_size,
                neighbours=config.assign.neighbours,
            ),
            log=log,
        )
        compose.run(
            lambda: compose_stage(
                files.assignments,
                files.composition,
                cells_dir=files.cells,
                classification_dir=files.classification,
                image_labels=config.compose.image_labels,
                names=names,
            ),
            log=log,
        )
        export.run(
            lambda: export_stage(
                files.assignments, files.export, cells_dir=files.cells, formats=config.export.formats, names=names
            ),
            log=log,
        )
        report.run(lambda: report_stage(files.root, config.report, device=device), log=log)
    return segment.marker().get("failed", {})


# -- stages ---------------------------------------------------------------------------
# Each returns the record its ``.done`` marker keeps: a one-line ``summary`` and, for
# segmentation, the image files and the failures.


def segment_stage(
    images: list[Path],
    cells_dir: Path,
    config,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = True,
    scheduler: str | None = None,
) -> dict:
    """Segment the images into the cell store ``cells_dir``, skipping those already there.

    Parameters
    ----------
    images : list of Path
        The image files.
    cells_dir : Path
        The cell store; created if needed.
    config : cellgan.segment.SegmentConfig
        The segmentation options.
    max_pixels : int
        The pixel budget of an image.
    progress : bool
        Show a progress bar.
    scheduler : str, optional
        What runs the tasks (:func:`cellgan.segment.batch.task_runner`).

    Returns
    -------
    dict
        ``summary``, ``images`` (image id -> its file, for the images in the store),
        ``failed`` (image name -> reason) and ``empty`` (image -> why it holds no cell).

    Raises
    ------
    StageError
        No image could be segmented, or none holds a nucleus.
    """
    from cellgan.io.cellstore import CellStore
    from cellgan.segment import image_ids, segment_images

    store = CellStore.create(cells_dir, patch_mode=config.patch_mode)
    summary = segment_images(
        list(images), store, config, progress=progress, max_pixels=max_pixels, scheduler=scheduler
    )
    if not store.image_ids():
        reasons = "; ".join(f"{name}: {why}" for name, why in summary.failed.items()) or "no image given"
        raise StageError(f"no image could be segmented ({reasons})")
    cells = len(store)
    if cells == 0:
        raise StageError(f"{store.root}: segmentation found no nucleus in any image")
    ids = image_ids(list(images))
    return {
        "summary": f"{len(store.image_ids())} images, {cells} cells",
        "images": {ids[Path(p)]: str(Path(p).resolve()) for p in images if ids[Path(p)] in store.image_ids()},
        "failed": dict(summary.failed),
        "empty": dict(summary.empty),
    }


def prepare_training(model_dir: Path) -> bool:
    """Decide how training in ``model_dir`` starts: from its last checkpoint, or afresh.

    A folder without a checkpoint is what a run killed before its first
    checkpoint leaves: there is nothing to continue from, so it is removed.

    Returns
    -------
    bool
        True when ``model_dir`` holds a checkpoint to resume from.
    """
    from cellgan.model.checkpoint import META_NAME

    model_dir = Path(model_dir)
    if (model_dir / META_NAME).is_file():
        return True
    if model_dir.exists():
        shutil.rmtree(model_dir)
    return False


def train_stage(
    cells_dir: Path, model_dir: Path, config, *, device, progress: bool = True, resume: bool | None = None
) -> dict:
    """Train the GAN on the store's cells, resuming ``model_dir`` when it holds a checkpoint.

    Parameters
    ----------
    cells_dir, model_dir : Path
        The cell store, and the model directory to write.
    config : cellgan.model.TrainConfig
        The recipe and its run length.
    device : torch.device
        Where to train.
    progress : bool
        Show a progress bar.
    resume : bool, optional
        Whether to resume, when already decided (:func:`prepare_training`, which
        None calls here).
    """
    from cellgan.io.cellstore import CellStore
    from cellgan.model import train

    store = CellStore.open(cells_dir)
    resume = prepare_training(model_dir) if resume is None else resume
    patches, table = store.read_patches(), store.read_table()
    result = train(patches, model_dir, config, device=device, resume=resume, progress=progress, table=table)
    minutes = result.elapsed_seconds / 60
    return {"summary": f"{result.step} generator steps, {minutes:.1f} min" + (", resumed" if resume else "")}


def assign_stage(
    model_dir: Path, cells_dir: Path, out_dir: Path, *, device, batch_size: int = 512, neighbours: int | None = None
) -> dict:
    """Write the ASSIGNMENTS directory ``out_dir`` (argmax Q of every cell), gallery included.

    See :func:`cellgan.analysis.assign.write_assignments` and
    :func:`cellgan.report.gallery.write_assignments_gallery`.
    """
    from cellgan.analysis.assign import write_assignments
    from cellgan.io.cellstore import CellStore
    from cellgan.report.gallery import write_assignments_gallery

    meta = write_assignments(model_dir, cells_dir, out_dir, device=device, batch_size=batch_size, neighbours=neighbours)
    write_assignments_gallery(out_dir, CellStore.open(cells_dir).read_patches(mmap=True))
    over = f" (Q read over each cell and its {meta['neighbours']} nearest)" if meta["neighbours"] else ""
    return {"summary": f"{meta['n_cells']} cells per category{over}: {meta['cells_per_category']}"}


def compose_stage(
    assignments_dir: Path,
    out_dir: Path,
    *,
    cells_dir: Path | None = None,
    classification_dir: Path | None = None,
    image_labels=None,
    names=None,
) -> dict:
    """Write each image's composition (columns named by ``names``) and image features, then classify the images.

    See :func:`cellgan.analysis.composition.compose` and, into ``classification_dir``
    when given, :func:`cellgan.analysis.image_classification.classify_run` (labels
    from the CSV ``image_labels``, only to score).
    """
    from cellgan.analysis.composition import compose
    from cellgan.analysis.image_classification import classify_run, read_image_labels
    from cellgan.report.classification import write_classification

    result, _ = compose(assignments_dir, out_dir, cells_dir=cells_dir, names=names)
    summary = f"{len(result)} images, {int((result['n_cells'] == 0).sum())} without cells"
    if classification_dir is not None:
        labels = None if image_labels is None else read_image_labels(image_labels)
        classified = classify_run(out_dir, labels=labels)
        write_classification(classified, classification_dir, labels=labels)
        summary += "; " + classified.get("summary", classified.get("error", ""))
    return {"summary": summary}


def export_stage(assignments_dir: Path, out_dir: Path, *, cells_dir: Path, formats, names=None) -> dict:
    """Export the assignments in ``formats``, categories named by ``names`` (:func:`cellgan.report.export.export_assignments`)."""
    from cellgan.report.export import export_assignments

    written = export_assignments(assignments_dir, out_dir, cells_dir=cells_dir, formats=formats, names=names)
    return {"summary": ", ".join(f"{len(paths)} {fmt}" for fmt, paths in written.items())}


def report_stage(run_dir: Path, config, *, device) -> dict:
    """Write the run's report (:func:`cellgan.report.html.write_report`)."""
    from cellgan.report.html import write_report

    path = write_report(run_dir, config=config, device=device)
    return {"summary": f"{path} ({path.stat().st_size / 1e6:.1f} MB)"}


# -- torchrun -------------------------------------------------------------------------
# Under ``torchrun ... -m cellgan run`` rank 0 runs every stage; the other ranks wait for
# its segmentation, join the training (DDP) and stop. Rank 0 tells them what follows.

_STOPPED, _TRAIN, _RESUME, _TRAINED = range(4)


@contextmanager
def _telling_followers(group):
    """Yield ``tell(decision)``, which sends rank 0's decision to the other ranks (nothing on one process).

    Should the block fail before it told them, they are told to stop, rather than
    left waiting.
    """
    from cellgan.model import distributed

    told = []

    def tell(decision: int) -> None:
        if group is not None:
            distributed.send_from_rank_zero(decision, group)
        told.append(decision)

    try:
        yield tell
    except BaseException:
        if not told:
            tell(_STOPPED)
        raise


def _follow_rank_zero(files: RunFiles, config, *, device, group) -> dict:
    """A rank other than 0: wait for rank 0's segmentation, train with it unless trained already, stop.

    Raises
    ------
    StageError
        Rank 0 stopped before training.
    """
    from cellgan.model import distributed

    decision = distributed.send_from_rank_zero(_STOPPED, group)
    if decision == _STOPPED:
        raise StageError(f"{files.root}: rank 0 stopped before training (its messages say why)")
    if decision != _TRAINED:
        train_stage(files.cells, files.model, config, device=device, progress=False, resume=decision == _RESUME)
    return {}


# -- markers --------------------------------------------------------------------------


class _Stage:
    """One stage of a run and its markers: ``<stage>.started`` while it runs, ``<stage>.done`` after.

    ``key`` is everything the stage's result depends on: a finished stage with
    another key runs again. ``locked`` is the part that a stage whose outputs
    cannot be redone in place (the cell store, the model) must keep: a finished or
    half-done stage with another ``locked`` is refused rather than mixed with.
    Training's length is in its key but not locked, so a longer time continues it.
    """

    def __init__(self, files: RunFiles, name: str, key: dict, *, locked: dict | None = None):
        self.files, self.name = files, name
        self.fingerprint = settings_digest(key)
        self.lock = None if locked is None else settings_digest(locked)

    @property
    def done_path(self) -> Path:
        return self.files.done(self.name)

    @property
    def started_path(self) -> Path:
        return self.files.started(self.name)

    def marker(self) -> dict:
        """The ``.done`` marker's content; empty when the stage is not done."""
        return read_marker(self.done_path) if self.done_path.is_file() else {}

    def is_done(self) -> bool:
        """Whether the stage is done with this key (a run skips it)."""
        return self.marker().get("fingerprint") == self.fingerprint

    def check_lock(self) -> None:
        """Refuse a finished or half-done stage whose locked part differs from this one's."""
        if self.lock is None:
            return
        for path in (self.done_path, self.started_path):
            previous = read_marker(path).get("lock") if path.is_file() else None
            if previous not in (None, self.lock):
                raise StageConflict(
                    f"{self.files.root}: the {self.name} stage there was made from other images or options "
                    f"(see {self.files.config} and {path.name}); use another --out, or delete "
                    f"{getattr(self.files, _OUTPUT[self.name])} and {path.name} to redo it"
                )

    def run(self, work, *, log) -> None:
        """Run ``work`` (returning a dict with a ``summary``) unless done; write the markers."""
        from cellgan.io.files import atomic_write

        if self.is_done():
            log(f"{self.name}: done earlier ({self.marker().get('summary', '')}), skipped")
            return
        self.check_lock()
        self.done_path.unlink(missing_ok=True)
        record = {"stage": self.name, "fingerprint": self.fingerprint, "lock": self.lock}
        atomic_write(self.started_path, lambda p: p.write_text(json.dumps(record)))
        log(f"{self.name}: running")
        start = time.perf_counter()
        result = work()
        record.update(result, seconds=round(time.perf_counter() - start, 2))
        record["finished"] = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
        atomic_write(self.done_path, lambda p: p.write_text(json.dumps(record, indent=2)))
        self.started_path.unlink(missing_ok=True)
        log(f"{self.name}: done in {record['seconds']:.1f} s ({record['summary']})")


#: The output of each locked stage, as a :class:`RunFiles` attribute.
_OUTPUT = {"segment": "cells", "train": "model"}


def read_marker(path: Path) -> dict:
    """A stage marker's content (``RunFiles.done(stage)``, ``.started(stage)``).

    Raises
    ------
    StageConflict
        The marker is not a JSON object; the message says to delete it.
    """
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise StageConflict(f"{path}: unreadable stage marker ({err}); delete it to redo the stage") from err
    if not isinstance(data, dict):
        raise StageConflict(f"{path}: unreadable stage marker (not a JSON object); delete it to redo the stage")
    return data


# -- the default input ----------------------------------------------------------------


def default_images(*, cache_dir: Path | None = None, log=print) -> list[Path]:
    """The default input: the bone-marrow images of Hu et al.'s Dataset A (Kainz et al. 2015).

    Looked for as ``bm_graz/source`` under ``$CELLGAN_DATA_ROOT``, then
    ``../shared/data`` beside the repository and beside the working directory,
    then the download cache; downloaded into the cache when absent.
    """
    from cellgan.io.images import find_images

    for root in _data_roots():
        folder = root / DEFAULT_IMAGES
        if folder.is_dir():
            found = find_images([folder])
            if found:
                log(f"input: the {len(found)} bone-marrow images in {folder}")
                return found
    from cellgan.io import download

    cache_dir = download.default_cache_dir() if cache_dir is None else Path(cache_dir)
    log(
        f"input: no local copy of the bone-marrow images (looked for {DEFAULT_IMAGES} under "
        f"{', '.join(str(r) for r in _data_roots())}); downloading them once into {cache_dir / 'bm_graz'}: "
        f"the GitHub archive of pkainz/MICCAI2015 (Kainz et al., MICCAI 2015, Apache-2.0; {download.BM_GRAZ_URL}), "
        "of which only the 11 BM_GRAZ images (about 27 MB of PNG) and their dot annotations are kept"
    )
    folder = download.fetch_bm_graz(cache_dir) / "source"
    found = find_images([folder])
    log(f"input: the {len(found)} bone-marrow images in {folder}")
    return found


def _data_roots() -> list[Path]:
    import cellgan

    roots = []
    if os.environ.get("CELLGAN_DATA_ROOT"):
        roots.append(Path(os.environ["CELLGAN_DATA_ROOT"]))
    repo = Path(cellgan.__file__).resolve().parents[2]
    roots += [repo.parent / "shared" / "data", Path.cwd().parent / "shared" / "data", Path.cwd() / "shared" / "data"]
    return list(dict.fromkeys(roots))
