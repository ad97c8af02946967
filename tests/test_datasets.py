"""Dataset loaders: small hand-made layouts, malformed files, and the real datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from cellgan.io.datasets import (
    CONSEP_CELL_TYPES,
    CRC_CELL_TYPES,
    DATASETS,
    AnnotatedImage,
    DatasetError,
    load_bm_graz,
    load_consep,
    load_crchistophenotypes,
    load_kather2016,
    load_monuseg,
    polygon_centroid,
    rasterise_outlines,
)


def _png(path: Path, shape=(20, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(shape + (3,), 200, np.uint8)).save(path)


# -- bm_graz --------------------------------------------------------------------------


def _bm_graz(root: Path, dots: str) -> Path:
    _png(root / "source" / "BM_1.png")
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "BM_1.txt").write_text(dots)
    return root


def test_bm_graz_dots_are_read_as_zero_based_xy(tmp_path):
    root = _bm_graz(tmp_path, "2 3 0\n5 7 1\n12 3 3\n")
    (image,) = load_bm_graz(root)
    assert image.image_id == "BM_1" and image.dataset == "bm_graz" and image.mpp is None
    np.testing.assert_array_equal(image.centres, [[5, 7], [12, 3]])
    assert image.read_rgb().shape == (20, 30, 3)


@pytest.mark.parametrize(
    ("dots", "message"),
    [
        ("3 3 0\n5 7 1\n", "header says 3 dots"),
        ("1 3 0\n5 seven 1\n", "three numbers"),
        ("1 3 0\n5 7\n", "three numbers"),
        ("5 7 1\n", "header says 7 columns"),
        ("x y k\n5 7 1\n", "header"),
        ("1 3 0\n-5 7 1\n", "non-negative"),
    ],
)
def test_bm_graz_malformed_dots_name_the_file(tmp_path, dots, message):
    root = _bm_graz(tmp_path, dots)
    with pytest.raises(DatasetError, match=message) as info:
        load_bm_graz(root)
    assert "BM_1.txt" in str(info.value)


def test_bm_graz_missing_annotation_names_the_file(tmp_path):
    _png(tmp_path / "source" / "BM_2.png")
    with pytest.raises(DatasetError, match="BM_2.txt"):
        load_bm_graz(tmp_path)


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_bm_graz(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="no images"):
        load_monuseg(tmp_path)


# -- crchistophenotypes ---------------------------------------------------------------


def _crc_image(root: Path, split: str, name: str, detection, typed: dict) -> None:
    folder = root / split / name
    _png(folder / f"{name}.png")
    savemat(folder / f"{name}_detection.mat", {"detection": np.asarray(detection, float).reshape(-1, 2)})
    for kind in ("epithelial", "fibroblast", "inflammatory", "others"):
        savemat(folder / f"{name}_{kind}.mat", {"detection": np.asarray(typed.get(kind, []), float).reshape(-1, 2)})


def test_crc_converts_matlab_coordinates_and_keeps_types(tmp_path):
    _crc_image(
        tmp_path,
        "train",
        "img2",
        [(1, 1), (10.5, 20), (30, 40)],
        {"fibroblast": [(10.5, 20)], "epithelial": [(1, 1), (30, 40)]},
    )
    _crc_image(tmp_path, "train", "img10", [], {})
    _crc_image(tmp_path, "test", "img3", [(5, 6)], {"others": [(5, 6)]})
    images = load_crchistophenotypes(tmp_path, splits=("train", "test"))
    assert [(i.split, i.image_id) for i in images] == [("train", "img2"), ("train", "img10"), ("test", "img3")]
    first = images[0]
    np.testing.assert_allclose(first.centres, [[0, 0], [9.5, 19], [29, 39]])
    np.testing.assert_allclose(first.labelled_centres, [[0, 0], [29, 39], [9.5, 19]])
    assert first.cell_labels.tolist() == ["epithelial", "epithelial", "fibroblast"]
    assert images[1].centres.shape == (0, 2) and images[1].cell_labels.shape == (0,)
    assert len(load_crchistophenotypes(tmp_path, splits=("test",))) == 1


def test_crc_missing_split_folder(tmp_path):
    _crc_image(tmp_path, "train", "img1", [(1, 1)], {})
    with pytest.raises(DatasetError, match="validation"):
        load_crchistophenotypes(tmp_path)


def test_crc_malformed_mat_names_the_file(tmp_path):
    _crc_image(tmp_path, "train", "img1", [(1, 1)], {})
    savemat(tmp_path / "train" / "img1" / "img1_others.mat", {"points": np.ones((2, 2))})
    with pytest.raises(DatasetError, match="img1_others.mat.*no 'detection'"):
        load_crchistophenotypes(tmp_path, splits=("train",))
    savemat(tmp_path / "train" / "img1" / "img1_others.mat", {"detection": np.ones((2, 3))})
    with pytest.raises(DatasetError, match="img1_others.mat.*N×2"):
        load_crchistophenotypes(tmp_path, splits=("train",))
    (tmp_path / "train" / "img1" / "img1_others.mat").write_bytes(b"not a mat file")
    with pytest.raises(DatasetError, match="img1_others.mat"):
        load_crchistophenotypes(tmp_path, splits=("train",))


# -- consep ---------------------------------------------------------------------------


def _consep_patch(root: Path, split: str, name: str, types, centroids, instances: np.ndarray) -> Path:
    """Write one CoNSeP patch (image, 16-bit instance map, labels .mat); return the .mat."""
    _png(root / split / "images" / "x.png", instances.shape)
    Image.open(root / split / "images" / "x.png").save(root / split / "images" / f"{name}.jpg")
    (root / split / "images" / "x.png").unlink()
    (root / split / "instances").mkdir(parents=True, exist_ok=True)
    Image.fromarray(instances.astype(np.uint16)).save(root / split / "instances" / f"{name}.png")
    mat = root / split / "labels" / f"{name}.mat"
    mat.parent.mkdir(parents=True, exist_ok=True)
    savemat(mat, {"inst_type": np.asarray(types).reshape(-1, 1), "inst_centroid": np.asarray(centroids, float)})
    return mat


def _two_nuclei() -> np.ndarray:
    instances = np.zeros((20, 30), np.uint16)
    instances[2:5, 3:8] = 1  # centroid (5, 3)
    instances[10:15, 20:26] = 2  # centroid (22.5, 12)
    return instances


def test_consep_types_centres_instances_and_splits(tmp_path):
    _consep_patch(tmp_path, "train", "train_1_000", [2, 4], [(5, 3), (22.5, 12)], _two_nuclei())
    _consep_patch(tmp_path, "test", "test_1_000", np.zeros((0, 1)), np.zeros((0, 0)), np.zeros((20, 30)))
    images = load_consep(tmp_path)
    assert [(i.split, i.image_id) for i in images] == [("train", "train_1_000"), ("test", "test_1_000")]
    first, empty = images
    assert first.dataset == "consep" and first.mpp == 0.25
    np.testing.assert_allclose(first.centres, [[5, 3], [22.5, 12]])
    np.testing.assert_array_equal(first.labelled_centres, first.centres)
    assert first.cell_labels.tolist() == ["inflammatory", "spindle"]
    np.testing.assert_array_equal(first.label_mask(), _two_nuclei())
    assert empty.centres.shape == (0, 2) and empty.cell_labels.shape == (0,)
    assert len(load_consep(tmp_path, splits=("test",))) == 1
    assert DATASETS["consep"].cell_types == CONSEP_CELL_TYPES
    assert DATASETS["crchistophenotypes"].cell_types == CRC_CELL_TYPES and DATASETS["bm_graz"].cell_types == ()


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        ({"inst_type": np.array([[2]])}, "no 'inst_centroid'"),
        ({"inst_type": np.array([[2], [4], [1]]), "inst_centroid": np.ones((2, 2))}, "3 rows but 'inst_centroid' 2"),
        ({"inst_type": np.array([[2], [5]]), "inst_centroid": np.ones((2, 2))}, r"\[5\], expected 1-4"),
        ({"inst_type": np.array([[2], [4]]), "inst_centroid": np.ones((2, 3))}, "N×2"),
        ({"inst_type": np.array([[2]]), "inst_centroid": np.ones((1, 2))}, "ids up to 2"),
        ({"inst_type": np.array([[2], [4]]), "inst_centroid": [(5, 3), (30, 12)]}, "outside the 30×20"),
    ],
)
def test_consep_malformed_labels_name_the_file(tmp_path, contents, message):
    mat = _consep_patch(tmp_path, "train", "train_3_007", [2, 4], [(5, 3), (22.5, 12)], _two_nuclei())
    savemat(mat, contents)
    with pytest.raises(DatasetError, match=message) as info:
        load_consep(tmp_path, splits=("train",))
    assert "train_3_007.mat" in str(info.value)


def test_consep_unreadable_or_missing_files_are_named(tmp_path):
    mat = _consep_patch(tmp_path, "train", "train_3_007", [2, 4], [(5, 3), (22.5, 12)], _two_nuclei())
    mat.write_bytes(b"not a mat file")
    with pytest.raises(DatasetError, match="train_3_007.mat.*cannot read"):
        load_consep(tmp_path, splits=("train",))
    mat.unlink()
    with pytest.raises(DatasetError, match="train_3_007.mat"):
        load_consep(tmp_path, splits=("train",))
    _consep_patch(tmp_path, "train", "train_3_007", [2, 4], [(5, 3), (22.5, 12)], _two_nuclei())
    (tmp_path / "train" / "instances" / "train_3_007.png").unlink()
    with pytest.raises(DatasetError, match="train_3_007.png.*not found"):
        load_consep(tmp_path, splits=("train",))


# -- monuseg --------------------------------------------------------------------------

_XML = """<Annotations MicronsPerPixel="{mpp}">
 <Annotation Id="1"><Regions>
  <RegionAttributeHeaders><AttributeHeader Id="9999" Name="Region"/></RegionAttributeHeaders>
  {regions}
 </Regions></Annotation>
