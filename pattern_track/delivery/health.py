"""Health pre-check of the service, cached and shared between processes.

Healthy means what wire-contract.md says: 200, ``status == "healthy"`` and the lineage
tracker operational; an empty database pool is healthy (it empties after 300 s idle and
only a track request refills it). Health is **advice, never a wall**: it can say healthy
while the database is gone, and degraded while a request would refill the pool, so real
delivery outcomes drive the breaker and ``Core.may_send`` still lets one probe request
through per breaker reset timeout while health says no. A delivery the service accepted
records "healthy" for every process (``note_delivered``).

Only answers of the service are recorded: a check we cut ourselves (exit) or that failed
on our side (``RuntimeError`` at interpreter shutdown) records nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..clock import Clock
from .outcome import health_verdict

__all__ = ["Health", "describe"]

log = logging.getLogger(__name__)


class Health:
    """``is_healthy()`` answers from the shared cache while fresh, else asks the service."""

    def __init__(self, get: Callable[[str, float], Any], store: Any, *, path: str,
                 interval_s: float, timeout_s: float, clock: Clock | None = None,
                 on_result: Callable[[bool], None] | None = None,
                 on_answer: Callable[[Any], None] | None = None) -> None:
        self._get = get  # (path, timeout_s) -> Answer, raises on no answer
        self._on_answer = on_answer  # the pacer reads the rate window from each 200's JSON
        self._on_result = on_result  # the breaker learns from failed health checks too
        self._store = store
        self._path = path
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._clock = clock or Clock()
        self.checks = 0

    def cached(self) -> dict | None:
        """The last answer any process recorded, or None."""
        return self._store.get("health")

    def is_healthy(self) -> bool:
        record = self.cached()
        if record is not None and 0 <= self._clock.monotonic() - record["monotonic"] < self.interval_s:
            return record["healthy"]
        return self.check()

    def age_s(self) -> float | None:
        record = self.cached()
        return None if record is None else self._clock.monotonic() - record["monotonic"]

    def check(self, *, teach_breaker: bool = True) -> bool:
        """Ask the service now and record the answer for every process. A failure feeds the
        breaker unless ``teach_breaker`` is False (the probes of probe.py, every few
        seconds during an outage, would open it on their own)."""
        self.checks += 1
        try:
            answer = self._get(self._path, self.timeout_s)
            healthy, reason = health_verdict(answer.status, answer.body)
            answered = answer.status == 200
            if answered and self._on_answer is not None:
                self._tell(self._on_answer, answer.body)
        except Exception as exc:  # no answer at all
            why = getattr(exc, "reason", None)  # NoAnswer's
            if why is None or not getattr(exc, "service_fault", True):
                # Our own cut or error says nothing about the service: record nothing.
                log.debug("health check not recorded: %s", type(exc).__name__)
                return False
            healthy, reason, answered = False, f"{why}: {_short(str(exc))}", False
        return self._record(healthy, reason, answered=answered, teach_breaker=teach_breaker)

    def _tell(self, on_answer: Callable[[Any], object], body: bytes) -> None:
        import json

        try:
            on_answer(json.loads(body))
        except Exception as exc:  # advice only: a bad body or state write changes nothing else
            log.debug("health answer's rate window not read: %s", type(exc).__name__)

    def answered(self) -> bool:
        """Did the last recorded check get a 200 from the service (healthy or degraded)?"""
        record = self.cached() or {}
        return bool(record.get("answered", record.get("healthy")))

    def note_delivered(self) -> None:
        """The service stored events: it is healthy, whatever the last check said."""
        record = self.cached()
        if record is None or not record.get("healthy"):
            self._record(True, "healthy (a delivery succeeded)")

    def _record(self, healthy: bool, reason: str, *, answered: bool = True, teach_breaker: bool = True) -> bool:
        previous = self.cached()
        record = {"healthy": healthy, "reason": reason, "answered": answered, "monotonic": self._clock.monotonic(),
                  "wall": self._clock.time(),
                  "consecutive_failures": 0 if healthy else (previous or {}).get("consecutive_failures", 0) + 1}
        self._store.set("health", record)
        if self._on_result is not None and not healthy and teach_breaker:
            # Only failures: a healthy answer says nothing about the database (it can be
            # gone while health says healthy), so it must not reset delivery failures.
            self._on_result(False)
        if previous is None or previous["healthy"] != healthy:
            log.log(logging.INFO if healthy else logging.WARNING, "service %s (%s)",
                    "healthy" if healthy else "unhealthy", reason)
        return healthy

    def snapshot(self) -> dict:
        """The last recorded answer, as ``describe()`` shows it."""
        return describe(self.cached(), self._clock.monotonic())


def describe(record: dict | None, now_monotonic: float) -> dict:
    """A recorded health answer as ``stats()["health"]`` and ``pattern-track stats`` both
    show it: ``is_healthy`` (False when never checked), ``reason``, ``checked_at`` (epoch
    seconds) and ``last_check`` (the same time in ISO 8601, UTC), ``age_s`` (seconds since,
    by the monotonic clock every process shares), ``consecutive_failures``; None where
    nothing was recorded."""
    import datetime

    record = record or {}
    wall, checked = record.get("wall"), record.get("monotonic")
    return {
        "is_healthy": record.get("healthy", False),
        "last_check": datetime.datetime.fromtimestamp(wall, datetime.timezone.utc).isoformat(timespec="seconds")
        if wall else None,
        "checked_at": wall,
        "reason": record.get("reason"),
        "consecutive_failures": record.get("consecutive_failures", 0),
        "age_s": None if checked is None else round(max(now_monotonic - checked, 0.0), 1),
    }


def _short(text: str, limit: int = 120) -> str:
    """``text`` cut at a word boundary, with an ellipsis, if longer than ``limit``."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " ..."
