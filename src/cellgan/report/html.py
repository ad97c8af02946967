"""The run report: one self-contained HTML file that opens in any browser, offline.

:func:`write_report` reads a finished run directory (the layout of
:class:`cellgan.pipeline.RunFiles`: ``cells/``, ``model/``, ``assignments/``,
``composition/``) and writes ``RUN_DIR/report.html`` with: the warnings of
:func:`run_warnings` (too few cells, too short a training, an empty or dominant
category) in red; the label-free checks; per category its share, what sets it
apart from the other cells (:mod:`cellgan.analysis.contrast`), and three
galleries of its real cells in their surroundings with a scale bar (the most
confident, random members and the least confident: Hu et al., JBHI 2019,
Figs. 5-6, show only the first); the generator's sweep, one labelled row per
category (z fixed, c set to the category: their Figs. 4-5); a few images with each
nucleus outlined in its category's colour beside a legend; the training curves;
the per-image composition (the paper's P_i) as a chart and a table; where the cell
table has labels, the clustering scores; the run's files, relative to the run.

Each section is one function of the :class:`_Run` (everything read from the run
directory) and the report options, returning HTML; :func:`build_report` lists them
in order. Every picture is inline (JPEG for tissue, PNG for drawings and
generated cells) and opens large when clicked (a CSS ``:target`` rule); the style
sheet is inline: the file holds no script and no external URL. Every text that
comes from the inputs (file names, image ids, labels, category names) is escaped
with :func:`html.escape`.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cellgan.errors import CellganError
from cellgan.io.files import atomic_write
from cellgan.pipeline import RunFiles

__all__ = ["ReportError", "build_report", "run_warnings", "write_report"]

#: Morphology columns of the cell table shown per category, with their headers.
_MORPHOLOGY = (
    ("area_um2", "area (µm²)"),
    ("area_px", "area (px)"),
    ("eccentricity", "eccentricity"),
    ("solidity", "solidity"),
    ("mean_haematoxylin", "haematoxylin OD"),
    ("mean_eosin", "eosin OD"),
)

#: Side of the window around each cell shown: about three nucleus diameters of tissue
#: on each side, when the pixel size is known; else in pixels.
_SURROUNDINGS_UM = 32.0
_SURROUNDINGS_PX = 64
_TILE = 96  #: pixels of each window in the report
_GALLERY_COLUMNS = 8  #: windows per line of a gallery, so each is shown at its full size
_SCALE_BAR_UM = 10.0  #: length of the scale bar drawn in each window

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1150px; padding: 1em 1.5em 3em; color: #1d1d1f; background: #fff; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
p.note { color: #555; font-size: 0.9em; margin-top: 0.2em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f6; }
td.name, th.name { text-align: left; white-space: nowrap; }
td.words { text-align: left; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; border: 1px solid #666;
          vertical-align: -0.1em; margin-right: 0.35em; }
.category { border: 1px solid #e2e2e6; border-radius: 6px; padding: 0.4em 1em 0.8em; margin: 1em 0; }
p.apart { font-size: 1em; margin: 0.3em 0 0.6em; }
.gallery { display: grid; grid-template-columns: 9em 1fr; gap: 0.5em 1em; align-items: center; }
.gallery .label { font-size: 0.85em; color: #444; }
.pixels { image-rendering: pixelated; }
.figure { max-width: 100%; height: auto; }
.overlays { display: flex; flex-wrap: wrap; gap: 1.2em; }
.overlay { display: flex; gap: 0.6em; align-items: flex-start; }
.overlay figure { width: 340px; }
.overlay img { width: 340px; }
ul.legend { list-style: none; padding: 0; margin: 0; font-size: 0.85em; }
figure { margin: 0; max-width: 100%; }
figcaption { font-size: 0.85em; color: #444; }
a.zoom { cursor: zoom-in; }
.zoomable .close { display: none; }
.zoomable:target { position: fixed; inset: 0; z-index: 10; width: auto; max-width: none; background: #1a1a1c; display: flex;
                   flex-direction: column; align-items: center; justify-content: center; gap: 0.5em; }
.zoomable:target img { width: auto; max-width: 96vw; max-height: 88vh; }
.zoomable:target figcaption { color: #eee; }
.zoomable:target .close { display: block; color: #fff; font-size: 1.1em; }
.warnings { border: 2px solid #c62828; background: #fdecea; border-radius: 6px; padding: 0.3em 1em; }
.warnings h2 { color: #b71c1c; border: none; margin-top: 0.5em; }
.warnings li { color: #b71c1c; font-weight: 600; }
"""


class ReportError(CellganError, ValueError):
    """A run directory that lacks what the report needs; the message names the file."""


@dataclass(frozen=True)
class _Run:
    """Everything a section reads from a run directory, read once."""

    files: RunFiles
    store: object  #: the cell store (:class:`cellgan.io.cellstore.CellStore`)
    cells: pd.DataFrame  #: the assignments, one row per cell
    meta: dict  #: the assignments' ``meta.json``
    composition: pd.DataFrame
    patches: np.ndarray
    log: pd.DataFrame | None  #: the training log
    model: object  #: the trained model (:class:`cellgan.model.TrainedModel`)
    names: list[str]
    colours: np.ndarray
    sources: dict[str, str]  #: image id -> image file
    warnings: list[str]

    @property
    def categories(self) -> int:
        return len(self.names)


