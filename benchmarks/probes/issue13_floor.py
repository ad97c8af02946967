"""Issue 13: the least a segment-and-extract run does per image, with the field's libraries, timed call by call.

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes/issue13_floor.py

The 11 bm_graz images (15.8 MP) through the bare steps of the paper's segmentation, one thread: decode the PNG,
optical density and haematoxylin by colour deconvolution at full resolution, a 2x block average to the working
scale, a Gaussian, a threshold, hole filling, LoG seeds and their maxima, the distance transform and the
watershed, and per-nucleus sums. No pixel-size estimate, typical image, tissue mask, Reinhard normalisation,
stain-artefact filter, cell table, patches, overlays or writing: what a whole run adds to this is its own cost.
"""
import glob
import time
from collections import defaultdict

import numpy as np
from scipy import ndimage as ndi
from skimage.io import imread
from skimage.segmentation import watershed

#: Ruifrok & Johnston's H&E(-DAB) stain vectors, rows H, E, DAB, in optical density.
STAINS = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
seconds = defaultdict(float)


def timed(step: str, function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    seconds[step] += time.perf_counter() - start
    return result


def halve(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    return a[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


unmix = np.linalg.inv(STAINS).astype(np.float32)[:, 0]
megapixels = 0.0
for path in sorted(glob.glob("../shared/data/bm_graz/source/*.png")):
    rgb = timed("decode PNG", imread, path)[..., :3]
    megapixels += rgb.shape[0] * rgb.shape[1] / 1e6
    od = timed("optical density", lambda x: -np.log(np.maximum(x.astype(np.float32), 1) / 255), rgb)
    haematoxylin = timed("colour deconvolution", lambda o: o.reshape(-1, 3) @ unmix, od).reshape(rgb.shape[:2])
    small = timed("2x block average", halve, haematoxylin)
    smooth = timed("Gaussian", ndi.gaussian_filter, small, 1.0)
    foreground = timed("fill holes", ndi.binary_fill_holes, smooth > np.percentile(smooth, 70))
    blob = timed("LoG", lambda s: -ndi.gaussian_laplace(s, 3.0), smooth)
    seeds = timed("maximum filter", lambda b: (b == ndi.maximum_filter(b, size=7)) & foreground, blob)
    markers, _ = timed("label", ndi.label, seeds)
    distance = timed("distance transform", ndi.distance_transform_edt, foreground)
    labels = timed("watershed", watershed, -distance, markers, mask=foreground)
    timed("per-nucleus sums", lambda lab: [np.bincount(lab.ravel(), weights=small.ravel()) for _ in range(3)], labels)
total = sum(seconds.values())
for step, value in seconds.items():
    print(f"{step:25s} {value:6.2f} s")
print(f"total {total:.2f} s for {megapixels:.1f} MP: {megapixels / total:.2f} MP/s on one core")
