"""Checkpoints as one atomic unit, stop signals, divergence: training never loses its last good state."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cellgan.analysis.assign import AssignmentError, save_assignments
from cellgan.model import TrainConfig, TrainingDiverged, TrainingInterrupted, load_trained, train
from cellgan.model import trainer as trainer_module
from cellgan.model.checkpoint import load_checkpoint


def _patches(n=48):
    return np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _config(**overrides):
    options = dict(categories=3, width=8, batch_size=8, critic_steps=1, iterations=4, minutes=None,
                   sample_every=100, checkpoint_every=2, checkpoint_seconds=None)  # fmt: skip
    options.update(overrides)
    return TrainConfig(**options)


def _same_weights(a: Path, b: Path) -> None:
    one, other = load_trained(a, device="cpu"), load_trained(b, device="cpu")
    for x, y in ((one.generator, other.generator), (one.critic, other.critic)):
        for (name, p), q in zip(x.state_dict().items(), y.state_dict().values()):
            assert torch.equal(p, q), name


def _same_log(a: Path, b: Path) -> None:
    logs = [pd.read_csv(d / "log.csv").drop(columns="seconds") for d in (a, b)]
    pd.testing.assert_frame_equal(*logs)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The uninterrupted 4-step run every interrupted one must repeat."""
    out = tmp_path_factory.mktemp("full") / "m"
    train(_patches(), out, _config(), device="cpu", progress=False)
    return out


def test_a_kill_at_any_point_of_a_save_leaves_a_checkpoint_to_resume(tmp_path, monkeypatch, full_run):
    """Snapshot the model folder before each rename and deletion of a save, and mid-write: a kill there.

    Every snapshot loads (the old checkpoint or the new one, never a hash mismatch) and resumes to
    the same weights and log as the uninterrupted run.
    """
    model = tmp_path / "m"
    train(_patches(), model, _config(iterations=2), device="cpu", progress=False)
    snapshots: list[Path] = []

    def snapshot():
        snapshots.append(shutil.copytree(model, tmp_path / f"kill{len(snapshots)}"))

    real_replace, real_unlink, real_write = os.replace, os.unlink, Path.write_bytes

    def replace(src, dst, **kwargs):
        snapshot()
        real_replace(src, dst, **kwargs)

    def unlink(path, **kwargs):
        if Path(path).parent == model:
            snapshot()
        real_unlink(path, **kwargs)

    def write_bytes(self, data):
        real_write(self, data[: len(data) // 2])  # killed half-way through writing the weights
        snapshot()
        return real_write(self, data)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    train(_patches(), model, _config(iterations=3), device="cpu", resume=True, progress=False)
    monkeypatch.undo()
    assert len(snapshots) >= 4  # the weights' write and rename, the manifest's rename, the old weights' deletion
    steps = set()
    for folder in snapshots:
        _, meta = load_checkpoint(folder)
        steps.add(meta["step"])
        load_trained(folder, device="cpu")  # what assign and run load
        train(_patches(), folder, _config(), device="cpu", resume=True, progress=False)
        _same_weights(folder, full_run)
        _same_log(folder, full_run)
        assert len(list(folder.glob("checkpoint-*.safetensors"))) == 1 and not list(folder.glob(".*tmp*"))
    assert steps == {2, 3}


def _signal_at(monkeypatch, at_step: int, signum: int):
    """Send ``signum`` to this process during step ``at_step`` (counted from 0)."""
    real = trainer_module._train_step

    def step(*args, **kwargs):
        if args[4] == at_step:
            os.kill(os.getpid(), signum)
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "_train_step", step)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_a_checkpoint_then_stops_saying_where(tmp_path, monkeypatch, full_run, signum):
    model = tmp_path / "m"
    _signal_at(monkeypatch, 2, signum)
    with pytest.raises(TrainingInterrupted, match=rf"checkpoint.json: stopped by {signal.Signals(signum).name} at step 3") as err:
        train(_patches(), model, _config(checkpoint_every=None), device="cpu", progress=False)
    assert err.value.exit_status == 128 + signum
    assert json.loads((model / "checkpoint.json").read_text())["step"] == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are put back
    monkeypatch.undo()
    train(_patches(), model, _config(), device="cpu", resume=True, progress=False)
    _same_weights(model, full_run)
    _same_log(model, full_run)


def test_sigterm_exits_with_its_status_and_one_line(tmp_path, monkeypatch, capsys):
    from test_hostile_inputs import _store

    from cellgan.cli.main import main

    store = _store(tmp_path)
    _signal_at(monkeypatch, 0, signal.SIGTERM)
    args = ["train", str(store.root), "--out", str(tmp_path / "m"), "--device", "cpu", "--quiet", "--width", "8",
            "--batch-size", "8", "--categories", "2", "--iterations", "5"]  # fmt: skip
    assert main(args) == 143
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"cellgan train: error: {tmp_path / 'm' / 'checkpoint.json'}: stopped by SIGTERM at step 1, "
                   "checkpoint saved; resume with --resume"]  # fmt: skip


