"""The stages of cellgan.segment: stains, nuclei, measurements, patches."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk as draw_disk
from skimage.draw import ellipse as draw_ellipse
from skimage.measure import regionprops

from cellgan.segment.features import cell_table, outline_mask, region_measurements
from cellgan.segment.nuclei import (
    distance_to_background,
    downsample_mean,
    drop_stain_artefacts,
    estimate_nucleus_radius,
    fill_holes,
    landscape_maxima,
    nucleus_at,
    segment_nuclei,
    upsample_labels,
)
from cellgan.segment.patches import context_patches, faded_patches, masked_patches
from cellgan.segment.stain import (
    REFERENCE_STAINS,
    deconvolve,
    distinct_colours,
    estimate_stains,
    haematoxylin_sector_angle,
    lab_statistics,
    off_stain_pixels,
    optical_density,
    reference_stain_matrix,
    reinhard_normalise,
    separate_stains,
)

# Macenko's published H&E reference vectors (OD space), a realistic pair that is
# not the Ruifrok reference the fallback uses.
H_TRUE = np.array([0.5626, 0.7201, 0.4062])
E_TRUE = np.array([0.2159, 0.8012, 0.5581])


def _angle(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))


def _synthetic_he(concentrations: np.ndarray) -> np.ndarray:
    """An RGB image from (H, W, 2) stain concentrations with H_TRUE and E_TRUE."""
    h, e = H_TRUE / np.linalg.norm(H_TRUE), E_TRUE / np.linalg.norm(E_TRUE)
    od = concentrations[..., :1] * h + concentrations[..., 1:2] * e
    return np.clip(np.round(255 * 10 ** (-od)), 0, 255).astype(np.uint8)


def _stain_field(seed=0, size=128):
    rng = np.random.default_rng(seed)
    conc = np.zeros((size, size, 2))
    conc[..., 1] = rng.uniform(0.4, 1.0, (size, size))  # eosin everywhere
    for _ in range(40):  # haematoxylin blobs
        rr, cc = draw_disk(tuple(rng.integers(8, size - 8, 2)), rng.integers(3, 7), shape=(size, size))
        conc[rr, cc, 0] = rng.uniform(0.5, 1.2)
        conc[rr, cc, 1] = rng.uniform(0.0, 0.2)  # nuclei take little eosin
    return conc


# -- stains -----------------------------------------------------------------------------


def test_macenko_recovers_known_stain_vectors_and_concentrations():
    conc = _stain_field()
    estimate = estimate_stains(_synthetic_he(conc))
    assert estimate.method == "macenko", estimate.reason
    assert _angle(estimate.matrix[0], H_TRUE) < 5
    assert _angle(estimate.matrix[1], E_TRUE) < 5
    h = separate_stains(_synthetic_he(conc), estimate.matrix)[..., 0]
    assert np.corrcoef(h.ravel(), conc[..., 0].ravel())[0, 1] > 0.95


def test_unreliable_estimates_fall_back_to_the_reference_vectors():
    blank = np.full((64, 64, 3), 250, np.uint8)
    estimate = estimate_stains(blank)
    assert estimate.method == "reference" and "stained pixels" in estimate.reason
    np.testing.assert_allclose(estimate.matrix[:2], REFERENCE_STAINS[:2])
    one_stain = _synthetic_he(np.stack([_stain_field()[..., 0] + 0.3, np.zeros((128, 128))], -1))
    assert estimate_stains(one_stain).method == "reference"
    # Two stains, but neither is H nor E (blue and green dyes): not trusted.
    rng = np.random.default_rng(1)
    od = rng.uniform(0.6, 1.5, (80, 80, 1)) * [0.95, 0.2, 0.2] + rng.uniform(0.6, 1.5, (80, 80, 1)) * [0.2, 0.2, 0.95]
    odd = np.clip(255 * 10 ** (-od), 0, 255).astype(np.uint8)
    estimate = estimate_stains(odd)
    assert estimate.method == "reference" and "degrees" in estimate.reason


def test_deconvolution_with_the_reference_matrix_matches_scikit_image():
    from skimage.color import rgb2hed

    rgb = _synthetic_he(_stain_field(seed=3))
    ours = separate_stains(rgb, reference_stain_matrix())
    theirs = rgb2hed(rgb)
    assert np.corrcoef(ours[..., 0].ravel(), theirs[..., 0].ravel())[0, 1] > 0.9
    assert ours.dtype == np.float32 and ours.min() >= 0
    np.testing.assert_allclose(deconvolve(optical_density(rgb), np.eye(3)), optical_density(rgb))


def test_reinhard_matches_the_reference_lab_statistics():
    source = _synthetic_he(_stain_field(seed=4))
    reference = _synthetic_he(_stain_field(seed=5) * [1.6, 0.5])
    out = reinhard_normalise(source, target=lab_statistics(reference))
    assert out.dtype == np.uint8 and out.shape == source.shape
    np.testing.assert_allclose(lab_statistics(out)[0], lab_statistics(reference)[0], atol=1.5)


def test_reinhard_with_given_statistics_maps_every_pixel_as_its_colour_alone():
    import warnings

    from skimage.color import lab2rgb, rgb2lab

    rgb = _synthetic_he(_stain_field(seed=7))
    source = lab_statistics(rgb) * [[1.02, 0.97, 1.0], [1.1, 0.9, 1.05]]  # a slide's, not this tile's own
    target = lab_statistics(_synthetic_he(_stain_field(seed=8) * [1.4, 0.6]))
    lab = (rgb2lab(rgb) - source[0]) / source[1] * target[1] + target[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # colours outside sRGB are clipped, as by the tool
        per_pixel = np.round(np.clip(lab2rgb(lab), 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(reinhard_normalise(rgb, target=target, source=source), per_pixel)


def test_distinct_colours_equal_numpy_unique():
    rgb = _synthetic_he(_stain_field(seed=6))
    colours, counts, inverse = distinct_colours(rgb)
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    codes, expected_inverse, expected_counts = np.unique(packed.ravel(), return_inverse=True, return_counts=True)
    assert len(colours) == len(codes) > 100
    np.testing.assert_array_equal(colours.astype(np.uint32) @ [1 << 16, 1 << 8, 1], codes)
    np.testing.assert_array_equal(counts, expected_counts)
    np.testing.assert_array_equal(inverse, expected_inverse.ravel())
    np.testing.assert_array_equal(colours[inverse].reshape(rgb.shape), rgb)


@pytest.mark.realdata
def test_stains_of_real_images_are_near_he_and_nuclei_are_dark_in_h(data_root):
    from cellgan.io.datasets import load_bm_graz

    image = load_bm_graz(data_root / "bm_graz")[0]
    rgb = image.read_rgb()[:256, :256]
    estimate = estimate_stains(rgb)
    assert _angle(estimate.matrix[0], REFERENCE_STAINS[0]) < 25
    h = separate_stains(rgb, estimate.matrix)[..., 0]
    dots = image.centres[(image.centres[:, 0] < 254) & (image.centres[:, 1] < 254)].round().astype(int)
    assert len(dots) > 20
    assert np.median(h[dots[:, 1], dots[:, 0]]) > 2 * np.median(h)


# -- nuclei -----------------------------------------------------------------------------


def _nuclei_image(shape=(120, 160)):
    """A haematoxylin image: two touching discs, a lone disc, a ring, a speck."""
    h = np.full(shape, 0.05, np.float32)
    for centre, radius in (((40, 40), 12), ((40, 61), 12), ((90, 40), 10)):
        rr, cc = draw_disk(centre, radius, shape=shape)
        h[rr, cc] = 0.8
    rr, cc = draw_disk((80, 120), 13, shape=shape)
    h[rr, cc] = 0.8
    rr, cc = draw_disk((80, 120), 8, shape=shape)
    h[rr, cc] = 0.05  # a vesicular nucleus: a dark rim around a pale centre
    h[10:12, 140:142] = 0.9  # a speck
    return h


_SETTINGS = dict(
    radius_px=10.0,
    smooth_px=1.0,
    threshold_factor=1.0,
    local_window=0.0,
    local_contrast=1.0,
    opening_px=2.0,
    seed_distance_px=8.0,
    min_area_px=30.0,
    max_area_px=5000.0,
)


def test_segment_nuclei_splits_touching_fills_rings_drops_specks():
    h = _nuclei_image()
    labels = segment_nuclei(h, tissue=np.ones(h.shape, bool), **_SETTINGS)
    assert labels.dtype == np.int32
    assert sorted(np.unique(labels)) == [0, 1, 2, 3, 4]
    assert labels[40, 40] != labels[40, 61] and labels[40, 40] > 0 and labels[40, 61] > 0
    assert labels[80, 120] > 0  # the ring's pale centre belongs to its nucleus
    assert labels[10, 140] == 0
    assert abs((labels == labels[90, 40]).sum() - np.pi * 10**2) < 0.15 * np.pi * 10**2


def test_size_filters_and_empty_inputs():
    h = _nuclei_image()
    settings = {**_SETTINGS, "min_area_px": 400.0}  # discs of radius 10 (314 px) now too small
    labels = segment_nuclei(h, tissue=np.ones(h.shape, bool), **settings)
    assert labels[90, 40] == 0 and labels[80, 120] > 0
    settings = {**_SETTINGS, "max_area_px": 400.0}
    assert segment_nuclei(h, tissue=np.ones(h.shape, bool), **settings)[80, 120] == 0
    assert not segment_nuclei(h, tissue=np.zeros(h.shape, bool), **_SETTINGS).any()


def test_the_watershed_scale_is_the_images_own_unless_given():
    h = _nuclei_image()
    tissue = np.ones(h.shape, bool)
    foreground = {k: v for k, v in _SETTINGS.items() if k not in ("seed_distance_px", "min_area_px", "max_area_px")}
    distance_max, blob_max = landscape_maxima(h, tissue, **foreground)
    assert 12 <= distance_max <= 14 and blob_max > 0  # the filled ring of radius 13 is the widest
    own = segment_nuclei(h, tissue=tissue, **_SETTINGS)
    given = segment_nuclei(h, tissue=tissue, **_SETTINGS, landscape_scale=(distance_max, blob_max))
    np.testing.assert_array_equal(given, own)
    # A slide's scale, from wider nuclei elsewhere: the distance term weighs less against the blob term.
    assert segment_nuclei(h, tissue=tissue, **_SETTINGS, landscape_scale=(100.0, blob_max)).any()
    assert landscape_maxima(h, np.zeros(h.shape, bool), **foreground) is None


@pytest.mark.parametrize("radius", [4, 8, 14])
def test_estimated_nucleus_radius_follows_the_blob_size(radius):
    shape = (300, 300)
    mask = np.zeros(shape, bool)
    step = 4 * radius
    for y in range(step // 2, shape[0] - radius, step):
        for x in range(step // 2, shape[1] - radius, step):
            rr, cc = draw_disk((y, x), radius, shape=shape)
            mask[rr, cc] = True
    mask[5:7, ::9] = True  # specks do not drag the estimate down
    assert estimate_nucleus_radius(mask) == pytest.approx(radius, rel=0.25)
    assert estimate_nucleus_radius(np.zeros(shape, bool)) is None


def test_downsample_and_upsample_round_trip():
    a = np.arange(35, dtype=np.float32).reshape(5, 7)
    small = downsample_mean(a, 2)
    assert small.shape == (3, 4)
    assert small[0, 0] == pytest.approx(a[:2, :2].mean())
    labels = np.array([[1, 2], [0, 3]])
    np.testing.assert_array_equal(upsample_labels(labels, 3, (5, 6))[::3, ::3], labels)


def test_fill_holes_fills_what_scipy_fills():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(11)
    for shape in [(1, 1), (1, 9), (9, 1), (2, 2), (17, 23), (64, 50)]:
        for density in (0.2, 0.5, 0.8):
            mask = ndi.median_filter(rng.random(shape) < density, 3) if min(shape) > 2 else rng.random(shape) < density
            np.testing.assert_array_equal(fill_holes(mask), ndi.binary_fill_holes(mask))
    ring = np.zeros((9, 9), bool)
    ring[2:7, 2:7] = True
    ring[4, 4] = False  # a hole: filled
    ring[3:6, 0] = True
    ring[4, 1] = False  # a bay open to the edge: not
    filled = fill_holes(ring)
    assert filled[4, 4] and not filled[4, 1]
    assert fill_holes(np.zeros((0, 3), bool)).shape == (0, 3)


def test_distance_to_background_is_scipys_bit_for_bit(monkeypatch):
    import sys

    from scipy import ndimage as ndi

    pytest.importorskip("edt")  # the slides extra; without it the function is scipy's own
    rng = np.random.default_rng(12)
    masks = [ndi.median_filter(rng.random((97, 131)) < d, 5) for d in (0.3, 0.5, 0.7)]
    masks += [np.ones((5, 7), bool), np.zeros((4, 4), bool), np.eye(6, dtype=bool), rng.random((1, 40)) < 0.7]
    for mask in masks:
        ours = distance_to_background(mask)
        assert ours.dtype == np.float64
        np.testing.assert_array_equal(ours, ndi.distance_transform_edt(mask))
    monkeypatch.setitem(sys.modules, "edt", None)  # as if not installed: scipy's
    np.testing.assert_array_equal(distance_to_background(masks[0]), ndi.distance_transform_edt(masks[0]))


def test_nucleus_at_finds_a_pale_ring_nucleus_around_a_point():
    h = np.full((60, 60), 0.05, np.float32)
    rr, cc = draw_disk((30, 30), 9, shape=h.shape)
    h[rr, cc] = 0.3
    rr, cc = draw_disk((30, 30), 7, shape=h.shape)
    h[rr, cc] = 0.1
    h[30, 20:23] = 0.05  # a gap in the rim
    found = nucleus_at(h, (31.0, 29.0), radius_px=8, smooth_px=0.5, min_area_px=20, max_area_px=1000)
    assert found is not None
    mask, (x0, y0) = found
    assert mask[30 - y0, 30 - x0]
    assert abs(mask.sum() - np.pi * 9.5**2) < 0.2 * np.pi * 9.5**2
    flat = np.full((60, 60), 0.1)
    assert nucleus_at(flat, (30, 30), radius_px=8, smooth_px=0.5, min_area_px=20, max_area_px=1e3) is None


@pytest.mark.realdata
def test_nuclei_of_a_real_monuseg_crop_match_the_outlines(data_root):
    from cellgan.io.datasets import load_monuseg
    from cellgan.metrics.segmentation import dice
    from cellgan.segment import SegmentConfig
    from cellgan.segment.nuclei import find_nuclei

    image = load_monuseg(data_root / "monuseg_test")[0]
    rgb = image.read_rgb()[:256, :256]
    truth = image.label_mask(image.read_rgb().shape[:2])[:256, :256]
    stains = separate_stains(rgb, estimate_stains(rgb).matrix)
    tissue = optical_density(rgb).sum(axis=2) > 0.3
    nuclei = find_nuclei(stains[..., 0], tissue, mpp=image.mpp, config=SegmentConfig())
    n_true = len(np.unique(truth)) - 1
    n_found = nuclei.labels.max()
    assert 0.6 * n_true < n_found < 1.4 * n_true
    assert dice(nuclei.labels, truth) > 0.6
    # Without the pixel size the scale is estimated, and lands near the real one.
    estimated = find_nuclei(stains[..., 0], tissue, mpp=None, config=SegmentConfig())
    assert 0.5 * image.mpp < estimated.scale_mpp < 2 * image.mpp


# -- measurements ------------------------------------------------------------------------


def _shapes():
    labels = np.zeros((90, 100), np.int32)
    rr, cc = draw_ellipse(25, 30, 10, 20, shape=labels.shape, rotation=0.5)
    labels[rr, cc] = 1
    labels[60:70, 10:30] = 2  # rectangle
    labels[50:80, 60:66] = 3  # an L: not convex
    labels[74:80, 60:90] = 3
    labels[5, 90] = 4  # single pixel
    rr, cc = draw_disk((20, 80), 6, shape=labels.shape)
    labels[rr, cc] = 5  # touches nothing, but sits near the ellipse
    return labels


def test_region_measurements_match_scikit_image():
    labels = _shapes()
    ours = region_measurements(labels)
    for i, prop in enumerate(regionprops(labels)):
        assert ours["area_px"][i] == prop.area
        assert ours["centroid_y"][i] == pytest.approx(prop.centroid[0])
        assert ours["centroid_x"][i] == pytest.approx(prop.centroid[1])
        y0, x0, y1, x1 = prop.bbox
        assert (ours["bbox_x0"][i], ours["bbox_y0"][i], ours["bbox_x1"][i], ours["bbox_y1"][i]) == (x0, y0, x1, y1)
        assert ours["perimeter_px"][i] == pytest.approx(prop.perimeter)
        assert ours["eccentricity"][i] == pytest.approx(prop.eccentricity, abs=1e-6)
        assert ours["solidity"][i] == pytest.approx(prop.solidity, abs=0.05)
    assert ours["solidity"][2] < 0.6  # the L shape


def test_solidity_counts_the_pixel_centres_in_each_labels_convex_hull():
    from scipy import ndimage as ndi
    from scipy.spatial import ConvexHull, QhullError

    rng = np.random.default_rng(3)
    for _ in range(40):  # ragged labels: split, single rows and columns, single pixels, holes
        raw = ndi.median_filter(rng.integers(0, 6, tuple(rng.integers(1, 30, 2))), 3 if rng.random() < 0.5 else 1)
        values = np.unique(raw[raw > 0])
        labels = np.where(raw > 0, np.searchsorted(values, raw) + 1, 0)
        if not labels.any():
            continue
        ours = region_measurements(labels)
        for i in range(labels.max()):
            ys, xs = np.nonzero(labels == i + 1)
            try:
                hull = ConvexHull(np.column_stack([xs, ys]).astype(float))
            except QhullError:  # collinear: its own pixels
                assert ours["solidity"][i] == 1.0
                continue
            gx, gy = np.meshgrid(np.arange(xs.min(), xs.max() + 1), np.arange(ys.min(), ys.max() + 1))
            grid = np.column_stack([gx.ravel(), gy.ravel(), np.ones(gx.size)])
            inside = (grid @ hull.equations.T <= 1e-9).all(axis=1).sum()
            assert ours["solidity"][i] == pytest.approx(len(xs) / inside, rel=1e-12)


def test_touching_nuclei_have_their_own_perimeters():
    labels = np.zeros((20, 30), np.int32)
    labels[5:15, 5:15] = 1
    labels[5:15, 15:25] = 2
    ours = region_measurements(labels)
    alone = np.zeros_like(labels)
    alone[5:15, 5:15] = 1
    assert ours["perimeter_px"][0] == pytest.approx(region_measurements(alone)["perimeter_px"][0])


def test_cell_table_columns_units_and_stain_means():
    labels = _shapes()
    stains = np.zeros(labels.shape + (3,), np.float32)
    stains[..., 0] = labels * 0.1
    stains[..., 1] = 0.3
    table = cell_table(labels, stains, mpp=0.5, source="segment")
    assert list(table["cell_id"]) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(table["mean_haematoxylin"], [0.1, 0.2, 0.3, 0.4, 0.5], rtol=1e-5)
    np.testing.assert_allclose(table["mean_eosin"], 0.3, rtol=1e-5)
    np.testing.assert_allclose(table["area_um2"], table["area_px"] * 0.25)
    assert cell_table(labels, stains, mpp=None)["area_um2"].isna().all()
    empty = cell_table(np.zeros((10, 10), np.int32), np.zeros((10, 10, 3)), mpp=None)
    assert len(empty) == 0 and "solidity" in empty.columns


def test_outline_mask_is_the_inner_border():
    labels = np.zeros((10, 10), np.int32)
    labels[2:8, 2:8] = 1
    edge = outline_mask(labels)
    assert edge[2, 4] and edge[7, 7] and not edge[4, 4] and not edge[1, 4]


# -- patches -----------------------------------------------------------------------------


def _textured(shape=(200, 200)):
    rng = np.random.default_rng(0)
    return rng.integers(0, 200, shape + (3,), dtype=np.uint8)


def test_small_nucleus_is_centred_unscaled_on_white():
    rgb = _textured()
    labels = np.zeros(rgb.shape[:2], np.int32)
    rr, cc = draw_ellipse(50, 60, 4, 7, shape=labels.shape)  # 9 x 15 box
    labels[rr, cc] = 1
    table = cell_table(labels, np.zeros(rgb.shape, np.float32), mpp=None)
    bbox = table[["bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"]].to_numpy()
    patch = masked_patches(rgb, labels, bbox)[0]
    x0, y0, x1, y1 = bbox[0]
    top, left = (32 - (y1 - y0)) // 2, (32 - (x1 - x0)) // 2
    inside = labels[y0:y1, x0:x1] == 1
    np.testing.assert_array_equal(patch[top : top + y1 - y0, left : left + x1 - x0][inside], rgb[y0:y1, x0:x1][inside])
    white = np.ones((32, 32), bool)
    white[top : top + y1 - y0, left : left + x1 - x0] = ~inside
    assert (patch[white] == 255).all()


def test_large_nucleus_is_scaled_down_keeping_its_aspect():
    rgb = np.full((200, 200, 3), 255, np.uint8)
    labels = np.zeros((200, 200), np.int32)
    labels[50:80, 40:104] = 1  # 30 x 64 box: scale 0.5 -> 15 x 32
    rgb[labels == 1] = (120, 40, 150)
    rgb[labels == 0] = (0, 0, 0)  # whatever is around must not show
    patch = masked_patches(rgb, labels, np.array([[40, 50, 104, 80]]))[0]
    coloured = np.any(patch < 250, axis=-1)
    rows, cols = np.flatnonzero(coloured.any(axis=1)), np.flatnonzero(coloured.any(axis=0))
    assert cols.min() == 0 and cols.max() == 31  # the long side fills the patch
    assert 14 <= len(rows) <= 16 and abs(rows.mean() - 15.5) <= 1  # the short side halves, centred
    assert not np.any(np.all(patch < 30, axis=-1))  # no black from outside the mask


def test_context_patches_mirror_the_image_beyond_its_edge_and_rescale():
    rgb = _textured((100, 120))
    same = context_patches(rgb, np.array([[60.0, 50.0]]), side_px=32)[0]
    np.testing.assert_array_equal(same, rgb[34:66, 44:76])
    corner = context_patches(rgb, np.array([[0.0, 0.0]]), side_px=32)[0]
    np.testing.assert_array_equal(corner, np.pad(rgb, ((16, 0), (16, 0), (0, 0)), mode="symmetric")[:32, :32])
    far = context_patches(rgb[:10, :10], np.array([[5.0, 5.0]]), side_px=32)[0]  # a crop wider than twice the image
    np.testing.assert_array_equal(far, np.pad(rgb[:10, :10], ((11, 11), (11, 11), (0, 0)), mode="symmetric")[:32, :32])
    big = context_patches(rgb, np.array([[60.0, 50.0], [10.0, 90.0]]), side_px=64)
    assert big.shape == (2, 32, 32, 3) and big.dtype == np.uint8
    with pytest.raises(ValueError, match="side_px"):
        context_patches(rgb, np.zeros((1, 2)), side_px=0)


def test_faded_patches_keep_the_nucleus_and_fade_the_rest_toward_white():
    rgb = _textured((100, 120))
    labels = np.zeros(rgb.shape[:2], np.int32)
    rr, cc = draw_disk((50, 60), 5, shape=labels.shape)
    labels[rr, cc] = 7
    centre = np.array([[60.0, 50.0]])
    crop, own = rgb[34:66, 44:76].astype(np.float64), labels[34:66, 44:76] == 7
    patch = faded_patches(rgb, labels, centre, cell_labels=np.array([7]), side_px=32, context_weight=0.25)[0]
    np.testing.assert_array_equal(patch[own], rgb[34:66, 44:76][own])
    np.testing.assert_allclose(patch[~own], 255 - 0.25 * (255 - crop[~own]), atol=0.5)
    plain = faded_patches(rgb, labels, centre, cell_labels=np.array([7]), side_px=32, context_weight=1.0)
    np.testing.assert_array_equal(plain, context_patches(rgb, centre, side_px=32))
    white = faded_patches(rgb, labels, centre, cell_labels=np.array([3]), side_px=32, context_weight=0.0)[0]
    assert (white == 255).all()  # a label not in the crop: nothing is its nucleus
    edge_labels = np.zeros_like(labels)
    edge_labels[:4, :4] = 7  # a nucleus in the corner: its mirror image beyond the edge is faded
    corner = faded_patches(
        rgb, edge_labels, np.zeros((1, 2)), cell_labels=np.array([7]), side_px=32, context_weight=0.5
    )[0]
    mirrored = np.pad(rgb, ((16, 0), (16, 0), (0, 0)), mode="symmetric")[:32, :32].astype(np.float64)
    np.testing.assert_array_equal(corner[16:20, 16:20], rgb[:4, :4])
    np.testing.assert_allclose(corner[12:16, 12:16], 255 - 0.5 * (255 - mirrored[12:16, 12:16]), atol=0.5)
    with pytest.raises(ValueError, match="context_weight"):
        faded_patches(rgb, labels, centre, side_px=32, context_weight=1.5)


# -- stain artefacts ----------------------------------------------------------------------


def test_haematoxylin_sector_angle_separates_nuclei_from_artefact_colours():
    h, e = REFERENCE_STAINS[0], REFERENCE_STAINS[1]
    angle = haematoxylin_sector_angle(np.array([h, 0.8 * h + 0.4 * e, h + e, [1.0, 1.0, 1.0], [1.2, 0.45, 0.16], e]))
    np.testing.assert_allclose(angle[:3], 0, atol=1e-4)  # pure H and H-dominant mixtures
    assert angle[3] > 15  # black pigment: neutral grey
    assert angle[4] > 20  # blue dye: red absorbed more than haematoxylin does
    assert angle[5] > 15  # pure eosin is not haematoxylin-dominant
    assert np.isnan(haematoxylin_sector_angle(np.zeros(3)))
    # The sector follows the stain vectors given: Macenko's H is inside its own sector.
    stains = np.stack([H_TRUE / np.linalg.norm(H_TRUE), E_TRUE / np.linalg.norm(E_TRUE)])
    assert haematoxylin_sector_angle(H_TRUE) > 5
    assert haematoxylin_sector_angle(H_TRUE, stains=stains) == pytest.approx(0, abs=1e-4)


def test_off_stain_pixels_agrees_with_the_sector_angle():
    rng = np.random.default_rng(0)
    od = rng.uniform(0, 1.5, (200, 200, 3)).astype(np.float32)
    od[0, 0] = 0
    for limit in (5.0, 12.0, 30.0):
        expected = np.nan_to_num(haematoxylin_sector_angle(od), nan=0.0) > limit
        np.testing.assert_array_equal(off_stain_pixels(od, max_angle_deg=limit), expected)


def test_drop_stain_artefacts_keeps_haematoxylin_objects_only():
    h, e = REFERENCE_STAINS[0], REFERENCE_STAINS[1]
    labels = np.zeros((40, 120), np.int32)
    colours = [0.6 * h + 0.2 * e, np.array([0.8, 0.8, 0.8]), 0.6 * h + 0.25 * e]  # nucleus, pigment, nucleus
    od = np.full((40, 120, 3), 0.05)
    for i, colour in enumerate(colours):
        rr, cc = draw_disk((20, 20 + 40 * i), 8)
        labels[rr, cc] = i + 1
        od[rr, cc] = colour
    rgb = np.clip(np.round(255 * 10 ** (-od)), 0, 255).astype(np.uint8)
    kept = drop_stain_artefacts(labels, rgb, max_angle_deg=12)
    assert kept[20, 20] == 1 and kept[20, 60] == 0 and kept[20, 100] == 2
    np.testing.assert_array_equal(drop_stain_artefacts(labels, rgb, max_angle_deg=90), labels)


def test_whole_crop_patch_keeps_the_whole_cell_and_its_aspect():
    from cellgan.segment.patches import whole_crop_patch

    tall = np.zeros((64, 32, 3), np.uint8)  # a black 2:1 crop
    patch = whole_crop_patch(tall)
    assert patch.shape == (32, 32, 3) and patch.dtype == np.uint8
    dark = (patch < 128).all(axis=2)
    assert dark[:, 8:24].all() and not dark[:, :8].any() and not dark[:, 24:].any()  # 16 px wide, centred
    small = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    assert (whole_crop_patch(small) < 255).any(axis=2).sum() > 900  # scaled up to fill the patch
    exact = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(whole_crop_patch(exact), exact)
    with pytest.raises(ValueError, match="uint8"):
        whole_crop_patch(np.zeros((4, 4), np.uint8))
