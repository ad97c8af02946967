"""Issue 11, step 3: short GAN probes on the cached crchistophenotypes store (faded, Reinhard typical).

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes/issue11_gan.py NAME ITERATIONS key=value ...
trains cellgan.model.train with the reinhard_own_q recipe plus the given TrainConfig fields
for ITERATIONS generator iterations (seed from seed=, default 0) in .cache/issue11/gan/NAME,
then scores argmax Q on every cell (labels only score) and prints one line:
acc / ARI / NMI, cells per category, seconds, and (with self-labels) the teacher's scores.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from cellgan.metrics.clustering import clustering_scores
from cellgan.model import TrainConfig, train
from cellgan.model.data import patches_to_tensor
from cellgan.model.self_labels import neighbourhood_clusters
from cellgan.model.trainer import load_trained
from cellgan.neighbourhood import nearest_cells, neighbourhood_average

torch.set_num_threads(1)
C = Path(".cache/issue11")
name, iterations = sys.argv[1], int(sys.argv[2])
overrides = {k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in sys.argv[3:])}
base = {"lambda_self_label": 1.0, "self_label_neighbours": 8, "separate_q": True}
config = TrainConfig.from_dict({**base, **overrides, "iterations": iterations, "minutes": None, "sample_every": 10**6,
                                "checkpoint_every": None, "checkpoint_seconds": None})
patches = np.load(C / "patches_faded.npy")
table = pd.read_parquet(C / "table.parquet")
labels = table["label"].astype(str).to_numpy()
out = C / "gan" / name
if out.exists():
    import shutil
    shutil.rmtree(out)
t0 = time.time()
result = train(patches, out, config, device="cpu", progress=False, table=table.drop(columns=["label"]))
seconds = time.time() - t0
model = load_trained(out, device="cpu")
with torch.inference_mode():
    logits = torch.cat([model.critic.q(patches_to_tensor(patches[i:i + 1024]))[0] for i in range(0, len(patches), 1024)])
clusters = logits.argmax(1).numpy()
s = clustering_scores(clusters, labels)
row = {"name": name, "iterations": iterations, "seconds": round(seconds), "acc": round(s["acc"], 3),
       "ari": round(s["ari"], 3), "nmi": round(s["nmi"], 3),
       "sizes": np.bincount(clusters, minlength=config.categories).tolist(), "overrides": overrides}
probs = torch.softmax(logits, 1).numpy()
np.save(out / "probs.npy", probs)
for k in (4, 8, 16):
    voted = neighbourhood_average(probs, nearest_cells(table, k)).argmax(1)
    v = clustering_scores(voted, labels)
    row[f"vote{k}"] = [round(v["acc"], 3), round(v["ari"], 3), round(v["nmi"], 3)]
if config.lambda_self_label:
    teacher = neighbourhood_clusters(patches, table, clusters=config.categories, neighbours=config.self_label_neighbours,
                                     seed=config.seed, moments_weight=config.self_label_moments,
                                     crowding_weight=config.self_label_crowding)
    t = clustering_scores(teacher, labels)
    row["teacher"] = [round(t["acc"], 3), round(t["ari"], 3), round(t["nmi"], 3)]
    row["agree_teacher_ari"] = round(clustering_scores(clusters, teacher.astype(str))["ari"], 3)
print(json.dumps(row), flush=True)
with open(C / "gan_probes.jsonl", "a") as f:
    f.write(json.dumps(row) + "\n")