def test_a_fresh_run_checkpoints_before_training_and_after_the_first_steps(tmp_path, monkeypatch):
    saved = []
    real = trainer_module.save_training_state
    monkeypatch.setattr(trainer_module, "save_training_state", lambda *a, **k: saved.append(k["step"]) or real(*a, **k))
    train(_patches(), tmp_path / "m", _config(iterations=12, checkpoint_every=11), device="cpu", progress=False)
    assert saved == [0, trainer_module.FIRST_CHECKPOINT_STEP, 11, 12]


def _nan_at(monkeypatch, steps: set[int]):
    """Make the losses of the given steps NaN, once each."""
    real = trainer_module._train_step

    def step(*args, **kwargs):
        row = real(*args, **kwargs)
        if args[4] in steps:
            steps.discard(args[4])
            row["wasserstein"] = float("nan")
        return row

    monkeypatch.setattr(trainer_module, "_train_step", step)


def test_one_divergence_rolls_back_and_lowers_the_learning_rates_once(tmp_path, monkeypatch, capsys):
    model = tmp_path / "m"
    _nan_at(monkeypatch, {2})
    result = train(_patches(), model, _config(), device="cpu", progress=False)
    assert result.step == 4
    message = capsys.readouterr().err
    assert "training diverged at step 3 (wasserstein = nan); rolled back to step 2, learning rates lowered to 0.1×" in message
    meta = json.loads((model / "checkpoint.json").read_text())
    assert meta["lr_scale"] == pytest.approx(0.1)
    log = pd.read_csv(model / "log.csv")
    assert log["step"].tolist() == [1, 2, 3, 4] and np.isfinite(log["wasserstein"]).all()
    monkeypatch.undo()  # a resumed run keeps the lowered rates: a second divergence stops it
    _nan_at(monkeypatch, {5})
    with pytest.raises(TrainingDiverged, match=r"diverged again at step 6 \(wasserstein = nan\).*last good checkpoint is step 4"):
        train(_patches(), model, _config(iterations=8), device="cpu", resume=True, progress=False)
    assert load_checkpoint(model)[1]["step"] == 4


def test_a_huge_learning_rate_stops_with_a_clear_error_and_status(tmp_path, capsys):
    from test_hostile_inputs import _store

    from cellgan.cli.main import main

    store = _store(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text("train: {lr: 1.0e+6, lr_critic: 1.0e+6}\n")
    args = ["train", str(store.root), "--out", str(tmp_path / "w"), "--device", "cpu", "--quiet", "--width", "8",
            "--batch-size", "8", "--categories", "2", "--iterations", "5", "--config", str(config)]  # fmt: skip
    assert main(args) == 2  # the default recipe's warm-up of Q diverges first, before any checkpoint
    assert "diverged in the self-label warm-up of Q" in capsys.readouterr().err
    config.write_text("train: {lr: 1.0e+6, lr_critic: 1.0e+6, self_label_warmup: 0}\n")
    args[args.index(str(tmp_path / "w"))] = str(tmp_path / "m")
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "rolled back to step 0, learning rates lowered to 0.1×" in err[0]
    assert err[-1].startswith("cellgan train: error: ") and "training diverged again at step" in err[-1]
    assert load_checkpoint(tmp_path / "m")[1]["step"] == 0  # the last good state is kept


def test_assignments_refuse_non_finite_probabilities(tmp_path):
    table = pd.DataFrame({"image": ["a", "a"], "cell_id": [0, 1], "area_px": [1.0, 2.0], "label": [None, None]})
    probs = np.array([[0.5, 0.5], [np.nan, np.nan]], np.float32)
    with pytest.raises(AssignmentError, match=r"model: Q gives NaN or infinite probabilities for 1 of 2 cells \(first: row 1\)"):
        save_assignments(tmp_path / "out", table, probs, np.zeros((2, 4)), extra_meta={"model_dir": "model"})
    assert not (tmp_path / "out").exists()
