"""Issue 11, step 29: the bench's models on the nuclei a user's run finds (where composition loses).

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes/issue11_detected.py

The clustering bench scores categories on cells cut at the annotated centres (0.601 accuracy, step 27);
the composition bench, on the nuclei its own segmentation finds, maps only 39 % of the matched cells to
their type. This segments CRCHistoPhenotypes as the composition bench does (default recipe, 0.5 µm/px)
into .cache/issue11_detected, assigns those nuclei with each of the 3 models of the step-27 clustering
bench (trained on the annotated centres), and scores them as the composition bench does
(:func:`cellgan.bench.composition.composition_scores`): if the agreement stays near 0.39 the loss lies
in the detected cells themselves, not in training on them. Labels only score.
"""
from pathlib import Path

import pandas as pd

from cellgan.bench.composition import composition_scores
from cellgan.config import recipe_sections
from cellgan.io.cellstore import CellStore
from cellgan.io.datasets import DATASETS, load_crchistophenotypes
from cellgan.io.files import safe_image_id
from cellgan.pipeline import assign_stage, segment_stage
from cellgan.segment import SegmentConfig
from cellgan.segment.reference import resolve_reference

work = Path(".cache/issue11_detected")
records = load_crchistophenotypes(Path("../shared/data") / DATASETS["crchistophenotypes"].folder)
options = {"mpp": 0.5, **recipe_sections("default")["segment"]}
options["reinhard_reference"] = resolve_reference(options["reinhard_reference"], [r.path for r in records])
segment_stage([r.path for r in records], work / "cells", SegmentConfig(**options), progress=False)
store = CellStore.open(work / "cells")
records = [r for r in records if store.has_image(safe_image_id(r.path.stem))]
print(f"{len(store)} detected nuclei in {len(records)} images", flush=True)
for model in sorted(Path(".cache/bench/clustering_crchistophenotypes").glob("gan_*_seed*")):
    out = work / f"assign_{model.name}"
    assign_stage(model, work / "cells", out, device="cpu")
    table = pd.read_parquet(out / "assignments.parquet")
    s = composition_scores(table, records, categories=4)
    print(f"{model.name}: matched {s['matched_cells']} of {s['labelled_cells']}, mapped agreement "
          f"{s['mapped_agreement']:.3f}, composition MAE {s['composition_mae']:.3f} (mean composition "
          f"{s['reference_mae_constant']:.3f}), Pearson {s['composition_pearson']:.3f}, sizes "
          f"{table['category'].value_counts(normalize=True).sort_index().round(2).tolist()}", flush=True)
