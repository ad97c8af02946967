"""The run report: one self-contained HTML file that opens in any browser, offline.

:func:`write_report` reads a finished run directory (the layout of
:class:`cellgan.pipeline.RunFiles`: ``cells/``, ``model/``, ``assignments/``,
``composition/``) and writes
``RUN_DIR/report.html`` with, per category, the generator's sweep (z fixed, c
set to the category: Hu et al., JBHI 2019, Figs. 4-5), the real cells the Q
head puts there (their Figs. 5-6), the category's share of all cells and its
mean morphology; a few images with each nucleus outlined in its category's
colour; the training curves; the per-image composition (the paper's P_i) as a
chart and a table; and, where the cell table has labels, the clustering scores.

Every picture is an inline base64 PNG and the style sheet is inline: the file
holds no script and no external URL. Every text that comes from the inputs (file
names, image ids, labels) is escaped with :func:`html.escape`.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from cellgan.errors import CellganError
from cellgan.io.files import atomic_write
from cellgan.pipeline import RunFiles

__all__ = ["ReportError", "build_report", "write_report"]

#: Morphology columns of the cell table shown per category, with their headers.
_MORPHOLOGY = (
    ("area_um2", "area (µm²)"),
    ("area_px", "area (px)"),
    ("eccentricity", "eccentricity"),
    ("solidity", "solidity"),
    ("mean_haematoxylin", "haematoxylin OD"),
    ("mean_eosin", "eosin OD"),
)

#: Side of the window around each random member: about three nucleus diameters of tissue
#: on each side, when the pixel size is known; else in pixels.
_SURROUNDINGS_UM = 32.0
_SURROUNDINGS_PX = 64
_TILE = 80  #: pixels of each window in the report

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
td.name, th.name { text-align: left; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; border: 1px solid #666;
          vertical-align: -0.1em; margin-right: 0.35em; }
.category { border: 1px solid #e2e2e6; border-radius: 6px; padding: 0.4em 1em 0.8em; margin: 1em 0; }
.pixels { image-rendering: pixelated; }
.figure { max-width: 100%; height: auto; }
.overlays { display: flex; flex-wrap: wrap; gap: 1em; }
.overlays figure { margin: 0; max-width: 100%; }
figcaption { font-size: 0.85em; color: #444; }
li.warning { color: #a33; font-weight: 600; }
"""


class ReportError(CellganError, ValueError):
    """A run directory that lacks what the report needs; the message names the file."""


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
    from cellgan.analysis.composition import read_assignments, read_composition
    from cellgan.config import ReportConfig
    from cellgan.io.cellstore import CellStore
    from cellgan.io.palette import category_colours, category_names

    config = ReportConfig() if config is None else config
    files = RunFiles(Path(run_dir))
    for required in (files.cells, files.model, files.assignments, files.composition):
        if not required.is_dir():
            raise ReportError(f"{required}: missing; the report needs a finished run (cellgan run)")
    store = CellStore.open(files.cells)
    cells, meta = read_assignments(files.assignments)
    composition = read_composition(files.composition)
    k = int(meta["categories"])
    colors = category_colours(k)
    names = category_names(k)
    patches = store.read_patches(mmap=True)
    if len(patches) != len(cells):
        raise ReportError(
            f"{files.assignments}: {len(cells)} assigned cells but {len(patches)} patches in {files.cells};"
            " the assignments are stale, re-run the assign stage"
        )
    log = _read_log(files.model / "log.csv")
    sweep = _sweep(files.model, config=config, device=device)
    sources = _image_sources(files)

    parts = [
        _header(files, cells, k, log, store.info.patch_mode),
        _diagnostics_section(meta.get("diagnostics")),
        _category_sections(cells, patches, sweep, colors, names, config),
        _random_members_section(store, cells, sources, colors, names, config),
        _overlay_section(store, cells, sources, colors, config),
        _training_section(log, colors, names),
        _composition_section(composition, sources, colors, names),
        _classification_section(files),
        _metrics_section(cells, names),
        _files_section(files),
    ]
    title = f"cellgan report: {files.root.resolve().name}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{_esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(p for p in parts if p)
        + "\n</body>\n</html>\n"
    )


# -- sections -------------------------------------------------------------------------


