"""Where events go when they are not sent now: the outbox, else the spool, else memory.

A mixin of ``Dispatcher`` (dispatcher.py), whose state it shares: ``_core``, ``_cond``,
``_buffer``, ``_held``, ``_room_wait``, ``_ours_until``, ``_network_closed``. Rules:

- Order within a process: while events this process stored are still queued in the
  outbox, its later events go behind them (``_ours_queued``); another process's backlog
  holds nothing up.
- The outbox's cap refuses only what nothing else can hold: journaled events past it go
  back to the front of memory and wait for room (``_hold_for_room``); the drainer's next
  step kicks the sender again.
- An unwritable outbox falls back to the spool, then to memory (``_held``, retried by
  ``retry_held``); only past those is an event counted as dropped.
- Events kept after a request that may have stored them are remembered as in doubt
  (store/doubt.py, else the journal): the drainer reads before it resends.
"""

from __future__ import annotations

from .. import logs
from ..errors import CacheError, OutboxError
from ..event import event_id_from

TYPE_CHECKING = False  # typing costs ~2.5 ms to import; annotations are strings here
if TYPE_CHECKING:
    import collections
    import threading
    from typing import Any

__all__ = ["Stash"]

log = logs.get(__name__)


class Stash:
    """Storing for ``Dispatcher`` (dispatcher.py holds the state named here)."""

    _core: Any
    _journal: Any
    _cond: threading.Condition
    _buffer: collections.deque
    _held: collections.deque
    _batch_size: int
    _max_buffer: int
    _in_flight: int
    _room_wait: bool
    _ours_until: str | None
    _network_closed: bool
    _memory_only: bool

    def _overflow_unjournaled(self, data: bytes) -> bool:
        """No journal and memory full: the rare old path, straight to the outbox or spool."""
        self._store([data])
        return True

    def _ours_queued(self) -> bool:
        """Are events this process stored still queued in the outbox? Then later ones go
        behind them (order within a process). Other processes' backlog, and parked events
        (parking.py), hold nothing up: with the service up, fresh events go straight out."""
        until = self._ours_until
        if until is None:
            return False
        try:
            front = self._core.outbox.front_key()
        except OutboxError:
            return True  # cannot tell: keep the order
        if front is None or front > until:
            self._ours_until = None
            return False
        return True

    def _store(self, events: list, attempts: list | None = None, *, seq_of: dict | None = None) -> bool:
        """Put events in the outbox (else the spool, else memory); True once they are safe.

        Past the outbox's cap, journaled events (``seq_of`` maps ``id(event)`` to its
        journal sequence number) go back to the front of memory, in order, and wait for
        room or for the service: they are held, not refused. Only events no journal holds
        are refused as ``outbox_full``."""
        core = self._core
        outbox = core.outbox
        if outbox is not None:
            try:
                keys: list = []
                taken = outbox.append_chunks(events, attempts, chunk_size=self._batch_size, keys=keys)
                core.counters.add("outboxed", taken)
                if keys:
                    self._ours_until = max(keys[-1], self._ours_until or "")
                if taken < len(events):
                    self._hold_for_room(events[taken:], seq_of or {})
                return True
            except OutboxError as exc:
                log.warning("outbox write failed (%s); using the spool", type(exc).__name__)
        if not attempts or not any(attempts):
            try:
                core.spool.write(events)
                core.counters.add("outboxed", len(events))
                return True
            except (OSError, CacheError) as exc:  # unwritable, or unsafe (a symlink, another user's)
                log.warning("spool write failed, holding %d events in memory: %s", len(events), type(exc).__name__)
        with self._cond:
            room = max(self._max_buffer - len(self._held), 0)
            kept = list(zip(events, attempts or [0] * len(events)))[:room]
            self._held.extend(kept)
        if len(events) > len(kept):
            core.counters.drop("outbox_unavailable", len(events) - len(kept), accepted=True)
        return False  # only in memory: the journal must keep them

    def _hold_for_room(self, rest: list, seq_of: dict) -> None:
        """The outbox is at its cap: journaled events wait in memory (front, in order) until
        the drainer's next step; the others cannot be held anywhere and are counted."""
        core = self._core
        waiting = [(seq_of[id(e)], e) for e in rest if id(e) in seq_of]
        refused = len(rest) - len(waiting)
        if waiting:  # at exit too: memory's first seq holds the journal's watermark back
            with self._cond:
                self._buffer.extendleft(reversed(waiting))
                self._room_wait = True
            core.counters.note("outbox_full_waits")
            log.info("outbox full (cap reached): %d events wait in the journal for room", len(waiting))
        if refused:
            core.counters.drop("outbox_full", refused, accepted=True)
            log.warning("outbox full (cap reached) and no journal: %d events refused", refused)

    def dead_letter(self, dead: list, *, replay: bool) -> None:
        core = self._core
        for event, outcome in dead:
            try:
                if core.outbox is not None:
                    core.outbox.add_dead(event, outcome.reason, outcome.detail)
            except OutboxError as exc:
                log.warning("could not store a dead letter: %s", type(exc).__name__)
        core.counters.add("replay_dead_lettered" if replay else "dead_lettered", len(dead))

    def retry_held(self) -> None:
        """Move events held in memory (outbox was unwritable) back into the outbox."""
        with self._cond:
            if not self._held:
                return
            held = list(self._held)
            self._held.clear()
            self._in_flight += len(held)
        try:
            self._store([e for e, _ in held], [a for _, a in held])
        finally:
            with self._cond:
                self._in_flight -= len(held)

    def _mark_sending(self, batch: list) -> None:
        """Before a request goes: its events are in doubt in the journal until answered, so
        a drainer adopting the journal of a process killed meanwhile asks the read route
        before resending them (a kill cannot say so after the fact)."""
        if self._journal is not None and not self._memory_only:
            try:
                self._journal.mark_in_doubt([event_id_from(e) for e in batch], sending=True)
            except (OSError, CacheError) as exc:  # an unusable journal: the request goes anyway
                log.debug("cannot mark a request in the journal (%s); a kill may resend it", type(exc).__name__)

    def _remember_doubt(self, ids: list) -> None:
        """Events kept after a request that may have stored them: the drainer asks the read
        route before resending (store/doubt.py); in the journal when the outbox cannot say."""
        from ..store import doubt

        try:
            doubt.add(self._core.outbox, ids)
        except Exception:  # no outbox, or it cannot be written: the journal remembers
            self._doubt_in_journal(ids)

    def _doubt_in_journal(self, ids: list) -> None:
        if ids and self._journal is not None:
            try:
                self._journal.mark_in_doubt(ids)
            except OSError as exc:
                log.warning("cannot record events in doubt (%s); they may be resent twice", type(exc).__name__)
