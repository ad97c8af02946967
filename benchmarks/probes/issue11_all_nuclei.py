"""Issue 11: does the clustering bench's cell set leak the labels into the teacher?

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes/issue11_all_nuclei.py

On CRCHistoPhenotypes the bench's cells are the 22,444 *typed* nuclei only; the other 7,312
nuclei of the detection files (untyped by the annotators) are absent, so each cell's nearest
cells, its crowding and the teacher's neighbourhood average are taken among nuclei an
annotator chose to type. A user's cells are every nucleus. This builds the point store of
every detection centre (29,756), computes the default teacher (pixels + moments 0.5 +
crowding 0.2 over the 8 nearest, 8 k-means centres merged to 4) on all of them, and scores
it on the typed nuclei (matched to their detection centre within 1 px), beside the same
teacher on the typed nuclei alone. Labels only score. Seeds 0, 1, 2.
"""
import dataclasses
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from cellgan.bench.clustering import _segment_config, dataset_images
from cellgan.io.cellstore import CellStore
from cellgan.metrics.clustering import clustering_scores
from _issue11 import teacher as overclustered_teacher
from cellgan.segment import SegmentationError, cells_at_points

WORK = Path(".cache/issue11_all")
images = dataset_images("crchistophenotypes", "../shared/data")
config = _segment_config("crchistophenotypes", {"patch_mode": "faded", "reinhard_reference": "typical"}, images)
store = CellStore.create(WORK / "all_nuclei", patch_mode=config.patch_mode)
for image in images:
    if store.has_image(image.image_id) or len(image.centres) == 0:
        continue
    rgb = image.read_rgb()
    xy = np.clip(image.centres, 0, [rgb.shape[1] - 1, rgb.shape[0] - 1])
    labels = np.full(len(xy), "", dtype=object)
    if len(image.labelled_centres):
        typed = np.clip(image.labelled_centres, 0, [rgb.shape[1] - 1, rgb.shape[0] - 1])
        dist, idx = cKDTree(xy).query(typed)
        ok = dist <= 1.0
        labels[idx[ok]] = np.asarray(image.cell_labels, dtype=object)[ok]
    try:
        result = cells_at_points(rgb, xy, config, image_id=image.image_id, labels=[str(v) for v in labels])
    except SegmentationError as err:  # as the bench: the image is skipped
        print(f"{image.image_id}: skipped, {err}")
        continue
    store.write_image(image.image_id, result.table, result.patches, label_mask=result.label_mask, overlay=result.overlay)
t = store.read_table()
p = store.read_patches()
lab = t.label.fillna("").astype(str).to_numpy()
typed = lab != ""
print(f"cells {len(t)}, typed {typed.sum()}", flush=True)
table = t.drop(columns=["label"])
keep = ("acc", "ari", "nmi")
for name, rows in (("typed only", typed), ("all nuclei", np.ones(len(t), bool))):
    scores = []
    for seed in (0, 1, 2):
        sub = table[rows].reset_index(drop=True)
        teacher = overclustered_teacher(p[rows], sub, clusters=4, neighbours=8, seed=seed,
                                         moments_weight=0.5, crowding_weight=0.2, overclusters=8)
        scored = teacher[typed[rows]]
        scores.append(clustering_scores(scored, lab[rows][typed[rows]]))
    print(f"{name:11s}: " + "  ".join(
        f"{m} {np.mean([s[m] for s in scores]):.3f}±{np.std([s[m] for s in scores]):.3f}" for m in keep), flush=True)