</Annotations>"""


def _region(vertices) -> str:
    inner = "".join(f'<Vertex X="{x}" Y="{y}"/>' for x, y in vertices)
    return f'<Region Id="1"><Vertices>{inner}</Vertices></Region>'


def _monuseg(root: Path, regions, mpp="0.25") -> Path:
    _png(root / "TCGA-1.png", (20, 30))
    image = Image.open(root / "TCGA-1.png")
    image.save(root / "TCGA-1.tif")
    (root / "TCGA-1.png").unlink()
    (root / "TCGA-1.xml").write_text(_XML.format(mpp=mpp, regions="".join(regions)))
    return root


def test_monuseg_outlines_centres_mask_and_mpp(tmp_path):
    square = [(2, 2), (8, 2), (8, 6), (2, 6)]  # columns 2..8, rows 2..6
    overlapping = [(6, 4), (12, 4), (12, 10), (6, 10)]  # drawn later: wins the overlap
    (image,) = load_monuseg(_monuseg(tmp_path, [_region(square), _region(overlapping)]))
    assert image.mpp == pytest.approx(0.25)
    np.testing.assert_allclose(image.centres, [[5, 4], [9, 7]])
    mask = image.label_mask()
    assert mask.shape == (20, 30)
    assert mask[3, 3] == 1 and mask[5, 7] == 2 and mask[8, 11] == 2 and mask[0, 0] == 0
    assert set(np.unique(mask)) == {0, 1, 2}


def test_monuseg_without_pixel_size(tmp_path):
    root = _monuseg(tmp_path, [_region([(2, 2), (8, 2), (8, 6)])])
    xml = root / "TCGA-1.xml"
    xml.write_text(xml.read_text().replace(' MicronsPerPixel="0.25"', ""))
    assert load_monuseg(root)[0].mpp is None


@pytest.mark.parametrize(
    ("regions", "mpp", "message"),
    [
        ([_region([(2, 2), (8, 2)])], "0.25", "2 vertices"),
        (['<Region Id="4"><Vertices><Vertex X="1"/></Vertices></Region>'], "0.25", "numeric X and Y"),
        ([_region([(2, 2), (8, 2), (8, 6)])], "abc", "MicronsPerPixel"),
    ],
)
def test_monuseg_malformed_xml_names_the_file(tmp_path, regions, mpp, message):
    root = _monuseg(tmp_path, regions, mpp)
    with pytest.raises(DatasetError, match=message) as info:
        load_monuseg(root)
    assert "TCGA-1.xml" in str(info.value)


def test_monuseg_unparsable_xml(tmp_path):
    root = _monuseg(tmp_path, [])
    (root / "TCGA-1.xml").write_text("<Annotations><Region>")
    with pytest.raises(DatasetError, match="TCGA-1.xml.*cannot parse"):
        load_monuseg(root)


def test_label_mask_needs_outlines(tmp_path):
    record = AnnotatedImage(dataset="bm_graz", image_id="a", path=tmp_path / "a.png")
    with pytest.raises(DatasetError, match="no nucleus outlines"):
        record.label_mask()


def test_polygon_centroid_and_rasterise():
    triangle = np.array([(0, 0), (6, 0), (0, 3)], float)
    np.testing.assert_allclose(polygon_centroid(triangle), [2, 1])
    np.testing.assert_allclose(polygon_centroid(np.array([(1, 1), (3, 3), (5, 5)], float)), [3, 3])
    mask = rasterise_outlines([np.array([(-5, -5), (3, -5), (3, 3), (-5, 3)], float)], (10, 10))
    assert mask[:4, :4].all() and mask.sum() == 16  # clipped to the image


# -- kather2016 -----------------------------------------------------------------------


def test_kather_classes_from_folder_names(tmp_path):
    for folder, names in {"01_TUMOR": ["a.tif", "b.tif"], "07_ADIPOSE": ["c.tif"]}.items():
        for name in names:
            _png(tmp_path / folder / "x.png", (15, 15))
            Image.open(tmp_path / folder / "x.png").save(tmp_path / folder / name)
            (tmp_path / folder / "x.png").unlink()
    images = load_kather2016(tmp_path)
    assert [(i.image_id, i.image_label) for i in images] == [("a", "TUMOR"), ("b", "TUMOR"), ("c", "ADIPOSE")]
    assert images[0].mpp == pytest.approx(0.495)
    assert images[0].centres is None
    assert images[2].read_rgb().shape == (15, 15, 3)


# -- the real datasets ----------------------------------------------------------------


def _load(data_root, name, **options):
    spec = DATASETS[name]
    return spec.loader(data_root / spec.folder, **options)


@pytest.mark.realdata
def test_real_bm_graz(data_root):
    images = _load(data_root, "bm_graz")
    assert len(images) == 11
    assert sum(len(i.centres) for i in images) == 4205
    rgb = images[0].read_rgb()
    assert rgb.shape == (1200, 1200, 3)
    # The dots sit on nuclei: darker than the image on average (checks x/y order).
    x, y = np.round(images[0].centres).astype(int).T
    assert rgb[y, x].mean() < rgb.mean() - 20


@pytest.mark.realdata
def test_real_crchistophenotypes(data_root):
    images = _load(data_root, "crchistophenotypes")
    assert len(images) == 100
    assert {i.split for i in images} == {"train", "validation", "test"}
    assert len({i.image_id for i in images}) == 100
    assert sum(len(i.centres) for i in images) == 29756
    labels = np.concatenate([i.cell_labels for i in images])
    kinds, counts = np.unique(labels, return_counts=True)
    assert dict(zip(kinds.tolist(), counts.tolist())) == {
        "epithelial": 7722, "fibroblast": 5712, "inflammatory": 6971, "others": 2039,
    }
    first = next(i for i in images if len(i.labelled_centres) > 50)
    rgb = first.read_rgb()
    assert rgb.shape == (500, 500, 3)
    x, y = np.clip(np.round(first.labelled_centres), 0, 499).astype(int).T
    assert rgb[y, x].mean() < rgb.mean() - 20
    assert len(_load(data_root, "crchistophenotypes", splits=("test",))) == 20


@pytest.mark.realdata
def test_real_monuseg(data_root):
    images = _load(data_root, "monuseg")
    assert len(images) == 14
    assert sum(len(i.centres) for i in images) == 6697
    assert all(0.24 < i.mpp < 0.26 for i in images)
    image = images[0]
    mask = image.label_mask()
    rgb = image.read_rgb()
    assert mask.shape == rgb.shape[:2] == (1000, 1000)
    assert mask.max() == len(image.centres)
    # Nuclei are darker than the rest (checks that X is the column).
    assert rgb[mask > 0].mean() < rgb[mask == 0].mean() - 40


@pytest.mark.realdata
def test_real_kather2016(data_root):
    images = _load(data_root, "kather2016")
    assert len(images) == 800
    labels, counts = np.unique([i.image_label for i in images], return_counts=True)
    assert labels.tolist() == sorted(["TUMOR", "STROMA", "COMPLEX", "LYMPHO", "DEBRIS", "MUCOSA", "ADIPOSE", "EMPTY"])
    assert (counts == 100).all()
    assert images[0].read_rgb().shape == (150, 150, 3)


@pytest.mark.realdata
def test_real_consep(data_root):
    from scipy.io import loadmat

    images = _load(data_root, "consep")
    assert len(images) == 656 and len({i.image_id for i in images}) == 656
    assert [len(_load(data_root, "consep", splits=(split,))) for split in ("train", "test")] == [432, 224]
    assert sum(len(i.centres) for i in images) == 28546
    assert set(np.concatenate([i.cell_labels for i in images])) == set(CONSEP_CELL_TYPES)
    for image in [i for i in images if len(i.centres) > 20][:2]:
        mat = loadmat(data_root / "consep" / image.split / "labels" / f"{image.image_id}.mat")
        assert len(image.centres) == len(image.cell_labels) == len(mat["inst_type"]) == len(mat["inst_centroid"])
        assert set(image.cell_labels) <= set(CONSEP_CELL_TYPES)
        assert image.read_rgb().shape == (256, 256, 3)
        mask = image.label_mask()
        assert mask.shape == (256, 256) and mask.max() == len(image.centres)
        assert ((image.centres >= 0) & (image.centres <= 255)).all()
        # Row i - 1 is nucleus i, x the column: the centroids fall on their own nucleus.
        x, y = np.round(image.centres).astype(int).T
        assert (mask[y, x] == np.arange(1, len(x) + 1)).mean() > 0.9
