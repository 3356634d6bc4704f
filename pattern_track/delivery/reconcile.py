"""Ask the service what it already has before resending events in doubt (store/doubt.py).

For each event in doubt that creates a node (``readback.NODE_EVENTS``: created, modified,
forked, merged, validated), one read of ``GET .../lineage/{pattern_id}/evolution`` per
pattern id tells whether its node (and, for a derivation, its edge from the parent) is
stored: then it is settled as delivered without being sent again. Everything else is
resent: events that create no node (applied, deprecated: no read can tell), and events
whose read gave no clear answer (5xx, 429, no answer: ``readback.ReadUnknown``); those
are counted as possibly duplicated; but an event that creates no node and came before a
node-creating event found stored, in the same batch, was processed too (the service
handles a batch in order, and goes on after the client is gone). Reads are few (in-doubt events only) and the route is
not rate-limited on the real service.
"""

from __future__ import annotations

import json

from .. import logs
from ..store import doubt
from .batches import event_id_from

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

__all__ = ["reconcile"]

log = logs.get(__name__)

#: A batch's reads stop after this many seconds, or after this many reads in a row that
#: gave no clear answer (the service is unwell: its reads would time out too); the rest of
#: its in-doubt events are then resent.
MAX_READ_S = 10.0
MAX_UNCLEAR_IN_A_ROW = 3


def reconcile(core: Any, events: Sequence[bytes], ids: Sequence[str] | None = None) -> list[bool]:
    """One flag per event: True when it was in doubt and the service has it already
    (``ids``: the events' ids, when the caller has them). Never raises (a failure means:
    resend). Counts ``conditions`` ``in_doubt``, ``reconciled`` and ``possibly_duplicated``
    in ``core.counters``."""
    try:
        ids = [event_id_from(e) for e in events] if ids is None else ids
        doubtful = doubt.among(core.outbox, ids)
    except Exception as exc:
        log.warning("cannot read which events are in doubt (%s); resending as they are", type(exc).__name__)
        return [False] * len(events)
    if not doubtful:
        return [False] * len(events)
    import time

    from .readback import NODE_EVENTS, ReadUnknown, evolution, is_stored

    docs: dict = {}
    found, unsure, unclear = [], 0, 0
    later: list = []  # events that create no node: decided once their request's stored prefix is known
    stop_at = time.monotonic() + MAX_READ_S
    for event, event_id in zip(events, ids):
        if event_id not in doubtful:
            found.append(False)
            continue
        try:
            wire = json.loads(event)
        except ValueError:
            wire = {}
        pattern_id = wire.get("pattern_id")
        if wire.get("event_type") not in NODE_EVENTS or not isinstance(pattern_id, str):
            later.append(len(found))
            found.append(False)
            continue
        if pattern_id not in docs:
            if unclear >= MAX_UNCLEAR_IN_A_ROW or time.monotonic() >= stop_at:
                docs[pattern_id] = ReadUnknown("skipped", "reads stopped for this batch (unclear or slow)")
            else:
                try:
                    docs[pattern_id] = evolution(core.transport.get, pattern_id,
                                                 timeout_s=core.config.health_check_timeout_s)
                    unclear = 0
                except ReadUnknown as exc:
                    docs[pattern_id] = exc
                    unclear += 1
        doc = docs[pattern_id]
        if isinstance(doc, ReadUnknown):
            unsure += 1
            found.append(False)
            continue
        try:
            found.append(is_stored(wire, doc))
        except ValueError:
            unsure += 1
            found.append(False)
    # A batch is processed in order (sequential mode) and the service goes on after the
    # client is gone: every event before one found stored was processed too. An event that
    # creates no node (no read shows it) counts as stored when a later node-creating event
    # of its request is; else it is resent.
    stored_up_to: dict = {}
    for event_id, is_found in zip(ids, found):
        if is_found:
            request, position = doubtful[event_id]
            stored_up_to[request] = max(stored_up_to.get(request, -1), position)
    for index in later:
        request, position = doubtful[ids[index]]
        if position < stored_up_to.get(request, -1):
            found[index] = True
        else:
            unsure += 1
    counters = core.counters
    counters.note("in_doubt", len(doubtful))
    counters.note("reconciled", sum(found))
    counters.note("possibly_duplicated", unsure)
    log.info("%d events in doubt: %d found stored (not resent), %d resent that may be stored already, "
             "%d not stored", len(doubtful), sum(found), unsure, len(doubtful) - sum(found) - unsure)
    return found
