"""fetch_bm_graz against local zip archives served by file:// URLs (no network)."""

from __future__ import annotations

import hashlib
import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from cellgan.io.download import BM_GRAZ_IMAGES, DownloadError, default_cache_dir, fetch_bm_graz

TOP = "MICCAI2015-master/"


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _dots(n: int) -> bytes:
    return (f"{n} 3 0\n" + "".join(f"{i} {2 * i} 1\n" for i in range(n))).encode()


def _members(skip: str | None = None) -> dict[str, bytes]:
    members = {TOP + "README.md": b"# MICCAI2015\n", TOP + "code/README.md": b"code\n"}
    for i, stem in enumerate(BM_GRAZ_IMAGES):
        if stem == skip:
            continue
        members[f"{TOP}data/BM_GRAZ/source/{stem}.png"] = _png(i)
        members[f"{TOP}data/BM_GRAZ/annotations/{stem}.txt"] = _dots(i + 1)
        members[f"{TOP}data/BM_GRAZ/annotations/{stem}.png"] = _png(100 + i)  # dot images: not wanted
        members[f"{TOP}data/BM_GRAZ/target/{stem}.png"] = _png(200 + i)  # not wanted
    return members


def _zip(path, members) -> str:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path.as_uri()


def _no_leftovers(cache):
    return not [p for p in cache.iterdir() if p.name.startswith(".")]


def test_fetch_extracts_only_images_and_dots(tmp_path, capsys):
    members = _members()
    url = _zip(tmp_path / "archive.zip", members)
    root = fetch_bm_graz(tmp_path / "cache", url=url, progress=False)
    assert root == tmp_path / "cache" / "bm_graz"
    assert sorted(p.name for p in (root / "source").iterdir()) == [f"{s}.png" for s in BM_GRAZ_IMAGES]
    assert sorted(p.name for p in (root / "annotations").iterdir()) == [f"{s}.txt" for s in BM_GRAZ_IMAGES]
    assert sorted(p.name for p in root.iterdir()) == ["annotations", "source"]
    stem = BM_GRAZ_IMAGES[3]
    assert (root / "source" / f"{stem}.png").read_bytes() == members[f"{TOP}data/BM_GRAZ/source/{stem}.png"]
    assert (root / "annotations" / f"{stem}.txt").read_bytes() == _dots(4)
    err = capsys.readouterr().err
    size_mb = (tmp_path / "archive.zip").stat().st_size / 1e6
    assert f"downloading {url} ({size_mb:.1f} MB)" in err
    assert _no_leftovers(tmp_path / "cache")
    # a second call finds the complete copy and downloads nothing
    assert fetch_bm_graz(tmp_path / "cache", url=(tmp_path / "gone.zip").as_uri(), progress=False) == root


def test_sha256_is_checked(tmp_path):
    url = _zip(tmp_path / "archive.zip", _members())
    digest = hashlib.sha256((tmp_path / "archive.zip").read_bytes()).hexdigest()
    with pytest.raises(DownloadError, match="SHA-256"):
        fetch_bm_graz(tmp_path / "cache", url=url, expected_sha256="0" * 64, progress=False)
    assert not (tmp_path / "cache" / "bm_graz").exists() and _no_leftovers(tmp_path / "cache")
    assert fetch_bm_graz(tmp_path / "cache", url=url, expected_sha256=digest.upper(), progress=False).is_dir()


def test_incomplete_copy_is_replaced(tmp_path):
    url = _zip(tmp_path / "archive.zip", _members())
    partial = tmp_path / "cache" / "bm_graz" / "source"
    partial.mkdir(parents=True)
    (partial / "junk.png").write_bytes(b"x")
    root = fetch_bm_graz(tmp_path / "cache", url=url, progress=False)
    assert not (root / "source" / "junk.png").exists()
    assert len(list((root / "source").iterdir())) == len(BM_GRAZ_IMAGES)
    assert _no_leftovers(tmp_path / "cache")


@pytest.mark.parametrize(
    "members, message",
    [
        (_members(skip=BM_GRAZ_IMAGES[5]), "lacks 2 BM_GRAZ files"),
        ({**_members(), f"{TOP}data/BM_GRAZ/annotations/{BM_GRAZ_IMAGES[0]}.txt": b"5 3 0\n1 2 1\n"}, "announces 5"),
        ({**_members(), f"{TOP}data/BM_GRAZ/source/{BM_GRAZ_IMAGES[0]}.png": b"<html>"}, "not a PNG"),
    ],
)
def test_bad_archives(tmp_path, members, message):
    url = _zip(tmp_path / "archive.zip", members)
    with pytest.raises(DownloadError, match=message):
        fetch_bm_graz(tmp_path / "cache", url=url, progress=False)
    assert not (tmp_path / "cache" / "bm_graz").exists() and _no_leftovers(tmp_path / "cache")


def test_not_a_zip_and_missing_url(tmp_path):
    (tmp_path / "page.zip").write_text("<html>rate limited</html>")
    with pytest.raises(DownloadError, match="not a readable zip"):
        fetch_bm_graz(tmp_path / "cache", url=(tmp_path / "page.zip").as_uri(), progress=False)
    with pytest.raises(DownloadError, match="cannot download"):
        fetch_bm_graz(tmp_path / "cache", url=(tmp_path / "nothing.zip").as_uri(), progress=False)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("CELLGAN_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("CELLGAN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "cellgan"


@pytest.mark.realdata
def test_fetch_from_an_archive_of_the_real_files(data_root, tmp_path):
    """The real BM_GRAZ files, zipped in the repository's layout, come back byte for byte."""
    source = data_root / "bm_graz"
    members = {}
    for stem in BM_GRAZ_IMAGES:
        members[f"{TOP}data/BM_GRAZ/source/{stem}.png"] = (source / "source" / f"{stem}.png").read_bytes()
        members[f"{TOP}data/BM_GRAZ/annotations/{stem}.txt"] = (source / "annotations" / f"{stem}.txt").read_bytes()
    archive = tmp_path / "real.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    root = fetch_bm_graz(tmp_path / "cache", url=archive.as_uri(), progress=False)
    for sub, suffix in (("source", ".png"), ("annotations", ".txt")):
        for stem in BM_GRAZ_IMAGES:
            assert (root / sub / f"{stem}{suffix}").read_bytes() == (source / sub / f"{stem}{suffix}").read_bytes()
