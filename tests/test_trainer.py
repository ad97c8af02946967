"""The training loop: one step learns, logs and samples are written, resume is exact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from cellgan.model import CheckpointError, TrainConfig, load_trained, train
from cellgan.model.data import PatchSampler
from cellgan.model.trainer import _train_step, build_models, build_optimizers


def _patches(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _config(**overrides):
    options = dict(categories=3, width=8, batch_size=8, critic_steps=2, iterations=4, minutes=None,
                   sample_every=2, checkpoint_every=2, checkpoint_seconds=None)
    options.update(overrides)
    return TrainConfig(**options)


@pytest.mark.parametrize(
    "lambda_pair, separate_q", [(0.0, False), (2.0, False), (2.0, True)]
)
def test_one_step_changes_every_part(lambda_pair, separate_q):
    config = _config(lambda_pair=lambda_pair, separate_q=separate_q)
    generator, critic = build_models(config)
    optimizers = build_optimizers(generator, critic, config)
    before = {f"g.{k}": v.clone() for k, v in generator.named_parameters()}
    before.update({f"d.{k}": v.clone() for k, v in critic.named_parameters()})
    sampler = PatchSampler(_patches(), batch_size=8, seed=0, pairs=lambda_pair > 0)
    row = _train_step(generator, critic, optimizers, sampler, 0, config)
    after = {f"g.{k}": v for k, v in generator.named_parameters()}
    after.update({f"d.{k}": v for k, v in critic.named_parameters()})
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    # the score head's bias cancels in E[D(fake)] − E[D(real)] and in the penalty
    assert unchanged == ["d.score_head.bias"]
    assert sum(row[f"share_{j}"] for j in range(3)) == pytest.approx(1.0)
    assert row["gradient_penalty"] >= 0 and row["critic_grad_norm"] > 0
    assert (row["pair_loss"] != 0) == (lambda_pair > 0)


@pytest.mark.parametrize("separate_q", [False, True])
def test_the_q_step_moves_q_only_on_a_shared_trunk(separate_q):
    generator, critic = build_models(_config(separate_q=separate_q))
    optimizers = build_optimizers(generator, critic, _config(separate_q=separate_q))
    moved = {id(p) for group in optimizers["q"].param_groups for p in group["params"]}
    shared_q = {id(p) for p in [*critic.trunk.parameters(), *critic.q_head.parameters()]}
    assert {id(p) for p in generator.parameters()} <= moved
    assert (moved - {id(p) for p in generator.parameters()}) == (set() if separate_q else shared_q)
    critic_moves = {id(p) for group in optimizers["critic"].param_groups for p in group["params"]}
    assert critic_moves == {id(p) for p in critic.parameters()}  # Q's own trunk learns in the critic step


def test_train_writes_log_samples_and_checkpoint(tmp_path):
    result = train(_patches(), tmp_path / "m", _config(), device="cpu", progress=False)
    assert result.step == 4 and result.stopped_by == "iterations"
    log = pd.read_csv(tmp_path / "m" / "log.csv")
    assert log["step"].tolist() == [1, 2, 3, 4]
    expected = {"critic_loss", "wasserstein", "gradient_penalty", "critic_grad_norm", "generator_loss", "mi_loss",
                "seconds", "share_0", "share_1", "share_2"}
    assert expected <= set(log.columns)
    assert np.allclose(log[["share_0", "share_1", "share_2"]].sum(axis=1), 1.0)
    assert log["seconds"].is_monotonic_increasing
    for name in ("step_000002.png", "step_000004.png", "latest.png"):
        grid = np.asarray(Image.open(tmp_path / "m" / "samples" / name))
        # 3 rows (categories) × 8 columns of 64-pixel tiles with 2-pixel gaps
        assert grid.shape == (3 * 66 + 2, 8 * 66 + 2, 3)
    model = load_trained(tmp_path / "m", device="cpu")
    assert not model.generator.training and not model.critic.training
    assert model.config == _config()


@pytest.mark.parametrize("separate_q", [False, True])
def test_resume_repeats_the_uninterrupted_run(tmp_path, separate_q):
    patches = _patches()
    train(patches, tmp_path / "full", _config(iterations=4, separate_q=separate_q), device="cpu", progress=False)
    train(patches, tmp_path / "split", _config(iterations=2, separate_q=separate_q), device="cpu", progress=False)
    result = train(
        patches, tmp_path / "split", _config(iterations=4, separate_q=separate_q), device="cpu", resume=True, progress=False
    )
    assert result.step == 4
    full = load_trained(tmp_path / "full", device="cpu")
    split = load_trained(tmp_path / "split", device="cpu")
    for a, b in ((full.generator, split.generator), (full.critic, split.critic)):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), name
    logs = [pd.read_csv(tmp_path / d / "log.csv").drop(columns="seconds") for d in ("full", "split")]
    pd.testing.assert_frame_equal(*logs)


def test_resume_after_a_kill_drops_log_rows_past_the_checkpoint(tmp_path):
    patches = _patches()
    model = tmp_path / "m"
    train(patches, model, _config(iterations=2), device="cpu", progress=False)
    saved = {p.name: p.read_bytes() for p in model.glob("checkpoint*")}
    train(patches, model, _config(iterations=3), device="cpu", resume=True, progress=False)
    for name, data in saved.items():  # killed after logging step 3, before saving it
        (model / name).write_bytes(data)
    train(patches, model, _config(iterations=4), device="cpu", resume=True, progress=False)
    train(patches, tmp_path / "full", _config(iterations=4), device="cpu", progress=False)
    logs = [pd.read_csv(d / "log.csv").drop(columns="seconds") for d in (model, tmp_path / "full")]
    pd.testing.assert_frame_equal(*logs)


def test_refuses_to_overwrite_or_to_resume_another_recipe(tmp_path):
    patches = _patches()
    train(patches, tmp_path / "m", _config(iterations=1), device="cpu", progress=False)
    with pytest.raises(CheckpointError, match="already holds a training run"):
        train(patches, tmp_path / "m", _config(iterations=1), device="cpu", progress=False)
    with pytest.raises(CheckpointError, match="lr: 0.0004 saved vs 0.001 asked"):
        train(patches, tmp_path / "m", _config(iterations=2, lr=1e-3), device="cpu", resume=True, progress=False)
    result = train(patches, tmp_path / "nothing", _config(iterations=1), device="cpu", resume=True, progress=False)
    assert result.step == 1  # nothing to resume (killed before the first checkpoint): a fresh start


def test_minutes_budget_stops_the_run(tmp_path):
    result = train(_patches(), tmp_path / "m", _config(iterations=None, minutes=1e-4), device="cpu", progress=False)
    assert result.stopped_by == "minutes" and result.step >= 1


def test_neighbour_pairs_need_the_cell_table_and_train_with_it(tmp_path):
    from cellgan.model import ConfigError

    patches = _patches()
    table = pd.DataFrame({"image": np.repeat(["a", "b"], 32), "centroid_x": np.arange(64.0), "centroid_y": 0.0})
    config = _config(lambda_pair=2.0, pair_neighbours=2, iterations=2)
    with pytest.raises(ConfigError, match="needs the cell table"):
        train(patches, tmp_path / "none", config, device="cpu", progress=False)
    with pytest.raises(ConfigError, match="63 rows but there are 64 patches"):
        train(patches, tmp_path / "short", config, device="cpu", progress=False, table=table.iloc[1:])
    result = train(patches, tmp_path / "m", config, device="cpu", progress=False, table=table)
    assert result.step == 2
    assert load_trained(tmp_path / "m", device="cpu").config.pair_neighbours == 2
    assert pd.read_csv(tmp_path / "m" / "log.csv")["pair_loss"].ne(0).all()


def test_self_labels_teach_q_on_real_cells(tmp_path):
    from cellgan.model import ConfigError

    patches = _patches()
    table = pd.DataFrame({"image": np.repeat(["a", "b"], 32), "centroid_x": np.arange(64.0), "centroid_y": 0.0})
    config = _config(lambda_self_label=1.0, self_label_neighbours=3, lambda_pair=0.0, iterations=2)
    with pytest.raises(ConfigError, match="self_label_neighbours needs the cell table"):
        train(patches, tmp_path / "none", config, device="cpu", progress=False)
    train(patches, tmp_path / "m", config, device="cpu", progress=False, table=table)
    log = pd.read_csv(tmp_path / "m" / "log.csv")
    assert (log["self_label_loss"] > 0).all() and (log["pair_loss"] == 0).all()
    alone = _config(lambda_self_label=1.0, self_label_neighbours=0, iterations=1)
    train(patches, tmp_path / "alone", alone, device="cpu", progress=False)  # the cell alone needs no table
    assert (pd.read_csv(tmp_path / "alone" / "log.csv")["self_label_loss"] > 0).all()


def _tinted(n_per=40, seed=0):
    """Patches of three tints (red, green, blue) with noise: a k-means of their pixels finds the tints."""
    rng = np.random.default_rng(seed)
    base = np.repeat(np.eye(3) * 150 + 60, n_per, axis=0)[:, None, None, :]
    return np.clip(base + rng.normal(0, 20, (3 * n_per, 32, 32, 3)), 0, 255).astype(np.uint8)


def test_the_self_label_warm_up_teaches_q_before_the_gan_and_resumes_exactly(tmp_path):
    from cellgan.analysis.assign import assign_cells
    from cellgan.metrics.clustering import clustering_scores
    from cellgan.model import ConfigError
    from cellgan.model.self_labels import neighbourhood_clusters

    with pytest.raises(ConfigError, match="self_label_warmup needs the self-labels"):
        _config(self_label_warmup=10)
    patches = _tinted()
    teacher = neighbourhood_clusters(patches, None, clusters=3, neighbours=0, seed=0)
    agreement = {}
    for warmup in (0, 150):
        config = _config(lambda_self_label=1.0, self_label_neighbours=0, self_label_warmup=warmup, separate_q=True,
                         lambda_pair=0.0, iterations=1, lr_critic=1e-3)
        train(patches, tmp_path / f"w{warmup}", config, device="cpu", progress=False)
        probs, _ = assign_cells(load_trained(tmp_path / f"w{warmup}", device="cpu"), patches)
        agreement[warmup] = clustering_scores(probs.argmax(1), teacher.astype(str))["ari"]
    assert agreement[150] > 0.9 > agreement[0], agreement
    from cellgan.model.trainer import warmup_updates

    assert warmup_updates(_config(lambda_self_label=1.0, self_label_warmup=150, lambda_pair=0.0), 120, 8) == 90  # 6 passes
    assert warmup_updates(_config(lambda_self_label=1.0, self_label_warmup=150), 10_000, 4) == 150
    config = _config(lambda_self_label=1.0, self_label_neighbours=0, self_label_warmup=20, separate_q=True, iterations=2)
    train(patches, tmp_path / "full", config, device="cpu", progress=False)
    train(patches, tmp_path / "split", _config(**{**config.to_dict(), "iterations": 1}), device="cpu", progress=False)
    train(patches, tmp_path / "split", config, device="cpu", progress=False, resume=True)
    full, split = (load_trained(tmp_path / d, device="cpu").critic.state_dict() for d in ("full", "split"))
    assert all(torch.equal(full[k], split[k]) for k in full)  # the warm-up is not made again on resuming


def test_q_reading_the_place_learns_a_teacher_its_patch_cannot_show(tmp_path):
    """Cells alike in their pixels, apart only in how crowded they lie: Q fits that teacher only when it reads the place."""
    from cellgan.analysis.assign import AssignmentError, assign_cells, cell_places, write_assignments
    from cellgan.io.cellstore import CellStore
    from cellgan.metrics.clustering import clustering_scores
    from cellgan.model import ConfigError
    from cellgan.model.self_labels import neighbourhood_clusters

    rng = np.random.default_rng(0)
    patches = np.clip(rng.normal(128, 30, (80, 32, 32, 3)), 0, 255).astype(np.uint8)
    rows = [("dense", 3.0 * (i % 8), 3.0 * (i // 8)) for i in range(40)]
    rows += [("sparse", 40.0 * (i % 8), 40.0 * (i // 8)) for i in range(40)]
    table = pd.DataFrame(rows, columns=["image", "centroid_x", "centroid_y"])
    table["cell_id"] = np.arange(80) % 40
    for column, value in (("bbox_x0", 0), ("bbox_y0", 0), ("bbox_x1", 8), ("bbox_y1", 8), ("area_px", 50.0),
                          ("perimeter_px", 25.0), ("eccentricity", 0.5), ("solidity", 0.9),
                          ("mean_haematoxylin", 0.5), ("mean_eosin", 0.5), ("source", "segment")):
        table[column] = value
    options = dict(categories=2, lambda_self_label=1.0, self_label_neighbours=2, self_label_crowding=5.0,
                   self_label_warmup=150, separate_q=True, lambda_pair=0.0, iterations=1, lr_critic=1e-3)
    teacher = neighbourhood_clusters(patches, table, clusters=2, neighbours=2, seed=0, crowding_weight=5.0)
    assert clustering_scores(teacher, table["image"].to_numpy())["ari"] == 1.0  # the teacher splits by crowding
    with pytest.raises(ConfigError, match="q_reads_place needs the cell table"):
        train(patches, tmp_path / "none", _config(q_reads_place=True), device="cpu", progress=False)
    agreement = {}
    for reads in (False, True):
        train(patches, tmp_path / f"p{reads}", _config(**options, q_reads_place=reads), device="cpu", progress=False,
              table=table)
        model = load_trained(tmp_path / f"p{reads}", device="cpu")
        probs, _ = assign_cells(model, patches, places=cell_places(model, patches, table))
        agreement[reads] = clustering_scores(probs.argmax(1), teacher.astype(str))["ari"]
    assert agreement[True] > 0.9 and agreement[False] < 0.5, agreement
    with pytest.raises(AssignmentError, match="reads each cell's place"):
        assign_cells(model, patches)
    store = CellStore.create(tmp_path / "cells", patch_mode="masked")
    for image in ("dense", "sparse"):
        part = table[table.image == image]
        store.write_image(image, part.drop(columns="image").reset_index(drop=True), patches[part.index.to_numpy()])
    write_assignments(tmp_path / "pTrue", store.root, tmp_path / "assigned")  # the stage reads the places itself
    assigned = pd.read_parquet(tmp_path / "assigned" / "assignments.parquet")
    assert clustering_scores(assigned["own_category"].to_numpy(), teacher.astype(str))["ari"] > 0.9
