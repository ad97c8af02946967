"""Issue 11, step 35: over how many nearest cells Q is read, on the default recipe's bench models.

  OMP_NUM_THREADS=2 .venv/bin/python benchmarks/probes/issue11_read_neighbours.py

The 3 models of the plain-cut run (step 31, now the default) on the clustering bench's every-nucleus store:
Q's probabilities averaged over each cell and its N nearest (the assign stage reads N = the teacher's 8),
scored on the typed nuclei (labels only score).
"""
import numpy as np
from _issue11 import bench_models

from cellgan.analysis.assign import assign_cells, cell_places, neighbourhood_probabilities
from cellgan.metrics.clustering import clustering_scores
from cellgan.model import load_trained

patches, cells, typed, labels, models = bench_models()
reads = (0, 4, 8, 12, 16, 24)
rows = {n: [] for n in reads}
for model_dir in models:
    model = load_trained(model_dir, device="cpu")
    probs, _ = assign_cells(model, patches, places=cell_places(model, patches, cells))
    for n in reads:
        s = clustering_scores(neighbourhood_probabilities(cells, probs, n).argmax(1)[typed], labels)
        rows[n].append([s["acc"], s["ari"], s["nmi"]])
    print(model_dir.name, {n: np.round(rows[n][-1], 3).tolist() for n in reads}, flush=True)
for n in reads:
    r = np.array(rows[n])
    print(f"N = {n:2d}: acc / ARI / NMI " + " / ".join(f"{m:.3f} ± {s:.3f}" for m, s in zip(r.mean(0), r.std(0))))
