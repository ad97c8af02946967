"""Issue 11, step 1b: what a contrastive (SimCLR) trunk learns on the cells, without the GAN.

Trains cellgan's CriticTrunk (the critic's / own-Q's architecture) with NT-Xent on two
strong views (cellgan.model.augment) of the faded patches, optionally with an
environment encoder on the wider window (centre masked) whose features join, and
scores k-means (k=4) of the features, alone and averaged over spatial neighbours.
  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes/issue11_simclr.py --steps 2000 [--env 64] [--width 32]
Labels only score.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans

from cellgan.metrics.clustering import clustering_scores
from cellgan.model.augment import AugmentConfig, strong_view
from cellgan.model.contrastive import nt_xent_loss
from cellgan.model.critic import CriticTrunk
from cellgan.neighbourhood import nearest_cells

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=2000)
p.add_argument("--batch", type=int, default=128)
p.add_argument("--width", type=int, default=32)
p.add_argument("--env", type=int, default=0, help="window side for the environment view (0: none)")
p.add_argument("--env-only", action="store_true")
p.add_argument("--patches", default="faded")
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--tau", type=float, default=0.2)
p.add_argument("--min-scale", type=float, default=0.6)
p.add_argument("--hed", type=float, default=0.05)
p.add_argument("--eval-every", type=int, default=500)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--save", default=None)
a = p.parse_args()
torch.set_num_threads(1)
torch.manual_seed(a.seed)
C = Path(".cache/issue11")
table = pd.read_parquet(C / "table.parquet")
labels = table["label"].astype(str).to_numpy()
partners = nearest_cells(table, 8)


def load(name):
    x = np.load(C / ("patches_faded.npy" if name == "faded" else f"windows_{name}.npy"))
    return torch.from_numpy(x).permute(0, 3, 1, 2).float().div(127.5).sub(1)


X = load(a.patches)
E = None
if a.env:
    E = load(str(a.env)).clone()
    yy, xx = torch.meshgrid(torch.arange(32) - 15.5, torch.arange(32) - 15.5, indexing="ij")
    # mask the centre: the part of the window that the cell's own patch shows (32 px of a side-px window)
    E[:, :, (yy.abs() < 16 * 32 / a.env) & (xx.abs() < 16 * 32 / a.env)] = 1.0


class Net(torch.nn.Module):
    def __init__(self, w, env):
        super().__init__()
        self.cell = None if a.env_only else CriticTrunk(w)
        self.env = CriticTrunk(w) if env else None
        d = (0 if a.env_only else w) + (w if env else 0)
        self.proj = torch.nn.Sequential(torch.nn.Linear(d, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64))

    def features(self, x, e):
        f = []
        if self.cell is not None:
            f.append(self.cell(x))
        if self.env is not None:
            f.append(self.env(e))
        return torch.cat(f, 1)


net = Net(a.width, E is not None)
opt = torch.optim.Adam(net.parameters(), lr=a.lr)
aug = AugmentConfig(min_scale=a.min_scale, hed_sigma=a.hed)
g = torch.Generator().manual_seed(a.seed)


def evaluate(step):
    net.eval()
    with torch.no_grad():
        f = torch.cat([net.features(X[i:i + 1024], None if E is None else E[i:i + 1024]) for i in range(0, len(X), 1024)])
    net.train()
    f = F.normalize(f, dim=1).numpy()
    out = []
    for k in (0, 8):
        v = f if k == 0 else (f + f[partners].sum(1)) / 9
        v = (v - v.mean(0)) / (v.std(0) + 1e-6)
        cl = KMeans(4, n_init=10, random_state=0).fit_predict(v)
        s = clustering_scores(cl, labels)
        out.append(f"nb{k} {s['acc']:.3f}/{s['ari']:.3f}/{s['nmi']:.3f} [{'/'.join(map(str, sorted(np.bincount(cl, minlength=4), reverse=True)))}]")
    print(f"step {step} t {time.time() - t0:.0f}s loss {np.mean(losses[-100:]):.3f} " + "  ".join(out), flush=True)
    return f


t0 = time.time()
losses = []
n = len(X)
for step in range(1, a.steps + 1):
    idx = torch.randint(0, n, (a.batch,), generator=g)
    x = X[idx]
    e = None if E is None else E[idx]
    views = []
    for _ in range(2):
        xv = strong_view(x, g, aug)
        ev = None if e is None else strong_view(e, g, aug)
        views.append(net.proj(net.features(xv, ev)))
    loss = nt_xent_loss(*views, temperature=a.tau)
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
    if step % a.eval_every == 0 or step == a.steps:
        f = evaluate(step)
if a.save:
    np.save(a.save, f)
