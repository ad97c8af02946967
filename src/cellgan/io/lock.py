"""One writer per output folder: a lock file that a cellgan process holds while it writes there.

The lock is the kernel's (``flock``) on ``<folder>/.cellgan.lock``: it goes with the
process that holds it, however that process ends, so a lock file left by a killed run
holds nothing and the next run takes it over. The file records who holds it, for the
message a second writer gets. Within one process the lock is re-entrant.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import socket
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from cellgan.errors import CellganError

__all__ = ["LOCK_NAME", "FolderLocked", "folder_lock"]

LOCK_NAME = ".cellgan.lock"

_held: dict[Path, int] = {}  # folder -> depth, for the folders this process holds
_held_guard = threading.Lock()


class FolderLocked(CellganError, RuntimeError):
    """An output folder another running cellgan process is writing."""


@contextmanager
def folder_lock(folder: Path):
    """Hold ``folder``'s lock (creating the folder) for the duration of the ``with`` block.

    Raises
    ------
    FolderLocked
        Another running process holds it; the message names that process.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = folder.resolve()
    with _held_guard:
        if key in _held:
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FolderLocked(
            f"{folder}: another cellgan process is writing here ({_holder(path)}); "
            "wait for it to finish, or use another output folder"
        ) from None
    try:
        os.ftruncate(fd, 0)
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(sys.argv)[:500],
            "since": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        os.write(fd, json.dumps(record).encode())
        with _held_guard:
            _held[key] = 1
        yield
    finally:
        with _held_guard:
            _held.pop(key, None)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _holder(path: Path) -> str:
    """Who holds the lock, from what the lock file records."""
    try:
        record = json.loads(path.read_text())
        return f"process {int(record['pid'])} on {record['host']} since {record['since']}: {record['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown process"
