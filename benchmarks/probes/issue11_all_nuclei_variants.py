"""Issue 11: the teacher's settings re-chosen on every nucleus (the store of issue11_all_nuclei.py).

  OMP_NUM_THREADS=1 PYTHONPATH=benchmarks/probes .venv/bin/python benchmarks/probes/issue11_all_nuclei_variants.py [typed] [name=neighbours,moments,crowding,over ...]

Each variant's teacher is computed on all 29,755 nuclei (with ``typed``: on the typed ones alone, the
bench's cell set before step 27) and scored on the typed ones (seed 0; the over-clustered teacher gave
the same groups for seeds 0-2). Labels only score.
"""
import sys

import numpy as np
from sklearn.cluster import KMeans

from _issue11 import all_nuclei_store
from cellgan.metrics.clustering import clustering_scores
from _issue11 import teacher as overclustered_teacher

args = sys.argv[1:]
p, table, lab, typed = all_nuclei_store(typed_only=args[:1] == ["typed"])
args = args[1:] if args[:1] == ["typed"] else args
variants = args or ["default=8,0.5,0.2,8", "nocrowd=8,0.5,0,8", "own=0,0.5,0.2,8", "n4=4,0.5,0.2,8",
                            "n16=16,0.5,0.2,8", "crowd05=8,0.5,0.5,8", "k4=8,0.5,0.2,0"]
for v in variants:
    name, spec = v.split("=")
    n, m, c, o = spec.split(",")
    teacher = overclustered_teacher(p, table, clusters=4, neighbours=int(n), seed=0, moments_weight=float(m),
                                     crowding_weight=float(c), overclusters=int(o))
    s = clustering_scores(teacher[typed], lab[typed])
    sizes = np.bincount(teacher, minlength=4) / len(teacher)
    print(f"{name:9s} {spec:14s} acc {s['acc']:.3f} ari {s['ari']:.3f} nmi {s['nmi']:.3f}  sizes {np.round(sizes, 2)}", flush=True)
