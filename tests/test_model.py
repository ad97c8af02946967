"""Networks, losses, data handling and config of cellgan.model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cellgan.model import (
    ConfigError,
    Critic,
    CriticOutput,
    Generator,
    PatchError,
    PatchSampler,
    TrainConfig,
    critic_wasserstein_loss,
    dihedral,
    generator_loss,
    gradient_penalty,
    mutual_information_loss,
    pair_mutual_information_loss,
    patches_to_tensor,
)


def test_generator_shapes_and_range():
    g = Generator(categories=5, noise_dim=32, width=16)
    z, c = torch.randn(6, 32), F.one_hot(torch.arange(6) % 5, 5).float()
    x = g(z, c)
    assert x.shape == (6, 3, 32, 32)
    assert x.abs().max() <= 1.0


def test_critic_shapes():
    d = Critic(categories=4, width=16)
    out = d(torch.randn(3, 3, 32, 32))
    assert isinstance(out, CriticOutput)
    assert out.score.shape == (3,)
    assert out.q_logits.shape == (3, 4)
    assert out.features.shape == (3, 16)
    assert (out.features >= 0).all()  # ReLU before the global mean pool


def test_critic_with_its_own_q_trunk():
    torch.manual_seed(0)
    d = Critic(categories=4, width=16, separate_q=True)
    x = torch.randn(5, 3, 32, 32)
    out = d(x)
    assert out.score.shape == (5,) and out.q_logits.shape == (5, 4)
    assert torch.allclose(out.score, d.score(x))
    assert torch.allclose(out.features, d.q_trunk(x))  # the features are those Q reads
    assert Critic(categories=4, width=16).q_trunk is None


def test_q_reads_the_standardised_place_and_a_cell_without_one_reads_the_average():
    torch.manual_seed(0)
    d = Critic(categories=4, width=16, separate_q=True, place_features=3)
    assert d.q_head.in_features == 16 + 3
    places = torch.tensor([[1.0, 10.0, 0.0], [3.0, 30.0, 0.0]])
    d.set_place_scale(places)
    assert torch.allclose(d.place_mean, torch.tensor([2.0, 20.0, 0.0]))
    assert torch.allclose(d.place_std[:2], torch.tensor([1.0, 10.0]))
    x = torch.randn(2, 3, 32, 32)
    no_place = d(x).q_logits
    assert torch.allclose(no_place, d(x, place=torch.full((2, 3), float("nan"))).q_logits)
    assert torch.allclose(no_place, d(x, place=d.place_mean.expand(2, 3)).q_logits)  # the average place reads 0
    moved = d(x, place=places).q_logits
    assert not torch.allclose(moved, no_place)
    # standardised then clipped at ±3: a place 100 spreads away reads as 3 spreads away
    far, clipped = torch.tensor([[102.0, 20.0, 0.0]]), torch.tensor([[5.0, 20.0, 0.0]])
    assert torch.allclose(d.q(x[:1], place=far)[0], d.q(x[:1], place=clipped)[0])
    assert "place_mean" in d.state_dict()  # the scale travels with the weights
    with pytest.raises(ValueError, match="place must be"):
        d.set_place_scale(torch.zeros(2, 4))


def test_critic_has_no_normalisation_layers():
    d = Critic(categories=4, width=8)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)) for m in d.modules())


def test_conv_mean_pool_equals_convolution_then_pooling():
    from cellgan.model.layers import conv3x3, conv_mean_pool, mean_pool

    torch.manual_seed(0)
    conv = conv3x3(5, 7)
    x = torch.randn(2, 5, 16, 16)
    assert torch.allclose(conv_mean_pool(x, conv), mean_pool(conv(x)), atol=1e-5)


def test_init_follows_the_authors_code():
    g = Generator(categories=4, width=64, seed=3)
    conv = g.blocks[0].conv1  # 3×3, 64 → 64: std √(4 / (2 · 64 · 9))
    std = np.sqrt(4 / (2 * 64 * 9))
    assert conv.weight.std().item() == pytest.approx(std, rel=0.05)
    assert conv.weight.abs().max().item() <= np.sqrt(3) * std + 1e-6
    assert torch.count_nonzero(conv.bias) == 0
    shortcut = g.blocks[0].shortcut  # 1×1: std √(2 / (64 + 64))
    assert shortcut.weight.std().item() == pytest.approx(np.sqrt(2 / 128), rel=0.1)
    assert g.bn.weight.mean().item() == pytest.approx(1.0, abs=0.01)
    assert 0.005 < g.bn.weight.std().item() < 0.04
    same = Generator(categories=4, width=64, seed=3)
    assert torch.equal(same.linear.weight, g.linear.weight)
    assert not torch.equal(Generator(categories=4, width=64, seed=4).linear.weight, g.linear.weight)


def test_gradient_penalty_of_a_linear_critic_is_exact():
    torch.manual_seed(0)
    w = torch.randn(3 * 8 * 8) * 0.05
    real, fake = torch.randn(5, 3, 8, 8), torch.randn(5, 3, 8, 8)
    alpha = torch.rand(5, 1, 1, 1)
    gp = gradient_penalty(lambda x: x.flatten(1) @ w, real, fake, alpha, weight=10.0)
    expected = 10.0 * (w.norm() - 1) ** 2
    assert gp.item() == pytest.approx(expected.item(), rel=1e-5)


def test_gradient_penalty_is_differentiable_in_the_critic_weights():
    w = torch.full((12,), 0.5, requires_grad=True)
    gp = gradient_penalty(lambda x: x.flatten(1) @ w, torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2), torch.rand(4, 1, 1, 1))
    gp.backward()
    # d/dw 10 (‖w‖ − 1)² = 20 (‖w‖ − 1) w / ‖w‖
    norm = w.detach().norm()
    assert torch.allclose(w.grad, 20 * (norm - 1) * w.detach() / norm, rtol=1e-5)


def test_wasserstein_and_generator_losses():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, -2.0])
    assert critic_wasserstein_loss(real, fake).item() == pytest.approx(-1.0 - 2.0)
    assert generator_loss(fake).item() == pytest.approx(1.0)


def test_mutual_information_loss_is_weighted_cross_entropy():
    logits, codes = torch.randn(7, 4), torch.randint(0, 4, (7,))
    nll = -F.log_softmax(logits, 1)[torch.arange(7), codes].mean()
    assert mutual_information_loss(logits, codes).item() == pytest.approx(nll.item(), rel=1e-6)
    assert mutual_information_loss(logits, codes, weight=2.5).item() == pytest.approx(2.5 * nll.item(), rel=1e-6)


def test_pair_mutual_information_loss_extremes():
    k = 4
    views = torch.eye(k).repeat(3, 1) * 50  # both views agree, confidently, all categories used
    assert pair_mutual_information_loss(views, views).item() == pytest.approx(-np.log(k), abs=1e-4)
    shuffled = views[torch.tensor([1, 0, 3, 2] * 3)]  # the views never agree, but one predicts the other
    assert pair_mutual_information_loss(views, shuffled).item() == pytest.approx(-np.log(k), abs=1e-4)
    independent = views.repeat(4, 1), views.repeat_interleave(4, 0)  # every pair of categories equally often
    assert pair_mutual_information_loss(*independent).item() == pytest.approx(0.0, abs=1e-4)
    collapsed = torch.zeros(12, k)
    collapsed[:, 0] = 50
    assert pair_mutual_information_loss(collapsed, collapsed).item() == pytest.approx(0.0, abs=1e-4)


def test_patches_to_tensor_scaling_and_layout():
    patches = np.zeros((2, 32, 32, 3), np.uint8)
    patches[0, 1, 2] = (0, 255, 128)
    x = patches_to_tensor(patches)
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    assert x[0, :, 1, 2].tolist() == pytest.approx([-1.0, 1.0, 128 / 127.5 - 1], abs=1e-6)
    assert x[1].eq(-1).all()


def test_dihedral_gives_the_eight_symmetries():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(8, 1, 1, 1)
    out = dihedral(x, torch.arange(8))
    assert torch.equal(out[0], x[0])
    assert torch.equal(out[1], torch.rot90(x[0], 1, (1, 2)))
    assert torch.equal(out[4], x[0].flip(2))
    assert len({tuple(o.flatten().tolist()) for o in out}) == 8


def test_sampler_is_a_function_of_seed_and_index():
    patches = np.random.default_rng(0).integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    a = PatchSampler(patches, batch_size=16, seed=1)
    b = PatchSampler(patches, batch_size=16, seed=1)
    assert a.batches_per_epoch == 3
    assert torch.equal(a.batch(4), b.batch(4))  # b never saw batches 0–3
    assert not torch.equal(a.batch(4), a.batch(5))
    assert not torch.equal(a.batch(0), PatchSampler(patches, batch_size=16, seed=2).batch(0))
    plain = PatchSampler(patches, batch_size=16, seed=1, augment=False)
    epoch = torch.cat([plain.batch(i) for i in range(3)])  # one epoch: 48 distinct patches
    assert len({tuple(e.flatten()[:64].tolist()) for e in epoch}) == 48


def test_jitter_shifts_and_scales_darkness_keeping_white():
    from cellgan.model.data import jitter

    x = torch.rand(2, 3, 32, 32) * 2 - 1
    same = jitter(x, torch.zeros(2, 2, dtype=torch.long), torch.ones(2, 3))
    assert torch.equal(same, x)
    moved = jitter(x, torch.tensor([[1, 0], [0, -2]]), torch.ones(2, 3))
    assert torch.equal(moved[0, :, :, 1:], x[0, :, :, :-1])  # one pixel to the right
    assert torch.equal(moved[0, :, :, 0], x[0, :, :, 0])  # the border is copied in
    assert torch.equal(moved[1, :, :-2], x[1, :, 2:])  # two pixels up
    white = jitter(torch.ones(1, 3, 4, 4), torch.zeros(1, 2, dtype=torch.long), torch.full((1, 3), 1.15))
    assert white.eq(1).all()
    darker = jitter(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, dtype=torch.long), torch.full((1, 3), 1.1))
    assert torch.allclose(darker, torch.full_like(darker, -0.1))


def test_sampler_pairs_are_two_views_of_the_same_cells():
    patches = np.full((50, 32, 32, 3), 255, np.uint8)
    rng = np.random.default_rng(0)
    for i in range(50):  # a dark asymmetric blob away from the border on white
        patches[i, 10:20, 12:17] = rng.integers(0, 200, 3)
        patches[i, 10:13, 17:22] = rng.integers(0, 200, 3)
    sampler = PatchSampler(patches, batch_size=16, seed=1, pairs=True)
    assert sampler.batches_per_epoch == 6
    batch = sampler.batch(2)
    assert batch.shape == (16, 3, 32, 32)
    for a, b in zip(batch[:8], batch[8:]):
        dark_a, dark_b = (a < 1).any(0), (b < 1).any(0)
        assert dark_a.sum() == dark_b.sum() == 65  # the same blob, moved and turned
        assert not torch.equal(dark_a, dark_b)
        ratio = (1 - a[:, dark_a].mean(1)) / (1 - b[:, dark_b].mean(1))  # stain gains of the two views
        assert ((ratio > 0.7) & (ratio < 1.4)).all()


def test_sampler_partners_replace_the_second_view_by_a_partner_cell():
    patches = np.full((40, 32, 32, 3), 255, np.uint8)
    side = 2 + np.arange(40) % 20  # cell i: a dark square of this side on white
    for i in range(40):
        patches[i, 4 : 4 + side[i], 4 : 4 + side[i]] = 0
    partners = ((np.arange(40) + 1) % 40)[:, None]  # each cell's partner is the next cell
    sampler = PatchSampler(patches, batch_size=16, seed=3, pairs=True, partners=partners)
    batch = sampler.batch(1)
    dark = (batch < 0).any(1).flatten(1).sum(1).numpy()  # shifts and turns keep a square's area
    first_side = np.sqrt(dark[:8]).round().astype(int)
    assert (first_side**2 == dark[:8]).all()
    partner_side = np.where(first_side == 21, 2, first_side + 1)
    assert (dark[8:] == partner_side**2).all()
    cells = sampler.cells(1).numpy()  # the patch rows behind the batch: the cells, then their partners
    assert (side[cells] ** 2 == dark).all() and (cells[8:] == (cells[:8] + 1) % 40).all()
    assert torch.equal(batch, PatchSampler(patches, batch_size=16, seed=3, pairs=True, partners=partners).batch(1))


def test_sampler_rejects_bad_partners():
    patches = np.zeros((10, 32, 32, 3), np.uint8)
    with pytest.raises(PatchError, match="only apply to pairs"):
        PatchSampler(patches, batch_size=4, seed=0, partners=np.zeros((10, 1), np.int64))
    with pytest.raises(PatchError, match=r"integer \(10, k\)"):
        PatchSampler(patches, batch_size=4, seed=0, pairs=True, partners=np.zeros((9, 1), np.int64))
    with pytest.raises(PatchError, match=r"rows in \[0, 10\)"):
        PatchSampler(patches, batch_size=4, seed=0, pairs=True, partners=np.full((10, 2), 10))


def test_sampler_rejects_bad_patches():
    with pytest.raises(PatchError, match="uint8"):
        PatchSampler(np.zeros((20, 32, 32, 3), np.float32), batch_size=4, seed=0)
    with pytest.raises(PatchError, match="fewer than the 4 cells a batch needs"):
        PatchSampler(np.zeros((3, 32, 32, 3), np.uint8), batch_size=4, seed=0)


def test_config_from_yaml_dict_round_trip():
    import yaml

    config = TrainConfig(categories=5, width=32, betas=[0.0, 0.99], iterations=10)
    assert config.betas == (0.0, 0.99)
    text = yaml.safe_dump(config.to_dict())
    assert TrainConfig(**yaml.safe_load(text)) == config
    assert TrainConfig(lr=3e-4, lr_critic=None).critic_lr == 3e-4
    assert TrainConfig(lr_critic=5e-4).critic_lr == 5e-4
    from cellgan.config import resolve_config

    paper = resolve_config(overrides={"train": {"categories": 5}}, recipe="paper").train
    assert (paper.width, paper.lr, paper.critic_lr, paper.critic_steps, paper.lambda_pair) == (128, 1e-4, 1e-4, 5, 0)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"categories": 1}, "categories"),
        ({"width": 0}, "width"),
        ({"lr": -1.0}, "lr"),
        ({"betas": [0.5]}, "betas"),
        ({"lambda_gp": -1}, "lambda_gp"),
        ({"iterations": None, "minutes": None}, "stopping rule"),
        ({"learning_rate": 1e-3}, "unknown training options"),
        ({"pair_neighbours": -1}, "pair_neighbours"),
        ({"pair_neighbours": 3, "lambda_pair": 0.0}, "needs the pair term"),
        ({"separate_q": "yes"}, "separate_q must be true or false"),
    ],
)
def test_config_rejects_bad_values(options, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(options, source="my.yaml")
