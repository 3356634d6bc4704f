"""Replaying the outbox: one batch from its front chunks, each chunk settled for its share.

Used by the drainer (drainer.py), which holds the drain lease around it. An event whose
parent is parked waits behind it unsent; an event the service refused for its own sake
(suspect) is parked on its own schedule; the rest of the batch settles as usual: sent,
dead-lettered, or kept in its chunk for a later attempt (parking.py, settle.py).
"""

from __future__ import annotations

from .. import logs
from ..store import doubt
from .batches import event_id_from
from .outcome import OK, Outcome
from .parking import Parking
from .reconcile import reconcile
from .settle import Settlement, settle

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["Replay"]

log = logs.get(__name__)

#: The outcome of an event in doubt that the read route showed stored: settled, not resent.
RECONCILED = Outcome(OK, "reconciled", "the service had it already (read route)")


class Replay:
    def __init__(self, core: Any, dead_letter: Callable[..., None]) -> None:
        self._core = core
        self._dead_letter = dead_letter  # Dispatcher.dead_letter(dead, replay=True)
        c = core.config
        self.parking = Parking(core.outbox, base_s=c.backoff_base_s, max_s=c.backoff_max_s,
                               max_attempts=c.max_attempts, monotonic=core.clock.monotonic)

    def deliver(self, chunks: list) -> Any:
        """Send the events of ``chunks`` as one batch and settle each chunk's share.

        Events whose parent is parked are parked behind it unsent; events the service
        refused for their own sake (suspect) are parked on their own schedule; the rest of
        the batch settles as usual (parking.py)."""
        core = self._core
        config = core.config
        n = config.batch_size
        parking = self.parking
        # A chunk bigger than a batch is sent in slices: its first n events now.
        parts = [(chunk.events[:n], chunk.attempts[:min(n, len(chunk.events))]) for chunk in chunks]
        events = [e for part, _ in parts for e in part]
        waiting = parking.dependents(events, parking.blocked())
        # Events in doubt (their last request may have been stored) that the service has
        # already are settled as delivered, not sent again (reconcile.py).
        ids = [event_id_from(e) for e in events]  # once: reconcile, doubt and settling use them
        candidates = [e for e, w in zip(events, waiting) if not w]
        found = iter(reconcile(core, candidates, [i for i, w in zip(ids, waiting) if not w]))
        stored = [False if w else next(found) for w in waiting]
        sending = [e for e, w, s in zip(events, waiting, stored) if not (w or s)]
        self._intend([i for i, w, s in zip(ids, waiting, stored) if not (w or s)])
        answers = iter(core.delivery.send(sending) if sending else [])
        outcomes = [None if w else (RECONCILED if s else next(answers)) for w, s in zip(waiting, stored)]
        total, settlements, start = Settlement(), [], 0
        park: tuple[list, list, list] = ([], [], [])
        for chunk, (part, tries) in zip(chunks, parts):
            end = start + len(part)
            mine_events = [e for e, w in zip(part, waiting[start:end]) if not w]
            mine_tries = [t for t, w in zip(tries, waiting[start:end]) if not w]
            mine = settle(mine_events, mine_tries, [o for o in outcomes[start:end] if o is not None],
                          max_attempts=config.max_attempts)
            for event, tried, flag in zip(part, tries, waiting[start:end]):
                if flag:
                    park[0].append(event)
                    park[1].append(tried)
                    park[2].append(True)
            keep, keep_tries = [], []
            for event, tried, suspect in zip(mine.keep, mine.keep_attempts, mine.keep_suspect):
                if suspect:
                    park[0].append(event)
                    park[1].append(tried)
                    park[2].append(False)
                else:
                    keep.append(event)
                    keep_tries.append(tried)
            mine.keep, mine.keep_attempts = keep, keep_tries
            total.add(mine)
            settlements.append((chunk, keep + chunk.events[len(part):], keep_tries + chunk.attempts[len(part):]))
            start = end
        self._dead_letter(total.dead, replay=True)
        parking.park(*park[:2], waiting=park[2])  # before settling: a crash repeats, never loses
        core.outbox.settle_many(settlements)
        self._remember_doubt(ids, outcomes)
        return total

    def _intend(self, ids: list) -> None:
        """Write-ahead: the events about to be sent (``ids``) are in doubt until their answer
        settles them (``_remember_doubt``). A drainer or sync killed mid-request leaves them
        so, and the next attempt asks the read route before resending (reconcile.py)."""
        if ids:
            try:
                doubt.add(self._core.outbox, ids)
            except Exception as exc:  # OutboxError: at worst a kill now resends them
                log.warning("cannot record a request in doubt (%s)", type(exc).__name__)

    def _remember_doubt(self, ids: list, outcomes: list) -> None:
        """Events now settled leave the in-doubt list; those whose request left them in doubt
        (again) join it, so the next attempt asks before resending."""
        still = [i for i, o in zip(ids, outcomes) if o is not None and o.in_doubt]
        done = [i for i, o in zip(ids, outcomes) if o is not None and not o.in_doubt]
        try:
            doubt.settle(self._core.outbox, done, still)
        except Exception as exc:  # OutboxError: at worst an event is resent without asking
            log.warning("cannot record events in doubt (%s)", type(exc).__name__)

    def retry_parked(self) -> float | None:
        """Retry the parked events that are due; returns seconds until the next is due."""
        core = self._core
        parking = self.parking
        roots, soonest = parking.due(core.config.batch_size)
        if roots:
            outcomes = core.delivery.send([r["event"] for r in roots])
            sent = parking.settle(roots, outcomes, lambda dead: self._dead_letter(dead, replay=True))
            core.counters.add("replayed", sent)
            return 0.0
        return soonest
