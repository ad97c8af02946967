"""Strong views, NT-Xent and nucleus moments in training (issue 11)."""

import numpy as np
import pandas as pd
import pytest
import torch

from cellgan.model import ConfigError, TrainConfig, load_trained, train
from cellgan.model.data import PatchSampler
from cellgan.model.self_labels import neighbourhood_clusters
from cellgan.model.trainer import _train_step, build_models, build_optimizers
from cellgan.neighbourhood import nucleus_moments


def _patches(n=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _config(**overrides):
    options = dict(categories=3, width=8, batch_size=8, critic_steps=2, iterations=4, minutes=None,
                   sample_every=2, checkpoint_every=2, checkpoint_seconds=None, separate_q=True,
                   strong_views=True, lambda_contrastive=0.5)
    options.update(overrides)
    return TrainConfig(**options)


def test_config_checks_what_strong_views_and_contrastive_need():
    with pytest.raises(ConfigError, match="separate_q"):
        TrainConfig(strong_views=True)
    with pytest.raises(ConfigError, match="strong_views"):
        TrainConfig(separate_q=True, lambda_contrastive=1.0)
    with pytest.raises(ConfigError, match="self_label_moments"):
        TrainConfig(self_label_moments=-1.0)
    from cellgan.config import resolve_config

    paper = resolve_config(recipe="paper").train
    assert not paper.strong_views and paper.lambda_contrastive == 0 and paper.self_label_moments == 0


def test_one_strong_step_moves_q_and_its_projection_and_logs_the_contrastive_loss():
    config = _config()
    generator, critic = build_models(config)
    assert critic.q_projection is not None
    optimizers = build_optimizers(generator, critic, config)
    before = {k: v.clone() for k, v in critic.named_parameters()}
    sampler = PatchSampler(_patches(), batch_size=8, seed=0, pairs=False)
    row = _train_step(generator, critic, optimizers, sampler, 0, config)
    after = dict(critic.named_parameters())
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert unchanged == ["score_head.bias"]
    assert row["contrastive_loss"] > 0 and row["pair_loss"] != 0


def test_strong_training_resumes_bit_for_bit(tmp_path):
    patches = _patches()
    train(patches, tmp_path / "full", _config(iterations=4), device="cpu", progress=False)
    train(patches, tmp_path / "split", _config(iterations=2), device="cpu", progress=False)
    train(patches, tmp_path / "split", _config(iterations=4), device="cpu", resume=True, progress=False)
    full, split = (load_trained(tmp_path / d, device="cpu").critic.state_dict() for d in ("full", "split"))
    for name in full:
        assert torch.equal(full[name], split[name]), name
    log = pd.read_csv(tmp_path / "full" / "log.csv")
    assert (log["contrastive_loss"] > 0).all()


def _blob(elongation: float, size: float = 3.0) -> np.ndarray:
    yy, xx = np.mgrid[:32, :32] - 15.5
    inside = (xx / (size * elongation)) ** 2 + (yy / size) ** 2 <= 1
    patch = np.full((32, 32, 3), 240, np.uint8)
    patch[inside] = (60, 40, 120)  # haematoxylin-blue
    return patch


def test_nucleus_moments_see_elongation_whichever_way_the_nucleus_lies():
    round_, long_ = _blob(1.0), _blob(2.5)
    m = nucleus_moments(np.stack([round_, long_, np.rot90(long_).copy()]))
    assert m.shape == (3, 4)
    assert m[1, 2] > m[0, 2] + 1.0  # log elongation
    assert m[1, 2] == pytest.approx(m[2, 2], abs=1e-4)  # rotation-invariant
    assert m[1, 1] > m[0, 1]  # the longer nucleus is larger


def test_self_labels_with_moments_split_round_from_elongated_nuclei():
    patches = np.stack([_blob(1.0)] * 20 + [np.rot90(_blob(2.5), k).copy() for k in range(20)])
    labels = neighbourhood_clusters(patches, None, clusters=2, neighbours=0, seed=0, moments_weight=1.0)
    assert len(set(labels[:20])) == 1 and len(set(labels[20:])) == 1 and labels[0] != labels[-1]
