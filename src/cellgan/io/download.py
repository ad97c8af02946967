"""Download the public bone-marrow images (BM_GRAZ) for users without a local copy.

The 11 H&E images of Hu et al.'s Dataset A come from Kainz et al., "You Should Use
Regression to Detect Cells", MICCAI 2015, published in the GitHub repository
``pkainz/MICCAI2015`` (Apache-2.0) under ``data/BM_GRAZ/source/*.png`` with the
dot annotations in ``data/BM_GRAZ/annotations/*.txt``. :func:`fetch_bm_graz`
downloads the repository's archive once, checks it, and extracts only those
files into ``<cache>/bm_graz/source`` and ``<cache>/bm_graz/annotations`` — the
layout that :mod:`cellgan.io.datasets` reads.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from cellgan.errors import CellganError

__all__ = ["BM_GRAZ_IMAGES", "BM_GRAZ_URL", "DownloadError", "default_cache_dir", "fetch_bm_graz"]

#: GitHub's zip archive of the repository's default branch.
BM_GRAZ_URL = "https://github.com/pkainz/MICCAI2015/archive/refs/heads/master.zip"

#: The images of the dataset, each with ``source/<id>.png`` and ``annotations/<id>.txt``.
BM_GRAZ_IMAGES = (
    "BM_GRAZ_HE_0001_01",
    "BM_GRAZ_HE_0001_02",
    "BM_GRAZ_HE_0002_01",
    "BM_GRAZ_HE_0002_02",
    "BM_GRAZ_HE_0003_01",
    "BM_GRAZ_HE_0003_02",
    "BM_GRAZ_HE_0004_01",
    "BM_GRAZ_HE_0006_01",
    "BM_GRAZ_HE_0007_01",
    "BM_GRAZ_HE_0008_01",
    "BM_GRAZ_HE_0020_01",
)

#: Archive members to keep, under any top folder (GitHub names it ``MICCAI2015-<ref>``).
_MEMBER = re.compile(
    r"(?:^|/)data/BM_GRAZ/(source/BM_GRAZ_HE_\d{4}_\d{2}\.png|annotations/BM_GRAZ_HE_\d{4}_\d{2}\.txt)$"
)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHUNK = 1 << 20


class DownloadError(CellganError, RuntimeError):
    """A download that failed, or an archive that is not what was expected."""


def default_cache_dir() -> Path:
    """``$CELLGAN_CACHE_DIR``, else ``$XDG_CACHE_HOME/cellgan``, else ``~/.cache/cellgan``."""
    if os.environ.get("CELLGAN_CACHE_DIR"):
        return Path(os.environ["CELLGAN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cellgan"


def fetch_bm_graz(
    cache_dir: Path | None = None,
    *,
    url: str = BM_GRAZ_URL,
    expected_sha256: str | None = None,
    progress: bool = True,
) -> Path:
    """Return the folder of the BM_GRAZ images, downloading them on first use.

    Parameters
    ----------
    cache_dir : Path, optional
        Cache folder (default :func:`default_cache_dir`). The dataset goes to
        ``cache_dir/bm_graz``; when that is already complete nothing is
        downloaded.
    url : str
        Archive to download (any URL ``urllib`` opens, ``file://`` included).
    expected_sha256 : str, optional
        SHA-256 of the archive; a mismatch is an error. GitHub does not promise
        byte-identical archives over time, so by default the archive is checked
        by its content instead: every image of :data:`BM_GRAZ_IMAGES` must be
        there, each PNG must carry the PNG signature and each annotation file
        must hold as many dots as its header says.
    progress : bool
        Show a progress bar while downloading.

    Returns
    -------
    Path
        ``cache_dir/bm_graz``, holding ``source/*.png`` and ``annotations/*.txt``.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache_dir / "bm_graz"
    if _is_complete(target):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".bm_graz.") as work:
        work = Path(work)
        archive = work / "archive.zip"
        digest = _download(url, archive, progress=progress)
        if expected_sha256 is not None and digest != expected_sha256.strip().lower():
            raise DownloadError(f"{url}: SHA-256 {digest} differs from the expected {expected_sha256}")
        staging = work / "bm_graz"
        _extract_bm_graz(archive, staging, source=url)
        if target.exists():  # an incomplete earlier copy: move it aside, it is deleted with `work`
            os.replace(target, work / "stale")
        os.replace(staging, target)
    print(f"BM_GRAZ: {len(BM_GRAZ_IMAGES)} images in {target}", file=sys.stderr)
    return target


def _is_complete(root: Path) -> bool:
    return all(
        (root / "source" / f"{stem}.png").is_file() and (root / "annotations" / f"{stem}.txt").is_file()
        for stem in BM_GRAZ_IMAGES
    )


def _download(url: str, dest: Path, *, progress: bool) -> str:
    """Stream ``url`` into ``dest``; return the SHA-256 of the bytes."""
    from tqdm import tqdm

    try:
        response = urllib.request.urlopen(url, timeout=60)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise DownloadError(f"cannot download {url}: {err}") from err
    digest = hashlib.sha256()
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        size = f"{total / 1e6:.1f} MB" if total is not None else "size unknown"
        print(f"downloading {url} ({size}) to {dest.parent}", file=sys.stderr)
        with open(dest, "wb") as out, tqdm(
            total=total, unit="B", unit_scale=True, disable=not progress, file=sys.stderr
        ) as bar:
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            except OSError as err:
                raise DownloadError(f"download of {url} failed: {err}") from err
    received = dest.stat().st_size
    if total is not None and received != total:
        raise DownloadError(f"{url}: received {received} bytes of {total}")
    return digest.hexdigest()


def _extract_bm_graz(archive: Path, dest: Path, *, source: str) -> None:
    """Extract the BM_GRAZ images and dot files of ``archive`` into ``dest`` and check them."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = {}
            for info in zf.infolist():
                match = _MEMBER.search(info.filename)
                if match and not info.is_dir():
                    members[match.group(1)] = info
            wanted = [f"source/{s}.png" for s in BM_GRAZ_IMAGES] + [f"annotations/{s}.txt" for s in BM_GRAZ_IMAGES]
            missing = [name for name in wanted if name not in members]
            if missing:
                raise DownloadError(f"{source}: the archive lacks {len(missing)} BM_GRAZ files, e.g. {missing[:3]}")
            for name in wanted:
                data = zf.read(members[name])
                _check_member(name, data, source=source)
                path = dest / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as err:
        raise DownloadError(f"{source}: not a readable zip archive ({err})") from err


def _check_member(name: str, data: bytes, *, source: str) -> None:
    if name.endswith(".png"):
        if not data.startswith(_PNG_SIGNATURE):
            raise DownloadError(f"{source}: {name} is not a PNG file")
        return
    lines = data.decode("ascii", errors="replace").split()
    try:
        count = int(lines[0])
        dots = [int(float(v)) for v in lines[3:]]
    except (IndexError, ValueError):
        raise DownloadError(
            f"{source}: {name} is not a dot annotation file (header 'N 3 0', then 'x y k' lines)"
        ) from None
    if len(dots) != 3 * count:
        raise DownloadError(f"{source}: {name} announces {count} dots but holds {len(dots) // 3}")
