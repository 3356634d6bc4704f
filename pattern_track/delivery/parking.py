"""Poison isolation: an event that keeps failing alone waits on its own schedule.

An answer about one event (a parent or pattern not found, an ``error_type`` nobody
knows) says nothing about the service, so it must not hold up the events behind it. The
drainer *parks* such an event in the outbox (``Outbox.parked()``, shared by every
process) with a backoff of its own (``backoff_base_s * 2**attempts``, capped at
``backoff_max_s``) and goes on with the rest. Order still holds where it matters: an
event whose parent is parked is parked behind it unsent, and the parked list is retried
oldest first, one root at a time (an event whose own parent is not parked). After
``max_attempts`` a parked event is dead-lettered and its dependents are tried on their
own (the service may know the parent from elsewhere).
"""

from __future__ import annotations

import json
import time

from .. import logs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["Parking"]

log = logs.get(__name__)


def lineage(event: bytes) -> tuple[str, list]:
    """(pattern_id, parent_pattern_ids) of a serialised event."""
    try:
        doc = json.loads(event)
        return str(doc.get("pattern_id")), list(doc.get("parent_pattern_ids") or ())
    except (ValueError, TypeError, AttributeError):
        return "", []


class Parking:
    def __init__(self, outbox: Any, *, base_s: float, max_s: float, max_attempts: int,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._outbox = outbox
        self._base_s = base_s
        self._max_s = max_s
        self._max_attempts = max_attempts
        self._monotonic = monotonic

    def _delay(self, attempts: int) -> float:
        return min(self._max_s, self._base_s * 2 ** min(attempts, 32))

    def blocked(self) -> set:
        """Pattern ids of parked events: their dependents must wait behind them."""
        return {lineage(entry["event"])[0] for entry in self._outbox.parked()}

    @staticmethod
    def dependents(events: list, blocked: set) -> list:
        """Flags, one per event: True if its parent is parked (or parked earlier in ``events``)."""
        if not blocked:
            return [False] * len(events)
        blocked = set(blocked)
        flags = []
        for event in events:
            pattern_id, parents = lineage(event)
            waits = any(p in blocked for p in parents)
            if waits:
                blocked.add(pattern_id)
            flags.append(waits)
        return flags

    def park(self, events: list, attempts: list, *, waiting: list) -> None:
        """Add events (from a chunk, in order) to the parked list. ``waiting`` flags those
        parked only because their parent is: they are due as soon as it is delivered."""
        if not events:
            return
        now = self._monotonic()
        entries = self._outbox.parked()
        for event, tries, dependent in zip(events, attempts, waiting):
            entries.append({"event": event, "attempts": tries,
                            "not_before": now if dependent else now + self._delay(tries)})
        self._outbox.set_parked(entries, moved_in=events)
        log.info("%d events parked on their own schedule (%d parked in all)", len(events), len(entries))

    def due(self, limit: int) -> tuple[list, float | None]:
        """(roots due now, oldest first, at most ``limit``; seconds until the next is due)."""
        entries = self._outbox.parked()
        if not entries:
            return [], None
        now = self._monotonic()
        parked_ids = {lineage(e["event"])[0] for e in entries}
        roots: list[dict[str, Any]] = []
        soonest: float | None = None
        for entry in entries:
            pattern_id, parents = lineage(entry["event"])
            if any(p in parked_ids and p != pattern_id for p in parents):
                continue  # waits for its parent
            wait = entry["not_before"] - now
            if wait <= 0 or wait > 2 * self._max_s:  # a value from another boot counts as due
                if len(roots) < limit:
                    roots.append(entry)
            else:
                soonest = wait if soonest is None else min(soonest, wait)
        return roots, soonest

    def settle(self, roots: list, outcomes: list, dead_letter: Callable[[list], None]) -> int:
        """Record what happened to retried roots; returns how many were delivered."""
        from .outcome import OK, PERMANENT, TRANSIENT

        entries = self._outbox.parked()  # re-read: another process may have changed it
        gone, dead, delivered = [], [], 0
        outcome_of = {root["event"]: outcome for root, outcome in zip(roots, outcomes)}
        now = self._monotonic()
        for entry in entries:
            match = outcome_of.get(entry["event"])
            if match is None or match.kind == TRANSIENT:
                continue  # not tried, or the service was unwell: unchanged
            if match.kind == OK:
                gone.append(entry)
                delivered += 1
            elif match.kind == PERMANENT or entry["attempts"] + 1 >= self._max_attempts:
                gone.append(entry)
                dead.append((entry["event"], match))
            else:
                entry["attempts"] += 1
                entry["not_before"] = now + self._delay(entry["attempts"])
        kept = [e for e in entries if not any(e is g for g in gone)]
        self._outbox.set_parked(kept, moved_out=[g["event"] for g in gone])
        if dead:
            log.warning("%d parked events dead-lettered after %d tries", len(dead), self._max_attempts)
            dead_letter(dead)
        return delivered
