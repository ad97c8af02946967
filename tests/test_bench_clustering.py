"""``cellgan bench clustering`` end to end on a few real images with a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cellgan.bench.clustering import METHODS, BenchmarkError, run_clustering_benchmark
from cellgan.cli.main import main
from cellgan.io.cellstore import CellStore
from cellgan.metrics.clustering import SCORE_KEYS

pytestmark = pytest.mark.realdata


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Width-8 networks are too small to gain from threads, and on a busy 2-core machine
    OpenMP's waiting threads make each step hundreds of times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_bench_on_two_crc_images(data_root, tmp_path, capsys):
    out = tmp_path / "clustering.json"
    (tmp_path / "run.yaml").write_text("train:\n  batch_size: 16\n  critic_steps: 2\n")
    argv = ["bench", "clustering", "--dataset", "crchistophenotypes", "--data-root", str(data_root)]
    argv += ["--json", str(out), "--iterations", "2", "--seeds", "2", "--width", "8", "--limit-images", "2"]
    argv += ["--work-dir", str(tmp_path / "work"), "--device", "cpu", "--config", str(tmp_path / "run.yaml")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert all(method in printed for method in METHODS)
    summary = json.loads(out.read_text())

    cells = summary["cells"]
    # Every nucleus of the detection files is a cell; only the typed ones are scored.
    from cellgan.io.datasets import load_crchistophenotypes

    records = load_crchistophenotypes(data_root / "crchistophenotypes")[:2]
    assert cells["images"] == 2 and cells["typed_cells"] == sum(cells["class_sizes"].values())
    assert cells["typed_cells"] == sum(len(r.labelled_centres) for r in records)
    assert cells["cells"] == sum(len(r.centres) for r in records) > cells["typed_cells"]
    assert cells["skipped_images"] == []
    assert set(cells["class_sizes"]) <= {"epithelial", "fibroblast", "inflammatory", "others"}
    for method in METHODS:
        result = summary[method]
        assert len(result["per_seed"]) == 2
        for key in SCORE_KEYS + ("linear_probe_acc", "largest_category_share"):
            assert key in result["mean"] and key in result["std"]
            values = [row[key] for row in result["per_seed"]]
            assert result["mean"][key] == pytest.approx(np.mean(values))
        assert 0.0 < result["mean"]["acc"] <= 1.0
        assert 0.0 <= result["mean"]["purity"] <= 1.0 and 0.0 <= result["mean"]["entropy"] <= 2.0
        assert 0.0 < result["mean"]["linear_probe_acc"] <= 1.0
        assert -1.0 <= result["seed_agreement_ari"] <= 1.0
        for row in result["per_seed"]:
            assert sum(row["cells_per_category"]) == cells["cells"]
            assert len(row["cells_per_category"]) == 4
            assert (tmp_path / "work" / "galleries" / f"{method}_seed{row['seed']}.png").is_file()
    gan = summary["gan"]
    assert gan["mean"]["generator_iterations"] == 2
    assert gan["mean"]["train_seconds"] > 0 and gan["mean"]["critic_images_per_second"] > 0
    assert summary["config"]["train"]["width"] == 8 and summary["config"]["train"]["categories"] == 4
    assert summary["config"]["train"]["batch_size"] == 16
    assert summary["config"]["segment"]["patch_mode"] == "faded"  # the default recipe's
    assert summary["machine"]["device"] == "cpu" and summary["date"]

    # A second run (the library call, with the default recipe the command used) reuses the
    # cell store and the trained models (nothing is retrained).
    from cellgan.config import recipe_sections

    recipe = recipe_sections("default")
    again = run_clustering_benchmark(
        "crchistophenotypes",
        data_root,
        work_dir=tmp_path / "work",
        iterations=2,
        seeds=1,
        width=8,
        limit_images=2,
        train_options={**recipe["train"], "batch_size": 16, "critic_steps": 2},
        segment_options=recipe["segment"],
        device="cpu",
    )
    assert again["cells"]["store"] == cells["store"]
    assert again["gan"]["per_seed"][0]["train_seconds"] == gan["per_seed"][0]["train_seconds"]
    assert again["gan"]["per_seed"][0]["acc"] == gan["per_seed"][0]["acc"]


@pytest.mark.realdata
def test_bench_trains_seeds_in_parallel_on_faded_patches_with_neighbour_pairs(data_root, tmp_path):
    argv = ["bench", "clustering", "--dataset", "crchistophenotypes", "--data-root", str(data_root)]
    argv += ["--json", str(tmp_path / "c.json"), "--iterations", "2", "--seeds", "2", "--width", "8"]
    argv += ["--limit-images", "1", "--work-dir", str(tmp_path / "work"), "--device", "cpu"]
    (tmp_path / "run.yaml").write_text("train:\n  batch_size: 16\n")
    argv += ["--config", str(tmp_path / "run.yaml"), "--jobs", "2", "--patch-mode", "faded", "--pair-neighbours", "2"]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "c.json").read_text())
    assert summary["config"]["segment"]["patch_mode"] == "faded" and summary["config"]["jobs"] == 2
    assert summary["config"]["train"]["pair_neighbours"] == 2 and summary["config"]["train"]["batch_size"] == 16
    assert [row["generator_iterations"] for row in summary["gan"]["per_seed"]] == [2, 2]
    assert len({row["model_dir"] for row in summary["gan"]["per_seed"]}) == 2
    store = CellStore.open(Path(summary["cells"]["store"]))
    assert store.info.patch_mode == "faded"
    patches = store.read_patches()
    assert (patches.min(axis=-1) >= 250).mean() < 0.5 and patches.mean() > 200  # faded surroundings: light, not white


@pytest.mark.slow
def test_bench_on_two_consep_patches_scores_their_cell_types(data_root, tmp_path):
    from cellgan.io.datasets import CONSEP_CELL_TYPES, load_consep

    out = tmp_path / "consep.json"
    argv = ["bench", "clustering", "--dataset", "consep", "--data-root", str(data_root), "--json", str(out)]
    argv += ["--iterations", "2", "--seeds", "1", "--width", "8", "--limit-images", "2"]
    argv += ["--work-dir", str(tmp_path / "work"), "--device", "cpu"]
    assert main(argv) == 0
    summary = json.loads(out.read_text())
    typed = sum(len(i.labelled_centres) for i in load_consep(data_root / "consep", splits=("train",))[:2])
    cells = summary["cells"]
    assert summary["dataset"] == "consep" and cells["images"] == 2 and cells["skipped_images"] == []
    assert cells["cells"] == cells["typed_cells"] == sum(cells["class_sizes"].values()) == typed
    assert set(cells["class_sizes"]) <= set(CONSEP_CELL_TYPES)
    assert summary["config"]["segment"]["mpp"] == 0.25 and summary["config"]["segment"]["patch_mode"] == "faded"
    for method in METHODS:
        assert set(summary[method]["mean"]) >= set(SCORE_KEYS) | {"linear_probe_acc", "largest_category_share"}
        assert sum(summary[method]["per_seed"][0]["cells_per_category"]) == typed
    assert summary["gan"]["mean"]["generator_iterations"] == 2


def test_bench_on_bm_graz_reports_only_unsupervised_figures(data_root, tmp_path):
    summary = run_clustering_benchmark(
        "bm_graz",
        data_root,
        work_dir=tmp_path,
        minutes=None,
        iterations=1,
        seeds=1,
        width=8,
        limit_images=1,
        train_options={"batch_size": 16, "critic_steps": 1},
        device="cpu",
    )
    assert summary["cells"]["class_sizes"] is None
    for method in METHODS:
        assert set(summary[method]["mean"]) >= {"categories_used", "largest_category_share"}
        assert "acc" not in summary[method]["mean"]
        assert summary[method]["seed_agreement_ari"] is None
        row = summary[method]["per_seed"][0]
        assert sum(row["cells_per_category"]) == summary["cells"]["cells"] > 100
    assert summary["config"]["train"]["batch_size"] == 16


def test_every_nucleus_keeps_the_untyped_ones_and_matches_each_typed_centre_once():
    from cellgan.bench.clustering import every_nucleus

    centres = [[5.0, 5.0], [20.0, 20.0], [20.5, 20.0], [40.0, 40.0]]
    typed = [[20.3, 20.0], [20.6, 20.1], [60.0, 60.0]]  # two on near-twin centres, one with no centre
    xy, labels = every_nucleus(centres, typed, ["a", "b", "c"])
    assert xy.tolist() == [*centres, [60.0, 60.0]]
    assert labels[0] is None and labels[3] is None
    assert sorted(labels[1:3]) == ["a", "b"] and labels[4] == "c"
    with pytest.raises(BenchmarkError, match="2 typed centres but 1 types"):
        every_nucleus(centres, typed[:2], ["a"])
    assert every_nucleus([], [], [])[0].shape == (0, 2)


def test_bench_rejects_an_unknown_dataset(tmp_path):
    with pytest.raises(BenchmarkError, match="unknown dataset"):
        run_clustering_benchmark("kather2016", tmp_path, work_dir=tmp_path, iterations=1)
