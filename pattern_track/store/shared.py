"""State the processes of one service share through its outbox: values, counters, leases.

``SharedState`` is the half of ``Outbox`` that the breaker, the health monitor and the
drain lease use (``MemoryState`` in state.py has the same surface, for when sharing is
off). Keys live under ``s:`` in the outbox's cache, beside the queue.
"""

from __future__ import annotations

import os
import time
from typing import Any

from .diskstore import storage_errors

__all__ = ["SharedState"]

_HOST = os.uname().nodename  # what socket.gethostname() returns, without importing socket


def _alive(owner: str) -> bool:
    """False only when ``owner`` ("host:pid:...") is a process of this host that is gone."""
    parts = owner.split(":")
    if len(parts) < 2 or parts[0] != _HOST or not parts[1].isdigit():
        return True
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class SharedState:
    """Shared values and leases over ``self._cache`` (set by ``Outbox``); every method
    raises ``OutboxError``, never a diskcache or sqlite3 error."""

    _cache: Any

    def get(self, key: str, default: Any = None) -> Any:
        with storage_errors("get"):
            return self._cache.get("s:" + key, default)

    def set(self, key: str, value: Any, expire_s: float | None = None) -> None:
        with storage_errors("set"):
            self._cache.set("s:" + key, value, expire=expire_s)

    def update(self, key: str, change: Any, default: Any = None) -> Any:
        """Replace shared value ``key`` by ``change(value)`` in one transaction (every process
        of the user sees one change after another); returns the new value."""
        with storage_errors("update"), self._cache.transact():
            value = change(self._cache.get("s:" + key, default))
            self._cache.set("s:" + key, value)
        return value

    def incr(self, key: str, delta: int = 1) -> int:
        with storage_errors("incr"):
            return self._cache.incr("s:" + key, delta)

    def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take or renew the lease ``name`` for ``ttl_s``; False if someone else holds it.

        Exclusive across processes whatever their TTLs: the time is read inside the write
        transaction (a holder that renewed while we waited for the lock is seen as such),
        and a holder is judged by its own TTL. Deadlines are in monotonic time (one clock
        for all processes on Linux), so wall clock jumps change nothing; a deadline further
        away than its holder's TTL can only come from before a reboot and counts as expired.
        Takeover happens only for an expired lease or a holder of this host that is gone.
        """
        key = "s:lease:" + name
        with storage_errors("lease"), self._cache.transact():
            now = time.monotonic()
            held = self._cache.get(key)
            if held is not None and held[0] != owner:
                holder_ttl = held[2] if len(held) > 2 else ttl_s
                if 0 < held[1] - now <= holder_ttl and _alive(held[0]):
                    return False
            self._cache.set(key, (owner, now + ttl_s, ttl_s))
        return True

    def release_lease(self, name: str, owner: str) -> None:
        key = "s:lease:" + name
        with storage_errors("lease"), self._cache.transact():
            held = self._cache.get(key)
            if held is not None and held[0] == owner:
                self._cache.delete(key)

    def lease_holder(self, name: str) -> str | None:
        """The live holder of lease ``name``, or None."""
        with storage_errors("lease"):
            held = self._cache.get("s:lease:" + name)
        if held is None or held[1] <= time.monotonic():
            return None
        return held[0]
