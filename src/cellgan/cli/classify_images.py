"""``cellgan classify-images COMPOSITION``: k-means of images, and a cross-validated SVM given labels."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    from cellgan.cli.common import add_json_option, add_seed_option

    parser = subparsers.add_parser(
        "classify-images",
        help="cluster images on their cell-type proportions; with labels, score a linear SVM by cross-validation",
        description=(
            "Without --labels: k-means of the images on their proportion vectors (Hu et al.: k = 2). "
            "With --labels (a CSV with the columns image,label): also a linear SVM scored by stratified "
            "k-fold cross-validation on held-out images only, and the k-means clusters scored against the labels."
        ),
    )
    parser.add_argument(
        "composition", type=Path, metavar="COMPOSITION", help="directory written by `cellgan compose`, or its table"
    )
    parser.add_argument("--labels", type=Path, metavar="CSV", help="image labels: CSV with columns image,label")
    parser.add_argument("--clusters", type=int, default=2, metavar="N", help="k-means clusters [2]")
    parser.add_argument("--folds", type=int, default=4, metavar="F", help="cross-validation folds [4]")
    add_json_option(parser, help="write the full result as JSON")
    add_seed_option(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    import json

    from cellgan.analysis.composition import read_composition
    from cellgan.analysis.image_classification import classify_images, read_image_labels
    from cellgan.io.files import atomic_write

    table = read_composition(args.composition)
    labels = None if args.labels is None else read_image_labels(args.labels)
    result = classify_images(table, labels=labels, n_clusters=args.clusters, folds=args.folds, seed=args.seed)
    kmeans = result["kmeans"]
    print(f"{result['images']} images, {result['categories']} categories")
    print(f"k-means ({kmeans['n_clusters']} clusters): sizes {kmeans['cluster_sizes']}")
    if "svm" in result:
        if result["unlabelled_images"]:
            print(f"warning: {len(result['unlabelled_images'])} images have no label and are not scored")
        if result["labels_without_image"]:
            print(f"warning: {len(result['labels_without_image'])} labelled images are not in the composition table")
        scores = ", ".join(f"{k} {v:.3f}" for k, v in kmeans["scores"].items())
        print(f"k-means vs labels ({result['labelled_images']} images): {scores}")
        mean, std = result["svm"]["mean"], result["svm"]["std"]
        print(
            f"linear SVM, {result['svm']['n_folds']}-fold stratified CV (held-out folds only): "
            + ", ".join(f"{k} {mean[k]:.3f} ± {std[k]:.3f}" for k in mean)
        )
    if args.json is not None:
        text = json.dumps(result, indent=2)
        atomic_write(args.json, lambda p: p.write_text(text))
        print(f"wrote {args.json}")
    return 0
