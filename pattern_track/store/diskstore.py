"""The SQLite-backed ``diskcache.Cache`` under each outbox: the only module that imports diskcache.

``open_cache()`` opens one with our settings (eviction off, chunks kept inside SQLite, a
small page cache) and makes its files private; ``storage_errors()`` turns what diskcache
and SQLite raise into ``OutboxError``, and holds the fork lock while inside SQLite.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from typing import Any

import diskcache

from ..errors import OutboxError
from . import forksafe

__all__ = ["STORAGE_ERRORS", "open_cache", "storage_errors"]

#: What diskcache and SQLite raise on a busy, full, corrupt or vanished database.
STORAGE_ERRORS = (diskcache.Timeout, sqlite3.Error, OSError)


@contextlib.contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Our errors for SQLite's; and fork() waits while we are inside SQLite (forksafe.py)."""
    try:
        with forksafe.guard:
            yield
    except STORAGE_ERRORS as exc:
        raise OutboxError(f"{what}: {type(exc).__name__}: {exc}") from exc


def open_cache(directory: str, *, timeout_s: float) -> Any:
    """The cache in ``directory`` (made already), its files made private; ``OutboxError``
    if it cannot be opened."""
    with storage_errors("open"):
        cache = diskcache.Cache(
            directory, timeout=timeout_s, eviction_policy="none",
            size_limit=2**62, cull_limit=0, statistics=False,
            # Chunks stay inside SQLite (one atomic write) rather than as side files,
            # which cost a file, a remove and a rmdir per chunk.
            disk_min_file_size=4 * 2**20,
            # A queue read at its head and written at its tail needs few pages cached:
            # diskcache's default (2**13 pages, 32 MiB) grew RSS by ~30 MB once the
            # outbox neared its cap. 1024 pages is 4 MiB.
            sqlite_cache_size=2**10,
        )
    _make_private(directory)
    return cache


def _make_private(directory: str) -> None:
    for name in os.listdir(directory):
        full = os.path.join(directory, name)
        with contextlib.suppress(OSError):
            if os.stat(full).st_mode & 0o077:
                os.chmod(full, 0o700 if os.path.isdir(full) else 0o600)
