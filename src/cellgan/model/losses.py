"""The losses of the InfoGAN-style WGAN-GP (Hu et al. 2019, Eq. 1–4), as pure functions."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "critic_wasserstein_loss",
    "gradient_penalty",
    "generator_loss",
    "mutual_information_loss",
    "pair_mutual_information_loss",
]


def critic_wasserstein_loss(real_score: torch.Tensor, fake_score: torch.Tensor) -> torch.Tensor:
    """E[D(G(z, c))] − E[D(x)]: minimised by the critic (its negative estimates W₁)."""
    return fake_score.mean() - real_score.mean()


def gradient_penalty(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    alpha: torch.Tensor,
    *,
    weight: float = 10.0,
) -> torch.Tensor:
    """λ·E[(‖∇ₓ D(x̂)‖₂ − 1)²] on the interpolates x̂ = αx + (1 − α)G(z, c).

    Gulrajani et al. 2017; λ = 10 in Hu et al. 2019. The gradient is built with
    ``create_graph=True`` so that the penalty itself can be differentiated.

    Parameters
    ----------
    score_fn : callable
        Maps a batch (B, C, H, W) to the critic's scores (B,).
    real, fake : torch.Tensor
        Batches of the same shape; ``fake`` should carry no graph to the generator.
    alpha : torch.Tensor
        (B, 1, 1, 1) mixing weights in [0, 1], usually U(0, 1).
    weight : float
        λ_GP.
    """
    interpolates = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = score_fn(interpolates)
    (grad,) = torch.autograd.grad(scores.sum(), interpolates, create_graph=True)
    norms = grad.flatten(1).norm(2, dim=1)
    return weight * ((norms - 1) ** 2).mean()


def generator_loss(fake_score: torch.Tensor) -> torch.Tensor:
    """−E[D(G(z, c))]: minimised by the generator."""
    return -fake_score.mean()


def mutual_information_loss(q_logits: torch.Tensor, codes: torch.Tensor, *, weight: float = 1.0) -> torch.Tensor:
    """λ_MI · cross-entropy of Q(c | G(z, c)) against the codes c that made the samples.

    The variational lower bound of I(c; G(z, c)) of InfoGAN up to the constant H(c)
    (Chen et al. 2016); λ_MI = 1 in Hu et al. 2019. ``codes`` are integer
    categories (B,), ``q_logits`` (B, K).
    """
    return weight * F.cross_entropy(q_logits, codes)


def pair_mutual_information_loss(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Minus the mutual information between Q's categories of two views of the same cells.

    Invariant information clustering (Ji et al., ICCV 2019): row i of ``logits_a``
    and of ``logits_b`` (B, K) are the same real cell under two symmetries; the
    joint distribution P = mean_i q_a(i) q_b(i)ᵀ (symmetrised) is scored by
    −Σ P log(P / (P_row P_col)). Minimising it asks Q to give both views the same
    confident category and to use every category. Not in Hu et al. 2019; it
    counters the collapse of real cells into one category (benchmarks/README.md,
    "Cell-type clustering", "Without a real-cell term") and, unlike a term on
    single views (regularised information maximisation, Krause et al. 2010, which
    lost here), cannot be satisfied by splitting cells by orientation. Bounded in
    [−log K, 0].
    """
    joint = F.softmax(logits_a, dim=1).T @ F.softmax(logits_b, dim=1) / len(logits_a)
    joint = ((joint + joint.T) / 2).clamp_min(1e-12)
    marginal = joint.sum(dim=1)
    return -(joint * (joint.log() - marginal.log()[:, None] - marginal.log()[None, :])).sum()
