"""Events in doubt: sent in a request whose answer never came back readable.

The service commits what a client abandons and does not deduplicate (wire-contract.md),
so an event whose request was cut, reset, timed out after it was sent, or answered with a
batch body we could not read may be stored already: resending it blindly stores it again.
Such events are remembered here by their id (``pattern_data.event_id``), in the outbox's
shared state (``s:doubt``: ``{event id: [epoch seconds, request, position]}``: the ids
of one request share ``request`` and keep their order in it), wherever they wait: the outbox
itself, or a journal that a drainer adopts later (``?<id> <id>...`` lines, journal.py).
Before resending one, replay.py asks the service's read route whether it is stored
(reconcile.py). An id leaves once its event is settled; ids older than ``MAX_AGE_S`` or
past ``MAX_IDS`` are dropped oldest first (their events are then only possibly resent
twice: at-least-once still holds).
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

__all__ = ["add", "among", "settle"]

KEY = "doubt"
MAX_IDS = 100_000
MAX_AGE_S = 7 * 86400.0


def add(outbox: Any, ids: Iterable[str]) -> None:
    """Remember ``ids``, the events of one request in the order it carried them, as in
    doubt (for every process). Raises ``OutboxError``."""
    ids = [i for i in ids if i and i != "?"]
    if not ids:
        return
    now = time.time()
    request = os.urandom(4).hex()

    def change(known: Any) -> dict:
        known = dict(known or {})
        known.update({event_id: [now, request, position] for position, event_id in enumerate(ids)})
        return _bounded(known, now)

    outbox.update(KEY, change)


def among(outbox: Any, ids: Iterable[str]) -> dict:
    """``{id: (request, position)}`` for those of ``ids`` in doubt (one read of the shared
    value). Raises ``OutboxError``."""
    known = outbox.get(KEY) or {}
    return {i: (known[i][1], known[i][2]) for i in ids if i in known} if known else {}


def settle(outbox: Any, done: Iterable[str], still: Iterable[str] = ()) -> None:
    """``done`` ids are settled (delivered, found stored, dead-lettered): forget them;
    ``still`` ids are (again) in doubt. One transaction. Raises ``OutboxError``."""
    done, still = set(done), [i for i in still if i and i != "?"]
    if not done and not still:
        return
    now = time.time()

    def change(known: Any) -> dict:
        known = {k: v for k, v in (known or {}).items() if k not in done}
        request = os.urandom(4).hex()
        known.update({event_id: [now, request, position] for position, event_id in enumerate(still)})
        return _bounded(known, now)

    if done and not still and not outbox.get(KEY):
        return  # the common case: nothing is in doubt, no write
    outbox.update(KEY, change)


def _bounded(known: dict, now: float) -> dict:
    known = {k: v for k, v in known.items() if isinstance(v, list) and now - v[0] < MAX_AGE_S}
    if len(known) > MAX_IDS:
        known = dict(sorted(known.items(), key=lambda item: item[1][0])[-MAX_IDS:])
    return known
