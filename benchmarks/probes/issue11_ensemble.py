"""Issue 11, step 38: the three seeds' Q read together (an ensemble), on the default recipe's bench models.

  OMP_NUM_THREADS=2 .venv/bin/python benchmarks/probes/issue11_ensemble.py

As issue11_read_neighbours.py: the 3 plain-cut models of the clustering bench on its every-nucleus store, Q
read over each cell and its 8 nearest. Each other seed's categories are matched to a reference seed's by the
Hungarian assignment of their argmax cross-table (no label), the aligned probabilities averaged, and the argmax
of the mean scored on the typed nuclei (labels only score). Then the teacher alone per seed, with the
default's 10 k-means starts and with 100: whether the seeds' teachers differ.
"""
import numpy as np
from _issue11 import bench_models
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans

from cellgan.analysis.assign import assign_cells, cell_places, neighbourhood_probabilities
from cellgan.metrics.clustering import clustering_scores
from cellgan.model import load_trained
from cellgan.neighbourhood import neighbourhood_pixels


def aligned(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``other``'s columns reordered to the categories of ``reference`` they share the most cells with."""
    k = reference.shape[1]
    table = np.zeros((k, k))
    np.add.at(table, (reference.argmax(1), other.argmax(1)), 1)
    rows, cols = linear_sum_assignment(-table)
    order = np.empty(k, int)
    order[rows] = cols
    return other[:, order]


patches, cells, typed, labels, models = bench_models()
probs = []
for model_dir in models:
    model = load_trained(model_dir, device="cpu")
    own, _ = assign_cells(model, patches, places=cell_places(model, patches, cells))
    probs.append(neighbourhood_probabilities(cells, own, 8))
    s = clustering_scores(probs[-1].argmax(1)[typed], labels)
    print(f"{model_dir.name}: {s['acc']:.3f} / {s['ari']:.3f} / {s['nmi']:.3f}", flush=True)
for ref in range(len(probs)):
    mean = np.mean([probs[ref]] + [aligned(probs[ref], p) for j, p in enumerate(probs) if j != ref], axis=0)
    s = clustering_scores(mean.argmax(1)[typed], labels)
    print(f"ensemble aligned to {models[ref].name}: {s['acc']:.3f} / {s['ari']:.3f} / {s['nmi']:.3f}")
for seed in range(3):
    described = neighbourhood_pixels(patches, cells, neighbours=8, seed=seed, moments_weight=0.5, crowding_weight=0.2)
    for starts in (10, 100):
        groups = KMeans(4, n_init=starts, random_state=seed).fit_predict(described)
        s = clustering_scores(groups[typed], labels)
        sizes = np.round(np.bincount(groups, minlength=4) / len(groups), 2)
        print(f"teacher, seed {seed}, {starts} starts: {s['acc']:.3f} / {s['ari']:.3f} / {s['nmi']:.3f}, sizes {sizes}")
