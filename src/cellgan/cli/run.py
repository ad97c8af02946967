"""``cellgan run [IMAGES...] --out RUN_DIR``: every stage, from H&E images to the report.

The stages run in order, each reading the previous one's files (docs/ARCHITECTURE.md)::

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
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, fields
from pathlib import Path

from cellgan.cli.common import add_device_option, add_seed_option
from cellgan.device import resolve_device
from cellgan.errors import CellganError, UsageError

#: Where the default input is looked for, under each data root.
DEFAULT_IMAGES = Path("bm_graz") / "source"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="the whole pipeline: segment, train, assign, compose, export, report",
        description=(
            "Find the cell types in H&E images without labels and write RUN_DIR/report.html. "
            "Each stage is skipped when already done, so an interrupted run continues where it stopped. "
            "Without IMAGES, the 11 bone-marrow images of Hu et al.'s Dataset A are used "
            "(../shared/data/bm_graz, or downloaded once into ~/.cache/cellgan)."
        ),
    )
    parser.add_argument("images", nargs="*", type=Path, metavar="IMAGES", help="image files or directories")
    parser.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run directory")
    parser.add_argument("--config", type=Path, metavar="FILE.yaml", help="stage options (see cellgan.config)")
    parser.add_argument("--categories", type=int, metavar="K", help="number of cell categories [train.categories]")
    parser.add_argument("--minutes", type=float, metavar="M", help="training time in minutes [10]")
    add_device_option(parser)
    add_seed_option(parser)
    parser.set_defaults(func=main, seed=None)


def main(args) -> int:
    from cellgan.config import ConfigError, resolve_config

    overrides = _seed_overrides(args.seed) if args.seed is not None else {}
    overrides.setdefault("train", {}).update(categories=args.categories, minutes=args.minutes)
    try:
        config = resolve_config(args.config, overrides)
    except ConfigError as err:
        raise UsageError(str(err)) from err
    from cellgan.io.cellstore import CellStoreError
    from cellgan.io.download import DownloadError

    device = resolve_device(args.device)
    try:
        images = _expand(args.images) if args.images else default_images()
        failed = run_pipeline(images, args.out, config, device=device)
    except (FileNotFoundError, DownloadError, CellStoreError, ValueError) as err:
        # ValueError: StageConflict and every stage's input errors (CheckpointError, ExportError, ...)
        raise UsageError(str(err)) from err
    print(f"report: {(args.out / 'report.html').resolve()}")
    if failed:
        print(f"{len(failed)} image(s) could not be segmented (see {args.out / 'segment.done'}):")
        for name, reason in failed.items():
            print(f"  {name}: {reason}")
        return 1
    return 0


class StageConflict(CellganError, ValueError):
    """A run directory whose finished work does not match the asked-for inputs or options."""


def run_pipeline(images: list[Path], run_dir: Path, config, *, device, progress: bool = True, log=print) -> dict:
    """Run every stage not yet done; return the images segmentation failed on (name -> reason).

    Parameters
    ----------
    images : list of Path
        The image files.
    run_dir : Path
        The run directory; created if needed.
    config : cellgan.config.RunConfig
        Resolved options of every stage; written to ``RUN_DIR/config.yaml``.
    device : torch.device
        Where training, assignment and the report's generator sweep run.
    progress : bool
        Show the stages' progress bars.
    log : callable
        Receives one line per stage.

    Raises
    ------
    StageConflict
        The run directory holds a finished or half-done segmentation or model made
        from other images or options.
    """
    from cellgan.config import write_config

    run_dir = Path(run_dir)
    sources = sorted(str(Path(p).resolve()) for p in images)
    segment_key = {"config": _plain(config.segment), "images": sources}
    segment = _Stage(run_dir, "segment", segment_key, locked=segment_key)
    recipe = {"config": _recipe(config.train), "after": segment.fingerprint}
    train = _Stage(run_dir, "train", {**recipe, "length": _run_length(config.train)}, locked=recipe)
    assign = _Stage(run_dir, "assign", {"config": _plain(config.assign), "after": train.fingerprint})
    compose = _Stage(run_dir, "compose", {"config": _plain(config.compose), "after": assign.fingerprint})
    export = _Stage(run_dir, "export", {"config": _plain(config.export), "after": compose.fingerprint})
    report = _Stage(run_dir, "report", {"config": _plain(config.report), "after": export.fingerprint})
    for stage in (segment, train):
        stage.check_lock()  # before anything is written, config.yaml included
    run_dir.mkdir(parents=True, exist_ok=True)
    write_config(config, run_dir / "config.yaml")
    segment.run(lambda: _segment(images, run_dir, config, progress=progress), log=log)
    train.run(lambda: _train(run_dir, config, device=device, progress=progress), log=log)
    assign.run(lambda: _assign(run_dir, config, device=device), log=log)
    compose.run(lambda: _compose(run_dir), log=log)
    export.run(lambda: _export(run_dir, config), log=log)
    report.run(lambda: _report(run_dir, config, device=device), log=log)
    return segment.marker().get("failed", {})


# -- stages ---------------------------------------------------------------------------


def _segment(images: list[Path], run_dir: Path, config, *, progress: bool) -> dict:
    from cellgan.io.cellstore import CellStore
    from cellgan.segment import image_ids, segment_images

    store = CellStore.create(run_dir / "cells", patch_mode=config.segment.patch_mode)
    summary = segment_images(list(images), store, config.segment, progress=progress)
    if not store.image_ids():
        reasons = "; ".join(f"{name}: {why}" for name, why in summary.failed.items()) or "no image given"
        raise ValueError(f"no image could be segmented ({reasons})")
    cells = len(store)
    if cells == 0:
        raise ValueError(f"{store.root}: segmentation found no nucleus in any image")
    ids = image_ids(list(images))
    return {
        "summary": f"{len(store.image_ids())} images, {cells} cells",
        "images": {ids[Path(p)]: str(Path(p).resolve()) for p in images if ids[Path(p)] in store.image_ids()},
        "failed": dict(summary.failed),
    }


def _train(run_dir: Path, config, *, device, progress: bool) -> dict:
    from cellgan.io.cellstore import CellStore
    from cellgan.model import train
    from cellgan.model.checkpoint import META_NAME

    store = CellStore.open(run_dir / "cells")
    model_dir = run_dir / "model"
    resume = (model_dir / META_NAME).is_file()
    if not resume and model_dir.exists():
        shutil.rmtree(model_dir)  # a run killed before its first checkpoint: nothing to continue from
    result = train(
        store.read_patches(), model_dir, config.train, device=device, resume=resume, progress=progress, table=store.read_table()
    )
    minutes = result.elapsed_seconds / 60
    return {"summary": f"{result.step} generator steps, {minutes:.1f} min" + (", resumed" if resume else "")}


def _assign(run_dir: Path, config, *, device) -> dict:
    from cellgan.analysis.assign import write_assignments

    meta = write_assignments(
        run_dir / "model", run_dir / "cells", run_dir / "assignments", device=device, batch_size=config.assign.batch_size
    )
    return {"summary": f"{meta['n_cells']} cells per category: {meta['cells_per_category']}"}


def _compose(run_dir: Path) -> dict:
    from cellgan.analysis.composition import composition, read_assignments, write_composition

    table, meta = read_assignments(run_dir / "assignments")
    result = composition(table, categories=int(meta["categories"]))
    write_composition(result, run_dir / "composition")
    return {"summary": f"{len(result)} images"}


def _export(run_dir: Path, config) -> dict:
    from cellgan.report.export import export_assignments

    written = export_assignments(
        run_dir / "assignments", run_dir / "export", cells_dir=run_dir / "cells", formats=config.export.formats
    )
    return {"summary": ", ".join(f"{len(paths)} {fmt}" for fmt, paths in written.items())}


def _report(run_dir: Path, config, *, device) -> dict:
    from cellgan.report.html import write_report

    path = write_report(run_dir, config=config.report, device=device)
    return {"summary": f"{path} ({path.stat().st_size / 1e6:.1f} MB)"}


# -- markers --------------------------------------------------------------------------


class _Stage:
    """One stage of a run and its markers: ``<stage>.started`` while it runs, ``<stage>.done`` after.

    ``key`` is everything the stage's result depends on: a finished stage with
    another key runs again. ``locked`` is the part that a stage whose outputs
    cannot be redone in place (the cell store, the model) must keep: a finished or
    half-done stage with another ``locked`` is refused rather than mixed with.
    Training's length is in its key but not locked, so a longer time continues it.
    """

    def __init__(self, run_dir: Path, name: str, key: dict, *, locked: dict | None = None):
        self.run_dir, self.name = run_dir, name
        self.fingerprint = _digest(key)
        self.lock = None if locked is None else _digest(locked)

    @property
    def done_path(self) -> Path:
        return self.run_dir / f"{self.name}.done"

    @property
    def started_path(self) -> Path:
        return self.run_dir / f"{self.name}.started"

    def marker(self) -> dict:
        """The ``.done`` marker's content; empty when the stage is not done."""
        return _read_json(self.done_path) if self.done_path.is_file() else {}

    def check_lock(self) -> None:
        """Refuse a finished or half-done stage whose locked part differs from this one's."""
        if self.lock is None:
            return
        for path in (self.done_path, self.started_path):
            previous = _read_json(path).get("lock") if path.is_file() else None
            if previous not in (None, self.lock):
                raise StageConflict(
                    f"{self.run_dir}: the {self.name} stage there was made from other images or options "
                    f"(see {self.run_dir / 'config.yaml'} and {path.name}); use another --out, or delete "
                    f"{self.run_dir / _OUTPUT[self.name]} and {path.name} to redo it"
                )

    def run(self, work, *, log) -> None:
        """Run ``work`` (returning a dict with a ``summary``) unless done; write the markers."""
        from cellgan.io.files import atomic_write

        done = self.marker()
        if done.get("fingerprint") == self.fingerprint:
            log(f"{self.name}: done earlier ({done.get('summary', '')}), skipped")
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


