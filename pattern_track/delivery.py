"""Send a list of serialised events and say what happened to each.

Used by both engines (the dispatcher for fresh events, the drainer for the outbox). It
prefers the batch route (one request, counted once by the service's rate limit) in
``sequential`` mode, which keeps order; a batch refused because of one bad event is
resent one by one so only that event is dead-lettered; a collector without the batch
route is remembered and served event by event. Each request's outcome feeds the breaker.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

from .outcome import TRANSIENT, Outcome, classify, classify_batch, classify_error

__all__ = ["Delivery", "event_id_from"]

log = logging.getLogger(__name__)

_ID_MARK = b'"event_id":"'


def event_id_from(event: bytes) -> str:
    """The id ``event.build`` put last in ``pattern_data`` (cheap: no JSON parse)."""
    at = event.rfind(_ID_MARK)
    if at < 0:
        return "?"
    start = at + len(_ID_MARK)
    return event[start:event.find(b'"', start)].decode("ascii", "replace")


class Delivery:
    def __init__(self, transport: Any, breaker: Any, *, track_path: str, batch_path: str) -> None:
        self._transport = transport
        self._breaker = breaker
        self._track_path = track_path
        self._batch_path = batch_path
        self.batch_supported = True
        self.requests = 0

    def send(self, events: Sequence[bytes]) -> list[Outcome]:
        """One outcome per event, in order. Never raises."""
        if len(events) > 1 and self.batch_supported:
            outcomes = self._send_batch(events)
            if outcomes is not None:
                return outcomes
        return self._send_each(events)

    def _send_batch(self, events: Sequence[bytes]) -> list[Outcome] | None:
        batch_id = os.urandom(8).hex()
        body = b'{"events":[' + b",".join(events) + b'],"processing_mode":"sequential","batch_id":"' + batch_id.encode() + b'"}'
        self.requests += 1
        try:
            answer = self._transport.post(self._batch_path, body, {"X-Batch-Id": batch_id})
        except Exception as exc:
            outcome = classify_error(exc)
            self._breaker.record(False)
            return [outcome] * len(events)
        verdict = classify_batch(answer.status, answer.headers, answer.body, len(events))
        if verdict.split:
            if answer.status in (404, 405):
                log.info("the service has no batch route (HTTP %s); sending events one by one", answer.status)
                self.batch_supported = False
            self._breaker.record(True)
            return None
        if verdict.whole is not None:
            self._breaker.record(not verdict.whole.counts_against_service)
            return [verdict.whole] * len(events)
        outcomes = list(verdict.per_event)
        # The service answered; it is unwell only if no event got through for its sake.
        self._breaker.record(not all(o.counts_against_service for o in outcomes))
        return outcomes

    def _send_each(self, events: Sequence[bytes]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for index, event in enumerate(events):
            self.requests += 1
            try:
                answer = self._transport.post(self._track_path, event, {"X-Event-Id": event_id_from(event)})
                outcome = classify(answer.status, answer.headers, answer.body)
            except Exception as exc:
                outcome = classify_error(exc)
            self._breaker.record(not outcome.counts_against_service)
            outcomes.append(outcome)
            if outcome.kind == TRANSIENT:
                # Do not hammer a failing service: the rest wait for the next attempt.
                held = Outcome(TRANSIENT, "not_sent", "an earlier event of this batch failed")
                outcomes.extend([held] * (len(events) - index - 1))
                break
        return outcomes

