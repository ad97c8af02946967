"""Issue 11, step 38b: where the seeds' spread arises, the warm-up of Q or the GAN stage.

  S=.cache/bench/clustering_crchistophenotypes/cells_crchistophenotypes_e5de90d829   # the every-nucleus store
  for s in 0 1 2; do OMP_NUM_THREADS=1 .venv/bin/cellgan train $S --out /tmp/warm/s$s --iterations 1 --seed $s --threads 1 --quiet & done; wait
  OMP_NUM_THREADS=2 .venv/bin/python benchmarks/probes/issue11_warmup_seeds.py /tmp/warm/s0 /tmp/warm/s1 /tmp/warm/s2 \
      .cache/bench/clustering_crchistophenotypes/gan_*_seed*

Each model (a default-recipe run stopped after its warm-up and one generator iteration, or a bench model) on the
clustering bench's every-nucleus store: Q read over each cell and its 8 nearest as the assign stage does, scored
on the typed nuclei (labels only score), and label-free: its agreement with its own seed's teacher (ARI of Q's
own argmax and of its reading) and Q's cross-entropy on the teacher's labels.
"""
import sys

import numpy as np
from _issue11 import bench_models, loadable
from sklearn.metrics import adjusted_rand_score

from cellgan.analysis.assign import assign_cells, cell_places, neighbourhood_probabilities
from cellgan.metrics.clustering import clustering_scores
from cellgan.model import load_trained
from cellgan.model.self_labels import neighbourhood_clusters

patches, cells, typed, labels, _ = bench_models()
for model_dir in sys.argv[1:]:
    if not loadable(model_dir):
        continue
    model = load_trained(model_dir, device="cpu")
    config = model.config
    teacher = neighbourhood_clusters(patches, cells, clusters=config.categories, neighbours=config.self_label_neighbours,
                                     seed=config.seed, moments_weight=config.self_label_moments,
                                     crowding_weight=config.self_label_crowding)
    probs, _ = assign_cells(model, patches, places=cell_places(model, patches, cells))
    read = neighbourhood_probabilities(cells, probs, 8).argmax(1)
    s = clustering_scores(read[typed], labels)
    entropy = -np.log(np.clip(probs[np.arange(len(teacher)), teacher], 1e-9, 1)).mean()
    print(f"{model_dir} (seed {config.seed}): {s['acc']:.3f} / {s['ari']:.3f} / {s['nmi']:.3f}; with its teacher: "
          f"own ARI {adjusted_rand_score(teacher, probs.argmax(1)):.3f}, read ARI {adjusted_rand_score(teacher, read):.3f}, "
          f"cross-entropy {entropy:.3f}", flush=True)
