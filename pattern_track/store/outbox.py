"""The durable outbox, dead letters and shared state: the only module that imports diskcache.

One SQLite-backed ``diskcache.Cache`` per service store (services.py: one directory per
service inside the cache directory), shared by every process of the user on the machine:

- ``q-<n>`` keys hold *chunks*: a list of serialised events with their attempt counts,
  appended at the back and drained from the front, so replay keeps order (a parent's
  creation before its modification). One write per chunk, not per event, keeps appends
  and acknowledgements cheap.
- ``d-<n>`` keys hold dead letters: an event the service refused, with its reason.
- ``s:*`` keys hold state shared between processes: counters, the breaker, the last
  health answer, leases.

Eviction is off (diskcache's default silently drops old entries); the caps here refuse
new events instead and the caller counts every refusal. The directory is created 0700
and refused if it is a symlink or belongs to someone else: it holds users' code.
Draining is at-least-once: a chunk is deleted only after the service acknowledged it,
under a drain lease that expires if its holder dies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from typing import Any, Iterator, NamedTuple

import diskcache

from ..process import forksafe
from .cachedir import prepare_directory
from ..errors import OutboxError

__all__ = ["Chunk", "Outbox"]

log = logging.getLogger(__name__)

QUEUE = "q"
DEAD = "d"
_PENDING_EVENTS = "s:pending_events"
_PENDING_BYTES = "s:pending_bytes"
_DEAD_COUNT = "s:dead_count"
_PARKED = "s:parked"
_PARKED_COUNT = "s:parked_count"
#: What diskcache and SQLite raise on a busy, full, corrupt or vanished database.
STORAGE_ERRORS = (diskcache.Timeout, sqlite3.Error, OSError)


class Chunk(NamedTuple):
    key: str
    id: str
    created: float
    events: list  # list[bytes]
    attempts: list  # list[int], one per event


@contextlib.contextmanager
def _storage_errors(what: str) -> Iterator[None]:
    """Our errors for SQLite's; and fork() waits while we are inside SQLite (forksafe.py)."""
    try:
        with forksafe.guard:
            yield
    except STORAGE_ERRORS as exc:
        raise OutboxError(f"{what}: {type(exc).__name__}: {exc}") from exc


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


_HOST = os.uname().nodename  # what socket.gethostname() returns, without importing socket