def _header(files: RunFiles, cells: pd.DataFrame, k: int, log: pd.DataFrame | None, patch_mode: str) -> str:
    from cellgan import __version__

    rows = [
        ("run directory", str(files.root.resolve())),
        ("images", f"{cells['image'].nunique()}"),
        ("cells", f"{len(cells)}"),
        ("categories (K)", f"{k}"),
        ("patches", patch_mode),
    ]
    if log is not None and len(log):
        last = log.iloc[-1]
        rows.append(("generator steps", f"{int(last['step']) if 'step' in log.columns else len(log)}"))
        if "seconds" in log.columns:
            rows.append(("training time", f"{float(last['seconds']) / 60:.1f} min"))
    now = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    rows.append(("report written", f"{now} by cellgan {__version__}"))
    table = "".join(f"<tr><th class=\"name\">{_esc(a)}</th><td class=\"name\">{_esc(b)}</td></tr>" for a, b in rows)
    return (
        f"<h1>{_esc('cellgan report: ' + files.root.resolve().name)}</h1>\n"
        "<p class=\"note\">Cell types found without labels by an InfoGAN-style WGAN-GP "
        "(Hu et al., IEEE JBHI 2019): each cell's category is the argmax of the Q head on its patch.</p>\n"
        f"<table>{table}</table>"
    )


def _diagnostics_section(diagnostics: dict | None) -> str:
    """The label-free checks of the categories (:mod:`cellgan.analysis.diagnostics`), warnings first."""
    if not diagnostics:
        return ""
    items = [f"<li class=\"warning\">{_esc(w)}</li>" for w in diagnostics.get("warnings", [])]
    sizes = diagnostics.get("cells_per_category", [])
    items.append("<li>Cells per category: " + " / ".join(f"{int(n)}" for n in sizes) + "</li>")
    shape = diagnostics.get("shape_explains") or {}
    if shape.get("area") is not None:
        items.append(
            f"<li>Nucleus area alone predicts a cell's category for {shape['area']:.0%} of the cells, all shape "
            f"columns for {shape['shape']:.0%} (a depth-4 tree, {shape['folds']}-fold cross-validated; "
            f"knowing nothing: {shape['majority']:.0%}). Near 100 %, the categories are size bins rather "
            "than cell types.</li>"
        )
    return "<h2>Checks without labels</h2>\n<ul>" + "".join(items) + "</ul>"


def _category_sections(
    cells: pd.DataFrame, patches: np.ndarray, sweep: np.ndarray, colors, names, config
) -> str:
    from cellgan.report.figures import png_bytes, tile_patches

    k = len(names)
    category = cells["category"].to_numpy(dtype=np.int64)
    counts = np.bincount(category, minlength=k)
    total = max(len(cells), 1)
    morphology = [(c, h) for c, h in _MORPHOLOGY if c in cells.columns and cells[c].notna().any()]
    if any(c == "area_um2" for c, _ in morphology):
        morphology = [(c, h) for c, h in morphology if c != "area_px"]
    means = cells.groupby("category")[[c for c, _ in morphology]].mean() if morphology else pd.DataFrame()

    head = "<th class=\"name\">category</th><th>cells</th><th>share</th>" + "".join(
        f"<th>mean {_esc(h)}</th>" for _, h in morphology
    )
    rows = []
    for q in range(k):
        values = "".join(
            f"<td>{_num(means.loc[q, c]) if q in means.index else '–'}</td>" for c, _ in morphology
        )
        rows.append(
            f"<tr><td class=\"name\">{_swatch(colors[q])}{_esc(names[q])}</td><td>{counts[q]}</td>"
            f"<td>{100 * counts[q] / total:.1f}%</td>{values}</tr>"
        )
    out = [
        "<h2>Categories</h2>",
        "<p class=\"note\">Per category: the generator's sweep (each column one fixed noise vector z, "
        "the categorical code set to this category, as in the paper's figures) and the real cells "
        "the Q head is most sure belong here.</p>",
        f"<table><tr>{head}</tr>{''.join(rows)}</table>",
    ]
    probs = cells[[f"prob_{q}" for q in range(k)]].to_numpy(dtype=np.float64)
    for q in range(k):
        members = np.flatnonzero(category == q)
        best = members[np.argsort(-probs[members, q], kind="stable")[: config.gallery_cells]]
        block = [
            f"<div class=\"category\"><h3>{_swatch(colors[q])}{_esc(names[q])}: "
            f"{counts[q]} cells ({100 * counts[q] / total:.1f}%)</h3>"
        ]
        block.append("<p class=\"note\">Generated (fixed z, this category):</p>")
        block.append(_img(png_bytes(tile_patches(sweep[q], columns=len(sweep[q]))), "generated cells", pixels=True))
        if len(best):
            block.append(f"<p class=\"note\">Real cells, most confident first (Q probability "
                         f"{probs[best[0], q]:.2f} to {probs[best[-1], q]:.2f}):</p>")
            tiles = np.asarray(patches[best])
            block.append(_img(png_bytes(tile_patches(tiles, columns=config.gallery_cells)), "real cells", pixels=True))
        else:
            block.append("<p class=\"note\">No real cell is in this category.</p>")
        block.append("</div>")
        out.append("\n".join(block))
    return "\n".join(out)


