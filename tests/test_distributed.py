"""DDP training on 2 CPU processes (gloo): synced weights, the gradient penalty, torchrun's CLI path, resume."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cellgan.cli.main import main
from cellgan.model import distributed
from cellgan.model.checkpoint import load_checkpoint
from cellgan.model.data import PatchError, PatchSampler

WORLD = 2


def test_ranks_come_from_torchruns_variables():
    assert distributed.ranks_from_env({}) == distributed.Ranks(0, 1, 0, 1)
    ranks = distributed.ranks_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
    assert ranks == distributed.Ranks(3, 4, 1, 2) and not ranks.leads
    with pytest.raises(distributed.DistributedError, match="inconsistent"):
        distributed.ranks_from_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(distributed.DistributedError, match="torchrun environment"):
        distributed.ranks_from_env({"RANK": "one", "WORLD_SIZE": "2"})


def test_rank_rows_are_disjoint_and_cover_every_row():
    shares = [distributed.rank_rows(11, distributed.Ranks(r, 3, r, 3)) for r in range(3)]
    assert sorted(np.concatenate(shares).tolist()) == list(range(11))
    assert shares[1].tolist() == [1, 4, 7, 10]


def test_a_sampler_draws_only_its_rows_and_all_rows_by_default():
    patches = np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    mine = PatchSampler(patches, batch_size=4, seed=0, rows=np.arange(1, 20, 2))
    drawn = torch.cat([mine.cells(i) for i in range(mine.batches_per_epoch * 2)])
    assert set(drawn.tolist()) <= set(range(1, 20, 2)) and mine.batches_per_epoch == 2
    everyone = PatchSampler(patches, batch_size=4, seed=0)
    assert torch.equal(everyone.cells(0), torch.from_numpy(np.random.default_rng((0, 0)).permutation(20)[:4]))
    with pytest.raises(PatchError, match="distinct"):
        PatchSampler(patches, batch_size=4, seed=0, rows=np.array([1, 1, 2, 3]))


@pytest.fixture(scope="module")
def cells(data_root, tmp_path_factory):
    """A cell store of real bone-marrow cells: one 360×360 crop, segmented with the default recipe."""
    from cellgan.io.images import read_rgb

    root = tmp_path_factory.mktemp("ddp")
    crop = read_rgb(data_root / "bm_graz" / "source" / "BM_GRAZ_HE_0002_01.png")[200:560, 200:560]
    Image.fromarray(crop).save(root / "crop.png")
    assert main(["segment", str(root / "crop.png"), "--out", str(root / "run"), "--mpp", "0.3", "--quiet"]) == 0
    return root / "run"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _flat(*modules) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for m in modules for p in m.parameters()])


def _same_on_every_rank(x: torch.Tensor) -> bool:
    gathered = [torch.empty_like(x) for _ in range(WORLD)]
    torch.distributed.all_gather(gathered, x)
    return all(torch.equal(gathered[0], g) for g in gathered)


def _check_a_step(patches: np.ndarray) -> None:
    """One training step on each rank's own cells: the ranks end with the same weights, not their own."""
    from cellgan.model import TrainConfig
    from cellgan.model.losses import critic_wasserstein_loss, gradient_penalty
    from cellgan.model.trainer import _train_step, build_models, build_optimizers

    with distributed.process_group(torch.device("cpu")) as (ranks, device):
        # The paper's recipe (Q's head idle in the critic step, on the critic's trunk in the Q step);
        # the CLI runs below take the default recipe (Q's own trunk, pairs, self-labels).
        config = TrainConfig(categories=3, width=8, batch_size=8, critic_steps=2, lambda_pair=0.0, iterations=1,
                             minutes=None)
        sampler = PatchSampler(patches, batch_size=8, seed=0, rows=distributed.rank_rows(len(patches), ranks))
        weights = []
        for synced in (True, False):
            generator, critic = build_models(config)
            optimizers = build_optimizers(generator, critic, config)
            ddp = distributed.wrap_models(generator, critic, ranks, device) if synced else None
            _train_step(generator, critic, optimizers, sampler, 0, config, ddp=ddp)
            weights.append(_flat(generator, critic))
        assert _same_on_every_rank(weights[0]), "the ranks' weights differ after a DDP step"
        assert not _same_on_every_rank(weights[1])  # each rank's cells alone move it elsewhere
        assert not torch.equal(weights[0], weights[1])

        # The penalty's double backward inside a DDP backward: the gradient is the ranks' mean.
        generator, critic = build_models(config)
        ddp = distributed.wrap_models(generator, critic, ranks, device).critic
        real = sampler.batch(0)
        fake, alpha = torch.rand_like(real) * 2 - 1, torch.rand(len(real), 1, 1, 1)

        def loss(net):
            out = net(torch.cat([real, fake]))
            wasserstein = critic_wasserstein_loss(out.score[:8], out.score[8:])
            return wasserstein + gradient_penalty(critic.score, real, fake, alpha) + 0.0 * out.q_logits.sum()

        loss(ddp).backward()
        params = [p for n, p in critic.named_parameters() if not n.startswith("q_")]
        synced = [p.grad.clone() for p in params]
        mine = torch.autograd.grad(loss(critic), params)
        mean = [g.clone() for g in mine]
        for g in mean:
            torch.distributed.all_reduce(g)
        assert all(torch.allclose(s, m / WORLD, rtol=1e-4, atol=1e-6) for s, m in zip(synced, mean))
        assert not all(torch.allclose(s, g, rtol=1e-4, atol=1e-6) for s, g in zip(synced, mine))


