"""NT-Xent (cellgan.model.contrastive): known cases."""

import math

import pytest
import torch

from cellgan.model.contrastive import nt_xent_loss


def test_nt_xent_prefers_matching_views():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(16, 8, generator=g)
    same = nt_xent_loss(z, z + 0.01 * torch.randn(16, 8, generator=g))
    other = nt_xent_loss(z, torch.randn(16, 8, generator=g))
    assert same < other


def test_nt_xent_known_value_for_orthogonal_cells():
    # B orthogonal cells, both views identical: the positive has similarity 1, the 2B − 2 others 0
    b, tau = 4, 0.5
    z = torch.eye(b)
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2 * b - 2))
    assert nt_xent_loss(z, z, temperature=tau).item() == pytest.approx(expected, rel=1e-5)


def test_nt_xent_shape_check():
    with pytest.raises(ValueError):
        nt_xent_loss(torch.zeros(4, 3), torch.zeros(5, 3))

