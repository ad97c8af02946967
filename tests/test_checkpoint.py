"""Model directories: verified loading, refusal of tampered checkpoints, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from cellgan.model import CheckpointError, TrainConfig, load_trained, patches_to_tensor, train
from cellgan.model.checkpoint import _sha256, weights_path


def _weights(directory):
    return weights_path(directory, json.loads((directory / "checkpoint.json").read_text()))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    patches = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    config = TrainConfig(categories=3, width=8, batch_size=8, critic_steps=1, iterations=1, minutes=None)
    out = tmp_path_factory.mktemp("ckpt") / "m"
    train(patches, out, config, device="cpu", progress=False)
    return out


def _copy(model_dir, tmp_path):
    target = tmp_path / "copy"
    target.mkdir(parents=True)
    for name in ("config.json", "checkpoint.json", _weights(model_dir).name):
        (target / name).write_bytes((model_dir / name).read_bytes())
    return target


def _rewrite_tensors(directory, change):
    """Replace the tensors and record the new hash, as a careful forger would."""
    weights = _weights(directory)
    tensors = load_file(str(weights))
    with safe_open(str(weights), framework="pt") as f:
        metadata = f.metadata()
    change(tensors)
    save_file(tensors, str(weights), metadata=metadata)
    meta = json.loads((directory / "checkpoint.json").read_text())
    meta["weights_sha256"] = _sha256(weights)
    (directory / "checkpoint.json").write_text(json.dumps(meta))


def test_load_trained_gives_the_saved_weights(model_dir):
    model = load_trained(model_dir, device="cpu")
    saved = load_file(str(_weights(model_dir)))
    assert torch.equal(model.critic.q_head.weight, saved["critic.q_head.weight"])
    out = model.critic(patches_to_tensor(np.zeros((2, 32, 32, 3), np.uint8)))
    assert out.q_logits.shape == (2, 3)


def test_refuses_a_modified_weights_file(model_dir, tmp_path):
    copy = _copy(model_dir, tmp_path)
    data = bytearray(_weights(copy).read_bytes())
    data[-10] ^= 0xFF
    _weights(copy).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="differ from the SHA-256"):
        load_trained(copy, device="cpu")


def test_refuses_a_truncated_weights_file_with_matching_hash(model_dir, tmp_path):
    copy = _copy(model_dir, tmp_path)
    _weights(copy).write_bytes(_weights(copy).read_bytes()[:100])
    meta = json.loads((copy / "checkpoint.json").read_text())
    meta["weights_sha256"] = _sha256(_weights(copy))
    (copy / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="corrupt safetensors"):
        load_trained(copy, device="cpu")


def test_refuses_wrong_shapes_and_keys(model_dir, tmp_path):
    copy = _copy(model_dir, tmp_path)
    _rewrite_tensors(copy, lambda t: t.update({"critic.q_head.weight": torch.zeros(5, 8)}))
    with pytest.raises(CheckpointError, match=r"critic.q_head.weight is torch.float32 \(5, 8\)"):
        load_trained(copy, device="cpu")
    copy2 = _copy(model_dir, tmp_path / "b")
    _rewrite_tensors(copy2, lambda t: t.pop("generator.linear.bias"))
    with pytest.raises(CheckpointError, match="missing \\['linear.bias'\\]"):
        load_trained(copy2, device="cpu")


def test_refuses_a_config_that_differs_from_the_checkpoint(model_dir, tmp_path):
    copy = _copy(model_dir, tmp_path)
    config = json.loads((copy / "config.json").read_text())
    config["width"] = 16
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="config differs"):
        load_trained(copy, device="cpu")


def test_refuses_unreadable_metadata(model_dir, tmp_path):
    copy = _copy(model_dir, tmp_path)
    (copy / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="checkpoint.json: unreadable"):
        load_trained(copy, device="cpu")
    (copy / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json: missing"):
        load_trained(copy, device="cpu")


def test_refuses_non_finite_weights_with_a_valid_hash(model_dir, tmp_path):
    copy = _copy(model_dir, tmp_path)
    _rewrite_tensors(copy, lambda t: t["critic.q_head.weight"].fill_(float("nan")))
    with pytest.raises(CheckpointError, match=r"critic.q_head.weight holds NaN or infinite values"):
        load_trained(copy, device="cpu")


def test_refuses_a_step_the_weights_were_not_saved_at(model_dir, tmp_path):
    copy = _copy(model_dir, tmp_path)
    meta = json.loads((copy / "checkpoint.json").read_text())
    meta["step"] = 10**12
    (copy / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"checkpoint.json: step 1000000000000, but checkpoint-000000001-\w+.safetensors was saved at step 1"):
        load_trained(copy, device="cpu")


def test_resume_refuses_a_foreign_optimizer_state(model_dir, tmp_path):
    copy = _copy(model_dir, tmp_path)
    _rewrite_tensors(copy, lambda t: t.update({"optim.critic.999.step": torch.tensor(1.0)}))
    patches = np.zeros((40, 32, 32, 3), np.uint8)
    config = TrainConfig(categories=3, width=8, batch_size=8, critic_steps=1, iterations=2, minutes=None)
    with pytest.raises(CheckpointError, match="names parameter 999"):
        train(patches, copy, config, device="cpu", resume=True, progress=False)


def _crc_store(data_root, tmp_path, n_images=2):
    """A cell store of 32×32 crops at the labelled nucleus centres of a few CRC images."""
    from scipy.io import loadmat

    from cellgan.io.cellstore import CellStore

    store = CellStore.create(tmp_path / "run" / "cells", patch_mode="context")
    for name in ("img1", "img2", "img3")[:n_images]:
        folder = data_root / "crchistophenotypes" / "train" / name
        rgb = np.pad(np.asarray(Image.open(folder / f"{name}.png").convert("RGB")), ((16, 16), (16, 16), (0, 0)), mode="reflect")
        xy = np.concatenate([loadmat(folder / f"{name}_{kind}.mat")["detection"].reshape(-1, 2)
                             for kind in ("epithelial", "fibroblast", "inflammatory", "others")])
        cols, rows = np.clip(np.round(xy).astype(int), 1, rgb.shape[0] - 32).T - 1 + 16
        patches = np.stack([rgb[r - 16 : r + 16, c - 16 : c + 16] for r, c in zip(rows, cols)])
        n = len(patches)
        table = pd.DataFrame({"cell_id": np.arange(n), "centroid_x": xy[:, 0] - 1, "centroid_y": xy[:, 1] - 1,
                              "bbox_x0": cols - 32, "bbox_y0": rows - 32, "bbox_x1": cols, "bbox_y1": rows,
                              "area_px": np.nan, "perimeter_px": np.nan, "eccentricity": np.nan, "solidity": np.nan,
                              "mean_haematoxylin": np.nan, "mean_eosin": np.nan, "source": "points"})
        store.write_image(name, table, patches)
    return tmp_path / "run"


@pytest.fixture
def main(monkeypatch):
    """``cellgan`` with only the train command registered (the others are tested elsewhere)."""
    from cellgan.cli import main as cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ("train",))
    return cli.main


@pytest.mark.realdata
def test_cli_trains_on_real_cells_and_resumes(data_root, tmp_path, main):

    run = _crc_store(data_root, tmp_path)
    out = tmp_path / "model"
    args = ["train", str(run), "--out", str(out), "--categories", "4", "--width", "8", "--batch-size", "32",
            "--device", "cpu", "--quiet"]
    assert main([*args, "--iterations", "2"]) == 0
    assert main([*args, "--iterations", "3", "--resume"]) == 0
    log = pd.read_csv(out / "log.csv")
    assert log["step"].tolist() == [1, 2, 3]
    assert np.isfinite(log[["critic_loss", "gradient_penalty", "generator_loss", "mi_loss"]].to_numpy()).all()
    grid = np.asarray(Image.open(out / "samples" / "latest.png"))
    assert grid.shape == (4 * 66 + 2, 8 * 66 + 2, 3)
    assert load_trained(out, device="cpu").config.categories == 4
    assert main([*args, "--iterations", "2"]) == 2  # refuses to overwrite the run
    neighbours = tmp_path / "neighbours"
    assert main([*args[:3], str(neighbours), *args[4:], "--iterations", "1", "--pair-neighbours", "3"]) == 0
    assert load_trained(neighbours, device="cpu").config.pair_neighbours == 3
    recipe = tmp_path / "recipe.yaml"  # a benchmark or run config: options under train:
    recipe.write_text("train:\n  separate_q: true\n  lambda_self_label: 1.0\n")
    own_q = tmp_path / "own_q"
    assert main([*args[:3], str(own_q), *args[4:], "--iterations", "1", "--config", str(recipe)]) == 0
    assert load_trained(own_q, device="cpu").config.separate_q


def test_cli_errors_are_clear_when_run_as_a_module(tmp_path):
    import subprocess
    import sys

    command = [sys.executable, "-m", "cellgan.cli.main", "train", str(tmp_path), "--out", str(tmp_path / "m"),
               "--categories", "4"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "no cell store here" in done.stderr and "Traceback" not in done.stderr


def test_cli_errors_are_clear(tmp_path, capsys, main):

    assert main(["train", str(tmp_path), "--out", str(tmp_path / "m"), "--categories", "4", "--device", "cpu"]) == 2
    assert "no cell store here" in capsys.readouterr().err
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "m"), "--device", "cpu"]) == 2  # K: the recipe's
    assert "no cell store here" in capsys.readouterr().err
    bad = tmp_path / "train.yaml"
    bad.write_text("categories: 4\nlearning_rate: 0.1\n")
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "m"), "--config", str(bad), "--device", "cpu"]) == 2
    assert "train.yaml: unknown training options ['learning_rate']" in capsys.readouterr().err
    base = ["train", str(tmp_path), "--out", str(tmp_path / "m"), "--categories", "4", "--device", "cpu"]
    assert main([*base, "--threads", "0"]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err