def write_report(run_dir: Path, *, config=None, device="cpu") -> Path:
    """Build the report of a run and write it to ``RUN_DIR/report.html`` atomically.

    Parameters
    ----------
    run_dir : Path
        A run directory whose cells, model, assignments and composition exist.
    config : cellgan.config.ReportConfig, optional
        What to show; default ``ReportConfig()``.
    device : str or torch.device
        Where the generator runs for the sweep.

    Returns
    -------
    Path
        The report's path.
    """
    files = RunFiles(Path(run_dir))
    text = build_report(files.root, config=config, device=device)
    atomic_write(files.report, lambda p: p.write_text(text, encoding="utf-8"))
    return files.report


def build_report(run_dir: Path, *, config=None, device="cpu") -> str:
    """Return the report of a run as an HTML document (see :func:`write_report`)."""
    from cellgan.config import ReportConfig

    config = ReportConfig() if config is None else config
    run = _read_run(RunFiles(Path(run_dir)), config, device=device)
    parts = [
        _header(run),
        _warnings_section(run),
        _diagnostics_section(run),
        _category_sections(run, config),
        _sweep_section(run, config, device=device),
        _overlay_section(run, config),
        _slide_section(run, config),
        _training_section(run),
        _composition_section(run),
        _classification_section(run),
        _metrics_section(run),
        _files_section(run),
    ]
    title = f"cellgan report: {run.files.root.resolve().name}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{_esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(p for p in parts if p)
        + "\n</body>\n</html>\n"
    )


def run_warnings(run_dir: Path, config=None) -> list[str]:
    """What makes a finished run's categories doubtful, one sentence each (the report shows them in red).

    Too few cells for the training batches, fewer generator iterations than the
    recipe's ``report.min_iterations``
    (:func:`cellgan.analysis.diagnostics.training_warnings`), and an empty, nearly
    empty or dominant category (:func:`cellgan.analysis.diagnostics.category_warnings`).

    Parameters
    ----------
    run_dir : Path
        A run directory whose model and assignments exist.
    config : cellgan.config.ReportConfig, optional
        The category names and ``min_iterations``; default ``ReportConfig()``.
    """
    from cellgan.analysis.composition import read_assignments
    from cellgan.config import ReportConfig
    from cellgan.model.checkpoint import read_config

    config = ReportConfig() if config is None else config
    files = RunFiles(Path(run_dir))
    cells, meta = read_assignments(files.assignments)
    names = _names(int(meta["categories"]), config, where=files.assignments)
    return _warnings(cells, names, _read_log(files.model / "log.csv"), read_config(files.model).batch_size, config)


def _warnings(cells: pd.DataFrame, names: list[str], log: pd.DataFrame | None, batch_size: int, config) -> list[str]:
    from cellgan.analysis.diagnostics import category_warnings, training_warnings

    counts = np.bincount(cells["category"].to_numpy(dtype=np.int64), minlength=len(names))
    iterations = _iterations(log)
    found = training_warnings(
        cells=len(cells), batch_size=batch_size, iterations=iterations, min_iterations=config.min_iterations
    )
    return found + category_warnings(counts, names=names)


def _read_run(files: RunFiles, config, *, device) -> _Run:
    from cellgan.analysis.composition import read_assignments, read_composition
    from cellgan.io.cellstore import CellStore
    from cellgan.io.palette import category_colours
    from cellgan.model import load_trained

    for required in (files.cells, files.model, files.assignments, files.composition):
        if not required.is_dir():
            raise ReportError(f"{required}: missing; the report needs a finished run (cellgan run)")
    store = CellStore.open(files.cells)
    cells, meta = read_assignments(files.assignments)
    k = int(meta["categories"])
    names = _names(k, config, where=files.assignments)
    patches = store.read_patches(mmap=True)
    if len(patches) != len(cells):
        raise ReportError(
            f"{files.assignments}: {len(cells)} assigned cells but {len(patches)} patches in {files.cells};"
            " the assignments are stale, re-run the assign stage"
        )
    log = _read_log(files.model / "log.csv")
    model = load_trained(files.model, device=device)
    return _Run(
        files=files,
        store=store,
        cells=cells,
        meta=meta,
        composition=read_composition(files.composition),
        patches=patches,
        log=log,
        model=model,
        names=names,
        colours=category_colours(k),
        sources=_image_sources(files),
        warnings=_warnings(cells, names, log, model.config.batch_size, config),
    )


def _names(categories: int, config, *, where: Path) -> list[str]:
    from cellgan.io.palette import category_names

    try:
        return category_names(categories, None if config.names is None else list(config.names))
    except ValueError as err:
        raise ReportError(f"{where}: report.names: {err}") from None


