"""The work of a drainer step: move what waits into the outbox, then deliver it in order.

``ingest()`` moves spool files and the journals of ended processes into the outbox under
the shared ``drain`` lease, so each moves once and behind what is already there.
``drain()`` delivers the outbox from its front, a chunk at a time, while the breaker and
the machine's pace (pacing.py) allow, deleting a chunk only once the service acknowledged
it (replay.py settles each event); a request in flight at its deadline is cut (ours, not
the service's failure) and its events stay. A part of ``Drainer`` (drainer.py).
"""

from __future__ import annotations

import time

from .. import logs
from ..errors import OutboxError
from ..store.orphans import adopt_orphans, orphans_waiting
from .pacing import gate

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    import threading
    from typing import Any

__all__ = ["LEASE", "Draining"]

log = logs.get(__name__)

#: The shared lease a drain or ingest holds (one at a time, for every process of the user).
LEASE = "drain"


class Draining:
    """``ingest()`` and ``drain()`` for ``Drainer`` (drainer.py holds the state named here)."""

    _core: Any
    _stop: threading.Event
    moving: threading.Lock
    spool: Any

    if TYPE_CHECKING:  # the rest of Drainer, as this part calls it
        def _take_turn(self, timeout_s: float | None) -> bool: ...
        def _end_turn(self) -> None: ...
        def _deliver(self, chunks: list) -> Any: ...

    def ingest(self, timeout_s: float | None = 0.0) -> int:
        """Move spool files and the journals of dead processes into the outbox, under the
        drain lease (so each moves once, and after what is already there). If another
        thread of this process is draining, wait at most ``timeout_s`` (then move
        nothing: its next step does it)."""
        core = self._core
        cache_dir = core.config.service_dir
        if core.outbox is None or not (self.spool.files() or orphans_waiting(cache_dir)):
            return 0
        if not self._take_turn(timeout_s):
            return 0
        try:
            with self.moving:
                if not core.outbox.acquire_lease(LEASE, core.owner, core.config.lease_ttl_s):
                    return 0
                try:
                    size = core.config.batch_size

                    def append(events: list) -> int:
                        return core.outbox.append_chunks(events, chunk_size=size)

                    def in_doubt(ids: list) -> None:  # the writer's request was cut: ask before resending
                        from ..store import doubt

                        doubt.add(core.outbox, ids)

                    moved = adopt_orphans(cache_dir, append, in_doubt) + self.spool.ingest(append)
                finally:
                    core.outbox.release_lease(LEASE, core.owner)
        finally:
            self._end_turn()
        if moved:
            core.counters.add("adopted", moved)
        return moved

    def drain(self, *, probe: bool = False, max_chunks: int | None = None, timeout_s: float | None = None) -> dict:
        """Deliver the outbox from the front until it is empty, a delivery fails, or
        ``timeout_s`` passes (a request in flight then is cut: ours, not the service's
        failure; its events stay in the outbox).

        ``probe`` lets an explicit sync try once even while the breaker is open.
        Returns ``{state, synced, failed, skipped, retry_after_s}``; ``state`` is
        ``done``, ``busy`` (another drain holds the lease), ``breaker_open``,
        ``rate_limited`` (a shared Retry-After wait runs), ``retry_later``, ``timeout`` or
        ``unavailable``.
        """
        core = self._core
        config = core.config
        outbox = core.outbox
        result = {"state": "done", "synced": 0, "failed": 0, "skipped": 0, "retry_after_s": None}
        if outbox is None or core.delivery is None:
            result["state"] = "unavailable"
            return result
        wait = core.not_before_s()
        if wait > 0:  # the service asked every process to wait (Retry-After): probes too
            result.update(state="rate_limited", retry_after_s=wait, failed=outbox.pending())
            return result
        deadline = None if timeout_s is None else core.clock.monotonic() + timeout_s
        if not self._take_turn(None if timeout_s is None else max(timeout_s, 0.0)):
            result["state"] = "busy"  # another thread of this process is draining
            return result
        try:
            if not outbox.acquire_lease(LEASE, core.owner, config.lease_ttl_s):
                result["state"] = "busy"
                return result
            until = None if timeout_s is None else time.monotonic() + max(timeout_s, 0.0)
            try:
                with core.transport.bounded(until):  # a request in flight ends by the deadline too
                    self._drain_leased(result, probe, max_chunks, deadline)
            except OutboxError as exc:
                log.warning("outbox unavailable while draining: %s", exc)
                result["state"] = "unavailable"
            finally:
                try:
                    outbox.release_lease(LEASE, core.owner)
                except OutboxError:
                    pass
        finally:
            self._end_turn()
        return result

    def _drain_leased(self, result: dict, probe: bool, max_chunks: int | None, deadline: float | None) -> None:
        """``drain()``'s loop, with the lease held; fills ``result``."""
        core = self._core
        config = core.config
        outbox = core.outbox
        chunks_done = 0
        renewed = core.clock.monotonic()

        def stop(state: str) -> None:
            result["state"] = state
            result["failed"] = outbox.pending()

        while not self._stop.is_set() and (max_chunks is None or chunks_done < max_chunks):
            if deadline is not None and core.clock.monotonic() >= deadline:
                return stop("timeout")
            chunks = outbox.front_chunks(config.batch_size)
            if not chunks:
                return None
            if not (core.breaker.allow() or probe):
                return stop("breaker_open")
            pace = 0.0 if probe else gate(core)  # an explicit sync tries once now
            if pace > 0:
                stop("rate_limited")
                result["retry_after_s"] = pace
                return None
            probe = False
            chunks_done += len(chunks)
            now = core.clock.monotonic()
            if now - renewed >= config.lease_ttl_s / 4:  # renew well before expiry, not per batch
                outbox.acquire_lease(LEASE, core.owner, config.lease_ttl_s)
                renewed = now
            settled = self._deliver(chunks)
            core.counters.add("replayed", settled.sent)
            result["synced"] += settled.sent
            result["skipped"] += len(settled.dead)
            if deadline is not None and core.clock.monotonic() >= deadline:
                return stop("timeout")
            if settled.keep:
                stop("retry_later")
                result["retry_after_s"] = settled.retry_after_s
                log.info("outbox delivery paused (%s); %d events wait", settled.reason, result["failed"])
                return None
        return None
