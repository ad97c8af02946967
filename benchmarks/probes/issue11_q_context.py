"""Issue 11, step 16: Q given the cell's place (crowding, its neighbourhood's description) beside its patch.

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes/issue11_q_context.py VARIANT [STEPS...]
The default recipe's CRCHistoPhenotypes store (.cache/issue11s, built once as the bench
builds it) and teacher (pixels + moments + crowding over 8 neighbours, seed 0). Q is the
default recipe's own-Q network (CriticTrunk width 32) with a linear head over its pooled
features joined by a context vector, trained on the teacher alone (as the warm-up, step 11):
batch 64 with random symmetries, Adam 2e-4 (0.5, 0.9). VARIANT names the context:
  none      nothing (step 11's network)
  crowd     the cell's crowding (log distances to its 1st/4th/8th nearest cell), standardised
  nbplace   crowding and nucleus moments, each the cell's own and its 8 nearest cells' mean
  wide      nbplace, joined by the same 7 averaged over the 32 nearest cells and the log distance
            to the 16th and 32nd nearest cell (step 20: the tissue around the neighbourhood)
  nbplace16 nbplace with the mean over the 16 nearest cells instead of 8
At each STEPS: Q's agreement with its teacher and its argmax (own, and over the 8 nearest
cells) scored against the labels. Labels only score.
"""
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from _issue11 import default_store, scored

from cellgan.metrics.clustering import clustering_scores
from cellgan.model.critic import CriticTrunk
from cellgan.model.data import dihedral, patches_to_tensor
from cellgan.neighbourhood import crowding, nearest_cells, neighbourhood_average, nucleus_moments

torch.set_num_threads(1)
variant = sys.argv[1]
checkpoints = [int(s) for s in sys.argv[2:]] or [1000, 2000, 3000]
p, table, labels, teacher = default_store()


def standardised(v):
    return np.clip((v - v.mean(0)) / (v.std(0) + 1e-9), -3, 3).astype(np.float32)


partners = nearest_cells(table, 8)
if variant == "none":
    context = np.zeros((len(p), 0), np.float32)
elif variant == "crowd":
    context = standardised(crowding(table))
elif variant == "nbplace":
    place = np.concatenate([standardised(crowding(table)), standardised(nucleus_moments(p))], axis=1)
    context = np.concatenate([place, standardised(neighbourhood_average(place, partners))], axis=1)
elif variant in ("wide", "nbplace16"):
    place = np.concatenate([standardised(crowding(table)), standardised(nucleus_moments(p))], axis=1)
    if variant == "nbplace16":
        context = np.concatenate([place, standardised(neighbourhood_average(place, nearest_cells(table, 16)))], axis=1)
    else:
        far = nearest_cells(table, 32)
        xy = table[["centroid_x", "centroid_y"]].to_numpy(np.float64)
        distance = np.log1p(np.linalg.norm(xy[far] - xy[:, None], axis=2)[:, [15, 31]])
        context = np.concatenate([place, standardised(neighbourhood_average(place, partners)),
                                  standardised(neighbourhood_average(place, far)), standardised(distance)], axis=1)
else:
    raise SystemExit(f"unknown variant {variant}")
x = patches_to_tensor(p)
ctx = torch.from_numpy(context)
y = torch.from_numpy(teacher)
torch.manual_seed(0)
trunk, head = CriticTrunk(32), torch.nn.Linear(32 + ctx.shape[1], 4)
adam = torch.optim.Adam([*trunk.parameters(), *head.parameters()], lr=2e-4, betas=(0.5, 0.9))
rng = torch.Generator().manual_seed(0)


def logits(rows_x, rows_ctx):
    return head(torch.cat([trunk(rows_x), rows_ctx], dim=1))


start, step = time.perf_counter(), 0
for stop in checkpoints:
    while step < stop:
        rows = torch.randint(len(x), (64,), generator=rng)
        loss = F.cross_entropy(logits(dihedral(x[rows], torch.randint(8, (64,), generator=rng)), ctx[rows]), y[rows])
        adam.zero_grad()
        loss.backward()
        adam.step()
        step += 1
    seconds = time.perf_counter() - start
    with torch.no_grad():
        probs = torch.cat([logits(x[i : i + 2048], ctx[i : i + 2048]).softmax(1) for i in range(0, len(x), 2048)]).numpy()
    fit = clustering_scores(probs.argmax(1), teacher.astype(str))["ari"]
    s_own, s_read = scored(probs, table, labels)
    print(f"{variant} step {step} ({seconds:.0f} s, loss {loss.item():.3f}): ARI vs teacher {fit:.3f}; own {s_own}; "
          f"over 8 {s_read}", flush=True)
