"""``cellgan classify-images COMPOSITION``: k-means of images, and cross-validated classifiers given labels."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    from cellgan.analysis.image_features import FEATURE_SETS
    from cellgan.cli.common import add_json_option, add_seed_option

    parser = subparsers.add_parser(
        "classify-images",
        help="cluster images on their cells; with labels, score a linear SVM and a logistic regression by CV",
        description=(
            "Without --labels: k-means of the images (Hu et al.: k = 2 on the proportion vectors). "
            "With --labels (a CSV with the columns image,label): also a linear SVM and a logistic regression "
            "scored by stratified k-fold cross-validation on held-out images only (accuracy, weighted F1, "
            "confusion matrix, feature weights), and a k-means with k = the number of classes scored "
            "against the labels."
        ),
    )
    parser.add_argument(
        "composition", type=Path, metavar="COMPOSITION", help="directory written by `cellgan compose`, or its table"
    )
    parser.add_argument("--labels", type=Path, metavar="CSV", help="image labels: CSV with columns image,label")
    parser.add_argument(
        "--features",
        choices=FEATURE_SETS,
        default="composition",
        help="composition: the proportions (the paper); cells: every feature of the cells "
        "(cellgan.analysis.image_features); all: cells and whole-image colour statistics [composition]",
    )
    parser.add_argument(
        "--clusters", type=int, metavar="N", help="k-means clusters [the number of label classes; 2 without labels]"
    )
    parser.add_argument("--folds", type=int, default=4, metavar="F", help="cross-validation folds [4]")
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="write the result, confusion matrices (CSV, PNG) and weights here"
    )
    add_json_option(parser, help="write the full result as JSON")
    add_seed_option(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    import json

    from cellgan.analysis.composition import read_composition, read_image_features
    from cellgan.analysis.image_classification import CLASSIFIERS, classify_images, read_image_labels
    from cellgan.io.files import atomic_write
    from cellgan.report.classification import write_classification

    is_table = args.composition.is_file() and "image_features" in args.composition.name
    if args.features == "composition" and not is_table:
        table = read_composition(args.composition)
    else:
        table = read_image_features(args.composition)
    labels = None if args.labels is None else read_image_labels(args.labels)
    result = classify_images(
        table, feature_set=args.features, labels=labels, n_clusters=args.clusters, folds=args.folds, seed=args.seed
    )
    kmeans = result["kmeans"]
    print(f"{result['images']} images, {len(result['features'])} {args.features} features")
    if "error" in kmeans:
        print(f"k-means ({kmeans['n_clusters']} clusters): not run, {kmeans['error']}")
    else:
        print(f"k-means ({kmeans['n_clusters']} clusters): sizes {kmeans['cluster_sizes']}")
    if labels is not None:
        if result["unlabelled_images"]:
            print(f"warning: {len(result['unlabelled_images'])} images have no label and are not scored")
        if result["labels_without_image"]:
            print(f"warning: {len(result['labels_without_image'])} labelled images are not in the composition table")
        if "scores" in kmeans:
            scores = ", ".join(f"{k} {v:.3f}" for k, v in kmeans["scores"].items())
            print(f"k-means vs labels ({result['labelled_images']} images): {scores}")
        for model in CLASSIFIERS:
            mean, std = result[model]["mean"], result[model]["std"]
            print(
                f"{model.replace('_', ' ')}, {result[model]['n_folds']}-fold stratified CV (held-out folds only): "
                + ", ".join(f"{k} {mean[k]:.3f} ± {std[k]:.3f}" for k in mean)
            )
    if args.out is not None:
        write_classification(result, args.out, labels=labels)
        print(f"wrote {args.out}")
    if args.json is not None:
        text = json.dumps(result, indent=2)
        atomic_write(args.json, lambda p: p.write_text(text))
        print(f"wrote {args.json}")
    return 0
