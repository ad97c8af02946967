"""Issue 11, step 41: Q read over the eight symmetries of each patch (test-time augmentation), on the bench models.

  OMP_NUM_THREADS=2 .venv/bin/python benchmarks/probes/issue11_symmetries.py

The default recipe's models of the clustering bench (step 31) on its every-nucleus store: Q's probabilities for
each cell's patch as stored and averaged over its 8 flips and quarter turns, each then read alone (N = 0) or over
the cell and its 8 nearest (the assign stage's N = 8); scored on the typed nuclei (labels only score).
"""
import numpy as np
from _issue11 import bench_models

from cellgan.analysis.assign import assign_cells, cell_places, neighbourhood_probabilities
from cellgan.metrics.clustering import clustering_scores
from cellgan.model import load_trained


def symmetry(patches, t):
    """Symmetry t = 4·flip + quarter turns of (n, h, w, 3) patches (cellgan.model.data.dihedral's numbering)."""
    flipped = patches[:, :, ::-1] if t >= 4 else patches
    return np.ascontiguousarray(np.rot90(flipped, t % 4, axes=(1, 2)))


patches, cells, typed, labels, models = bench_models()
reads = {"as stored, N = 0": (False, 0), "as stored, N = 8": (False, 8),
         "8 symmetries, N = 0": (True, 0), "8 symmetries, N = 8": (True, 8)}
rows = {name: [] for name in reads}
for model_dir in models:
    model = load_trained(model_dir, device="cpu")
    places = cell_places(model, patches, cells)
    each = [assign_cells(model, symmetry(patches, t), places=places)[0] for t in range(8)]
    for name, (averaged, n) in reads.items():
        probs = np.mean(each, axis=0) if averaged else each[0]
        s = clustering_scores(neighbourhood_probabilities(cells, probs, n).argmax(1)[typed], labels)
        rows[name].append([s["acc"], s["ari"], s["nmi"]])
    same = [float((p.argmax(1) == each[0].argmax(1)).mean()) for p in each[1:]]
    print(model_dir.name, {k: np.round(v[-1], 3).tolist() for k, v in rows.items()},
          f"argmax as stored kept under the other 7: {min(same):.3f}-{max(same):.3f}", flush=True)
for name, r in rows.items():
    r = np.array(r)
    print(f"{name}: acc / ARI / NMI " + " / ".join(f"{m:.3f} ± {s:.3f}" for m, s in zip(r.mean(0), r.std(0))))
