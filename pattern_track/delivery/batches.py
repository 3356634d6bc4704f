"""Send a list of serialised events and say what happened to each.

Used by both engines (the dispatcher for fresh events, the drainer for the outbox). It
prefers the batch route (one request, counted once by the service's rate limit) in
``sequential`` mode, which keeps order. Batches are bounded by ``batch_max_bytes`` as well
as by count; a 413 (a proxy refusing the body) halves the batch, and a single event that
is still too large is dead-lettered alone. A batch refused because of one bad event is
resent one by one so only that event is dead-lettered; a collector without the batch
route is remembered and served event by event.

What the answers teach is reported through ``Feedback``: only the service's own answers
move the shared breaker (outcome.py decides which); any stored event closes the breaker
and marks health good for every process; a ``Retry-After`` becomes a shared "not before".
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..event import event_id_from
from .outcome import OK, TRANSIENT, Outcome, classify, classify_batch, classify_error

__all__ = ["Delivery", "event_id_from"]

log = logging.getLogger(__name__)

#: What the batch envelope adds to the events' own bytes (keys, batch id, commas).
_ENVELOPE_BYTES = 128
_HALVE = object()  # _send_batch's answer to a 413 for a batch of several events


def by_bytes(events: Sequence[bytes], max_bytes: int) -> list[Sequence[bytes]]:
    """Consecutive parts of ``events`` whose batch body stays under ``max_bytes`` (each
    part has at least one event, so an event over the limit travels alone)."""
    parts: list[Sequence[bytes]] = []
    start = size = 0
    for index, event in enumerate(events):
        cost = len(event) + 1
        if index > start and size + cost + _ENVELOPE_BYTES > max_bytes:
            parts.append(events[start:index])
            start, size = index, 0
        size += cost
    if start < len(events):
        parts.append(events[start:])
    return parts


class Delivery:
    def __init__(self, transport: Any, breaker: Any, *, track_path: str, batch_path: str,
                 batch_max_bytes: int = 1_000_000, health: Any = None,
                 on_retry_after: Callable[[float], None] | None = None, pacer: Any = None) -> None:
        self._transport = transport
        self._pacer = pacer  # pacing.py: learns the window from 429s and admitted requests
        self._breaker = breaker
        self._health = health
        self._on_retry_after = on_retry_after
        self._track_path = track_path
        self._batch_path = batch_path
        self._max_bytes = batch_max_bytes
        self.batch_supported = True
        self.requests = 0
        #: Seconds a request took to be answered, smoothed (None before the first answer):
        #: close() starts no request it cannot expect to finish (dispatcher.py).
        self.latency_s: float | None = None
        #: The last answer that held events back: {reason, detail, at (epoch s)}, or None.
        self.last_failure: dict | None = None

    def send(self, events: Sequence[bytes]) -> list[Outcome]:
        """One outcome per event, in order. Never raises.

        After a transient failure the later events are not sent (``not_sent``): a failing
        service is not hammered and order holds.
        """
        outcomes: list[Outcome] = []
        for part in by_bytes(events, self._max_bytes):
            got = self._send_part(part)
            outcomes.extend(got)
            if any(o.kind == TRANSIENT for o in got):
                held = Outcome(TRANSIENT, "not_sent", "an earlier event of this batch failed", against_service=False)
                outcomes.extend([held] * (len(events) - len(outcomes)))
                break
        self._learn(outcomes)
        return outcomes

    def _send_part(self, part: Sequence[bytes]) -> list[Outcome]:
        if len(part) > 1 and self.batch_supported:
            outcomes = self._send_batch(part)
            if outcomes is _HALVE:
                middle = len(part) // 2
                log.info("the service refused a %d-byte batch as too large; halving it", sum(map(len, part)))
                first = self._send_part(part[:middle])
                if any(o.kind == TRANSIENT for o in first):
                    held = Outcome(TRANSIENT, "not_sent", "an earlier event of this batch failed",
                                   against_service=False)
                    return first + [held] * (len(part) - middle)
                return first + self._send_part(part[middle:])
            if outcomes is not None:
                return outcomes
        return self._send_each(part)

    def _send_batch(self, events: Sequence[bytes]) -> Any:
        batch_id = os.urandom(8).hex()
        body = (b'{"events":[' + b",".join(events) + b'],"processing_mode":"sequential","batch_id":"'
                + batch_id.encode() + b'"}')
        self._went()
        try:
            started = time.monotonic()
            answer = self._transport.post(self._batch_path, body, {"X-Batch-Id": batch_id})
            self._took(time.monotonic() - started)
        except Exception as exc:
            outcome = classify_error(exc)
            self._record(outcome)
            return [outcome] * len(events)
        if answer.status == 413:
            return _HALVE
        verdict = classify_batch(answer.status, answer.headers, answer.body, len(events), complete=answer.complete)
        if verdict.split:
            if answer.status in (404, 405):
                log.info("the service has no batch route (HTTP %s); sending events one by one", answer.status)
                self.batch_supported = False
            return None
        if verdict.whole is not None:
            self._record(verdict.whole)
            return [verdict.whole] * len(events)
        outcomes = list(verdict.per_event)
        # The service answered; it is unwell only if every event failed for its sake.
        if all(o.counts_against_service for o in outcomes):
            self._record(outcomes[0])
        return outcomes

    def _send_each(self, events: Sequence[bytes]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for event in events:
            self._went()
            try:
                started = time.monotonic()
                answer = self._transport.post(self._track_path, event, {"X-Event-Id": event_id_from(event)})
                self._took(time.monotonic() - started)
                outcome = classify(answer.status, answer.headers, answer.body, complete=answer.complete)
            except Exception as exc:
                outcome = classify_error(exc)
            self._record(outcome)
            outcomes.append(outcome)
            if outcome.kind == TRANSIENT:
                held = Outcome(TRANSIENT, "not_sent", "an earlier event of this batch failed", against_service=False)
                outcomes.extend([held] * (len(events) - len(outcomes)))
                break
        return outcomes

    def _went(self) -> None:
        self.requests += 1
        if self._pacer is not None:
            try:
                self._pacer.sent()
            except Exception as exc:  # pacing is advice: never stop a request for it
                log.debug("pace not recorded: %s", type(exc).__name__)

    def _took(self, seconds: float) -> None:
        self.latency_s = seconds if self.latency_s is None else 0.7 * self.latency_s + 0.3 * seconds

    def _record(self, outcome: Outcome) -> None:
        """A failure the service is to blame for feeds the breaker; nothing else does."""
        if outcome.counts_against_service:
            self._breaker.record(False)

    def _learn(self, outcomes: Sequence[Outcome]) -> None:
        """A stored event proves the service works: close the breaker for every process.
        The first failure that held events back is remembered for ``stats()``."""
        failed = next((o for o in outcomes if o.kind != OK and o.reason != "not_sent"), None)
        if failed is not None:
            import time

            self.last_failure = {"reason": failed.reason, "detail": failed.detail[:200], "at": time.time()}
        if any(o.kind == OK for o in outcomes):
            self._breaker.record(True)
            if self._health is not None:
                self._health.note_delivered()
        waits = [o.retry_after_s for o in outcomes if o.retry_after_s]
        if waits and self._on_retry_after is not None:
            self._on_retry_after(max(waits))
        if self._pacer is not None:
            self._pace(outcomes)

    def _pace(self, outcomes: Sequence[Outcome]) -> None:
        """A 429 sets the window full and backs this machine off (pacing.py); any other
        answer of the service was inside the limit."""
        try:
            limited = [o for o in outcomes if o.reason == "rate_limited"]
            if limited:
                waits = [o.retry_after_s for o in limited if o.retry_after_s is not None]
                wait = self._pacer.rate_limited(max(waits) if waits else None)
                log.info("the service's rate limit is reached; this machine waits %.1f s", wait)
            elif any(o.kind == OK for o in outcomes):
                self._pacer.admitted()
        except Exception as exc:
            log.debug("pace not recorded: %s", type(exc).__name__)
