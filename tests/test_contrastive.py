"""NT-Xent, SCAN and feature neighbours (cellgan.model.contrastive): known cases."""

import math

import pytest
import torch

from cellgan.model.contrastive import feature_neighbours, nt_xent_loss, scan_loss


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


def test_scan_loss_rewards_agreeing_confident_balanced_predictions():
    k = 4
    labels = torch.arange(8) % k
    confident = torch.nn.functional.one_hot(labels, k).float() * 20
    total, consistency = scan_loss(confident, confident)
    assert consistency.item() == pytest.approx(0.0, abs=1e-6)
    assert total.item() == pytest.approx(-2.0 * math.log(k), abs=1e-4)
    disagree = scan_loss(confident, confident.roll(1, dims=1))[1]
    assert disagree > 5
    collapsed = torch.zeros(8, k)
    collapsed[:, 0] = 20
    assert scan_loss(collapsed, collapsed)[0] > total


def test_feature_neighbours_finds_cosine_nearest_and_excludes_self():
    f = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [-1.0, 0.0]])
    nb = feature_neighbours(f, 1, chunk=2)
    assert nb.squeeze(1).tolist() == [1, 0, 3, 2, 2]
    assert feature_neighbours(f, 2).shape == (5, 2)
