"""Issue 11, step 1: build (once) the bench's cell store for crchistophenotypes and wider windows.

Writes under .cache/issue11/: the cell store (faded patches, Reinhard to the typical
image, exactly as `cellgan bench clustering --config benchmarks/configs/reinhard_own_q.yaml`
builds it) and, in the store's cell order, windows of side 32, 64, 96, 128 px (20x)
around each labelled centre, cut from the normalised image, block-averaged to 32x32:
windows_<side>.npy uint8 (n, 32, 32, 3). No label is used here.
"""
import sys
from pathlib import Path

import numpy as np

from cellgan.bench.clustering import _segment_config, build_point_store, dataset_images
from cellgan.io.images import read_rgb
from cellgan.segment.stain import lab_statistics, reinhard_normalise

DATA = "/work/shared/data"
OUT = Path(".cache/issue11")
SIDES = (32, 64, 96, 128)


def windows(rgb, xy, side, size=32):
    h, w = rgb.shape[:2]
    off = np.arange(side)
    rows = np.floor(xy[:, 1] - side / 2 + 0.5).astype(int)[:, None] + off
    cols = np.floor(xy[:, 0] - side / 2 + 0.5).astype(int)[:, None] + off
    ok = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    r = np.clip(rows, 0, h - 1)[:, :, None]
    c = np.clip(cols, 0, w - 1)[:, None, :]
    crops = np.where(ok[..., None], rgb[r, c], 255).astype(np.float32)
    f = side // size
    crops = crops.reshape(len(xy), size, f, size, f, 3).mean(axis=(2, 4))
    return np.rint(crops).astype(np.uint8)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    images = dataset_images("crchistophenotypes", DATA)
    config = _segment_config("crchistophenotypes", {"patch_mode": "faded", "reinhard_reference": "typical"}, images)
    store, skipped = build_point_store("crchistophenotypes", images, OUT, config=config)
    print("store", store.root, "skipped", skipped, file=sys.stderr)
    table = store.read_table()
    target = lab_statistics(read_rgb(config.reinhard_reference))
    by_id = {i.image_id: i for i in images}
    out = {s: np.empty((len(table), 32, 32, 3), np.uint8) for s in SIDES}
    ids = table["image"].astype(str).to_numpy()
    for image_id in dict.fromkeys(ids):
        rows = np.flatnonzero(ids == image_id)
        rgb = reinhard_normalise(by_id[image_id].read_rgb(), target=target)
        xy = table.iloc[rows][["centroid_x", "centroid_y"]].to_numpy(float)
        for s in SIDES:
            out[s][rows] = windows(rgb, xy, s)
    for s in SIDES:
        np.save(OUT / f"windows_{s}.npy", out[s])
    np.save(OUT / "patches_faded.npy", store.read_patches())
    table.to_parquet(OUT / "table.parquet")
    print("done", len(table), file=sys.stderr)


if __name__ == "__main__":
    main()