class Outbox:
    """Durable FIFO of event chunks plus dead letters and shared state.

    Every method raises ``OutboxError`` (never a diskcache or sqlite3 error) so callers
    have one thing to catch and count.
    """

    def __init__(self, directory: str, *, max_events: int, max_bytes: int, timeout_s: float = 1.0) -> None:
        self.directory = prepare_directory(directory)
        self.max_events = max_events
        self.max_bytes = max_bytes
        with _storage_errors("open"):
            self._cache = diskcache.Cache(
                self.directory, timeout=timeout_s, eviction_policy="none",
                size_limit=2**62, cull_limit=0, statistics=False,
                # Chunks stay inside SQLite (one atomic write) rather than as side files,
                # which cost a file, a remove and a rmdir per chunk.
                disk_min_file_size=4 * 2**20,
                # A queue read at its head and written at its tail needs few pages cached:
                # diskcache's default (2**13 pages, 32 MiB) grew RSS by ~30 MB once the
                # outbox neared its cap. 1024 pages is 4 MiB.
                sqlite_cache_size=2**10,
            )
        self._make_private()

    def _make_private(self) -> None:
        for name in os.listdir(self.directory):
            full = os.path.join(self.directory, name)
            with contextlib.suppress(OSError):
                if os.stat(full).st_mode & 0o077:
                    os.chmod(full, 0o700 if os.path.isdir(full) else 0o600)

    def close(self) -> None:
        with contextlib.suppress(*STORAGE_ERRORS):
            self._cache.close()

    # -- queue -------------------------------------------------------------------

    def append(self, events: list, attempts: list | None = None) -> bool:
        """Append one chunk of serialised events; False (nothing written) if over a cap."""
        return self.append_chunks(events, attempts, chunk_size=max(len(events), 1), partial=False) == len(events)

    def append_chunks(self, events: list, attempts: list | None = None, *, chunk_size: int,
                      keys: list | None = None, partial: bool = True) -> int:
        """Append ``events`` as chunks of ``chunk_size`` in one transaction.

        At a cap, the chunk that would pass it is cut to what fits (``partial=False``:
        left out whole), and the rest is not written. Returns how many events were written
        (a prefix of ``events``: the caller keeps or counts the rest). The keys of the
        chunks written are appended to ``keys`` if given.
        """
        if not events:
            return 0
        attempts = list(attempts) if attempts else [0] * len(events)
        now = time.time()
        taken = 0
        with _storage_errors("append"), self._cache.transact():
            cache = self._cache
            pending = cache.get(_PENDING_EVENTS, 0)
            pending_bytes = cache.get(_PENDING_BYTES, 0)
            for start in range(0, len(events), chunk_size):
                part = events[start:start + chunk_size]
                size = sum(len(e) for e in part)
                full = pending + len(part) > self.max_events or pending_bytes + size > self.max_bytes
                if full and not partial:
                    break
                if full:  # fill up to the cap exactly (a cap below chunk_size must still take some)
                    part, size = self._what_fits(part, self.max_events - pending, self.max_bytes - pending_bytes)
                    if not part:
                        break
                key = cache.push({"id": os.urandom(8).hex(), "t": now, "events": part,
                                  "attempts": attempts[start:start + len(part)]}, prefix=QUEUE)
                if keys is not None:
                    keys.append(key)
                pending += len(part)
                pending_bytes += size
                taken += len(part)
                if full:
                    break
            cache.set(_PENDING_EVENTS, pending)
            cache.set(_PENDING_BYTES, pending_bytes)
        return taken

    def front(self) -> Chunk | None:
        """The oldest chunk, or None when the outbox is empty."""
        with _storage_errors("peek"):
            key, value = self._cache.peek(prefix=QUEUE, side="front")
        if key is None:
            return None
        return Chunk(key, value["id"], value["t"], value["events"], value["attempts"])

    @staticmethod
    def _what_fits(part: list, events_left: int, bytes_left: int) -> tuple[list, int]:
        """The longest prefix of ``part`` within the room left, and its size in bytes."""
        size = n = 0
        for event in part[:max(events_left, 0)]:
            if size + len(event) > bytes_left:
                break
            size += len(event)
            n += 1
        return part[:n], size

    def front_key(self) -> str | None:
        """The key of the oldest chunk (keys sort in append order), or None if empty."""
        with _storage_errors("peek"):
            return self._cache.peek(prefix=QUEUE, side="front")[0]

    def front_chunks(self, max_events: int) -> list[Chunk]:
        """The oldest chunks, as many as fit in ``max_events`` (at least one if any).

        Chunk keys are consecutive (``push`` adds one to the last key), so after the front
        the next ones are read by key; a gap (left by ``cleanup``) just ends the batch.
        Many small chunks (one per hook call) are sent as one batch this way.
        """
        first = self.front()
        if first is None:
            return []
        chunks = [first]
        total = len(first.events)
        prefix, _, number = first.key.rpartition("-")
        key_number = int(number)
        while total < max_events:
            key_number += 1
            with _storage_errors("read"):
                value = self._cache.get(f"{prefix}-{key_number:015d}")
            if not value or total + len(value["events"]) > max_events:
                break
            chunks.append(Chunk(f"{prefix}-{key_number:015d}", value["id"], value["t"], value["events"], value["attempts"]))
            total += len(value["events"])
        return chunks

    def settle_many(self, settlements: list) -> None:
        """``settle`` several ``(chunk, keep, keep_attempts)`` in one transaction."""
        with _storage_errors("settle"), self._cache.transact():
            for chunk, keep, keep_attempts in settlements:
                self.settle(chunk, keep, keep_attempts)

    def settle(self, chunk: Chunk, keep: list, keep_attempts: list) -> bool:
        """Replace ``chunk`` by the events still to send (delete it if none).

        Only if the stored chunk is still the one read (its id matches): a drainer whose
        lease expired must not delete what another process wrote since.
        """
        removed = len(chunk.events) - len(keep)
        removed_bytes = sum(len(e) for e in chunk.events) - sum(len(e) for e in keep)
        with _storage_errors("settle"), self._cache.transact():
            cache = self._cache
            current = cache.get(chunk.key)
            if not current or current.get("id") != chunk.id:
                return False
            if keep:
                cache.set(chunk.key, dict(current, events=list(keep), attempts=list(keep_attempts)))
            else:
                cache.delete(chunk.key)
            cache.set(_PENDING_EVENTS, max(cache.get(_PENDING_EVENTS, 0) - removed, 0))
            cache.set(_PENDING_BYTES, max(cache.get(_PENDING_BYTES, 0) - removed_bytes, 0))
        return True

    def pending(self) -> int:
        """Events waiting in the outbox, across every process."""
        with _storage_errors("count"):
            return int(self._cache.get(_PENDING_EVENTS, 0))

    def pending_bytes(self) -> int:
        with _storage_errors("count"):
            return int(self._cache.get(_PENDING_BYTES, 0))

    def chunks(self) -> Iterator[Chunk]:
        """Every chunk, oldest first (for inspection and cleanup)."""
        with _storage_errors("scan"):
            keys = [k for k in self._cache.iterkeys() if isinstance(k, str) and k.startswith(QUEUE + "-")]
        for key in keys:
            with _storage_errors("read"):
                value = self._cache.get(key)
            if value:
                yield Chunk(key, value["id"], value["t"], value["events"], value["attempts"])

    # -- parked events (parking.py) ----------------------------------------------------

    def parked(self) -> list:
        """Events parked on their own schedule: ``[{event, attempts, not_before}]``, oldest first."""
        with _storage_errors("parked"):
            return list(self._cache.get(_PARKED, []))

    def set_parked(self, entries: list, *, moved_in: list = (), moved_out: list = ()) -> None:
        """Replace the parked list; ``moved_in`` events came from a chunk (settled as gone),
        ``moved_out`` events left for good (delivered or dead-lettered): pending counts follow."""
        delta = len(moved_in) - len(moved_out)
        delta_bytes = sum(len(e) for e in moved_in) - sum(len(e) for e in moved_out)
        with _storage_errors("parked"), self._cache.transact():
            cache = self._cache
            cache.set(_PARKED, list(entries))
            cache.set(_PARKED_COUNT, len(entries))
            if delta or delta_bytes:
                cache.set(_PENDING_EVENTS, max(cache.get(_PENDING_EVENTS, 0) + delta, 0))
                cache.set(_PENDING_BYTES, max(cache.get(_PENDING_BYTES, 0) + delta_bytes, 0))

    # -- dead letters ----------------------------------------------------------------

    def add_dead(self, event: bytes, reason: str, detail: str) -> None:
        with _storage_errors("dead letter"), self._cache.transact():
            self._cache.push({"t": time.time(), "event": event, "reason": reason, "detail": detail}, prefix=DEAD)
            self._cache.set(_DEAD_COUNT, self._cache.get(_DEAD_COUNT, 0) + 1)

    def dead_count(self) -> int:
        with _storage_errors("count"):
            return int(self._cache.get(_DEAD_COUNT, 0))

    def dead_letters(self) -> list[tuple[str, dict]]:
        with _storage_errors("scan"):
            keys = [k for k in self._cache.iterkeys() if isinstance(k, str) and k.startswith(DEAD + "-")]
            return [(k, v) for k in keys if (v := self._cache.get(k))]

    def remove_dead(self, keys: list[str]) -> int:
        removed = 0
        with _storage_errors("purge"), self._cache.transact():
            for key in keys:
                removed += bool(self._cache.delete(key))
            self._cache.set(_DEAD_COUNT, max(self._cache.get(_DEAD_COUNT, 0) - removed, 0))
        return removed

    # -- cleanup -----------------------------------------------------------------------

    def cleanup(self, max_age_s: float, *, now: float | None = None) -> dict[str, int]:
        """Remove outbox chunks and dead letters older than ``max_age_s``; return counts."""
        cutoff = (time.time() if now is None else now) - max_age_s
        expired_events = 0
        for chunk in list(self.chunks()):
            if chunk.created < cutoff and self.settle(chunk, [], []):
                expired_events += len(chunk.events)
        old_dead = [k for k, v in self.dead_letters() if v.get("t", 0) < cutoff]
        return {"expired_events": expired_events, "expired_dead_letters": self.remove_dead(old_dead)}

    # -- shared state ------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        with _storage_errors("get"):
            return self._cache.get("s:" + key, default)

    def set(self, key: str, value: Any, expire_s: float | None = None) -> None:
        with _storage_errors("set"):
            self._cache.set("s:" + key, value, expire=expire_s)

    def update(self, key: str, change: Any, default: Any = None) -> Any:
        """Replace shared value ``key`` by ``change(value)`` in one transaction (every process
        of the user sees one change after another); returns the new value."""
        with _storage_errors("update"), self._cache.transact():
            value = change(self._cache.get("s:" + key, default))
            self._cache.set("s:" + key, value)
        return value

    def incr(self, key: str, delta: int = 1) -> int:
        with _storage_errors("incr"):
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
        with _storage_errors("lease"), self._cache.transact():
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
        with _storage_errors("lease"), self._cache.transact():
            held = self._cache.get(key)
            if held is not None and held[0] == owner:
                self._cache.delete(key)

    def lease_holder(self, name: str) -> str | None:
        """The live holder of lease ``name``, or None."""
        with _storage_errors("lease"):
            held = self._cache.get("s:lease:" + name)
        if held is None or held[1] <= time.monotonic():
            return None
        return held[0]
