"""Issue 13: the pixel-size estimate with and without Reinhard normalisation (to the most typical image) of the
images it reads; subsets as in tests/test_pixel_size.py, plus all 100 CRCHistoPhenotypes images. No labels.

  OMP_NUM_THREADS=2 .venv/bin/python benchmarks/probes/issue13_estimate_reinhard.py

Its table in benchmarks/README.md was made at commit 80f7e70 and before; since c4602ef `pixel_sizes` always
estimates on the images as read, so on a later commit both columns are the "none" one.
"""
import time
from pathlib import Path
import numpy as np
from cellgan.io import datasets
from cellgan.segment.batch import pixel_sizes
from cellgan.segment.config import SegmentConfig
from cellgan.segment.reference import resolve_reference
from cellgan.segment.pixel_size import PixelSizeError
def sub(items, n, seed):
    return [items[i] for i in np.random.default_rng(seed).choice(len(items), min(n, len(items)), replace=False)]
root = Path("../shared/data")
cases = [("kather2016", datasets.load_kather2016, 12, 2), ("crchistophenotypes", datasets.load_crchistophenotypes, 8, 0),
         ("monuseg_test", datasets.load_monuseg, 1, 0), ("bm_graz", datasets.load_bm_graz, 11, 0),
         ("crchistophenotypes", datasets.load_crchistophenotypes, 100, 0)]
if __name__ == "__main__":
    for name, load, n, seed in cases:
        paths = [r.path for r in sub(load(root / name), n, seed)]
        out = []
        for reinhard in (None, "typical"):
            config = SegmentConfig(reinhard_reference=resolve_reference(reinhard, paths) if reinhard else None)
            t = time.perf_counter()
            try:
                mpp, _ = next(iter(pixel_sizes(paths, config).values()))
                out.append(f"{mpp:.3f}")
            except PixelSizeError as err:
                out.append("refused " + str(err).split("(")[2].split(")")[0])
            out[-1] += f" ({time.perf_counter() - t:.1f} s)"
        print(f"{name} {n}: none {out[0]} | typical {out[1]}", flush=True)