# -- sections -------------------------------------------------------------------------


def _header(run: _Run) -> str:
    from cellgan import __version__

    cells = run.cells
    rows = [
        ("run directory", run.files.root.resolve().name),
        ("images", f"{cells['image'].nunique()}"),
        ("cells", f"{len(cells)}"),
        ("categories (K)", f"{run.categories}"),
        ("patches", run.store.info.patch_mode),
    ]
    if run.log is not None and len(run.log):
        rows.append(("generator iterations", f"{_iterations(run.log)}"))
        if "seconds" in run.log.columns:
            rows.append(("training time", f"{float(run.log.iloc[-1]['seconds']) / 60:.1f} min"))
    now = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    rows.append(("report written", f"{now} by cellgan {__version__}"))
    table = "".join(f"<tr><th class=\"name\">{_esc(a)}</th><td class=\"name\">{_esc(b)}</td></tr>" for a, b in rows)
    neighbours = int(run.meta.get("neighbours", 0))
    reading = (
        f"the argmax of the Q head's probabilities averaged over the cell and its {neighbours} nearest cells"
        if neighbours
        else "the argmax of the Q head on its patch"
    )
    return (
        f"<h1>{_esc('cellgan report: ' + run.files.root.resolve().name)}</h1>\n"
        "<p class=\"note\">Cell types found without labels by an InfoGAN-style WGAN-GP "
        f"(Hu et al., IEEE JBHI 2019): each cell's category is {reading}.</p>\n"
        f"<table>{table}</table>"
    )


def _warnings_section(run: _Run) -> str:
    """The run's warnings (:func:`run_warnings`) in red, before anything else is read."""
    if not run.warnings:
        return ""
    items = "".join(f"<li>{_esc(w[0].upper() + w[1:])}.</li>" for w in run.warnings)
    return (
        "<div class=\"warnings\"><h2>Warnings</h2>\n<p class=\"note\">Read the categories below with care:</p>"
        f"<ul>{items}</ul></div>"
    )


def _diagnostics_section(run: _Run) -> str:
    """The label-free checks of the categories (:mod:`cellgan.analysis.diagnostics`)."""
    diagnostics = run.meta.get("diagnostics")
    if not diagnostics:
        return ""
    sizes = diagnostics.get("cells_per_category", [])
    items = ["<li>Cells per category: " + " / ".join(f"{int(n)}" for n in sizes) + "</li>"]
    shape = diagnostics.get("shape_explains") or {}
    if shape.get("area") is not None:
        items.append(
            f"<li>Nucleus area alone predicts a cell's category for {shape['area']:.0%} of the cells, all shape "
            f"columns for {shape['shape']:.0%} (a depth-4 tree, {shape['folds']}-fold cross-validated; "
            f"knowing nothing: {shape['majority']:.0%}). Near 100 %, the categories are size bins rather "
            "than cell types.</li>"
        )
    return "<h2>Checks without labels</h2>\n<ul>" + "".join(items) + "</ul>"


def _category_sections(run: _Run, config) -> str:
    from cellgan.analysis.contrast import category_contrasts, describe_contrast

    k, cells, names, colours = run.categories, run.cells, run.names, run.colours
    category = cells["category"].to_numpy(dtype=np.int64)
    counts = np.bincount(category, minlength=k)
    total = max(len(cells), 1)
    morphology = [(c, h) for c, h in _MORPHOLOGY if c in cells.columns and cells[c].notna().any()]
    if any(c == "area_um2" for c, _ in morphology):
        morphology = [(c, h) for c, h in morphology if c != "area_px"]
    means = cells.groupby("category")[[c for c, _ in morphology]].mean() if morphology else pd.DataFrame()
    contrasts = category_contrasts(cells, category, categories=k)
    apart = [describe_contrast(contrasts.loc[q]) if counts[q] else "no cell" for q in range(k)]

    head = "<th class=\"name\">category</th><th>cells</th><th>share</th>" + "".join(
        f"<th>mean {_esc(h)}</th>" for _, h in morphology
    ) + "<th class=\"name\">against the other cells</th>"
    rows = []
    for q in range(k):
        values = "".join(
            f"<td>{_num(means.loc[q, c]) if q in means.index else '–'}</td>" for c, _ in morphology
        )
        rows.append(
            f"<tr><td class=\"name\">{_swatch(colours[q])}{_esc(names[q])}</td><td>{counts[q]}</td>"
            f"<td>{100 * counts[q] / total:.1f}%</td>{values}<td class=\"words\">{_esc(apart[q])}</td></tr>"
        )
    galleries = _galleries(run, config)
    out = [
        "<h2>Categories</h2>",
        "<p class=\"note\">Per category: its share of the cells, the mean of each measurement, and what "
        "sets it apart from all the other cells (the measurements whose difference is at least a medium "
        "effect, Cohen's |d| ≥ 0.5; area compared as the ratio of medians). Below, its real cells, each in "
        f"a window of its image{galleries.extent} with a ring around the cell: the ones the Q head is most "
        "sure of, random members (what the category really holds), and the ones it is least sure of.</p>",
        f"<table><tr>{head}</tr>{''.join(rows)}</table>",
    ]
    for q in range(k):
        block = [
            f"<div class=\"category\" id=\"category-{q}\"><h3>{_swatch(colours[q])}{_esc(names[q])}: "
            f"{counts[q]} cells ({100 * counts[q] / total:.1f}%)</h3>"
        ]
        if counts[q]:
            block.append(f"<p class=\"apart\">Against the other cells: {_esc(apart[q])}.</p>")
            block.append(galleries.html[q])
        else:
            block.append("<p class=\"note\">No real cell is in this category.</p>")
        block.append("</div>")
        out.append("\n".join(block))
    if galleries.missing:
        out.append(f"<p class=\"note\">{galleries.missing} windows are blank: their image file was not found.</p>")
    return "\n".join(out)


