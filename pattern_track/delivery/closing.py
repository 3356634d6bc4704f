"""The dispatcher's end: ``flush()``, ``exit()`` and ``close()``'s spill, as a part of ``Dispatcher``.

Exit (``exit()``, from the exit hook in lifecycle.py): no new request starts; a request
in flight gets at most ``timeout_s``, then its socket is shut (a cut, never recorded
against the service); what is not settled simply stays in the journal for a drainer.
Events the journal could not take (unwritable cache) are still written to the outbox or
spool, as before.
"""

from __future__ import annotations

import collections
import time

from .. import logs

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    import threading
    from typing import Any

__all__ = ["Closing"]

log = logs.get(__name__)

#: At exit, how long a sender whose request was just cut gets to record it in the journal.
_CUT_SETTLE_S = 0.05


class Closing:
    """Flush and exit for ``Dispatcher`` (dispatcher.py holds the state named here)."""

    _core: Any
    _journal: Any
    _cond: threading.Condition
    _buffer: collections.deque
    _held: collections.deque
    _gap: list[int] | None
    _flying: dict[int, int]
    _left: int | None
    _pumps: int
    _running: int
    _in_flight: int
    _senders: Any
    _closed: bool
    _network_closed: bool
    _room_wait: bool
    _memory_only: bool

    if TYPE_CHECKING:  # the rest of Dispatcher, as this part calls it
        def _store(self, events: list, attempts: list | None = None, *, seq_of: dict | None = None) -> bool: ...
        def _remember_doubt(self, ids: list) -> None: ...
        def retry_held(self) -> None: ...
        def _pump(self) -> None: ...
        def _ack(self) -> None: ...

    def counts(self) -> dict[str, int]:
        with self._cond:
            gap = 0 if self._gap is None else self._gap[1] - self._gap[0] + 1
            return {"buffered": len(self._buffer), "in_flight": self._in_flight, "held": len(self._held),
                    "pumps": self._pumps, "journal_only": gap}

    def flush(self, timeout_s: float) -> bool:
        """Wait until nothing is only in memory or the journal (sent, in the outbox or
        dead-lettered). False at once while events wait for room in a full outbox: only
        a drain (of any process) can free it."""
        clock = self._core.clock
        deadline = clock.monotonic() + timeout_s
        with self._cond:
            while self._buffer or self._in_flight or self._gap is not None:
                if self._room_wait and not self._in_flight:
                    return False
                remaining = deadline - clock.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.1))
            return not self._held

    def exit(self, timeout_s: float) -> None:
        """No new request from now on; a request in flight gets ``timeout_s``, then it is cut.
        What is not settled stays in the journal. Events only memory holds (the journal
        could not be written) are first given the same budget to be delivered, since
        nothing else will; what is still not safe then is counted as lost."""
        core = self._core
        clock = core.clock
        deadline = clock.monotonic() + timeout_s
        if self._memory_only:
            self._deliver_memory_only(deadline)
        with self._cond:
            self._closed = True
            self._network_closed = True
            while self._running and clock.monotonic() < deadline:
                self._cond.wait(min(deadline - clock.monotonic(), 0.05))
            unjournaled = [data for seq, data in self._buffer if seq is None]
            self._buffer = collections.deque((s, d) for s, d in self._buffer if s is not None)
        if core.transport is not None and self._running:
            core.transport.abort()
            # The cut request returns at once: let its sender say in the journal which
            # events the service may have stored (the drainer asks before resending).
            with self._cond:
                until = clock.monotonic() + _CUT_SETTLE_S
                while self._running and clock.monotonic() < until:
                    self._cond.wait(_CUT_SETTLE_S / 10)
        if self._senders is not None:
            self._senders.stop()  # daemon threads: nothing at exit waits for them
        if unjournaled:
            self._store(unjournaled)
        self.retry_held()
        with self._cond:
            lost = len(self._held)
            self._held.clear()
        if lost:
            core.counters.drop("outbox_unavailable", lost, accepted=True)
            log.error("%d events lost at exit: the cache could not be written and the service did not take "
                      "them in time (exit_timeout_s %.2f)", lost, timeout_s)
        self._ack()

    def note_memory_only(self) -> None:
        """The journal cannot be written (read-only or full disk): events live in memory
        alone from now on, so exit gives them its budget to be delivered."""
        self._memory_only = True

    def _deliver_memory_only(self, deadline: float) -> None:
        """At exit, send what only memory holds until ``deadline``, on the sender thread or,
        when none runs (CPython 3.12.0-3.12.2 start no thread at exit), on this one."""
        core = self._core
        clock = core.clock
        with self._cond:
            self._closed = True  # journaled events from now on stay in the journal alone
            held = [(None, event) for event, _ in self._held]
            self._held.clear()
            self._buffer.extendleft(reversed(held))
        while True:
            with self._cond:
                left = deadline - clock.monotonic()
                if left <= 0 or not (self._buffer or self._in_flight):
                    return
                inline = not self._pumps and core.ready.is_set() and core.transport is not None
                if inline:
                    self._pumps += 1
                else:
                    self._cond.wait(min(left, 0.05))
            if inline:
                with core.transport.bounded(time.monotonic() + left):
                    self._pump()

    def spill_unsettled(self, wait_s: float = 1.0) -> None:
        """For ``close()`` in a process that goes on: put every unsettled journal event in
        the outbox (or spool), in order, so the journal can be removed now. A pump still
        finishing a cut request gets ``wait_s``."""
        journal = self._journal
        with self._cond:
            deadline = self._core.clock.monotonic() + wait_s
            while self._running and self._core.clock.monotonic() < deadline:
                self._cond.wait(min(max(deadline - self._core.clock.monotonic(), 0.0), 0.05))
            self._buffer.clear()
            self._gap = None
            self._flying.clear()
            self._left = None
        if journal is None or journal.settled():
            return
        self._core.outbox_ready.wait(max(deadline - self._core.clock.monotonic(), 0.05))
        try:
            events = journal.read_since(journal.watermark, 1 << 62)
        except OSError as exc:
            log.warning("cannot read the journal back (%s); a drainer will adopt it", type(exc).__name__)
            return
        # Past the outbox's cap the rest waits in memory (and the journal, which then stays
        # for a drainer): the watermark moves only past what the outbox took.
        if events and self._store([data for _, data in events], seq_of={id(d): s for s, d in events}):
            self._ack()
            if journal.doubt_ids:
                self._remember_doubt(sorted(journal.doubt_ids))

    def unsettled(self) -> bool:
        """Does the journal hold events that no one has settled yet?"""
        journal = self._journal
        return journal is not None and not journal.settled()
