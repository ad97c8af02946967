"""Property-based tests (hypothesis): the image readers, the cell store and the config loaders on any input.

Each reader either gives what it promises or raises a ``CellganError`` naming the file;
nothing else escapes. Example counts are small so that the file runs in seconds.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from cellgan.config import read_yaml
from cellgan.errors import CellganError
from cellgan.io.cellstore import CellStore, shard_identity
from cellgan.io.files import safe_image_id
from cellgan.io.images import read_rgb, to_rgb_uint8
from cellgan.model.config import TrainConfig

FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _png_bytes(seed: int, size: int = 12) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _tiff_bytes(seed: int, size: int = 12) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))
    return buffer.getvalue()


@st.composite
def damaged_images(draw):
    """A small valid PNG or TIFF, cut short and with some bytes changed, under either suffix."""
    data = bytearray((_png_bytes if draw(st.booleans()) else _tiff_bytes)(draw(st.integers(0, 3))))
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(1, len(data)))
    return bytes(data[:cut]), draw(st.sampled_from([".png", ".tif", ".jpg"]))


def _read(data: bytes, suffix: str):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"image{suffix}"
        path.write_bytes(data)
        try:
            rgb = read_rgb(path, max_pixels=10_000)
        except CellganError as err:
            assert str(err).startswith(str(path)), err
            return None
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.size > 0
    return rgb


@FEW
@given(damaged_images())
def test_read_rgb_gives_rgb_or_one_named_error_for_damaged_files(image):
    _read(*image)


@FEW
@given(st.binary(min_size=1, max_size=300), st.sampled_from([".png", ".tif", ".bmp"]))
def test_read_rgb_gives_rgb_or_one_named_error_for_any_bytes(data, suffix):
    _read(data, suffix)


@FEW
@given(
    arrays(
        dtype=st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_]),
        shape=st.tuples(st.integers(1, 6), st.integers(1, 6)) | st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 5)),
    )
)
def test_to_rgb_uint8_converts_or_refuses_any_array(array):
    try:
        rgb = to_rgb_uint8(array, name="x")
    except (CellganError, ValueError) as err:
        assert str(err).startswith("x"), err
        return
    channels_first = array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[2] not in (1, 3, 4)
    assert rgb.dtype == np.uint8 and rgb.shape == ((*array.shape[1:], 3) if channels_first else (*array.shape[:2], 3))


@st.composite
def shards(draw):
    n = draw(st.integers(0, 4))
    floats = st.floats(-1e6, 1e6, allow_nan=False)
    table = pd.DataFrame(
        {
            "cell_id": np.arange(n),
            **{c: [draw(floats) for _ in range(n)] for c in ("centroid_x", "centroid_y", "area_px", "perimeter_px",
                                                               "eccentricity", "solidity", "mean_haematoxylin",
                                                               "mean_eosin")},  # fmt: skip
            **{c: [draw(st.integers(0, 10_000)) for _ in range(n)] for c in ("bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1")},
            "source": ["segment"] * n,
            "label": [draw(st.none() | st.text(max_size=8)) for _ in range(n)],
        }
    )
    patches = np.random.default_rng(draw(st.integers(0, 99))).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    return draw(st.text(min_size=1, max_size=20)), table, patches


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shards(), st.dictionaries(st.text(max_size=5), st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                                 max_size=3))  # fmt: skip
def test_a_shard_reads_back_as_written_with_its_identity(shard, options):
    name, table, patches = shard
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "source.bin"
        source.write_bytes(name.encode("utf-8", "surrogatepass"))
        store = CellStore.create(Path(folder) / "cells", patch_mode="masked")
        image_id = safe_image_id(name)
        identity = shard_identity({"image": source}, options)
        with store.writing():
            store.write_image(image_id, table, patches, identity=identity)
        assert store.image_ids() == [image_id]
        back = store.read_table()
        assert back["cell_id"].tolist() == list(range(len(table))) and (back["image"] == image_id).all()
        np.testing.assert_array_equal(back["centroid_x"].to_numpy(), table["centroid_x"].to_numpy(dtype=float))
        assert back["label"].tolist() == table["label"].tolist()
        np.testing.assert_array_equal(store.read_patches(), patches)
        assert store.read_identity(image_id) == identity and store.has_image(image_id, identity)


_YAML_PIECES = st.sampled_from(
    ["train:", " {", "}", "[", "]", "categories: ", "4", "1e8", "&a ", "*a", "!!python/object ", "- ", ": ", "\n",
     "  ", "'", '"', "width", ",", "#", "null", "<<: ", "\t", "?", "%YAML 1.1\n", "---\n", "é", "\x00"]  # fmt: skip
)


@FEW
@given(st.lists(_YAML_PIECES, max_size=20).map("".join) | st.text(max_size=60))
def test_read_yaml_gives_data_or_one_config_error(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            read_yaml(path)
        except CellganError as err:
            assert str(err).startswith(str(path)) and "\n" not in str(err), err


_VALUES = st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats() | st.text(max_size=4) | st.lists(
    st.integers(0, 3), max_size=3
)


@FEW
@given(st.dictionaries(st.sampled_from(sorted(TrainConfig().to_dict())), _VALUES, max_size=4))
def test_train_config_from_any_values_is_a_config_or_one_config_error(options):
    try:
        config = TrainConfig.from_dict(options, source="c.yaml")
    except CellganError as err:
        assert "\n" not in str(err) and len(str(err)) < 400, err
        return
    assert TrainConfig.from_dict(config.to_dict()) == config
