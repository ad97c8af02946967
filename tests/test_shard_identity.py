"""Shard identity ("done" means the same file contents and options), one writer per folder, outputs never inputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cellgan.cli.main import main
from cellgan.io.cellstore import CellStore
from cellgan.io.files import outside
from cellgan.io.lock import LOCK_NAME, FolderLocked, folder_lock
from cellgan.segment import SegmentConfig, segment_images


@pytest.fixture(scope="module")
def crops(data_root) -> tuple[np.ndarray, np.ndarray]:
    """Two different 128×128 corners of a bone-marrow image (the paper's own data)."""
    from cellgan.io.images import read_rgb

    rgb = read_rgb(data_root / "bm_graz" / "source" / "BM_GRAZ_HE_0001_01.png")
    return rgb[:128, :128], rgb[128:256, 128:256]


def _segment(paths, store, **options):
    """At 0.3 µm per pixel unless told: a 128-px crop is too small to estimate it from."""
    return segment_images(paths, store, SegmentConfig(**{"mpp": 0.3, **options}), progress=False)


@pytest.mark.realdata
def test_done_means_the_same_file_and_options(tmp_path, crops):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    Image.fromarray(crops[0]).save(a / "x.png")
    Image.fromarray(crops[1]).save(b / "x.png")
    store = CellStore.create(tmp_path / "out", patch_mode="masked")
    first = _segment([a / "x.png", tmp_path / "a" / ".." / "a" / "x.png"], store)  # one file given twice
    assert first.done == ("x",) and first.skipped == ()
    cells = len(store)

    other = _segment([b / "x.png"], store)  # another image of the same name: refused, the shard kept
    assert other.done == () and "was made from another file" in other.failed[str(b / "x.png")]
    assert len(store) == cells and store.has_image("x")

    again = _segment([a / "x.png"], store)
    assert again.skipped == ("x",) and again.done == ()
    moved = tmp_path / "c" / "x.png"
    moved.parent.mkdir()
    (a / "x.png").rename(moved)  # the same contents elsewhere: still done
    assert _segment([moved], CellStore.open(store.root)).skipped == ("x",)
    moved.rename(a / "x.png")

    finer = _segment([a / "x.png"], store, mpp=0.25)  # other options: made again, and said why
    assert finer.done == ("x",) and "mpp: 0.3 -> 0.25" in finer.remade[str(a / "x.png")]
    assert store.read_identity("x")["options"]["mpp"] == 0.25

    Image.fromarray(crops[1]).save(a / "x.png")  # the file changed in place: made again
    changed = _segment([a / "x.png"], store, mpp=0.25)
    assert changed.done == ("x",) and "changed since" in changed.remade[str(a / "x.png")]


@pytest.mark.realdata
def test_a_corrected_points_csv_is_made_again(tmp_path, crops, capsys):
    Image.fromarray(crops[0]).save(tmp_path / "img.png")
    points = tmp_path / "points.csv"
    points.write_text("x,y\n40,50\n100,20\n")
    args = ["cells", "from-points", str(tmp_path / "img.png"), "--points", str(points), "--out", str(tmp_path / "r"),
            "--mpp", "0.3",
            "--quiet"]  # fmt: skip
    assert main(args) == 0 and main(args) == 0
    assert "1 already done" in capsys.readouterr().out
    points.write_text("x,y\n40,50\n100,20\n60,90\n")
    assert main(args) == 0
    assert "points.csv changed since shard 'img' was made" in capsys.readouterr().err
    assert len(CellStore.open(tmp_path / "r")) == 3


@pytest.mark.realdata
def test_the_output_folder_inside_the_input_is_never_read(tmp_path, crops, capsys):
    slides = tmp_path / "slides"
    slides.mkdir()
    Image.fromarray(crops[0]).save(slides / "one.png")
    Image.fromarray(crops[1]).save(slides / "two.png")
    args = ["segment", str(slides), "--out", str(slides / "run"), "--mpp", "0.3", "--quiet"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0  # the masks and overlays written under slides/run are not images to segment
    second = capsys.readouterr().out
    assert "2 images done" in first and "0 images done, 2 already done, 0 failed" in second
    assert first.rsplit("holds", 1)[1] == second.rsplit("holds", 1)[1]


def test_outside_drops_the_files_under_a_folder(tmp_path):
    files = [tmp_path / "a.png", tmp_path / "out" / "cells" / "overlays" / "a.png", tmp_path / "outer.png"]
    assert outside(files, tmp_path / "out") == [tmp_path / "a.png", tmp_path / "outer.png"]


def _hold_lock(folder: Path) -> subprocess.Popen:
    code = (
        "import sys, time\nfrom cellgan.io.lock import folder_lock\n"
        f"with folder_lock({str(folder)!r}):\n    print('held', flush=True)\n    time.sleep(60)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_writer_is_refused_and_a_dead_writers_lock_is_taken_over(tmp_path):
    store = CellStore.create(tmp_path / "cells", patch_mode="masked")
    holder = _hold_lock(store.root)
    try:
        with pytest.raises(FolderLocked, match=rf"cells: another cellgan process is writing here \(process {holder.pid} on"):
            with store.writing():
                pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert (store.root / LOCK_NAME).is_file()  # left by the killed process, and holding nothing
    (store.root / "table" / ".x.abcd1234.tmp.parquet").write_bytes(b"half")  # what a killed writer left
    with store.writing():
        with folder_lock(store.root):  # re-entrant within a process
            pass
    assert not list((store.root / "table").iterdir())


def test_a_shard_being_made_again_is_not_done_until_its_table_is_back(tmp_path, monkeypatch):
    from test_hostile_inputs import _table

    store = CellStore.create(tmp_path / "cells", patch_mode="masked")
    store.write_image("a", _table(3), np.zeros((3, 32, 32, 3), np.uint8))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the run stops while the new patches are written

    monkeypatch.setattr("cellgan.io.cellstore.atomic_write", killed)
    with pytest.raises(KeyboardInterrupt):
        store.write_image("a", _table(5), np.zeros((5, 32, 32, 3), np.uint8))
    assert not store.has_image("a") and store.image_ids() == []  # never the old table beside new patches