@dataclass(frozen=True)
class _Galleries:
    html: dict[int, str]  #: category -> its galleries
    extent: str  #: the windows' size, in words
    missing: int  #: windows left blank, their image not found


def _galleries(run: _Run, config) -> _Galleries:
    """Each category's most confident, random and least confident cells, in their surroundings."""
    from cellgan.report.figures import jpeg_bytes, tile_patches

    n, cells = config.gallery_cells, run.cells
    category = cells["category"].to_numpy(dtype=np.int64)
    probs = cells[[f"prob_{q}" for q in range(run.categories)]].to_numpy(dtype=np.float64)
    rng = np.random.default_rng(config.seed)
    chosen: dict[tuple[int, str], np.ndarray] = {}
    for q in range(run.categories):
        members = np.flatnonzero(category == q)
        if not len(members):
            continue
        ranked = members[np.argsort(-probs[members, q], kind="stable")]
        if len(members) <= n:
            chosen[q, "all"] = ranked
            continue
        chosen[q, "most"] = ranked[:n]
        chosen[q, "random"] = np.sort(rng.choice(members, size=n, replace=False))
        chosen[q, "least"] = ranked[::-1][:n]
    windows, scaled, missing = _windows(run, chosen)
    labels = {"most": "most confident", "random": "random members", "least": "least confident", "all": "all members"}
    html_by_category: dict[int, list[str]] = {}
    for (q, kind), rows in chosen.items():
        p = probs[rows, q]
        label = f"{labels[kind]}<br>Q {p.max():.2f}–{p.min():.2f}" if kind != "random" else labels[kind]
        picture = _img(jpeg_bytes(tile_patches(windows[q, kind], columns=_GALLERY_COLUMNS, scale=1)),
                       f"{labels[kind]} of {run.names[q]}", mime="jpeg")
        html_by_category.setdefault(q, []).append(f"<div class=\"label\">{label}</div><div>{picture}</div>")
    extent = {
        "all": f" ({_SURROUNDINGS_UM:.0f} µm across; the bar is {_SCALE_BAR_UM:.0f} µm)",
        "some": f" ({_SURROUNDINGS_UM:.0f} µm across where the pixel size is known, with a {_SCALE_BAR_UM:.0f} µm "
        f"bar; else {_SURROUNDINGS_PX} pixels, without a bar)",
        "none": f" ({_SURROUNDINGS_PX} pixels across: the pixel size is unknown, give --mpp)",
    }[scaled]
    return _Galleries(
        html={q: "<div class=\"gallery\">" + "".join(parts) + "</div>" for q, parts in html_by_category.items()},
        extent=extent,
        missing=missing,
    )


def _windows(run: _Run, chosen: dict) -> tuple[dict, str, int]:
    """The windows of the chosen cells, one image file read at a time.

    Returns the windows per key of ``chosen``, whether ``"all"``, ``"some"`` or
    ``"none"`` of the images had a known pixel size (and so a scale bar), and how
    many windows stayed blank.
    """
    from cellgan.report.figures import scale_bar, surroundings

    cells = run.cells
    image_of = cells["image"].astype(str).to_numpy()
    windows = {key: np.full((len(rows), _TILE, _TILE, 3), 255, np.uint8) for key, rows in chosen.items()}
    every = np.concatenate(list(chosen.values())) if chosen else np.zeros(0, np.int64)
    missing, scaled = 0, []
    slides = set(_slide_ids(cells, run.sources))
    for image_id in pd.unique(image_of[every]):
        rgb = None if image_id in slides else _base_image(run.store, image_id, run.sources.get(image_id))[0]
        side, known = _surroundings_side(cells[image_of == image_id])
        scaled.append(known)
        for key, rows in chosen.items():
            here = np.flatnonzero(image_of[rows] == image_id)
            if not len(here):
                continue
            xy = cells.loc[rows[here], ["centroid_x", "centroid_y"]].to_numpy(dtype=np.float64)
            ring = tuple(int(c) for c in run.colours[key[0]])
            if image_id in slides:
                drawn = _slide_surroundings(run.sources[image_id], cells[image_of == image_id], xy, side, ring)
            elif rgb is None:
                missing += len(here)
                continue
            else:
                drawn = surroundings(rgb, xy, side_px=side, size=_TILE, ring=ring)
            windows[key][here] = scale_bar(drawn, length_px=_TILE * _SCALE_BAR_UM / _SURROUNDINGS_UM) if known else drawn
    state = "all" if scaled and all(scaled) else "some" if any(scaled) else "none"
    return windows, state, missing


