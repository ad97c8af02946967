"""What the issue-11 probes share: the default recipe's CRCHistoPhenotypes store and teacher, and their scoring.

Imported by the probe scripts beside it (run from the repository root, so this folder is on sys.path).
Labels only score. Steps 1-26 ran on the bench's store of the typed nuclei alone; since step 27 the
bench's store holds every nucleus, and this returns its typed cells only, so that the probes still
measure what they measured then (the honest cell set is every nucleus: issue11_all_nuclei.py).
"""
from pathlib import Path

from cellgan.analysis.assign import neighbourhood_probabilities
from cellgan.bench.clustering import _segment_config, build_point_store, dataset_images
from cellgan.metrics.clustering import clustering_scores
from cellgan.model.self_labels import neighbourhood_clusters


def default_store(work_dir=".cache/issue11s"):
    """(patches, table without labels, labels, the default teacher of seed 0) of the bench's default-recipe store.

    Built once under ``work_dir`` as the clustering bench builds it.
    """
    images = dataset_images("crchistophenotypes", "../shared/data")
    config = _segment_config("crchistophenotypes", {"patch_mode": "faded", "reinhard_reference": "typical"}, images)
    store, _ = build_point_store("crchistophenotypes", images, Path(work_dir), config=config)
    t = store.read_table()
    typed = t.label.notna().to_numpy()
    t = t[typed].reset_index(drop=True)
    p = store.read_patches()[typed]
    labels = t.label.astype(str).to_numpy()
    table = t.drop(columns=["label"])
    teacher = neighbourhood_clusters(p, table, clusters=4, neighbours=8, seed=0, moments_weight=0.5, crowding_weight=0.2)
    return p, table, labels, teacher


def scored(probs, table, labels):
    """Q's argmax scored against the labels (acc / ARI / NMI, rounded): (each cell's own, over its 8 nearest)."""
    own = probs.argmax(1)
    read = neighbourhood_probabilities(table, probs, 8).argmax(1)
    keep = ("acc", "ari", "nmi")
    return tuple({k: round(v, 3) for k, v in clustering_scores(c, labels).items() if k in keep} for c in (own, read))


def all_nuclei_store(typed_only: bool = False):
    """(patches, table without labels, labels with "" for an untyped nucleus, typed mask) of the every-nucleus
    store that issue11_all_nuclei.py builds (step 27); ``typed_only``: its typed cells alone."""
    import numpy as np

    from cellgan.io.cellstore import CellStore

    store = CellStore.open(Path(".cache/issue11_all/all_nuclei"))
    t = store.read_table()
    p = store.read_patches()
    labels = t.label.fillna("").astype(str).to_numpy()
    typed = labels != ""
    table = t.drop(columns=["label"])
    if typed_only:
        return p[typed], table[typed].reset_index(drop=True), labels[typed], np.ones(int(typed.sum()), bool)
    return p, table, labels, typed
