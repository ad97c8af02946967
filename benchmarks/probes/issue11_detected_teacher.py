"""Issue 11, step 30: the default teacher on the nuclei the composition bench detects.

  OMP_NUM_THREADS=2 .venv/bin/python benchmarks/probes/issue11_detected_teacher.py STORE

STORE: the composition bench's cell store (.cache/bench/composition_crchistophenotypes/cells_*). The default
teacher (8 k-means centres merged into 4) and plain k-means of 4, on those nuclei; each scored as the
composition bench scores its categories (labels only score). Its group sizes say whether the one large
category of the trained models comes from the teacher.
"""
import sys
from pathlib import Path

import numpy as np

from cellgan.bench.composition import composition_scores
from cellgan.io.cellstore import CellStore
from cellgan.io.datasets import DATASETS, load_crchistophenotypes
from cellgan.io.files import safe_image_id
from _issue11 import teacher as overclustered_teacher

store = CellStore.open(Path(sys.argv[1]))
table = store.read_table()
patches = store.read_patches()
records = load_crchistophenotypes(Path("../shared/data") / DATASETS["crchistophenotypes"].folder)
records = [r for r in records if store.has_image(safe_image_id(r.path.stem))]
for name, over in (("over8", 8), ("kmeans4", 0)):
    groups = overclustered_teacher(patches, table, clusters=4, neighbours=8, seed=0, moments_weight=0.5,
                                    crowding_weight=0.2, overclusters=over)
    s = composition_scores(table.assign(category=groups), records, categories=4)
    print(f"{name}: sizes {np.round(np.bincount(groups, minlength=4) / len(groups), 2)}, mapped agreement "
          f"{s['mapped_agreement']:.3f}, MAE {s['composition_mae']:.3f} (mean {s['reference_mae_constant']:.3f})", flush=True)
