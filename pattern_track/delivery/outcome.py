"""What an answer of the service means, decided in one place (wire-contract.md).

Every delivery ends in one ``Outcome``:

- ``ok``: stored (2xx, including ``already_exists`` and identical duplicates);
- ``permanent``: the event itself is wrong; never retried, never counted against the
  service, kept as a dead letter with the service's reason;
- ``transient``: the service or its database is unwell (429, 5xx, connection errors,
  the 400s a lost database produces); the event is kept and the breaker counts it;
- ``suspect``: may be either (an unknown ``error_type``, a parent not found yet, an
  answer we cannot read): retried like a transient one, but only ``max_attempts`` times
  before it is dead-lettered, so one odd event cannot block the outbox forever.

Only the service's own answers move the shared breaker: ``against_service`` is true for
transient answers and unreadable ones, never for an answer about one event (validation,
parent not found, an unknown ``error_type`` on one event) and never for a request that
we cut ourselves (exit, a client-side error): those are ``Outcome(..., against_service=False)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

# Reading a body and a header is answers.py's; what they mean is decided here.
from .answers import (
    RETRY_AFTER_MAX_S,
    detail_text as _detail,
    is_service_body as _service_body,
    parse_json as _json,
    parse_retry_after,
)

__all__ = ["BatchVerdict", "Outcome", "RETRY_AFTER_MAX_S", "classify", "classify_batch", "classify_error",
           "health_verdict", "parse_retry_after"]

OK = "ok"
PERMANENT = "permanent"
TRANSIENT = "transient"
SUSPECT = "suspect"

#: error_type values the service gives when the event itself is wrong.
PERMANENT_ERROR_TYPES = frozenset({
    "validation_error", "CheckViolationError", "StringDataRightTruncationError", "IndexError",
    "UntranslatableCharacterError", "CharacterNotInRepertoireError",
})
#: error_type values that mean the database is down or two creations raced.
TRANSIENT_ERROR_TYPES = frozenset({
    "foreign_key_violation", "ForeignKeyViolationError", "InterfaceError", "OSError",
    "CannotConnectNowError", "TooManyConnectionsError", "PostgresConnectionError",
    "ConnectionDoesNotExistError", "InternalClientError",
})
#: Statuses that say the request (not the event) was misdirected: keep the events.
_MISDIRECTED = {401, 403, 404, 405, 407, 408, 409, 421, 425}


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    kind: str
    reason: str
    detail: str = ""
    retry_after_s: float | None = None
    #: None: decided by ``kind`` (only transient answers count against the service).
    against_service: bool | None = None
    #: The service may have stored the event although this answer does not say so (a
    #: request cut, reset or timed out after it was sent; a batch answered 2xx with a body
    #: that cannot be read): reconcile through the read route before resending (replay.py).
    in_doubt: bool = False

    @property
    def ok(self) -> bool:
        return self.kind == OK

    @property
    def counts_against_service(self) -> bool:
        """Does this outcome say the service is unwell? (feeds the shared breaker)"""
        if self.against_service is not None:
            return self.against_service
        return self.kind == TRANSIENT


STORED = Outcome(OK, "stored")


@dataclasses.dataclass(frozen=True, slots=True)
class BatchVerdict:
    """Either one outcome for the whole batch, a request to resend one by one, or one per event."""

    whole: Outcome | None = None
    split: bool = False
    per_event: tuple[Outcome, ...] = ()


def classify_error(exc: BaseException) -> Outcome:
    """A request that got no answer is transient; it counts against the service only when
    the service is to blame (refused, reset, timed out, TLS, DNS), not when we cut it
    (exit) or failed on our side (``RuntimeError`` at interpreter shutdown, encoding)."""
    reason = getattr(exc, "reason", None)
    detail = f"{type(exc).__name__}: {str(exc)[:200]}"
    if reason is None:  # not a transport answer at all: our own error
        return Outcome(TRANSIENT, "client_error", detail, against_service=False)
    return Outcome(TRANSIENT, reason, detail, against_service=getattr(exc, "service_fault", True),
                   in_doubt=bool(getattr(exc, "in_doubt", False)))


def _from_error_type(error_type: Any, error: Any) -> Outcome:
    text = str(error or "")[:300]
    if error_type in PERMANENT_ERROR_TYPES:
        if error_type == "validation_error" and "not found" in text.lower():
            # During replay this means order broke (a parent not yet stored): retry, bounded.
            # It is about this event, not the service: the breaker does not hear of it.
            return Outcome(SUSPECT, "parent_not_found", text)
        return Outcome(PERMANENT, str(error_type), text)
    name = str(error_type or "")
    if error_type in TRANSIENT_ERROR_TYPES or "Connection" in name or "Timeout" in name or "Refused" in name:
        return Outcome(TRANSIENT, "database_unavailable", f"{name}: {text}")
    return Outcome(SUSPECT, "unknown_error_type", f"{name}: {text}")


def _object(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _unreadable(detail: str) -> Outcome:
    """An answer we cannot read is the service's (or a proxy's) fault."""
    return Outcome(SUSPECT, "unreadable_answer", detail, against_service=True)


#: A 2xx of the single-event route the service sent but we could not read: the service
#: stores before it answers, so the event is stored by its own account; never blamed.
STORED_UNREADABLE = Outcome(OK, "stored_unreadable_answer", "a 2xx whose body could not be read")
#: A 2xx with no body at all: not the service's way (it always answers JSON); maybe stored.
EMPTY_ANSWER = Outcome(TRANSIENT, "empty_answer", "a 2xx with an empty body", against_service=False, in_doubt=True)


def classify(status: int, headers: Mapping[str, str], body: bytes, *, now: float | None = None,
             complete: bool = True) -> Outcome:
    """Classify the answer to ``POST /lineage/track`` (``complete``: the body arrived whole)."""
    if 200 <= status < 300:
        doc = _json(body) if complete else None
        if isinstance(doc, dict) and doc.get("success") is not False:
            return STORED
        if complete and not body.strip():
            return EMPTY_ANSWER
        if _service_body(headers, body, complete) and not (isinstance(doc, dict) and doc.get("success") is False):
            return STORED_UNREADABLE
        return _unreadable(f"HTTP {status} without a success body")
    if status == 429:
        # The service is well, only busy: never against the breaker (pacing.py paces instead).
        return Outcome(TRANSIENT, "rate_limited", "", parse_retry_after(headers.get("Retry-After"), now=now),
                       against_service=False)
    if status >= 500:
        return Outcome(TRANSIENT, f"http_{status}", _detail(body),
                       parse_retry_after(headers.get("Retry-After"), now=now))
    if status == 400:
        doc = _json(body)
        if isinstance(doc, dict) and "detail" in doc:
            return Outcome(PERMANENT, "rejected", _detail(body))
        if isinstance(doc, dict) and doc.get("success") is False:
            meta = _object(doc.get("metadata"))
            return _from_error_type(meta.get("error_type"), doc.get("error"))
        return _unreadable("HTTP 400 with an unknown body")
    if status == 413:
        # A proxy (or the service) refuses the body's size: this event alone is too big.
        return Outcome(PERMANENT, "too_large_for_service", _detail(body))
    if status == 422:
        return Outcome(PERMANENT, "http_422", _detail(body))
    if 300 <= status < 400:
        where = headers.get("Location", "?")
        return Outcome(TRANSIENT, "redirected", f"HTTP {status} to {where[:200]}: set the final URL as base_url")
    if status in _MISDIRECTED:
        return Outcome(TRANSIENT, f"http_{status}", _detail(body))
    return Outcome(SUSPECT, f"http_{status}", _detail(body))


#: A batch answered 2xx whose body we could not read: the service processed the batch, but
#: which events it stored (a lost database fails them one by one in a 200) is unknown.
UNREADABLE_BATCH = Outcome(TRANSIENT, "unreadable_batch_answer", "a 2xx batch answer that could not be read",
                           against_service=False, in_doubt=True)


def classify_batch(status: int, headers: Mapping[str, str], body: bytes, count: int, *, now: float | None = None,
                   complete: bool = True) -> BatchVerdict:
    """Classify the answer to ``POST /lineage/track/batch`` for ``count`` events
    (``complete``: the body arrived whole)."""
    if 200 <= status < 300 and (not complete or not body.strip()):
        return BatchVerdict(whole=UNREADABLE_BATCH)
    if status in (400, 422):
        doc = _json(body)
        if isinstance(doc, dict) and "detail" in doc:
            # One bad event rejects the whole batch and nothing is stored: resend one by one.
            return BatchVerdict(split=True)
    if status in (404, 405, 413):
        # An older collector without the batch route, or a body too large for a proxy
        # in front of the service: send smaller (delivery.py halves on 413).
        return BatchVerdict(split=True)
    if status != 200:
        return BatchVerdict(whole=classify(status, headers, body, now=now))
    doc = _json(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("batch_summary"), dict):
        if _service_body(headers, body, complete):
            return BatchVerdict(whole=UNREADABLE_BATCH)
        return BatchVerdict(whole=_unreadable("batch answer without batch_summary"))
    results: list[Outcome | None] = [None] * count
    for item in doc.get("successful_results") or ():
        index = item.get("event_index") if isinstance(item, dict) else None
        if isinstance(index, int) and 0 <= index < count:
            results[index] = STORED
    for item in doc.get("failed_results") or ():
        index = item.get("event_index") if isinstance(item, dict) else None
        if isinstance(index, int) and 0 <= index < count:
            meta = _object(item.get("metadata"))
            results[index] = _from_error_type(meta.get("error_type"), item.get("error"))
    missing = Outcome(SUSPECT, "missing_from_batch_answer", "the batch answer did not mention this event")
    return BatchVerdict(per_event=tuple(r or missing for r in results))


def health_verdict(status: int, body: bytes) -> tuple[bool, str]:
    """Healthy unless the service says its lineage database was never reached.

    ``database_pool.pool_size == 0`` is *not* unhealthy: the real service's pool empties
    after 300 s without a lineage request and only a track request refills it
    (wire-contract.md, "health"). Health is advice for the sender, never a wall.
    """
    if status != 200:
        return False, f"HTTP {status}"
    doc = _json(body)
    if not isinstance(doc, dict):
        return False, "health answer is not JSON"
    if doc.get("status") != "healthy":
        components = _object(doc.get("components"))
        return False, f"{str(doc.get('status'))[:40]} ({str(components.get('lineage_tracker'))[:40]})"
    components = _object(doc.get("components"))
    if components.get("lineage_tracker") != "operational":
        return False, f"lineage_tracker {str(components.get('lineage_tracker'))[:40]}"
    perf = _object(doc.get("performance"))
    pool = _object(perf.get("database_pool"))
    if pool.get("pool_size") == 0:
        return True, "healthy (database pool idle)"
    return True, "healthy"
