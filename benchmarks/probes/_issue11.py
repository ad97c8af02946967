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


def loadable(model_dir) -> bool:
    """Whether this cellgan loads the model: none of the options it trained with is retired (issue 11 step 32)."""
    import json

    from cellgan.model.config import RETIRED_OPTIONS

    trained = json.loads((Path(model_dir) / "config.json").read_text())
    return all(trained.get(k, off) == off for k, off in RETIRED_OPTIONS.items())


def bench_models(bench=Path(".cache/bench/clustering_crchistophenotypes")):
    """(patches, table without labels, typed mask, labels of the typed, the default recipe's model directories) of
    the clustering bench's every-nucleus store (29,835 nuclei) and its models trained with the default recipe as it
    is now, whatever their seed and length (steps 35 and 38)."""
    import json

    from cellgan.config import resolve_config
    from cellgan.io.cellstore import CellStore

    store = next(s for s in (CellStore.open(p) for p in bench.glob("cells_*")) if len(s) == 29835)
    t = store.read_table()
    typed = t.label.notna().to_numpy()
    recipe = resolve_config().train.to_dict()
    free = {"seed", "minutes", "iterations"}

    def default_recipe(model_dir):
        trained = json.loads((model_dir / "config.json").read_text())
        return loadable(model_dir) and all(trained.get(k) == v for k, v in recipe.items() if k not in free)

    models = [m for m in sorted(bench.glob("gan_*_seed*")) if default_recipe(m)]
    return store.read_patches(), t.drop(columns=["label"]), typed, t.label.astype(str).to_numpy()[typed], models


def overclustered(described, *, clusters: int, overclusters: int, seed: int):
    """The teacher's cut of issue 11 steps 22-31 (cellgan's default until step 32): k-means of ``overclusters``
    centres merged into ``clusters`` groups by Ward's linkage of the centres, weighed by their sizes; plain k-means
    of ``clusters`` when ``overclusters`` ≤ ``clusters``. Kept here so that the probes of those steps still run."""
    import numpy as np
    from scipy.cluster.hierarchy import fcluster, linkage
    from sklearn.cluster import KMeans

    if overclusters <= clusters:
        return KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit_predict(described).astype(np.int64)
    found = KMeans(n_clusters=overclusters, n_init=10, random_state=seed).fit(described)
    return ward_groups(found.cluster_centers_, np.bincount(found.labels_, minlength=overclusters), clusters)[found.labels_]


def ward_groups(centres, sizes, groups: int):
    """The group of each centre after Ward's agglomeration (each centre weighing its ``sizes``) into ``groups``,
    numbered by their first centre."""
    import numpy as np

    centres = np.asarray(centres, dtype=np.float64)
    members, mean, n = [[i] for i in range(len(centres))], list(centres), list(np.maximum(sizes, 1e-9).astype(float))
    while len(members) > groups:
        _, a, b = min((n[a] * n[b] / (n[a] + n[b]) * float(np.sum((mean[a] - mean[b]) ** 2)), a, b)
                      for a in range(len(mean)) for b in range(a + 1, len(mean)))
        mean[a] = (n[a] * mean[a] + n[b] * mean[b]) / (n[a] + n[b])
        n[a] += n[b]
        members[a] += members.pop(b)
        del mean[b], n[b]
    out = np.empty(len(centres), dtype=np.int64)
    for group, ids in enumerate(sorted(members, key=min)):
        out[ids] = group
    return out


def teacher(patches, table, *, clusters: int, neighbours: int, seed: int, moments_weight: float = 0.0,
            crowding_weight: float = 0.0, overclusters: int = 0):
    """``cellgan.model.self_labels.neighbourhood_clusters`` with the over-clustered cut of steps 22-31."""
    from cellgan.neighbourhood import neighbourhood_pixels

    described = neighbourhood_pixels(patches, table, neighbours=neighbours, seed=seed, moments_weight=moments_weight,
                                     crowding_weight=crowding_weight)
    return overclustered(described, clusters=clusters, overclusters=overclusters, seed=seed)


def detected_nuclei():
    """(table, patches, CRCHistoPhenotypes records of its images) of the composition bench's cell store: the
    nuclei a run detects (issue 11 steps 30-37)."""
    from cellgan.io.cellstore import CellStore
    from cellgan.io.datasets import DATASETS, load_crchistophenotypes
    from cellgan.io.files import safe_image_id

    store = CellStore.open(next(Path(".cache/bench/composition_crchistophenotypes").glob("cells_*")))
    records = load_crchistophenotypes(Path("../shared/data") / DATASETS["crchistophenotypes"].folder)
    return store.read_table(), store.read_patches(), [r for r in records if store.has_image(safe_image_id(r.path.stem))]
