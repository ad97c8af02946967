"""Issue 11, step 21: Q taught again by its own reading of the neighbourhood (rounds of self-labels).

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes/issue11_q_rounds.py ROUNDS FIRST LATER [NEIGHBOURS [OVER [SEED]]]
The network of step 16 (Q's own trunk, width 32, its head reading the patch's pooled features
beside the 14-number place), taught the default teacher for FIRST updates (the warm-up), then
for each of ROUNDS rounds: every cell's new self-label is the argmax of Q's probabilities
averaged over the cell and its NEIGHBOURS (default 8) nearest cells (how assign reads it), and Q
learns those for LATER more updates. After each stage: Q's argmax (own, and over the 8 nearest)
scored against the labels, and the share of cells whose self-label changed. Labels only score.
"""
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from _issue11 import default_store, scored

from cellgan.analysis.assign import neighbourhood_probabilities
from cellgan.model.critic import CriticTrunk
from cellgan.model.data import dihedral, patches_to_tensor
from _issue11 import teacher as overclustered_teacher
from cellgan.neighbourhood import place_description

torch.set_num_threads(1)
rounds, first, later = (int(a) for a in sys.argv[1:4])
neighbours = int(sys.argv[4]) if len(sys.argv) > 4 else 8
over = int(sys.argv[5]) if len(sys.argv) > 5 else 0
seed = int(sys.argv[6]) if len(sys.argv) > 6 else 0
p, table, labels, teacher = default_store()
if over or seed:  # step 22: the teacher over-clustered into OVER centres, merged to 4 (ROUNDS 0 for the teacher alone)
    teacher = overclustered_teacher(p, table, clusters=4, neighbours=8, seed=seed, moments_weight=0.5,
                                     crowding_weight=0.2, overclusters=over)
place = place_description(p, table, neighbours=8)
ctx = torch.from_numpy(np.clip((place - place.mean(0)) / (place.std(0) + 1e-6), -3, 3).astype(np.float32))
x = patches_to_tensor(p)
torch.manual_seed(seed)
trunk, head = CriticTrunk(32), torch.nn.Linear(32 + ctx.shape[1], 4)
adam = torch.optim.Adam([*trunk.parameters(), *head.parameters()], lr=2e-4, betas=(0.5, 0.9))
rng = torch.Generator().manual_seed(seed)


def logits(rows_x, rows_ctx):
    return head(torch.cat([trunk(rows_x), rows_ctx], dim=1))


def learn(target, updates):
    y = torch.from_numpy(target)
    for _ in range(updates):
        rows = torch.randint(len(x), (64,), generator=rng)
        loss = F.cross_entropy(logits(dihedral(x[rows], torch.randint(8, (64,), generator=rng)), ctx[rows]), y[rows])
        adam.zero_grad()
        loss.backward()
        adam.step()
    with torch.no_grad():
        return torch.cat([logits(x[i : i + 2048], ctx[i : i + 2048]).softmax(1) for i in range(0, len(x), 2048)]).numpy()


start, target = time.perf_counter(), teacher
for stage in range(rounds + 1):
    probs = learn(target, first if stage == 0 else later)
    own, read = scored(probs, table, labels)
    new = neighbourhood_probabilities(table, probs, neighbours).argmax(1).astype(np.int64)
    print(f"stage {stage} ({time.perf_counter() - start:.0f} s): own {own}; over 8 {read}; "
          f"labels changed {np.mean(new != target):.3f}; sizes {np.bincount(new, minlength=4).tolist()}", flush=True)
    target = new