def _worker(rank: int, cells: str, out: str, port: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from cellgan.io.cellstore import CellStore

    _check_a_step(CellStore.open(cells).read_patches())
    train = ["train", cells, "--categories", "3", "--width", "8", "--batch-size", "8", "--device", "cpu", "--quiet"]
    train += ["--config", f"{out}/short_warmup.yaml"]
    runs = (("resumed", "2", []), ("resumed", "3", ["--resume"]), ("straight", "3", []))
    for i, (name, iterations, extra) in enumerate(runs):  # the default recipe: self-labels, Q's own trunk, pairs
        os.environ["MASTER_PORT"] = str(port + 1 + i)
        assert main([*train, "--out", f"{out}/{name}", "--iterations", iterations, *extra]) == 0


@pytest.mark.slow
@pytest.mark.realdata
def test_two_ranks_train_resume_exactly_and_the_model_assigns_on_one_process(cells, tmp_path):
    ports = _free_port()
    (tmp_path / "short_warmup.yaml").write_text("self_label_warmup: 20\n")  # the default recipe's, shortened
    torch.multiprocessing.spawn(_worker, args=(str(cells), str(tmp_path), ports), nprocs=WORLD)
    resumed, straight = (load_checkpoint(tmp_path / name)[0] for name in ("resumed", "straight"))
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in resumed)  # 2 ranks: reproducible, resumed or not
    log = (tmp_path / "resumed" / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["1", "2", "3"]
    assert main(["assign", str(tmp_path / "resumed"), str(cells), "--out", str(tmp_path / "a"), "--device", "cpu"]) == 0
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["categories"] == 3


def test_python_m_cellgan_runs_the_program():
    done = subprocess.run([sys.executable, "-m", "cellgan", "train", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "torchrun" in done.stdout


@pytest.mark.slow
@pytest.mark.realdata
def test_the_throughput_benchmark_times_two_ranks_on_the_papers_recipe(cells):
    from cellgan.bench.scale_training import ddp_training_throughput

    result = ddp_training_throughput(2, 1, 8, 8, cells=cells, recipe="paper")  # Q on the critic's trunk, 5 critic steps
    assert result["ranks"] == 2 and result["iterations"] == 1 and result["cells"] > 20 and result["critic_steps"] == 5
    assert result["seconds"] > 0
    assert result["critic_images_per_second"] == pytest.approx(2 * 8 * result["critic_steps"] / result["seconds"])


RUN_YAML = """\
segment: {mpp: 0.3}
train: {categories: 3, width: 8, batch_size: 8, iterations: 2, minutes: null, critic_steps: 1, sample_every: 1}
report: {overlay_images: 2, sweep_columns: 4, gallery_cells: 6}
"""


def _run_worker(rank: int, root: str, images: str, port: int, code: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    out = f"{root}/run_{images}"
    assert main(["run", f"{root}/{images}", "--out", out, "--config", f"{root}/run.yaml", "--device", "cpu"]) == code


@pytest.mark.slow
@pytest.mark.realdata
def test_cellgan_run_on_two_ranks_writes_the_run_once(data_root, tmp_path, capfd):
    """``torchrun --nproc_per_node 2 -m cellgan run``: rank 0 runs every stage, both ranks train."""
    from cellgan.io.cellstore import CellStore
    from cellgan.io.images import read_rgb

    (tmp_path / "images").mkdir()
    for i, source in enumerate(sorted((data_root / "bm_graz" / "source").glob("*.png"))[:2]):
        Image.fromarray(read_rgb(source)[400:800, 400:800]).save(tmp_path / "images" / f"crop_{i}.png")
    (tmp_path / "run.yaml").write_text(RUN_YAML)
    torch.multiprocessing.spawn(_run_worker, args=(str(tmp_path), "images", _free_port(), 0), nprocs=WORLD)
    out = capfd.readouterr().out
    run_dir = tmp_path / "run_images"
    for stage in ("segment", "train", "assign", "compose", "export", "report"):
        assert (run_dir / f"{stage}.done").is_file() and not (run_dir / f"{stage}.started").exists()
        assert out.count(f"{stage}: running") == 1, stage  # on rank 0 alone
    assert out.count(f"report: {(run_dir / 'report.html').resolve()}\n") == 1
    store = CellStore.open(run_dir / "cells")
    assert sorted(store.image_ids()) == ["crop_0", "crop_1"]
    assert not store.read_table().duplicated(["image", "cell_id"]).any()
    log = (run_dir / "model" / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == ["1", "2"]  # one writer: each step logged once
    assert len(list((run_dir / "export" / "geojson").glob("*.geojson"))) == 2
    (tmp_path / "glass").mkdir()  # no nucleus: rank 0's segmentation fails, and the other rank stops with it
    Image.fromarray(np.full((200, 200, 3), 250, np.uint8)).save(tmp_path / "glass" / "glass.png")
    torch.multiprocessing.spawn(_run_worker, args=(str(tmp_path), "glass", _free_port(), 2), nprocs=WORLD)
    assert "rank 0 stopped before training" in capfd.readouterr().err
