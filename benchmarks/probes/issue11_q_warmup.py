"""Issue 11, step 11: how fast Q's trunk learns its teacher when trained on it alone.

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes/issue11_q_warmup.py [STEPS...]
On the cached store (.cache/issue11, see issue11_windows.py): the default recipe's teacher
(pixels + moments + crowding over 8 neighbours, seed 0); Q (CriticTrunk width 32 + a linear
head, the default recipe's own-Q network) trained on it by cross-entropy alone, batch 64 with
random flips/rotations, Adam 2e-4 (the critic's rate), betas (0.5, 0.9). At each STEPS: the
seconds, Q's agreement with its teacher, and Q's argmax (own, and over the 8 nearest cells)
scored against the labels. Labels only score.
"""
import sys
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from _issue11 import scored

from cellgan.metrics.clustering import clustering_scores
from cellgan.model.critic import CriticTrunk
from cellgan.model.data import dihedral, patches_to_tensor
from cellgan.model.self_labels import neighbourhood_clusters

torch.set_num_threads(1)
C = ".cache/issue11/"
checkpoints = [int(s) for s in sys.argv[1:]] or [250, 500, 1000, 2000]
p = np.load(C + "patches_faded.npy")
t = pd.read_parquet(C + "table.parquet")
labels = t.label.astype(str).to_numpy()
table = t.drop(columns=["label"])
teacher = neighbourhood_clusters(p, table, clusters=4, neighbours=8, seed=0, moments_weight=0.5, crowding_weight=0.2)
x = patches_to_tensor(p)
y = torch.from_numpy(teacher)
torch.manual_seed(0)
trunk, head = CriticTrunk(32), torch.nn.Linear(32, 4)
params = [*trunk.parameters(), *head.parameters()]
adam = torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.9))
rng = torch.Generator().manual_seed(0)
start, step = time.perf_counter(), 0
for stop in checkpoints:
    while step < stop:
        rows = torch.randint(len(x), (64,), generator=rng)
        batch = dihedral(x[rows], torch.randint(8, (64,), generator=rng))
        loss = F.cross_entropy(head(trunk(batch)), y[rows])
        adam.zero_grad()
        loss.backward()
        adam.step()
        step += 1
    seconds = time.perf_counter() - start
    with torch.no_grad():
        probs = torch.cat([head(trunk(x[i : i + 2048])).softmax(1) for i in range(0, len(x), 2048)]).numpy()
    fit = clustering_scores(probs.argmax(1), teacher.astype(str))["ari"]
    s_own, s_read = scored(probs, table, labels)
    print(f"step {step} ({seconds:.0f} s, loss {loss.item():.3f}): ARI vs teacher {fit:.3f}; own {s_own}; over 8 {s_read}",
          flush=True)