def _slide_surroundings(source: str, rows: pd.DataFrame, xy: np.ndarray, side: int, ring) -> np.ndarray:
    """:func:`~cellgan.report.figures.surroundings` of cells of a slide, each window read from the slide."""
    from cellgan.io.slides import open_slide
    from cellgan.report.figures import surroundings

    slide_mpp, work_mpp = _slide_scales(rows)
    out = np.full((len(xy), _TILE, _TILE, 3), 255, np.uint8)
    with open_slide(source, mpp=slide_mpp) as slide:
        for i, (x, y) in enumerate(xy):
            x0, y0 = int(round(x)) - side, int(round(y)) - side
            window = slide.read(x0, y0, 2 * side, 2 * side, mpp=work_mpp)
            out[i] = surroundings(window, np.array([[x - x0, y - y0]]), side_px=side, size=_TILE, ring=ring)[0]
    return out


def _surroundings_side(cells: pd.DataFrame) -> tuple[int, bool]:
    """Pixels of :data:`_SURROUNDINGS_UM` at the image's pixel size (from its cells' areas), and whether it is known."""
    if "area_um2" not in cells.columns:
        return _SURROUNDINGS_PX, False
    ratio = (cells["area_um2"] / cells["area_px"]).to_numpy(dtype=np.float64)
    ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
    if not len(ratio):
        return _SURROUNDINGS_PX, False
    return int(round(_SURROUNDINGS_UM / np.sqrt(np.median(ratio)))), True


def _sweep_section(run: _Run, config, *, device) -> str:
    """The generator's sweep: one row per category, one column per fixed noise vector."""
    from cellgan.report.figures import generator_sweep, png_bytes, tile_patches

    sweep = generator_sweep(run.model.generator, columns=config.sweep_columns, seed=config.seed, device=device)
    rows = []
    for q, row in enumerate(sweep):
        strip = tile_patches(row, columns=len(row), scale=1, gap=1)
        picture = _img(png_bytes(strip), f"generated {run.names[q]}", pixels=True, width=2 * strip.shape[1])
        rows.append(f"<div class=\"label\">{_swatch(run.colours[q])}{_esc(run.names[q])}</div><div>{picture}</div>")
    return (
        "<h2 id=\"generated\">Generated cells</h2>\n<p class=\"note\">What the generator draws for each category: "
        "each column keeps one noise vector z fixed and each row sets the categorical code c to its category, "
        "as in the paper's figures, so that a column differs from row to row only by what the code means "
        f"(shown at twice their {sweep.shape[2]}-pixel size). A fine two-pixel grid in them is left by the "
        "generator's ×2 upsampling (the paper's networks), not a property of the cells.</p>\n"
        f"<div class=\"gallery\">{''.join(rows)}</div>"
    )


def _overlay_section(run: _Run, config) -> str:
    from cellgan.report.figures import jpeg_bytes, outline_overlay

    if config.overlay_images == 0:
        return ""
    cells, store = run.cells, run.store
    counts = cells.groupby("image").size().sort_values(ascending=False, kind="stable")
    chosen = [i for i in counts.index if store.mask_path(i).is_file()][: config.overlay_images]
    figures = []
    for number, image_id in enumerate(chosen):
        rgb, origin = _base_image(store, image_id, run.sources.get(image_id))
        mask = store.read_mask(image_id)
        if rgb is None or mask is None or rgb.shape[:2] != mask.shape:
            continue
        rows = cells[cells["image"] == image_id]
        label_colours = np.full((int(mask.max()) + 1, 3), 128, np.uint8)
        ids = rows["cell_id"].to_numpy(dtype=np.int64)
        category = rows["category"].to_numpy(dtype=np.int64)
        inside = ids + 1 < len(label_colours)
        label_colours[ids[inside] + 1] = run.colours[category[inside]]
        picture = outline_overlay(rgb, mask, label_colours, size=config.overlay_size, width=2)
        caption = f"{image_id}: {len(rows)} nuclei"
        if image_id in run.sources:
            caption += f", from {Path(run.sources[image_id]).name}"
        if origin:
            caption += f" ({origin})"
        here = np.bincount(category, minlength=run.categories)
        legend = "".join(
            f"<li>{_swatch(run.colours[q])}{_esc(run.names[q])}: {here[q]}</li>" for q in range(run.categories)
        )
        image = _zoomable(_img(jpeg_bytes(picture), image_id, mime="jpeg"), f"image-{number}", "images", caption)
        figures.append(f"<div class=\"overlay\">{image}<ul class=\"legend\">{legend}</ul></div>")
    if not figures:
        if _slide_ids(cells, run.sources):
            return ""  # slides only: their thumbnails stand in (_slide_section)
        return "<h2 id=\"images\">Images</h2>\n<p class=\"note\">No image with a label mask to show.</p>"
    return (
        "<h2 id=\"images\">Images</h2>\n<p class=\"note\">The images with the most nuclei, each nucleus outlined in "
        "its category's colour (the colours of the QuPath GeoJSON export); click an image to see it large.</p>\n"
        f"<div class=\"overlays\">{''.join(figures)}</div>"
    )


