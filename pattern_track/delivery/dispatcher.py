"""Fresh events: a bounded memory stage in front of the journal, and the pump that sends it.

``submit()`` (called by ``track()`` after the journal write) appends ``(seq, bytes)`` to a
deque and, once the network parts are up (``kick()``), hands one pump to the daemon
sender threads (senders.py: never joined at exit); it never touches the network.
Memory is only a cache of the journal's tail: when it is full, later events stay in the journal alone (a *gap*) and
the pump reads them back in order when memory has room, so nothing newer is ever written
ahead of something older. A pump sends ``batch_size`` events at a time (service allowed,
and none of this process's stored events still queued, so order holds) or stores them
(stash.py: the outbox and its cap, the spool, memory, doubt); each settled batch moves
the journal's watermark. Flush, exit and ``close()``: closing.py.
"""

from __future__ import annotations

import collections
import threading

from .. import logs
from ..event import event_id_from
from .closing import Closing
from .stash import Stash

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["Dispatcher"]

log = logs.get(__name__)

#: When the pump cannot send, it writes up to this many batches in one transaction.
_STORE_BATCHES = 20


class Dispatcher(Stash, Closing):
    def __init__(self, core: Any, journal: Any = None, on_backlog: Callable[[], None] | None = None) -> None:
        self._core = core
        self._journal = journal
        self._on_backlog = on_backlog  # a full batch waits: end the linger early
        config = core.config
        self._batch_size = config.batch_size
        self._max_buffer = config.max_buffer_events
        self._max_workers = config.max_workers
        self._buffer: collections.deque[tuple[int | None, bytes]] = collections.deque()
        self._held: collections.deque[tuple[bytes, int]] = collections.deque()
        self._gap: list[int] | None = None  # [first, last] seq held only in the journal
        self._flying: dict[int, int] = {}  # id(batch) -> its lowest seq, while it is settled
        self._left: int | None = None  # lowest seq left unsettled at exit
        # Re-entrant: track() may be called from a signal handler inside submit().
        self._cond = threading.Condition(threading.RLock())
        self._pumps = 0  # scheduled, running or not
        self._running = 0
        self._in_flight = 0
        self._senders: Any = None  # daemon sender threads (senders.py), made once the core is up
        self._network_closed = False
        self._closed = False
        self._backlog_signalled = False
        # The key of the newest outbox chunk holding events of ours: while it is queued,
        # later events go behind it (order within the process); else they may go direct.
        self._ours_until: str | None = None
        # Events refused for the outbox's cap wait in memory and the journal until a kick.
        self._room_wait = False
        self._memory_only = False  # the journal is unusable: see note_memory_only
        self._send_until: float | None = None  # see send_until

    # -- the caller's side -----------------------------------------------------------

    def submit(self, data: bytes, seq: int | None = None) -> bool:
        """Queue one serialised event; False only if it was dropped (and counted)."""
        with self._cond:
            if self._closed and seq is None:
                return False
            if seq is not None and (self._gap is not None or len(self._buffer) >= self._max_buffer or self._closed):
                # Memory is full (or we are exiting): the journal alone holds it, in order.
                if self._gap is None:
                    self._gap = [seq, seq]
                self._gap[1] = seq
                return True
            if len(self._buffer) >= self._max_buffer:
                return self._overflow_unjournaled(data)
            self._buffer.append((seq, data))
            backlog = (len(self._buffer) >= self._batch_size and not self._core.ready.is_set()
                       and not self._backlog_signalled)
            if backlog:
                # Raised before the call: a signal handler's track() inside Event.set()
                # (whose lock is not re-entrant) must not call it again.
                self._backlog_signalled = True
            schedule = self._core.ready.is_set() and self._pumps < self._max_workers and not self._closed
            if schedule:
                self._pumps += 1
        if schedule:
            self._schedule()
        elif backlog and self._on_backlog is not None:
            self._on_backlog()
        return True

    def kick(self) -> None:
        """Start sending what waits: the network parts are up, or (each drainer step) the
        outbox may have room again. Called by the drainer thread."""
        with self._cond:
            self._room_wait = False
            if self._closed or self._pumps >= self._max_workers or not (self._buffer or self._gap):
                return
            self._pumps += 1
        self._schedule()

    def _schedule(self) -> None:
        try:
            if self._senders is None:
                from .senders import Senders

                self._senders = Senders(self._pump, max_workers=self._max_workers, name="pattern_track-send")
            self._senders.submit()
        except RuntimeError:
            # The interpreter is shutting down: the journal keeps the events.
            with self._cond:
                self._pumps -= 1
                self._cond.notify_all()

    # -- the sender's side -------------------------------------------------------------

    def _pump(self) -> None:
        with self._cond:
            self._running += 1
        retired = False
        try:
            retired = self._pump_loop()
        except Exception:
            log.exception("unexpected error in the sender; the journal keeps the events")
        finally:
            if not retired:
                with self._cond:
                    self._retire()

    def _retire(self) -> bool:
        """Called with the lock held: the same lock submit() checks, so no event is stranded."""
        self._running -= 1
        self._pumps -= 1
        self._cond.notify_all()
        return True

    def _pump_loop(self) -> bool:
        core = self._core
        while True:
            self._refill()
            with self._cond:
                if not self._buffer or self._network_closed:
                    return self._retire()
            # Decided before taking events: sending takes one batch, storing takes many.
            send = not self._ours_queued() and core.may_send() and self._time_for_a_request()
            with self._cond:
                if not self._buffer or self._network_closed or (self._room_wait and not send):
                    return self._retire()  # a full outbox: the next drainer step kicks
                n = min(len(self._buffer), self._batch_size * (1 if send else _STORE_BATCHES))
                taken = [self._buffer.popleft() for _ in range(n)]
                seqs = [s for s, _ in taken if s is not None]
                token = id(taken)
                if seqs:
                    self._flying[token] = min(seqs)
                self._in_flight += n
            batch = [data for _, data in taken]
            seq_of = {id(data): seq for seq, data in taken if seq is not None}
            kept = True
            try:
                kept = self._handle(batch, send, seq_of)
            except Exception:
                log.exception("unexpected error while sending; keeping the events")
                kept = self._store(batch, seq_of=seq_of) if not self._network_closed else False
            finally:
                with self._cond:
                    self._in_flight -= n
                    first = self._flying.pop(token, None)
                    if not kept and first is not None:  # cut at exit: the journal keeps them
                        self._left = first if self._left is None else min(self._left, first)
                    self._cond.notify_all()
                self._ack()

    def send_until(self, deadline: float | None) -> None:
        """From now on start a request only if it can be expected to be answered before
        ``deadline`` (``clock.monotonic()``): close() hands what it cannot finish to the
        drainer, which lives longer, rather than cut a request the service may commit."""
        self._send_until = deadline

    def _time_for_a_request(self) -> bool:
        until = self._send_until
        if until is None:
            return True
        latency = getattr(self._core.delivery, "latency_s", None) or 0.0
        return self._core.clock.monotonic() + 2 * latency < until

    def _refill(self) -> None:
        """Memory has room and events wait only in the journal: read them back, in order."""
        with self._cond:
            if self._gap is None or len(self._buffer) > self._max_buffer // 2:
                return
            first, room = self._gap[0], self._max_buffer - len(self._buffer)
        try:
            events = self._journal.read_since(first, room)
        except OSError as exc:
            log.warning("cannot read the journal back (%s); a drainer will deliver it", type(exc).__name__)
            return
        with self._cond:
            events = [(s, d) for s, d in events if s <= self._gap[1]]
            self._buffer.extend(events)
            if events and events[-1][0] < self._gap[1]:
                self._gap[0] = events[-1][0] + 1
            else:
                self._gap = None

    def _handle(self, batch: list, send: bool, seq_of: dict) -> bool:
        """Send or store one batch; False if (at exit) it was left to the journal."""
        core = self._core
        if not send:
            return self._store(batch, seq_of=seq_of)
        from .settle import settle  # the send path loads on first use, not at import

        self._mark_sending(batch)  # write-ahead: a SIGKILL before the answer leaves them in doubt
        outcomes = core.delivery.send(batch)
        doubtful = [event_id_from(e) for e, o in zip(batch, outcomes) if o.in_doubt]
        if self._network_closed and any(o.reason == "cut" for o in outcomes):
            # Our exit cut it: settle nothing, the journal keeps it all, and says which
            # events the service may have stored anyway (their drainer asks first).
            self._doubt_in_journal(doubtful)
            return False
        result = settle(batch, [0] * len(batch), outcomes, max_attempts=core.config.max_attempts)
        core.counters.add("delivered", result.sent)
        self.dead_letter(result.dead, replay=False)
        if result.keep:
            kept = self._store(result.keep, result.keep_attempts, seq_of=seq_of)
            if doubtful:
                self._remember_doubt(doubtful)
            return kept
        return True

    def _ack(self) -> None:
        """Move the journal's watermark to the lowest event not yet settled."""
        journal = self._journal
        if journal is None:
            return
        try:
            journal.ack_with(self._watermark)
        except OSError as exc:
            log.warning("cannot record progress in the journal (%s); a drainer may resend", type(exc).__name__)

    def _watermark(self) -> int:
        """The lowest sequence number not yet settled (called under the journal's lock)."""
        journal = self._journal
        with self._cond:
            candidates = list(self._flying.values())
            if self._left is not None:
                candidates.append(self._left)
            if self._gap is not None:
                candidates.append(self._gap[0])
            for seq, _ in self._buffer:
                if seq is not None:
                    candidates.append(seq)
                    break
            return min(candidates, default=journal.next_seq)
