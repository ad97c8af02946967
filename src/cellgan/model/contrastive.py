"""Label-free losses on real cells for Q's trunk: NT-Xent (SimCLR) and SCAN.

Not in Hu et al. 2019. Their Q learns categories only from generated cells; here
Q's trunk also learns, on real cells, what two strong views of one cell share
(:func:`nt_xent_loss`, Chen et al. 2020, with the views of
:mod:`cellgan.model.augment`), and Q's head learns to give a cell the category of
its nearest cells in the learned feature space (:func:`scan_loss`, Van Gansbeke
et al. 2020), while using every category.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["nt_xent_loss", "scan_loss", "feature_neighbours"]


def nt_xent_loss(za: torch.Tensor, zb: torch.Tensor, *, temperature: float = 0.2) -> torch.Tensor:
    """SimCLR's normalised-temperature cross-entropy between two views (B, D) of the same B cells.

    Each of the 2B embeddings must pick its other view among the 2B − 1 others
    (cosine similarity / temperature). Lower bound log(2B − 1) − 1/τ·(1 − (−1))
    aside, identical views far from every other cell score near its minimum.
    """
    if za.shape != zb.shape or za.ndim != 2:
        raise ValueError(f"need two (B, D) batches of the same shape, got {tuple(za.shape)} and {tuple(zb.shape)}")
    b = za.shape[0]
    z = F.normalize(torch.cat([za, zb]), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, target)


def scan_loss(
    anchor_logits: torch.Tensor, neighbour_logits: torch.Tensor, *, entropy_weight: float = 2.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """SCAN: −mean log ⟨p(anchor), p(neighbour)⟩ − w · H(mean p(anchor)).

    Returns (total, consistency). The entropy of the batch's mean prediction keeps
    every category in use (SCAN's default weight is 5 for its many classes; 2 here).
    """
    pa = F.softmax(anchor_logits, dim=1)
    pn = F.softmax(neighbour_logits, dim=1)
    consistency = -torch.log((pa * pn).sum(1).clamp_min(1e-8)).mean()
    mean = pa.mean(0)
    entropy = -(mean * mean.clamp_min(1e-8).log()).sum()
    return consistency - entropy_weight * entropy, consistency


def feature_neighbours(features: torch.Tensor, k: int, *, chunk: int = 4096) -> torch.Tensor:
    """Each row's ``k`` nearest other rows by cosine similarity: int64 (n, k), nearest first."""
    z = F.normalize(features.float(), dim=1)
    out = []
    for start in range(0, len(z), chunk):
        sim = z[start : start + chunk] @ z.T
        rows = torch.arange(start, min(start + chunk, len(z)), device=z.device)
        sim[torch.arange(len(rows)), rows] = float("-inf")
        out.append(sim.topk(k, dim=1).indices)
    return torch.cat(out)