def _random_members_section(store, cells: pd.DataFrame, sources: dict[str, str], colors, names, config) -> str:
    """Random members of each category with their surroundings: what a category holds, not only its best."""
    from cellgan.report.figures import png_bytes, surroundings, tile_patches

    rng = np.random.default_rng(config.seed)
    category = cells["category"].to_numpy(dtype=np.int64)
    chosen = {
        q: np.sort(rng.choice(members, size=min(config.gallery_cells, len(members)), replace=False))
        for q in range(len(names))
        if len(members := np.flatnonzero(category == q))
    }
    if not chosen:
        return ""
    windows = {q: np.full((len(rows), _TILE, _TILE, 3), 255, np.uint8) for q, rows in chosen.items()}
    missing = 0
    for image_id in pd.unique(cells.loc[np.concatenate(list(chosen.values())), "image"]):
        rgb, _ = _base_image(store, str(image_id), sources.get(str(image_id)))
        side = _surroundings_side(cells[cells["image"] == image_id])
        for q, rows in chosen.items():
            here = np.flatnonzero(cells["image"].to_numpy()[rows] == image_id)
            if not len(here):
                continue
            if rgb is None:
                missing += len(here)
                continue
            xy = cells.loc[rows[here], ["centroid_x", "centroid_y"]].to_numpy(dtype=np.float64)
            windows[q][here] = surroundings(rgb, xy, side_px=side, size=_TILE, ring=tuple(int(c) for c in colors[q]))
    extent = f"{_SURROUNDINGS_UM:.0f} µm (or {_SURROUNDINGS_PX} px where the pixel size is unknown)"
    out = [
        "<h2>Random members of each category</h2>",
        f"<p class=\"note\">Up to {config.gallery_cells} cells drawn at random from each category (not the most "
        f"confident), each in a {extent} window of its image with a ring around it: do they look alike, "
        "surroundings included?"
        + (f" {missing} cells are blank: their image file was not found." if missing else "")
        + "</p>",
    ]
    for q, tiles in windows.items():
        out.append(f"<h3>{_swatch(colors[q])}{_esc(names[q])}</h3>")
        out.append(_img(png_bytes(tile_patches(tiles, columns=8, scale=1)), f"random members of {names[q]}"))
    return "\n".join(out)


def _surroundings_side(cells: pd.DataFrame) -> int:
    """Pixels of :data:`_SURROUNDINGS_UM` at the image's pixel size (from its cells' areas), else the fallback."""
    if "area_um2" not in cells.columns:
        return _SURROUNDINGS_PX
    ratio = (cells["area_um2"] / cells["area_px"]).to_numpy(dtype=np.float64)
    ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
    return int(round(_SURROUNDINGS_UM / np.sqrt(np.median(ratio)))) if len(ratio) else _SURROUNDINGS_PX


def _overlay_section(store, cells: pd.DataFrame, sources: dict[str, str], colors, config) -> str:
    from cellgan.report.figures import outline_overlay, png_bytes

    if config.overlay_images == 0:
        return ""
    counts = cells.groupby("image").size().sort_values(ascending=False, kind="stable")
    chosen = [i for i in counts.index if store.mask_path(i).is_file()][: config.overlay_images]
    figures = []
    for image_id in chosen:
        rgb, origin = _base_image(store, image_id, sources.get(image_id))
        mask = store.read_mask(image_id)
        if rgb is None or mask is None or rgb.shape[:2] != mask.shape:
            continue
        rows = cells[cells["image"] == image_id]
        label_colors = np.full((int(mask.max()) + 1, 3), 128, np.uint8)
        ids = rows["cell_id"].to_numpy(dtype=np.int64)
        inside = ids + 1 < len(label_colors)
        label_colors[ids[inside] + 1] = colors[rows["category"].to_numpy(dtype=np.int64)[inside]]
        picture = outline_overlay(rgb, mask, label_colors, size=config.overlay_size)
        caption = f"{image_id}: {len(rows)} nuclei"
        if image_id in sources:
            caption += f", from {Path(sources[image_id]).name}"
        if origin:
            caption += f" ({origin})"
        figures.append(f"<figure>{_img(png_bytes(picture), image_id)}<figcaption>{_esc(caption)}</figcaption></figure>")
    if not figures:
        return "<h2>Images</h2>\n<p class=\"note\">No image with a label mask to show.</p>"
    return (
        "<h2>Images</h2>\n<p class=\"note\">The images with the most nuclei, each nucleus outlined in its "
        "category's colour (the colours of the QuPath GeoJSON export).</p>\n"
        f"<div class=\"overlays\">{''.join(figures)}</div>"
    )


