"""Is the generator's grid pattern its upsampling? A 2×2 block measure of generated and real patches.

Usage: python benchmarks/checkerboard.py RUN_DIR [RUN_DIR ...] --json OUT [--images N]

Each ``UpBlock`` of the generator doubles the size by nearest-neighbour upsampling
(its shortcut is that upsampling and a 1×1 convolution alone), which copies every
pixel into a 2×2 block. If the grid pattern comes from there, neighbouring pixels
differ less inside those blocks than across their edges. For blocks of side s
(2: the last upsampling, 4 and 8: the earlier ones) the measure is the mean
absolute difference between horizontally and vertically neighbouring pixels
across block edges over that inside blocks: about 1 for natural images, above 1
for blocky ones. Computed for N generated patches (random z and c) of each run's
model and for N of its real patches.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
from pathlib import Path

import numpy as np
import torch

from cellgan.io.cellstore import CellStore
from cellgan.io.files import atomic_write
from cellgan.model import load_trained


def block_edge_ratio(images: np.ndarray, side: int) -> float:
    """Mean |difference| of neighbouring pixels across edges of side-``side`` blocks over that inside them.

    ``images``: (n, h, w, 3) floats. Only neighbours whose left (upper) pixel sits at
    the last column (row) of a block are "across"; the others are "inside".
    """
    dx = np.abs(np.diff(images, axis=2)).mean(axis=(0, 1, 3))  # per column gap
    dy = np.abs(np.diff(images, axis=1)).mean(axis=(0, 2, 3))  # per row gap
    gaps = np.arange(len(dx))
    across = (gaps % side) == side - 1
    return float((dx[across].mean() + dy[across].mean()) / (dx[~across].mean() + dy[~across].mean()))


def measure(run_dir: Path, *, images: int, seed: int = 0) -> dict:
    """The block-edge ratios of a run's generated and real patches, and its iterations."""
    model = load_trained(run_dir / "model", device="cpu")
    generator = model.generator.eval()
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(images, generator.noise_dim, generator=rng)
    codes = torch.nn.functional.one_hot(
        torch.randint(generator.categories, (images,), generator=rng), generator.categories
    ).float()
    with torch.no_grad():
        fake = ((generator(z, codes).clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).numpy()
    patches = CellStore.open(run_dir / "cells").read_patches(mmap=True)
    chosen = np.random.default_rng(seed).choice(len(patches), size=min(images, len(patches)), replace=False)
    real = np.asarray(patches[np.sort(chosen)], dtype=np.float64)
    log = run_dir / "model" / "log.csv"
    steps = int(np.loadtxt(log, delimiter=",", skiprows=1, usecols=0, ndmin=1)[-1]) if log.is_file() else 0
    return {
        "run": run_dir.name,
        "iterations": steps,
        "width": model.config.width,
        "generated": {str(s): block_edge_ratio(fake, s) for s in (2, 4, 8)},
        "real": {str(s): block_edge_ratio(real, s) for s in (2, 4, 8)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--json", type=Path, required=True, metavar="OUT")
    parser.add_argument("--images", type=int, default=512, metavar="N")
    args = parser.parse_args()
    result = {
        "what": "block-edge ratio (1: no block pattern) of generated and real patches, per block side",
        "images": args.images,
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "runs": [measure(run, images=args.images) for run in args.runs],
    }
    text = json.dumps(result, indent=2) + "\n"
    atomic_write(args.json, lambda p: p.write_text(text))
    print(text)


if __name__ == "__main__":
    main()