_OUTPUT = {"segment": "cells", "train": "model"}


def _digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise StageConflict(f"{path}: unreadable stage marker ({err}); delete it to redo the stage") from err
    if not isinstance(data, dict):
        raise StageConflict(f"{path}: unreadable stage marker (not a JSON object); delete it to redo the stage")
    return data


# -- inputs and options ---------------------------------------------------------------


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


def _expand(paths: list[Path]) -> list[Path]:
    from cellgan.io.images import find_images

    found = find_images(paths)
    if not found:
        raise ValueError(f"no image files in {', '.join(str(p) for p in paths)}")
    return found


def _seed_overrides(seed: int) -> dict:
    """``--seed`` sets the seed of every stage that has one."""
    from cellgan.config import stage_config_types

    return {
        section: {"seed": seed}
        for section, cls in stage_config_types().items()
        if "seed" in {f.name for f in fields(cls)}
    }


def _plain(section) -> dict:
    return json.loads(json.dumps(asdict(section), default=str))


def _recipe(train_config) -> dict:
    """The training options that define the model (all but how long it trains)."""
    from cellgan.model.config import RUN_LENGTH_FIELDS

    return {k: v for k, v in _plain(train_config).items() if k not in RUN_LENGTH_FIELDS}


def _run_length(train_config) -> dict:
    from cellgan.model.config import RUN_LENGTH_FIELDS

    return {k: v for k, v in _plain(train_config).items() if k in RUN_LENGTH_FIELDS}
