"""Set a damaged outbox aside, once, and only the damaged one.

When ``cache.db`` cannot be opened as a database (garbage written over it, a bad disk),
it is renamed ``cache.db.corrupt-<time>-<pid>`` (with its ``-wal`` and ``-shm``) and a new
outbox starts at once. Several processes can find the same damage at the same moment:
under an exclusive lock each first checks that the file *now* at ``cache.db`` is still
damaged, so a late one never moves aside the new outbox another process just made (and
is writing to). The files moved aside stay until the user removes them: inventory.py
lists them, and ``stats``, ``sync`` and ``doctor`` name them.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time

__all__ = ["quarantine"]

LOCK_NAME = "quarantine.lock"
#: The longest a process waits for another one's check and rename (milliseconds of work).
LOCK_WAIT_S = 5.0


def _damaged(path: str) -> bool:
    """Does ``path`` exist and fail to open as an SQLite database (read-only check)?"""
    if not os.path.exists(path):
        return False
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            connection.close()
    except sqlite3.OperationalError:
        return False  # busy or locked: not damage
    except sqlite3.DatabaseError:
        return True
    return False


def quarantine(directory: str) -> str | None:
    """Rename a damaged ``cache.db`` of ``directory`` aside; the new name, or None when the
    file there is no longer damaged (another process replaced it). Raises OSError."""
    fd = os.open(os.path.join(directory, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)  # another process is checking: its part takes milliseconds
        path = os.path.join(directory, "cache.db")
        if not _damaged(path):
            return None
        target = f"{path}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        for suffix in ("-wal", "-shm", ""):  # the database last: its absence says "start anew"
            if os.path.exists(path + suffix):
                os.replace(path + suffix, target + suffix)
        return target
    finally:
        os.close(fd)
