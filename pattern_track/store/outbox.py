"""The durable outbox: a queue of event chunks per service store, shared by processes.

One SQLite-backed ``diskcache.Cache`` per service store (services.py: one directory per
service inside the cache directory; diskstore.py opens it), shared by every process of the
user on the machine. ``q-<n>`` keys hold *chunks*: a list of serialised events with their
attempt counts, appended at the back and drained from the front, so replay keeps order (a
parent's creation before its modification). One write per chunk, not per event, keeps
appends and acknowledgements cheap. Beside the queue the same cache holds the parked
events (parking.py), the dead letters (deadletters.py) and the state processes share
(``s:*`` keys: counters, the breaker, the last health answer, leases; shared.py).

Eviction is off (diskcache's default silently drops old entries); the caps here refuse
new events instead and the caller counts every refusal. The directory is created 0700
and refused if it is a symlink or belongs to someone else: it holds users' code.
Draining is at-least-once: a chunk is deleted only after the service acknowledged it,
under a drain lease that expires if its holder dies.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from .cachedir import prepare_directory
from .deadletters import DEAD, DeadLetters
from .diskstore import STORAGE_ERRORS, open_cache, storage_errors as _storage_errors
from .shared import SharedState

__all__ = ["Chunk", "DEAD", "Outbox", "QUEUE", "STORAGE_ERRORS"]

QUEUE = "q"
_PENDING_EVENTS = "s:pending_events"
_PENDING_BYTES = "s:pending_bytes"
_PARKED = "s:parked"
_PARKED_COUNT = "s:parked_count"


class Chunk(NamedTuple):
    key: str
    id: str
    created: float
    events: list  # list[bytes]
    attempts: list  # list[int], one per event


class Outbox(DeadLetters, SharedState):
    """Durable FIFO of event chunks plus dead letters and shared state.

    Every method raises ``OutboxError`` (never a diskcache or sqlite3 error) so callers
    have one thing to catch and count.
    """

    def __init__(self, directory: str, *, max_events: int, max_bytes: int, timeout_s: float = 1.0) -> None:
        self.directory = prepare_directory(directory)
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._cache = open_cache(self.directory, timeout_s=timeout_s)

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
            chunks.append(Chunk(f"{prefix}-{key_number:015d}", value["id"], value["t"], value["events"],
                                value["attempts"]))
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

    def set_parked(self, entries: list, *, moved_in: Sequence[bytes] = (), moved_out: Sequence[bytes] = ()) -> None:
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
