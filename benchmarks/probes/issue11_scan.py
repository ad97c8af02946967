"""Issue 11: SCAN-style consistency with neighbours in Q's learned feature space, after the warm-up.

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes/issue11_scan.py [SCAN_STEPS...]
Builds (once) the bench's CRCHistoPhenotypes cell store of the default recipe under
.cache/issue11s. Q (CriticTrunk width 32 + a linear head, the default recipe's own-Q network)
learns the default recipe's teacher alone for 2,000 updates (the warm-up, as step 11). Then,
with the cells' 20 nearest neighbours in Q's pooled features (cosine, mined once from the
warmed-up Q), SCAN's loss (Van Gansbeke et al., ECCV 2020): -log <p_i, p_j> for a cell i and a
random one j of its mined neighbours, minus 5 x the entropy of the batch's mean prediction,
beside the teacher's cross-entropy (which stays, as in the trainer). At each SCAN_STEPS: Q's
argmax (own, and over the 8 nearest cells) scored against the labels. Labels only score.
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

torch.set_num_threads(1)
WARMUP, MINED, ENTROPY = 2000, 20, 5.0
checkpoints = [int(s) for s in sys.argv[1:]] or [0, 500, 1000, 2000]
p, table, labels, teacher = default_store()
x = patches_to_tensor(p)
y = torch.from_numpy(teacher)
torch.manual_seed(0)
trunk, head = CriticTrunk(32), torch.nn.Linear(32, 4)
adam = torch.optim.Adam([*trunk.parameters(), *head.parameters()], lr=2e-4, betas=(0.5, 0.9))
rng = torch.Generator().manual_seed(0)


def batch_of(rows):
    return dihedral(x[rows], torch.randint(8, (len(rows),), generator=rng))


def forward_all():
    with torch.no_grad():
        feats = torch.cat([trunk(x[i : i + 2048]) for i in range(0, len(x), 2048)])
        return feats, head(feats).softmax(1).numpy()


def report(tag, seconds):
    _, probs = forward_all()
    s_own, s_read = scored(probs, table, labels)
    sizes = np.bincount(neighbourhood_probabilities(table, probs, 8).argmax(1), minlength=4).tolist()
    print(f"{tag} ({seconds:.0f} s): own {s_own}; over 8 {s_read}; sizes {sizes}", flush=True)


start = time.perf_counter()
for _ in range(WARMUP):
    rows = torch.randint(len(x), (64,), generator=rng)
    loss = F.cross_entropy(head(trunk(batch_of(rows))), y[rows])
    adam.zero_grad()
    loss.backward()
    adam.step()
feats, _ = forward_all()
unit = F.normalize(feats, dim=1)
neighbours = torch.cat([(unit[i : i + 2048] @ unit.T).topk(MINED + 1, dim=1).indices[:, 1:] for i in range(0, len(x), 2048)])
print(f"mined neighbours share the label: {(labels[neighbours.numpy()] == labels[:, None]).mean():.3f}", flush=True)
step = 0
for stop in checkpoints:
    while step < stop:
        rows = torch.randint(len(x), (64,), generator=rng)
        pair = neighbours[rows, torch.randint(MINED, (64,), generator=rng)]
        logits = head(trunk(batch_of(torch.cat([rows, pair]))))
        probs = logits.softmax(1)
        anchor, other = probs[:64], probs[64:]
        consistency = -torch.log((anchor * other).sum(1).clamp_min(1e-8)).mean()
        mean = anchor.mean(0)
        entropy = -(mean * torch.log(mean.clamp_min(1e-8))).sum()
        loss = consistency - ENTROPY * entropy + F.cross_entropy(logits[:64], y[rows])
        adam.zero_grad()
        loss.backward()
        adam.step()
        step += 1
    report(f"scan step {step}", time.perf_counter() - start)
