"""Issue 11, step 42: an over-clustering head beside Q's in the warm-up (IIC's auxiliary heads), Q alone.

  for s in 0 1 2; do OMP_NUM_THREADS=1 PYTHONPATH=benchmarks/probes .venv/bin/python \
      benchmarks/probes/issue11_aux_head.py $s OVER [cosine] & done; wait      # OVER 0: the default warm-up

The default recipe's warm-up of Q as the trainer runs it (its models, optimiser, sampler, self-labels and places;
2,000 updates), on the clustering bench's every-nucleus store, with a second linear head on Q's pooled features
taught a k-means of OVER centres of the same description the teacher cuts into 4 (Ji et al., ICCV 2019: heads
over-clustering beside the main one shape the trunk). Q's own head then read over each cell and its 8 nearest,
as the assign stage does, scored on the typed nuclei (labels only score). Step 44: with `cosine`, the warm-up's
learning rate falls along a half cosine to 0 at its last update (does less noise at its end tighten the seeds?).
"""
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from _issue11 import bench_models
from sklearn.cluster import KMeans

from cellgan.analysis.assign import assign_cells, neighbourhood_probabilities
from cellgan.config import resolve_config
from cellgan.metrics.clustering import clustering_scores
from cellgan.model.data import PatchSampler
from cellgan.model.trainer import _batch_places, build_models, build_optimizers, warmup_updates
from cellgan.neighbourhood import nearest_cells, neighbourhood_pixels, place_description

seed, over = int(sys.argv[1]), int(sys.argv[2])
cosine = sys.argv[3:4] == ["cosine"]
torch.set_num_threads(1)
patches, cells, typed, labels, _ = bench_models()
config = resolve_config().train
config = type(config)(**{**config.to_dict(), "seed": seed})
described = neighbourhood_pixels(patches, cells, neighbours=config.self_label_neighbours, seed=seed,
                                 moments_weight=config.self_label_moments, crowding_weight=config.self_label_crowding)
teacher = torch.from_numpy(KMeans(4, n_init=10, random_state=seed).fit_predict(described).astype(np.int64))
fine = torch.from_numpy(KMeans(over, n_init=10, random_state=seed).fit_predict(described).astype(np.int64)) if over else None
generator, critic = build_models(config)
places = torch.from_numpy(place_description(patches, cells, neighbours=config.self_label_neighbours))
critic.set_place_scale(places)
aux = torch.nn.Linear(critic.width, over) if over else None
optimizer = build_optimizers(generator, critic, config)["critic"]
if aux is not None:
    optimizer.add_param_group({"params": list(aux.parameters())})
sampler = PatchSampler(patches, batch_size=config.batch_size, seed=seed, augment=config.augment,
                       pairs=config.lambda_pair > 0,
                       partners=nearest_cells(cells, config.pair_neighbours) if config.pair_neighbours else None)
start = time.perf_counter()
updates = warmup_updates(config, len(teacher), sampler.cells_per_batch)
rates = [group["lr"] for group in optimizer.param_groups]
for index in range(updates):
    if cosine:
        for group, rate in zip(optimizer.param_groups, rates):
            group["lr"] = rate * 0.5 * (1 + np.cos(np.pi * index / updates))
    real, rows = sampler.batch(index), sampler.cells(index)
    logits, features = critic.q(real, place=_batch_places(places, rows))
    loss = F.cross_entropy(logits, teacher[rows])
    if aux is not None:
        loss = loss + F.cross_entropy(aux(features), fine[rows])
    optimizer.zero_grad(set_to_none=True)
    (config.lambda_self_label * loss).backward()
    optimizer.step()
probs, _ = assign_cells(critic, patches, places=places.numpy())
s = clustering_scores(neighbourhood_probabilities(cells, probs, 8).argmax(1)[typed], labels)
print(f"seed {seed} over {over}{' cosine' if cosine else ''} ({time.perf_counter() - start:.0f} s): {s['acc']:.3f} / {s['ari']:.3f} / {s['nmi']:.3f}; "
      f"sizes {np.round(np.bincount(probs.argmax(1), minlength=4) / len(probs), 2).tolist()}", flush=True)
