"""Writing files safely, and names that are safe as file names.

Every file cellgan writes goes through :func:`atomic_write`: a reader (or a run
killed half-way) sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from pathlib import Path

__all__ = ["atomic_write", "safe_image_id"]

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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