def _training_section(log: pd.DataFrame | None, colors, names) -> str:
    from cellgan.report.figures import training_curves

    if log is None or not len(log):
        return "<h2>Training</h2>\n<p class=\"note\">No training log (model/log.csv) found.</p>"
    return (
        "<h2>Training</h2>\n<p class=\"note\">Per generator step: the critic's loss and Wasserstein "
        "estimate, the gradient penalty, the generator and mutual-information (Q) terms, and the share of "
        "the real cells of each batch that Q puts in each category (a faint line is the raw value, a "
        "solid one its running mean).</p>\n" + _img(training_curves(log, colours=colors, names=names), "training curves")
    )


def _composition_section(composition: pd.DataFrame, sources: dict[str, str], colors, names) -> str:
    from cellgan.report.figures import composition_chart

    k = len(names)
    head = "<th class=\"name\">image</th><th class=\"name\">file</th><th>cells</th>" + "".join(
        f"<th>{_swatch(colors[q])}{_esc(names[q])}</th>" for q in range(k)
    )
    rows = []
    for _, row in composition.iterrows():
        cells = "".join(f"<td>{100 * float(row[f'prop_{q}']):.1f}%</td>" for q in range(k))
        image = str(row["image"])
        source = Path(sources[image]).name if image in sources else ""
        rows.append(
            f"<tr><td class=\"name\">{_esc(image)}</td><td class=\"name\">{_esc(source)}</td>"
            f"<td>{int(row['n_cells'])}</td>{cells}</tr>"
        )
    return (
        "<h2>Composition per image</h2>\n<p class=\"note\">The share of each image's cells in each category: "
        "the image-level feature P<sub>i</sub> = X<sub>i</sub> / ΣX of the paper.</p>\n"
        + _img(composition_chart(composition, colours=colors, names=names), "composition per image")
        + f"\n<table><tr>{head}</tr>{''.join(rows)}</table>"
    )


def _classification_section(files: RunFiles) -> str:
    """The image-level classification (RUN_DIR/classification): k-means, and with labels the classifiers."""
    from cellgan.analysis.image_classification import CLASSIFIERS
    from cellgan.report.classification import read_classification

    result = read_classification(files.classification)
    if result is None:
        return ""
    head = "<h2>Image-level classification</h2>\n"
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
            f"<tr><td>{c}</td><td>{len(images)}</td><td class=\"name\">{_esc(', '.join(images[:12]))}"
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


def _metrics_section(cells: pd.DataFrame, names) -> str:
    from cellgan.metrics.clustering import SCORE_KEYS, clustering_scores, contingency_table

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


def _files_section(files: RunFiles) -> str:
    found = [p for p in (files.export, files.composition, files.assignments, files.model, files.cells) if p.is_dir()]
    if not found:
        return ""
    items = "".join(f"<li><code>{_esc(str(p.resolve()))}</code></li>" for p in found)
    return (
        "<h2>Files</h2>\n<p class=\"note\">The run's outputs (the export folder holds one QuPath GeoJSON "
        f"per image and the cell table):</p>\n<ul>{items}</ul>"
    )


# -- inputs ---------------------------------------------------------------------------


def _read_log(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except Exception as err:  # pandas raises several types for bad files
        raise ReportError(f"{path}: unreadable training log ({err})") from err


def _sweep(model_dir: Path, *, config, device) -> np.ndarray:
    """The trained generator's sweep, (K, columns, 32, 32, 3) uint8."""
    from cellgan.model import load_trained
    from cellgan.report.figures import generator_sweep

    model = load_trained(model_dir, device=device)
    return generator_sweep(model.generator, columns=config.sweep_columns, seed=config.seed, device=device)


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
    overlay = store.overlay_path(image_id)
    if overlay.is_file():
        return read_rgb(overlay), "drawn over the segmentation overlay: the image file was not found"
    return None, ""


# -- HTML helpers ---------------------------------------------------------------------


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


def _img(png: bytes, alt: str, *, pixels: bool = False) -> str:
    data = base64.b64encode(png).decode("ascii")
    css = "figure pixels" if pixels else "figure"
    return f"<img class=\"{css}\" alt=\"{_esc(alt)}\" src=\"data:image/png;base64,{data}\">"


def _swatch(color) -> str:
    r, g, b = (int(c) for c in color)
    return f"<span class=\"swatch\" style=\"background: rgb({r}, {g}, {b})\"></span>"


def _num(value) -> str:
    value = float(value)
    if not np.isfinite(value):
        return "–"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"
