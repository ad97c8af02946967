"""Writing files safely, reading arrays safely, and names that are safe as file names.

Every file cellgan writes goes through :func:`atomic_write`: a reader (or a run
killed half-way, or a write that fails on a full disk) sees the old file or the
new one, never half of one. Every ``.npy`` array cellgan reads goes through
:func:`load_npy`, which checks the header against the file's size first.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
import unicodedata
from pathlib import Path

from cellgan.errors import CellganError

__all__ = ["FileWriteError", "atomic_write", "load_npy", "outside", "remove_temporaries", "safe_image_id"]


class FileWriteError(CellganError, OSError):
    """A file that could not be written (read-only folder, full disk); any older file of that name is kept."""

#: The longest image id, in UTF-8 bytes: room for a suffix, and for the
#: ``parent_stem`` form of :func:`cellgan.segment.image_ids`, within 255 bytes.
_MAX_ID_BYTES = 120


def safe_image_id(name: str) -> str:
    """Return ``name`` reduced to characters that are safe in a file name.

    Letters and digits of any script are kept (``细胞`` stays ``细胞``; the name is
    first put in Unicode NFC form, so that a name spelt with combining accents gives
    the same id), as are ``.``, ``_`` and ``-``; every other run of characters
    becomes one ``_``, and leading or trailing dots and underscores go. A name with
    nothing left (``★★★``) becomes ``image_`` and the first 10 hex digits of its
    SHA-256: stable, and different for different names. An id longer than
    :data:`_MAX_ID_BYTES` (UTF-8) is cut and ends in that hash instead, so that the
    store's file names stay within the file system's 255 bytes.

    Parameters
    ----------
    name : str
        Usually a file's stem; may hold undecodable bytes as surrogate escapes.

    Returns
    -------
    str
        Non-empty, without path separators.
    """
    name = unicodedata.normalize("NFC", name)
    cleaned = re.sub(r"[^\w.-]+", "_", name).strip("._")
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    if not cleaned:
        return f"image_{digest}"
    if len(cleaned.encode()) > _MAX_ID_BYTES:
        cut = cleaned.encode()[: _MAX_ID_BYTES - 11].decode(errors="ignore")
        return f"{cut}_{digest}"
    return cleaned


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``.

    The temporary file sits in the same directory (same file system) and keeps
    ``path``'s suffix so that writers that dispatch on it still work. It gets the
    permissions a plain ``open`` would give (``0o666`` less the process umask).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    except OSError as err:
        raise FileWriteError(f"{path}: cannot write ({err.strerror or err})") from err
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, CellganError):
            raise FileWriteError(f"{path}: cannot write ({err.strerror or err})") from err
        raise


#: The temporary files of :func:`atomic_write` (``mkstemp``'s 8 random characters).
_TEMPORARY = re.compile(r"^\..*\.[a-z0-9_]{8}\.tmp(\.[^.]*)?$")


def remove_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files that writers killed inside :func:`atomic_write` left in ``folder``.

    Call it only while no other process writes there (:func:`cellgan.io.lock.folder_lock`).

    Returns
    -------
    list of Path
        The files deleted.
    """
    folder = Path(folder)
    found = [p for p in folder.iterdir() if _TEMPORARY.match(p.name) and p.is_file()] if folder.is_dir() else []
    for path in found:
        path.unlink(missing_ok=True)
    return found


def outside(paths, folder: Path) -> list[Path]:
    """``paths`` less those inside ``folder`` (resolved): an output folder is never read as input."""
    folder = Path(folder).resolve()
    return [p for p in map(Path, paths) if not p.resolve().is_relative_to(folder)]


def load_npy(path: Path, *, mmap: bool = False):
    """Load a ``.npy`` array once its header agrees with the file's size.

    A header is a few bytes that can claim any shape; checked first, a small
    file that claims hundreds of GiB is refused instead of being allocated.

    Parameters
    ----------
    path : Path
        A ``.npy`` file (format 1.0 or 2.0, as ``numpy.save`` writes).
    mmap : bool
        Map the file read-only instead of reading it.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    OSError
        The file cannot be read.
    ValueError
        Not a ``.npy`` file, an array of Python objects, or a header whose
        shape and dtype do not match the bytes that follow it.
    """
    import numpy as np

    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
        stored = os.fstat(f.fileno()).st_size - f.tell()
    if dtype.hasobject:
        raise ValueError("an array of Python objects, refused")
    claimed = math.prod(shape) * dtype.itemsize
    if claimed != stored:
        raise ValueError(f"its header claims {shape} {dtype} ({claimed:,} bytes) but {stored:,} bytes follow it")
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def _current_umask() -> int:
    """The process umask, read without changing it (Linux: /proc; elsewhere set and restored)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
