"""The segmentation benchmark: scoring plumbing with a stand-in segmenter, then the real one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import cellgan.segment
from cellgan.bench import segmentation as bench
from cellgan.cli.main import main


@dataclass(frozen=True)
class _Config:
    mpp: float | None = None
    threshold: int = 160


@dataclass
class _Result:
    table: pd.DataFrame
    patches: np.ndarray
    label_mask: np.ndarray
    overlay: np.ndarray


def _result_from_mask(rgb, mask):
    ids = [i for i in np.unique(mask) if i]
    rows, cols = np.indices(mask.shape)
    table = pd.DataFrame(
        {
            "cell_id": np.arange(len(ids)),
            "centroid_x": [cols[mask == i].mean() for i in ids],
            "centroid_y": [rows[mask == i].mean() for i in ids],
        }
    )
    return _Result(table, np.zeros((len(ids), 32, 32, 3), np.uint8), mask, rgb.copy())


@pytest.fixture
def stand_in(monkeypatch):
    """Replace the segmenter by one that returns ``stand_in.mask`` or ``stand_in.points``."""

    class StandIn:
        mask = None
        points = None
        configs = []

        def __call__(self, rgb, config, *, image_id):
            self.configs.append((image_id, config))
            if self.mask is None and self.points is None:
                raise cellgan.segment.SegmentationError("no tissue")
            if self.mask is not None:
                return _result_from_mask(rgb, self.mask)
            table = pd.DataFrame({"centroid_x": self.points[:, 0], "centroid_y": self.points[:, 1]})
            return _Result(table, np.zeros((len(table), 32, 32, 3), np.uint8), np.zeros(rgb.shape[:2], np.uint32), rgb)

    fake = StandIn()
    monkeypatch.setattr(cellgan.segment, "segment_image", fake, raising=False)
    monkeypatch.setattr(cellgan.segment, "SegmentConfig", _Config, raising=False)
    return fake


def _monuseg_root(tmp_path: Path) -> Path:
    folder = tmp_path / "monuseg_test"
    folder.mkdir()
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(folder / "TCGA-1.tif")
    regions = ""
    for x0, y0, x1, y1 in [(2, 2, 8, 6), (15, 10, 25, 16)]:
        vertices = "".join(f'<Vertex X="{x}" Y="{y}"/>' for x, y in [(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
        regions += f"<Region><Vertices>{vertices}</Vertices></Region>"
    xml = f'<Annotations MicronsPerPixel="0.25"><Regions>{regions}</Regions></Annotations>'
    (folder / "TCGA-1.xml").write_text(xml)
    return tmp_path


def test_monuseg_scores_with_one_nucleus_missed(tmp_path, stand_in):
    from cellgan.io.datasets import load_monuseg

    root = _monuseg_root(tmp_path)
    (record,) = load_monuseg(root / "monuseg_test")
    truth = record.label_mask()
    stand_in.mask = np.where(truth == 1, 1, 0).astype(np.uint32)  # finds the first, misses the second
    summary = bench.run_segmentation_benchmark("monuseg", root, overlay_dir=tmp_path / "overlays")
    first, second = (truth == 1).sum(), (truth == 2).sum()
    assert summary["images"] == 1
    assert (summary["detection_tp"], summary["detection_fp"], summary["detection_fn"]) == (1, 0, 1)
    assert summary["detection_precision"] == 1.0
    assert summary["detection_recall"] == 0.5
    assert summary["detection_f1"] == pytest.approx(2 / 3)
    assert summary["count_mean_abs_rel_error"] == pytest.approx(0.5)
    assert summary["dice"] == pytest.approx(2 * first / (2 * first + second))
    assert summary["aji"] == pytest.approx(first / (first + second))
    assert summary["per_image"][0]["mpp"] == pytest.approx(0.25)
    assert stand_in.configs[0][1].mpp == pytest.approx(0.25)
    assert summary["config"] == {"mpp": None, "threshold": 160}
    assert {"cpu_count", "torch", "scikit-image"} <= set(summary["machine"])
    assert summary["megapixels"] == pytest.approx(20 * 30 / 1e6)
    assert summary["megapixels_per_second"] > 0
    picture = np.asarray(Image.open(tmp_path / "overlays" / "TCGA-1.png"))
    assert picture.shape == (20, 30, 3)
    assert tuple(picture[13, 20]) == (255, 0, 0)  # the missed nucleus's centre, marked red


def test_bm_graz_radius_and_explicit_pixel_size(tmp_path, stand_in):
    folder = tmp_path / "bm_graz"
    (folder / "source").mkdir(parents=True)
    (folder / "annotations").mkdir()
    Image.fromarray(np.full((60, 60, 3), 200, np.uint8)).save(folder / "source" / "BM_1.png")
    (folder / "annotations" / "BM_1.txt").write_text("3 3 0\n10 10 1\n40 10 1\n10 40 3\n")
    # 12 px from the first dot: matched; 13 px from the second: not; the third is missed.
    stand_in.points = np.array([[22.0, 10.0], [40.0, 23.0]])
    summary = bench.run_segmentation_benchmark("bm_graz", tmp_path, config=_Config(mpp=0.3))
    assert (summary["detection_tp"], summary["detection_fp"], summary["detection_fn"]) == (1, 1, 2)
    assert summary["count_mean_abs_rel_error"] == pytest.approx(1 / 3)
    assert "dice" not in summary
    assert summary["per_image"][0]["mpp"] == 0.3


def test_crc_gets_the_assumed_20x_pixel_size(tmp_path, stand_in):
    from scipy.io import savemat

    folder = tmp_path / "crchistophenotypes" / "test" / "img1"
    folder.mkdir(parents=True)
    Image.fromarray(np.full((30, 30, 3), 200, np.uint8)).save(folder / "img1.png")
    for kind in ("detection", "epithelial", "fibroblast", "inflammatory", "others"):
        savemat(folder / f"img1_{kind}.mat", {"detection": np.array([[11.0, 11.0]])})
    for split in ("train", "validation"):
        (tmp_path / "crchistophenotypes" / split).mkdir()
    stand_in.points = np.array([[15.0, 10.0]])  # 5 px from (10, 10): within 6 px
    summary = bench.run_segmentation_benchmark("crchistophenotypes", tmp_path)
    assert summary["detection_f1"] == 1.0
    assert stand_in.configs[0][1].mpp == bench.ASSUMED_MPP["crchistophenotypes"] == 0.5


def test_an_image_the_segmentation_refuses_counts_as_no_cells(tmp_path, stand_in):
    root = _monuseg_root(tmp_path)
    summary = bench.run_segmentation_benchmark("monuseg", root)
    assert (summary["detection_tp"], summary["detection_fn"], summary["cells_pred"]) == (0, 2, 0)
    assert summary["per_image"][0]["error"] == "no tissue"
    assert summary["dice"] == 0.0 and summary["aji"] == 0.0


def test_bad_arguments(tmp_path, stand_in):
    with pytest.raises(ValueError, match="kather2016"):
        bench.run_segmentation_benchmark("kather2016", tmp_path)
    with pytest.raises(ValueError, match="limit"):
        bench.run_segmentation_benchmark("bm_graz", tmp_path, limit=0)


def test_cli_reports_a_missing_dataset_clearly(tmp_path, capsys):
    out = tmp_path / "o.json"
    status = main(["bench", "segmentation", "--dataset", "bm_graz", "--data-root", str(tmp_path), "--json", str(out)])
    assert status == 2
    assert "bm_graz: dataset folder not found" in capsys.readouterr().err
    assert not out.exists()


def test_draw_truth_colours():
    overlay = np.zeros((20, 20, 3), np.uint8)
    picture = bench.draw_truth(
        overlay, np.array([[3.0, 3.0], [15.0, 15.0]]), np.array([[3.0, 4.0], [10.0, 3.0]]), np.array([0]), np.array([0])
    )
    assert tuple(picture[4, 3]) == (0, 255, 255)  # found
    assert tuple(picture[3, 10]) == (255, 0, 0)  # missed
    assert tuple(picture[15, 15]) == (255, 255, 0)  # spurious
    assert overlay.sum() == 0


@pytest.mark.realdata
def test_real_segmentation_on_one_bm_graz_image(data_root, tmp_path):
    out = tmp_path / "bm_graz.json"
    arguments = ["--dataset", "bm_graz", "--data-root", str(data_root), "--json", str(out), "--limit", "1"]
    status = main(["bench", "segmentation", *arguments])
    assert status == 0
    summary = json.loads(out.read_text())
    assert summary["images"] == 1 and len(summary["per_image"]) == 1
    assert summary["cells_true"] == 356
    assert 0.3 < summary["detection_f1"] <= 1.0
    assert summary["megapixels"] == pytest.approx(1.44)
