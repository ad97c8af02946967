"""``cellgan bench NAME``: run a benchmark on a public dataset and write JSON.

The benchmarks themselves are library functions in :mod:`cellgan.bench`; this
module only parses their options, calls them and writes what they return.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cellgan.bench import clustering, composition, image_classification, reliability, scale, segmentation
from cellgan.cli.common import (
    add_config_option,
    add_data_root_option,
    add_device_option,
    add_json_option,
    add_patch_mode_option,
    add_recipe_option,
    add_reinhard_reference_option,
    add_seed_option,
    positive_int,
)
from cellgan.cli.experimental import add_pair_neighbours_option
from cellgan.errors import UsageError
from cellgan.io.datasets import DATASETS


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks on the public datasets (write JSON)")
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    _register_segmentation(benchmarks)
    _register_clustering(benchmarks)
    _register_composition(benchmarks)
    _register_reliability(benchmarks)
    _register_scale(benchmarks)
    _register_image_classification(benchmarks)


def _benchmark_parser(
    subparsers, name: str, *, help: str, description: str, data_root_help: str, datasets: tuple[str, ...] = ()
):
    """The parser of ``cellgan bench NAME`` with the options every benchmark has.

    ``--dataset`` (one of ``datasets``, when given), ``--data-root`` and ``--json``.
    """
    parser = subparsers.add_parser(name, help=help, description=description)
    if datasets:
        parser.add_argument("--dataset", required=True, choices=datasets)
    add_data_root_option(parser, help=data_root_help)
    add_json_option(parser, required=True, help="where to write the results")
    return parser


def _register_segmentation(subparsers) -> None:
    parser = _benchmark_parser(
        subparsers,
        "segmentation",
        help="nuclei detection/segmentation scores on bm_graz, crchistophenotypes or MoNuSeg",
        description=segmentation.__doc__.split("\n\n")[0],
        datasets=segmentation.SEGMENTATION_DATASETS,
        data_root_help="folder holding bm_graz/, crchistophenotypes/, monuseg_test/",
    )
    parser.add_argument("--limit", type=positive_int, default=None, metavar="N", help="score only the first N images")
    parser.add_argument(
        "--overlays", type=Path, default=None, metavar="DIR", help="also write each overlay with the truth marked"
    )
    parser.set_defaults(func=run_segmentation)


def run_segmentation(args) -> int:
    """``cellgan bench segmentation``: score, write the JSON, print the main scores."""
    from cellgan.bench._common import write_json

    summary = segmentation.run_segmentation_benchmark(
        args.dataset, args.data_root, limit=args.limit, overlay_dir=args.overlays
    )
    write_json(summary, args.json)
    keys = ["detection_precision", "detection_recall", "detection_f1", "count_mean_abs_rel_error"]
    keys += ["dice", "aji"] if args.dataset == "monuseg" else []
    scores = ", ".join(f"{k} {summary[k]:.3f}" for k in keys if summary[k] is not None)
    print(
        f"{args.dataset}: {summary['images']} images, {scores}, "
        f"{summary['megapixels_per_second']:.2f} MP/s -> {args.json}"
    )
    return 0


def _register_clustering(subparsers) -> None:
    parser = _benchmark_parser(
        subparsers,
        "clustering",
        help=f"cell-type clustering of the GAN and the k-means baselines ({', '.join(clustering.CLUSTERING_DATASETS)})",
        description=clustering.__doc__.split("\n\n")[0],
        datasets=clustering.CLUSTERING_DATASETS,
        data_root_help="folder holding " + ", ".join(f"{DATASETS[d].folder}/" for d in clustering.CLUSTERING_DATASETS),
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="training minutes per seed [30]")
    parser.add_argument("--iterations", type=positive_int, default=None, help="also stop after N generator iterations")
    parser.add_argument("--seeds", type=positive_int, default=3, help="seeds 0..N-1 [3]")
    parser.add_argument(
        "--width", type=positive_int, default=None, help="width of both networks [--config's, else the recipe's]"
    )
    parser.add_argument("--categories", type=positive_int, default=4, help="K [4]")
    add_patch_mode_option(parser, default=None, help="patches cut at the centres [--config's, else the recipe's]")
    add_reinhard_reference_option(
        parser,
        help="normalise colours first (Reinhard) to this image, or to the dataset's most typical "
        "image ('typical') [--config's, else the recipe's]",
    )
    add_pair_neighbours_option(parser)
    parser.add_argument(
        "--jobs", type=positive_int, default=1, help="seeds trained at the same time, sharing the CPU threads [1]"
    )
    parser.add_argument(
        "--limit-images", type=positive_int, default=None, metavar="N", help="use only the first N images"
    )
    add_recipe_option(parser)
    add_config_option(parser, help="run configuration file; its train and segment sections override the recipe's")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="cell store, models, assignments, galleries [.cache/bench/clustering_<dataset>]",
    )
    add_device_option(parser)
    parser.set_defaults(func=run_clustering)


def run_clustering(args) -> int:
    """``cellgan bench clustering``: train and score every seed, write the JSON, print the means."""
    from cellgan.bench._common import write_json
    from cellgan.device import resolve_device

    device = resolve_device(args.device)
    sections = _recipe_and_config(args)
    if args.minutes is not None and args.minutes <= 0:
        raise UsageError(f"--minutes must be positive, got {args.minutes}")
    segment_options = {"patch_mode": args.patch_mode, "reinhard_reference": args.reinhard_reference}
    summary = clustering.run_clustering_benchmark(
        args.dataset,
        args.data_root,
        work_dir=args.work_dir or Path(".cache") / "bench" / f"clustering_{args.dataset}",
        minutes=args.minutes,
        iterations=args.iterations,
        seeds=args.seeds,
        width=args.width,
        categories=args.categories,
        limit_images=args.limit_images,
        train_options=_given_over(sections.get("train"), {"pair_neighbours": args.pair_neighbours}),
        segment_options=_given_over(sections.get("segment"), segment_options),
        device=device,
        jobs=args.jobs,
        progress=sys.stderr.isatty() and args.jobs == 1,
    )
    write_json(summary, args.json)
    shown = ("acc", "nmi", "purity", "f_score", "linear_probe_acc", "largest_category_share")
    for method in clustering.METHODS:
        mean, std = summary[method]["mean"], summary[method]["std"]
        scores = [k for k in shown if mean.get(k) is not None]
        print(f"{method:16s} " + "  ".join(f"{k} {mean[k]:.3f}±{std[k]:.3f}" for k in scores))
    print(f"-> {args.json}")
    return 0


def _register_composition(subparsers) -> None:
    parser = _benchmark_parser(
        subparsers,
        "composition",
        help="segment, train, assign and compose on CRCHistoPhenotypes; score compositions (JSON)",
        description=composition.__doc__.split("\n\n")[1],
        data_root_help="folder holding crchistophenotypes/",
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="training time [30]")
    parser.add_argument("--iterations", type=int, help="stop training after N generator iterations")
    parser.add_argument("--limit-images", type=int, metavar="N", help="use only the first N images")
    parser.add_argument("--categories", type=int, default=4, metavar="K", help="categories [4]")
    parser.add_argument("--width", type=int, help="network width [the training default]")
    parser.add_argument("--folds", type=int, default=4, help="image-level SVM cross-validation folds [4]")
    parser.add_argument("--work-dir", type=Path, help="keep the cell store, models and assignments here")
    parser.add_argument("--seeds", type=positive_int, default=1, help="GANs trained, seeds SEED..SEED+N-1 [1]")
    parser.add_argument("--jobs", type=positive_int, default=1, help="seeds trained at the same time [1]")
    add_recipe_option(parser)
    add_config_option(parser, help="run configuration file; its segment and train sections override the recipe's")
    add_seed_option(parser)
    add_device_option(parser)
    parser.set_defaults(func=run_composition)


def run_composition(args) -> int:
    """``cellgan bench composition``: the whole pipeline on CRCHistoPhenotypes, scored; write the JSON."""
    from cellgan.bench._common import write_json
    from cellgan.device import resolve_device

    if not (args.data_root / "crchistophenotypes").is_dir():
        raise UsageError(f"{args.data_root}: no crchistophenotypes/ folder here")
    device = resolve_device(args.device)
    sections = _recipe_and_config(args)
    try:
        result = composition.run_composition_benchmark(
            args.data_root,
            minutes=args.minutes,
            iterations=args.iterations,
            seed=args.seed,
            seeds=args.seeds,
            jobs=args.jobs,
            limit_images=args.limit_images,
            categories=args.categories,
            width=args.width,
            folds=args.folds,
            device=str(device),
            work_dir=args.work_dir,
            train_options=sections.get("train"),
            segment_options=sections.get("segment"),
        )
    except ValueError as err:  # also the plain ValueErrors of the scoring, not only CellganErrors
        raise UsageError(str(err)) from err
    write_json(result, args.json)
    pearson = result["composition_pearson"]
    pearson = "undefined" if pearson is None else f"{pearson:.3f}"
    spread = result["over_seeds"]["composition_mae"]["std"]
    over = f" ± {spread:.3f} over {len(result['seeds'])} seeds" if len(result["seeds"]) > 1 else ""
    print(
        f"{result['images']} images, {result['detected_cells']} cells: composition MAE "
        f"{result['composition_mae']:.3f}{over} (mean composition {result['reference_mae_constant']:.3f}), "
        f"Pearson {pearson} -> {args.json}"
    )
    return 0


def _register_reliability(subparsers) -> None:
    parser = _benchmark_parser(
        subparsers,
        "reliability",
        help="kill -9 at random points of segment, train, assign and run, and hostile inputs (JSON)",
        description=reliability.__doc__.split("\n\n")[0],
        data_root_help="folder holding bm_graz/ (two crops of its images are the input)",
    )
    parser.add_argument("--kills", type=positive_int, default=20, metavar="N", help="SIGKILLs per stage [20]")
    parser.add_argument("--work-dir", type=Path, required=True, help="where the trials write (emptied first)")
    add_seed_option(parser)
    parser.set_defaults(func=run_reliability, seed=0)


def run_reliability(args) -> int:
    """``cellgan bench reliability``: the kill trials and the hostile cases; write the JSON."""
    import shutil

    from cellgan.bench._common import write_json

    if not (args.data_root / "bm_graz").is_dir():
        raise UsageError(f"{args.data_root}: no bm_graz/ folder here")
    if args.work_dir.exists():
        shutil.rmtree(args.work_dir)
    result = reliability.run_reliability_benchmark(args.data_root, args.work_dir, kills=args.kills, seed=args.seed)
    write_json(result, args.json)
    print(
        f"cases handled {result['cases_handled']}/{result['cases_tried']}, faults survived "
        f"{result['faults_survived']}/{result['faults_injected']}, bomb peak RSS {result['bomb_peak_rss_mb']:.0f} MB "
        f"-> {args.json}"
    )
    return 0 if result["cases_handled"] == result["cases_tried"] and result["faults_survived"] == result["faults_injected"] else 1


def _register_scale(subparsers) -> None:
    parser = _benchmark_parser(
        subparsers,
        "scale",
        help="segmentation throughput with 1 and 2 Dask workers, slide memory against size, DDP throughput",
        description=scale.__doc__.split("\n\n")[0],
        data_root_help="folder holding bm_graz/",
    )
    parser.add_argument("--work-dir", type=Path, required=True, metavar="DIR", help="scratch space (emptied first)")
    parser.add_argument(
        "--slide-tiles", type=positive_int, nargs="+", default=[4, 16, 64], metavar="N",
        help="slide areas to measure, in tile areas [4 16 64]",
    )
    parser.add_argument(
        "--tile-side", type=positive_int, default=None, metavar="PX",
        help="the slides' tile side, margins included [2048]: smaller tiles measure memory against size sooner",
    )
    parser.add_argument(
        "--measures", nargs="+", choices=scale.MEASURES, default=list(scale.MEASURES), metavar="MEASURE",
        help=f"which measures to run: {', '.join(scale.MEASURES)} [all]",
    )
    parser.set_defaults(func=run_scale)


def run_scale(args) -> int:
    """``cellgan bench scale``: run it, write the JSON."""
    from cellgan.bench._common import write_json

    result = scale.run_scale_benchmark(
        args.data_root,
        work_dir=args.work_dir,
        slide_tiles=tuple(args.slide_tiles),
        tile_side=args.tile_side,
        measures=tuple(args.measures),
        log=lambda line: print(line, flush=True),
    )
    write_json(result, args.json)
    print(f"-> {args.json}")
    return 0


def _register_image_classification(subparsers) -> None:
    parser = _benchmark_parser(
        subparsers,
        "image-classification",
        help="tissue classes of whole tiles from their cells on kather2016 (JSON)",
        description=image_classification.__doc__.split("\n\n")[1],
        datasets=("kather2016",),
        data_root_help="folder holding kather2016/",
    )
    parser.add_argument("--iterations", type=positive_int, default=400, help="generator iterations per seed [400]")
    parser.add_argument("--minutes", type=float, help="also stop each seed's training after M minutes")
    parser.add_argument("--seeds", type=positive_int, default=3, help="GAN seeds 0..N-1 [3]")
    parser.add_argument("--categories", type=positive_int, default=4, metavar="K", help="K [4]")
    parser.add_argument("--folds", type=positive_int, default=5, help="stratified cross-validation folds [5]")
    parser.add_argument("--limit-per-class", type=positive_int, metavar="N", help="use only the first N tiles of each class")
    parser.add_argument("--jobs", type=positive_int, default=1, help="seeds trained at the same time [1]")
    parser.add_argument("--work-dir", type=Path, help="keep the cell store, models and compositions here")
    add_recipe_option(parser)
    add_config_option(parser, help="run configuration file; its segment and train sections override the recipe's")
    add_device_option(parser)
    parser.set_defaults(func=run_image_classification)


def run_image_classification(args) -> int:
    """``cellgan bench image-classification``: the pipeline on kather2016, image classes scored; write the JSON."""
    from cellgan.bench._common import write_json
    from cellgan.device import resolve_device

    if not (args.data_root / DATASETS["kather2016"].folder).is_dir():
        raise UsageError(f"{args.data_root}: no kather2016/ folder here")
    device = resolve_device(args.device)
    sections = _recipe_and_config(args)
    result = image_classification.run_image_classification_benchmark(
        args.data_root,
        seeds=args.seeds,
        iterations=args.iterations,
        minutes=args.minutes,
        categories=args.categories,
        folds=args.folds,
        limit_per_class=args.limit_per_class,
        jobs=args.jobs,
        device=str(device),
        work_dir=args.work_dir,
        train_options=sections.get("train"),
        segment_options=sections.get("segment"),
    )
    write_json(result, args.json)
    for name in ("all", "cells", "composition", "segmentation_only", "colour_statistics"):
        acc, f1 = result[name]["accuracy"], result[name]["weighted_f1"]
        print(f"{name:18s} accuracy {acc['mean']:.3f}±{acc['std']:.3f}  weighted F1 {f1['mean']:.3f}±{f1['std']:.3f}")
    kmeans = result["kmeans"]
    print(f"k-means (k = {kmeans['n_clusters']}, all features): accuracy {kmeans['accuracy']['mean']:.3f}, "
          f"NMI {kmeans['nmi']['mean']:.3f} -> {args.json}")
    return 0


def _recipe_and_config(args) -> dict:
    """The checked sections of ``--recipe`` with those of ``--config`` laid over them."""
    from cellgan.config import layered_sections, read_yaml_sections, recipe_sections

    return layered_sections(recipe_sections(args.recipe), {} if args.config is None else read_yaml_sections(args.config))


def _given_over(section: dict | None, options: dict) -> dict:
    """A recipe/``--config`` section with the command-line options that were given laid over it."""
    from cellgan.config import given_options

    return {**(section or {}), **given_options(options)}
