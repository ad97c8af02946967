"""A label-free loss on real cells for Q's trunk: NT-Xent (SimCLR).

Not in Hu et al. 2019. Their Q learns categories only from generated cells; here
Q's trunk can also learn, on real cells, what two strong views of one cell share
(:func:`nt_xent_loss`, Chen et al. 2020, with the views of
:mod:`cellgan.model.augment`; ``TrainConfig.lambda_contrastive``, off by default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["nt_xent_loss"]


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