def _slide_ids(cells: pd.DataFrame, sources: dict[str, str]) -> list[str]:
    """The images that are slides (cells in slide coordinates, the slide file still there), most cells first."""
    if "slide_x" not in cells.columns:
        return []
    counts = cells[cells["slide_x"].notna()].groupby("image").size().sort_values(ascending=False, kind="stable")
    return [str(i) for i in counts.index if str(i) in sources and Path(sources[str(i)]).is_file()]


def _slide_scales(rows: pd.DataFrame) -> tuple[float, float]:
    """A slide's level-0 and working µm per pixel, from its cells' coordinates (cellgan.segment.slide)."""
    x_um = rows["x_um"].to_numpy(dtype=np.float64)
    return float(np.median(x_um / (rows["slide_x"] + 0.5))), float(np.median(x_um / (rows["centroid_x"] + 0.5)))


def _slide_section(run: _Run, config) -> str:
    """A thumbnail of each slide (of the most cells first) with every nucleus a dot in its category's colour."""
    from cellgan.io.slides import SlideReadError, open_slide
    from cellgan.report.figures import jpeg_bytes

    cells, sources = run.cells, run.sources
    if config.overlay_images == 0:
        return ""
    figures = []
    for image_id in _slide_ids(cells, sources)[: config.overlay_images]:
        rows = cells[cells["image"] == image_id]
        slide_mpp, _ = _slide_scales(rows)
        try:
            with open_slide(sources[image_id], mpp=slide_mpp) as slide:
                rgb, mpp = slide.overview(max_pixels=config.overlay_size**2, finest_mpp=slide_mpp)
        except SlideReadError:
            continue
        picture = rgb.copy()
        x = np.clip(np.round(rows["x_um"].to_numpy() / mpp - 0.5).astype(int), 0, rgb.shape[1] - 1)
        y = np.clip(np.round(rows["y_um"].to_numpy() / mpp - 0.5).astype(int), 0, rgb.shape[0] - 1)
        colour = np.asarray(run.colours)[rows["category"].to_numpy(dtype=np.int64)]
        dot = max(1, int(round(4.0 / mpp)))  # a nucleus' size, at least a pixel
        for dy in range(-(dot // 2), dot - dot // 2):
            for dx in range(-(dot // 2), dot - dot // 2):
                picture[np.clip(y + dy, 0, rgb.shape[0] - 1), np.clip(x + dx, 0, rgb.shape[1] - 1)] = colour
        caption = f"{image_id}: {len(rows)} nuclei, the whole slide at {mpp:.2g} µm per pixel"
        caption += f", from {Path(sources[image_id]).name}"
        figures.append(f"<figure>{_img(jpeg_bytes(picture), image_id, mime='jpeg')}<figcaption>{_esc(caption)}</figcaption></figure>")
    if not figures:
        return ""
    return (
        "<h2 id=\"slides\">Slides</h2>\n<p class=\"note\">Each whole slide, every nucleus a dot in its category's colour "
        "(the colours of the QuPath GeoJSON export, which opens on the slide itself).</p>\n"
        f"<div class=\"overlays\">{''.join(figures)}</div>"
    )


def _training_section(run: _Run) -> str:
    from cellgan.report.figures import training_curves

    if run.log is None or not len(run.log):
        return "<h2 id=\"training\">Training</h2>\n<p class=\"note\">No training log (model/log.csv) found.</p>"
    curves = _img(training_curves(run.log, colours=run.colours, names=run.names), "training curves")
    return (
        "<h2 id=\"training\">Training</h2>\n<p class=\"note\">Per generator iteration: the critic's loss and "
        "Wasserstein estimate, the gradient penalty, the generator and mutual-information (Q) terms, and the "
        "share of the real cells of each batch that Q puts in each category (a faint line is the raw value, a "
        "solid one its running mean).</p>\n"
        "<p class=\"note\"><b>Healthy training</b>: the Wasserstein estimate rises at first, then levels off or "
        "slowly falls; the gradient penalty stays small (well below 1) after the first iterations; the MI loss "
        "falls toward 0 (Q tells the generated categories apart); and every category keeps a share of the real "
        "cells, away from 0 and from 1. A share that runs to 1 (a collapse) or a Wasserstein estimate that keeps "
        "growing means the categories are not to be trusted; curves still moving at the end mean more "
        "iterations would change them.</p>\n" + _zoomable(curves, "curves", "training")
    )


def _pixel_sizes(cells: pd.DataFrame) -> dict[str, str]:
    """Each image's pixel size as the report shows it: "0.2476 (estimated)", "0.5 (file)"; absent when unknown."""
    if "mpp" not in cells.columns:
        return {}
    first = cells.dropna(subset=["mpp"]).groupby("image").first()
    return {str(i): f"{row['mpp']:.4g} ({row.get('mpp_source', 'given')})" for i, row in first.iterrows()}


def _composition_section(run: _Run) -> str:
    from cellgan.analysis.composition import proportion_columns
    from cellgan.report.figures import composition_chart

    k, names, colours, composition = run.categories, run.names, run.colours, run.composition
    mpp = _pixel_sizes(run.cells)
    columns = proportion_columns(composition)
    if len(columns) != k:
        raise ReportError(f"{run.files.composition}: {len(columns)} proportion columns for {k} categories")
    head = "<th class=\"name\">image</th><th class=\"name\">file</th><th>µm/px</th><th>cells</th>" + "".join(
        f"<th>{_swatch(colours[q])}{_esc(names[q])}</th>" for q in range(k)
    )
    rows = []
    for _, row in composition.iterrows():
        shares = "".join(f"<td>{100 * float(row[c]):.1f}%</td>" for c in columns)
        image = str(row["image"])
        source = Path(run.sources[image]).name if image in run.sources else ""
        rows.append(
            f"<tr><td class=\"name\">{_esc(image)}</td><td class=\"name\">{_esc(source)}</td>"
            f"<td>{_esc(mpp.get(image, 'unknown'))}</td><td>{int(row['n_cells'])}</td>{shares}</tr>"
        )
    chart = _img(composition_chart(composition, colours=colours, names=names), "composition per image")
    return (
        "<h2 id=\"composition\">Composition per image</h2>\n<p class=\"note\">The share of each image's cells in "
        "each category: the image-level feature P<sub>i</sub> = X<sub>i</sub> / ΣX of the paper; µm/px is the pixel "
        "size the µm values used, and where it came from (given, the file, or estimated from the nuclei).</p>\n"
        + _zoomable(chart, "composition-chart", "composition")
        + f"\n<table><tr>{head}</tr>{''.join(rows)}</table>"
    )


def _classification_section(run: _Run) -> str:
    """The image-level classification (RUN_DIR/classification): k-means, and with labels the classifiers."""
    from cellgan.analysis.image_classification import CLASSIFIERS
    from cellgan.report.classification import read_classification

    files = run.files
    result = read_classification(files.classification)
    if result is None:
        return ""
    head = "<h2 id=\"classification\">Image-level classification</h2>\n"
    if "error" in result:
        return head + f"<p class=\"note\">{_esc(result['error'])}</p>"
    kmeans = result["kmeans"]
    text = head + (
        f"<p class=\"note\">k-means of the images on their {_esc(result['feature_set'])} features "
        f"(k = {kmeans['n_clusters']}; the paper clusters the proportion vectors with k = 2), no label used.</p>\n"
    )
    if "error" in kmeans:
        text += f"<p class=\"note\">k-means not run: {_esc(kmeans['error'])}</p>\n"
    else:
        members: dict[int, list[str]] = {}
        for image, cluster in kmeans["clusters"].items():
            members.setdefault(int(cluster), []).append(image)
        rows = "".join(
            f"<tr><td>{c}</td><td>{len(images)}</td><td class=\"words\">{_esc(', '.join(images[:12]))}"
            f"{' …' if len(images) > 12 else ''}</td></tr>"
            for c, images in sorted(members.items())
        )
        text += f"<table><tr><th>cluster</th><th>images</th><th class=\"name\">which</th></tr>{rows}</table>"
    if "scores" in kmeans:
        text += (
            f"<p class=\"note\">Against the image labels: accuracy {kmeans['scores']['acc']:.3f}, "
            f"NMI {kmeans['scores']['nmi']:.3f}.</p>"
        )
    models = [m for m in CLASSIFIERS if m in result]
    if not models:
        return text
    scores = "".join(
        f"<tr><td class=\"name\">{_esc(m.replace('_', ' '))}</td>"
        f"<td>{result[m]['mean']['accuracy']:.3f} ± {result[m]['std']['accuracy']:.3f}</td>"
        f"<td>{result[m]['mean']['f1_weighted']:.3f} ± {result[m]['std']['f1_weighted']:.3f}</td></tr>"
        for m in models
    )
    text += (
        f"<h3>Classifiers ({result['labelled_images']} labelled images, "
        f"{result[models[0]]['n_folds']}-fold stratified cross-validation, held-out folds only)</h3>\n"
        f"<table><tr><th class=\"name\">classifier</th><th>accuracy</th><th>weighted F1</th></tr>{scores}</table>"
    )
    png = files.classification / f"confusion_{models[0]}.png"
    if png.is_file():
        text += "\n" + _img(png.read_bytes(), "confusion matrix")
    return text


def _metrics_section(run: _Run) -> str:
    from cellgan.metrics.clustering import SCORE_KEYS, clustering_scores, contingency_table

    cells, names = run.cells, run.names
    if "label" not in cells.columns:
        return ""
    labelled = cells["label"].notna().to_numpy()
    if not labelled.any():
        return ""
    pred = cells["category"].to_numpy(dtype=np.int64)[labelled]
    true = cells["label"].to_numpy()[labelled].astype(str)
    scores = clustering_scores(pred, true)
    table = contingency_table(pred, true)
    score_row = "".join(f"<th>{_esc(key)}</th>" for key in SCORE_KEYS)
    value_row = "".join(f"<td>{scores[key]:.3f}</td>" for key in SCORE_KEYS)
    head = "<th class=\"name\">category \\ label</th>" + "".join(f"<th>{_esc(str(c))}</th>" for c in table.classes)
    rows = "".join(
        f"<tr><td class=\"name\">{_esc(names[int(q)])}</td>" + "".join(f"<td>{n}</td>" for n in row) + "</tr>"
        for q, row in zip(table.clusters, table.counts)
    )
    return (
        f"<h2>Scores against the labels</h2>\n<p class=\"note\">{int(labelled.sum())} of {len(cells)} cells "
        "carry a label (used here only, never in training): Hungarian-matched accuracy, ARI, NMI, AMI, and "
        "the paper's purity, entropy (bits, lower is better) and F-score.</p>\n"
        f"<table><tr>{score_row}</tr><tr>{value_row}</tr></table>\n"
        f"<table><tr>{head}</tr>{rows}</table>"
    )


def _files_section(run: _Run) -> str:
    files = run.files
    found = [
        (p, what)
        for p, what in (
            (files.export, "one QuPath GeoJSON per image (drag it onto the image in QuPath) and the cell table"),
            (files.classification, "the images grouped (k-means) or classified by their cells, with the scores"),
            (files.composition, "each image's count and share of each category, and its image features"),
            (files.assignments, "every cell's category, probabilities and features"),
            (files.model, "the trained GAN, its training log and sample grids"),
            (files.cells, "the cell store: nuclei, patches and label masks"),
            (files.config, "every option this run used"),
        )
        if p.exists()
    ]
    if not found:
        return ""
    items = "".join(
        f"<li><code>{_esc(p.relative_to(files.root).as_posix())}{'/' if p.is_dir() else ''}</code>: {_esc(what)}</li>"
        for p, what in found
    )
    return (
        "<h2>Files</h2>\n<p class=\"note\">The run's outputs, in the folder that holds this report:</p>\n"
        f"<ul>{items}</ul>"
    )


# -- inputs ---------------------------------------------------------------------------


def _read_log(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except Exception as err:  # pandas raises several types for bad files
        raise ReportError(f"{path}: unreadable training log ({err})") from err


def _iterations(log: pd.DataFrame | None) -> int:
    """Generator iterations the training log records (0 without a log)."""
    if log is None or not len(log):
        return 0
    return int(log["step"].iloc[-1]) if "step" in log.columns else len(log)


def _image_sources(files: RunFiles) -> dict[str, str]:
    """Image id -> image file, as the segment stage recorded them (empty when unknown)."""
    if not files.sources.is_file():
        return {}
    try:
        marker = json.loads(files.sources.read_text())
    except ValueError as err:
        raise ReportError(f"{files.sources}: unreadable stage marker ({err})") from err
    images = marker.get("images", {}) if isinstance(marker, dict) else {}
    return {str(k): str(v) for k, v in images.items()} if isinstance(images, dict) else {}


def _base_image(store, image_id: str, source: str | None) -> tuple[np.ndarray | None, str]:
    """The image under the outlines: its file when readable, else the store's overlay PNG."""
    from cellgan.io.images import ImageReadError, read_rgb

    if source is not None:
        try:
            return read_rgb(source), ""
        except (ImageReadError, OSError):
            pass
    overlay = store.find_overlay(image_id)
    if overlay is not None:
        return read_rgb(overlay), "drawn over the segmentation overlay: the image file was not found"
    return None, ""


# -- HTML helpers ---------------------------------------------------------------------


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


def _img(data: bytes, alt: str, *, pixels: bool = False, mime: str = "png", width: int | None = None) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    css = "figure pixels" if pixels else "figure"
    size = f" width=\"{width}\"" if width else ""
    return f"<img class=\"{css}\" alt=\"{_esc(alt)}\"{size} src=\"data:image/{mime};base64,{encoded}\">"


def _zoomable(img: str, ident: str, back: str, caption: str = "") -> str:
    """A picture that opens large when clicked and closes back to the section ``back`` (CSS ``:target``, no script)."""
    text = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
    return (
        f"<figure class=\"zoomable\" id=\"{ident}\"><a class=\"zoom\" href=\"#{ident}\">{img}</a>{text}"
        f"<a class=\"close\" href=\"#{back}\">close ✕</a></figure>"
    )


def _swatch(color) -> str:
    r, g, b = (int(c) for c in color)
    return f"<span class=\"swatch\" style=\"background: rgb({r}, {g}, {b})\"></span>"


def _num(value) -> str:
    value = float(value)
    if not np.isfinite(value):
        return "–"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"
