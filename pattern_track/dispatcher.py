"""Fresh events: a bounded memory stage and the executor that sends it.

``submit()`` (called by ``track()``) appends serialised bytes to a deque and, when no
sender is running, submits one pump to a ``ThreadPoolExecutor``; it never touches the
network or the disk except when the memory stage overflows. A pump takes up to
``batch_size`` events at a time and either sends them (service healthy, breaker closed,
outbox empty so order holds) or writes them to the outbox as one chunk.

Exit: CPython joins executor threads *before* ``atexit`` handlers run, so ``shutdown()`` is
called from a ``threading._register_atexit`` hook (see tracker.py). It lets delivery run
for ``exit_timeout_s``, then aborts the sockets, lets pumps put what they hold in the
outbox, and spills the rest itself: exit waits on the disk, never on the network.
"""

from __future__ import annotations

import collections
import concurrent.futures
import concurrent.futures.thread  # noqa: F401  imported eagerly: importing it during shutdown fails
import logging
import threading
from typing import Any

from .errors import OutboxError

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)

#: When the pump cannot send, it writes up to this many batches in one transaction.
_STORE_BATCHES = 20
#: After the delivery window, how long pumps get to move what they hold to disk.
_DISK_GRACE_S = 1.0


class Dispatcher:
    def __init__(self, core: Any) -> None:
        self._core = core
        config = core.config
        self._batch_size = config.batch_size
        self._max_buffer = config.max_buffer_events
        self._max_workers = config.max_workers
        self._buffer: collections.deque[bytes] = collections.deque()
        self._held: collections.deque[tuple[bytes, int]] = collections.deque()
        # Re-entrant: the SIGTERM handler may interrupt submit() on the main thread.
        self._cond = threading.Condition(threading.RLock())
        self._pumps = 0  # scheduled, running or not
        self._running = 0
        self._in_flight = 0
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._network_closed = False
        self._closed = False

    # -- the caller's side -----------------------------------------------------------

    def submit(self, data: bytes) -> bool:
        """Queue one serialised event; False only if it was dropped (and counted)."""
        overflow = None
        schedule = False
        with self._cond:
            if self._closed:
                return False
            if len(self._buffer) >= self._max_buffer:
                overflow = list(self._buffer)
                self._buffer.clear()
                self._in_flight += len(overflow)
            self._buffer.append(data)
            if self._pumps < self._max_workers:
                self._pumps += 1
                schedule = True
        if overflow is not None:
            self._spill(overflow)
        if schedule:
            self._schedule()
        return True

    def _spill(self, events: list) -> None:
        """The memory stage is full: write it to disk from the caller's thread.

        Rare by design (the pump writes in bulk when it cannot send), but it must not
        drop: before the outbox is open (a burst right after start) it goes to the spool.
        """
        try:
            self._store(events)
        finally:
            with self._cond:
                self._in_flight -= len(events)
                self._cond.notify_all()

    def _schedule(self) -> None:
        try:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self._max_workers, thread_name_prefix="pattern_track-send")
            self._executor.submit(self._pump)
        except RuntimeError:
            # The interpreter is shutting down; the exit hook spills the buffer.
            with self._cond:
                self._pumps -= 1
                self._cond.notify_all()

    # -- the sender's side -------------------------------------------------------------

    def _pump(self) -> None:
        with self._cond:
            self._running += 1
        finished = False
        try:
            finished = self._pump_loop()
        finally:
            if not finished:  # an unexpected error: leave the accounting consistent
                with self._cond:
                    self._running -= 1
                    self._pumps -= 1
                    self._cond.notify_all()

    def _pump_loop(self) -> bool:
        core = self._core
        while not core.ready.wait(0.05):
            if self._network_closed:
                break
        while True:
            with self._cond:
                if not self._buffer:
                    # Retire under the same lock submit() checks, so no event is stranded.
                    self._running -= 1
                    self._pumps -= 1
                    self._cond.notify_all()
                    return True
            # Decided before taking events: sending takes one batch, storing takes many
            # (one transaction for up to 20 chunks keeps up with a fast caller).
            send = not self._network_closed and not self._outbox_has_work() and core.may_send()
            with self._cond:
                n = min(len(self._buffer), self._batch_size * (1 if send else _STORE_BATCHES))
                batch = [self._buffer.popleft() for _ in range(n)]
                self._in_flight += n
            try:
                if batch:
                    self._handle(batch, send)
            except Exception:
                log.exception("unexpected error while sending; keeping the events")
                self._store(batch)
            finally:
                with self._cond:
                    self._in_flight -= len(batch)
                    self._cond.notify_all()

    def _handle(self, batch: list, send: bool) -> None:
        core = self._core
        if not send:
            self._store(batch)
            return
        from .settle import settle  # the send path loads on first use, not at import

        outcomes = core.delivery.send(batch)
        result = settle(batch, [0] * len(batch), outcomes, max_attempts=core.config.max_attempts)
        core.counters.add("delivered", result.sent)
        self.dead_letter(result.dead, replay=False)
        if result.keep:
            self._store(result.keep, result.keep_attempts)

    def _outbox_has_work(self) -> bool:
        outbox = self._core.outbox
        try:
            return outbox is not None and outbox.pending() > 0
        except OutboxError:
            return False

    def _store(self, events: list, attempts: list | None = None) -> None:
        """Put events in the outbox; hold them in memory if it cannot take them now."""
        core = self._core
        outbox = core.outbox
        if outbox is not None:
            try:
                taken = outbox.append_chunks(events, attempts, chunk_size=self._batch_size)
                core.counters.add("outboxed", taken)
                if taken < len(events):
                    core.counters.drop("outbox_full", len(events) - taken, accepted=True)
                    log.warning("outbox full (cap reached): %d events refused", len(events) - taken)
                return
            except OutboxError as exc:
                log.warning("outbox write failed (%s); using the spool", exc)
        if not attempts or not any(attempts):
            try:
                core.spool.write(events)
                core.counters.add("outboxed", len(events))
                return
            except OSError as exc:
                log.warning("spool write failed, holding %d events in memory: %s", len(events), exc)
        with self._cond:
            room = max(self._max_buffer - len(self._held), 0)
            kept = list(zip(events, attempts or [0] * len(events)))[:room]
            self._held.extend(kept)
        if len(events) > len(kept):
            core.counters.drop("outbox_unavailable", len(events) - len(kept), accepted=True)

    def dead_letter(self, dead: list, *, replay: bool) -> None:
        core = self._core
        for event, outcome in dead:
            try:
                if core.outbox is not None:
                    core.outbox.add_dead(event, outcome.reason, outcome.detail)
            except OutboxError as exc:
                log.warning("could not store a dead letter: %s", exc)
        core.counters.add("replay_dead_lettered" if replay else "dead_lettered", len(dead))

    def retry_held(self) -> None:
        """Move events held in memory (outbox was unwritable) back into the outbox."""
        with self._cond:
            if not self._held:
                return
            held = list(self._held)
            self._held.clear()
        events = [e for e, _ in held]
        attempts = [a for _, a in held]
        with self._cond:
            self._in_flight += len(events)
        try:
            self._store(events, attempts)
        finally:
            with self._cond:
                self._in_flight -= len(events)

    # -- flush and shutdown --------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        with self._cond:
            return {"buffered": len(self._buffer), "in_flight": self._in_flight, "held": len(self._held),
                    "pumps": self._pumps}

    def flush(self, timeout_s: float) -> bool:
        """Wait until nothing is in memory (sent, in the outbox or dead-lettered)."""
        clock = self._core.clock
        deadline = clock.monotonic() + timeout_s
        with self._cond:
            while self._buffer or self._in_flight:
                remaining = deadline - clock.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.1))
            return not self._held

    def shutdown(self, timeout_s: float) -> None:
        """Deliver for up to ``timeout_s``, then put everything left in the outbox."""
        core = self._core
        clock = core.clock
        self.flush(timeout_s)
        with self._cond:
            self._closed = True
            self._network_closed = True
        if core.transport is not None:
            core.transport.abort()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        # Running pumps now only write to disk; give them a bounded moment so the
        # outbox keeps their (older) events ahead of the leftovers.
        deadline = clock.monotonic() + _DISK_GRACE_S
        with self._cond:
            while self._running and clock.monotonic() < deadline:
                self._cond.wait(0.02)
            leftovers = list(self._buffer)
            self._buffer.clear()
        if leftovers:
            core.outbox_ready.wait(max(deadline - clock.monotonic(), 0.0))
            self._store(leftovers)
        self.retry_held()
        with self._cond:
            lost = len(self._held)
            self._held.clear()
        if lost:
            core.counters.drop("outbox_unavailable", lost, accepted=True)
            log.error("%d events lost at exit: the outbox could not be written", lost)
